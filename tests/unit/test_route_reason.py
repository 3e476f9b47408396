"""The routing reason in an agent's words: read from the engine's own decisions, so a change
in the engine's wording that the panel no longer understands fails here."""

from __future__ import annotations

from app.domain.route_reason import ReasonPart, explain
from app.domain.routing import QueueConfig, Relaxation, SkillRequirement, Strategy, Tier
from tests.unit.test_routing import NOW, ready, router, waiting


def kinds(parts: tuple[ReasonPart, ...]) -> list[str]:
    return [p.kind for p in parts]


def test_skills_then_why_you_then_the_wait() -> None:
    needs = (SkillRequirement("billing", 5),)
    r = router(QueueConfig("billing", Strategy.LONGEST_IDLE, required_skills=needs))
    caller = waiting("i", queue="billing", waited_s=12, tier=Tier.HIGH)
    (d,) = r.decide([caller], [ready("a", {"billing": 8}, idle_s=42)], NOW)
    assert explain(d.reason) == (
        ReasonPart("skill", {"skill": "billing", "level": "8"}),
        ReasonPart("longest_idle", {"seconds": "42"}),
        ReasonPart("waited", {"queue": "billing", "seconds": "12"}),
    )


def test_every_strategy_has_its_sentence() -> None:
    expected = {
        Strategy.LONGEST_IDLE: "longest_idle",
        Strategy.FEWEST_CALLS: "fewest_calls",
        Strategy.LINEAR: "linear",
        Strategy.ROUND_ROBIN: "round_robin",
        Strategy.SKILLS_BEST: "best_skill",
        Strategy.SKILLS_LEAST_OCCUPIED: "least_occupied",
        Strategy.RING_ALL: "ring_all",
    }
    for strategy, kind in expected.items():
        r = router(QueueConfig("q", strategy, members=("a", "b")))
        (d,) = r.decide([waiting("i", waited_s=3)], [ready("a"), ready("b")], NOW)
        assert kind in kinds(explain(d.reason)), (strategy, d.reason)


def test_relaxed_and_late_calls_say_so() -> None:
    q = QueueConfig(
        "q",
        Strategy.LONGEST_IDLE,
        required_skills=(SkillRequirement("billing", 7),),
        groups=frozenset({"tier1"}),
        relaxations=(Relaxation(after_s=30, lower_min_level_by=2),),
    )
    (d,) = router(q).decide(
        [waiting("i", waited_s=300)], [ready("junior", {"billing": 5}, groups=frozenset({"tier1"}))], NOW
    )
    parts = explain(d.reason)
    assert kinds(parts)[-2:] == ["over_target", "relaxed"]
    assert parts[-1].values == {"seconds": "30"}


def test_sticky_and_unknown_lines() -> None:
    q = QueueConfig("q", Strategy.LONGEST_IDLE, sticky_s=60)
    caller = waiting("i", waited_s=5, last_agent_id="last")
    (d,) = router(q).decide([caller], [ready("last"), ready("x")], NOW)
    assert kinds(explain(d.reason))[0] == "sticky"
    assert explain("preview: agent asked for the next lead") == ()
    assert explain(None) == ()
