"""The routing core, rule by rule: risk order, strategies, eligibility, sticky, relaxation,
overflow and statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.agent_state import Agent, AgentState
from app.domain.routing import (
    DEFAULT_TARGETS,
    Decision,
    Overflow,
    QueueConfig,
    Relaxation,
    Router,
    ServiceTarget,
    SkillRequirement,
    Strategy,
    Tier,
    WaitingInteraction,
    could_ever_serve,
    customer_tier,
    eligible,
    is_member,
    qualifies,
    risk_order,
    slack_s,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def ready(
    agent_id: str,
    skills: dict[str, int] | None = None,
    groups: frozenset[str] = frozenset(),
    idle_s: float | None = 60,
    calls: int = 0,
) -> Agent:
    return Agent(
        agent_id,
        f"agent {agent_id}",
        skills=skills or {},
        groups=groups,
        state=AgentState.READY,
        state_since=ago(idle_s or 0),
        device_registered=True,
        ready_since=ago(idle_s) if idle_s is not None else None,
        calls_answered=calls,
    )


def waiting(
    wid: str,
    queue: str = "q",
    waited_s: float = 0,
    tier: Tier = Tier.MEDIUM,
    skills: tuple[SkillRequirement, ...] = (),
    **kw: object,
) -> WaitingInteraction:
    return WaitingInteraction(wid, queue, ago(waited_s), tier, required_skills=skills, **kw)  # type: ignore[arg-type]


def router(*queues: QueueConfig) -> Router:
    return Router({q.name: q for q in queues})


def picks(decisions: list[Decision]) -> list[tuple[str, tuple[str, ...]]]:
    return [(d.interaction_id, d.agent_ids) for d in decisions]


def one_by_one(r: Router, agents: list[Agent], n: int, queue: str = "q") -> list[str]:
    """Offer n interactions one pass at a time; the agent answers and is ready again at once."""
    chosen = []
    for k in range(n):
        (d,) = r.decide([waiting(f"i{k}", queue)], agents, NOW)
        chosen.append(d.agent_ids[0])
    return chosen


# -- risk order ------------------------------------------------------------------------------------


def test_fifo_within_a_tier() -> None:
    queues = {"q": QueueConfig("q")}
    ws = [waiting("b", waited_s=5), waiting("a", waited_s=20), waiting("c", waited_s=1)]
    assert [w.id for w in risk_order(ws, queues, NOW)] == ["a", "b", "c"]


def test_top_tier_jumps_ahead_exactly_as_far_as_its_tighter_target_warrants() -> None:
    queues = {"q": QueueConfig("q")}  # top 10 s, medium 30 s
    vip = waiting("vip", waited_s=0, tier=Tier.TOP)  # slack 10
    young = waiting("young", waited_s=19)  # slack 11: the VIP goes first
    old = waiting("old", waited_s=21)  # slack 9: stays ahead of the VIP
    tied = waiting("tied", waited_s=20)  # slack 10: tie, earlier queued_at wins
    order = [w.id for w in risk_order([vip, young, old, tied], queues, NOW)]
    assert order == ["old", "tied", "vip", "young"]
    assert slack_s(vip, queues, NOW) == 10
    assert slack_s(old, queues, NOW) == 9  # target 30 - 21 s waited


def test_order_of_two_interactions_never_changes_with_time() -> None:
    queues = {"q": QueueConfig("q")}
    ws = [
        waiting("vip", waited_s=3, tier=Tier.TOP),
        waiting("m", waited_s=22),
        waiting("low", waited_s=50, tier=Tier.LOW),
    ]
    orders = {
        tuple(w.id for w in risk_order(ws, queues, NOW + timedelta(seconds=s))) for s in (0, 5, 100, 10_000)
    }
    assert len(orders) == 1


def test_past_target_interactions_keep_getting_more_urgent() -> None:
    queues = {"q": QueueConfig("q")}
    late_low = waiting("late", waited_s=75, tier=Tier.LOW)  # 15 s past its 60 s target
    fresh_top = waiting("top", waited_s=0, tier=Tier.TOP)
    assert [w.id for w in risk_order([fresh_top, late_low], queues, NOW)] == ["late", "top"]


def test_equal_slack_and_arrival_then_customer_value_then_id() -> None:
    queues = {"q": QueueConfig("q")}
    ws = [
        waiting("b", waited_s=5, customer_value=10),
        waiting("a", waited_s=5, customer_value=10),
        waiting("rich", waited_s=5, customer_value=500),
    ]
    assert [w.id for w in risk_order(ws, queues, NOW)] == ["rich", "a", "b"]


def test_risk_is_compared_across_queues_with_each_queues_targets() -> None:
    fast = QueueConfig("fast", targets={Tier.MEDIUM: ServiceTarget(80, 5)})
    slow = QueueConfig("slow")
    queues = {"fast": fast, "slow": slow}
    ws = [waiting("s", "slow", waited_s=20), waiting("f", "fast", waited_s=0)]  # slack 10 vs 5
    assert [w.id for w in risk_order(ws, queues, NOW)] == ["f", "s"]
    assert fast.target(Tier.TOP) == DEFAULT_TARGETS[Tier.TOP]  # tiers not configured use defaults


def test_decide_serves_in_risk_order_when_agents_are_short() -> None:
    r = router(QueueConfig("q"))
    ws = [waiting("m", waited_s=15), waiting("vip", waited_s=0, tier=Tier.TOP), waiting("old", waited_s=25)]
    ds = r.decide(ws, [ready("a1", idle_s=10), ready("a2", idle_s=50)], NOW)
    # old (slack 5) gets the longest idle agent, vip (slack 10) the other; m (slack 15) waits.
    assert picks(ds) == [("old", ("a2",)), ("vip", ("a1",))]


# -- strategies ------------------------------------------------------------------------------------


def test_longest_idle_takes_the_earliest_ready_since() -> None:
    r = router(QueueConfig("q", Strategy.LONGEST_IDLE))
    agents = [ready("a", idle_s=30), ready("b", idle_s=90), ready("c", idle_s=60)]
    ds = r.decide(
        [waiting("i1", waited_s=3), waiting("i2", waited_s=2), waiting("i3", waited_s=1)], agents, NOW
    )
    assert picks(ds) == [("i1", ("b",)), ("i2", ("c",)), ("i3", ("a",))]
    assert "longest idle, idle 90 s" in ds[0].reason


def test_longest_idle_agent_without_ready_since_counts_as_idle_forever_ties_by_id() -> None:
    r = router(QueueConfig("q"))
    agents = [ready("b", idle_s=9999), ready("z", idle_s=None), ready("y", idle_s=None)]
    ds = r.decide([waiting("i1", waited_s=2), waiting("i2", waited_s=1)], agents, NOW)
    assert picks(ds) == [("i1", ("y",)), ("i2", ("z",))]


def test_fewest_calls_then_longest_idle() -> None:
    r = router(QueueConfig("q", Strategy.FEWEST_CALLS))
    agents = [ready("a", calls=5, idle_s=500), ready("b", calls=2, idle_s=10), ready("c", calls=2, idle_s=20)]
    ds = r.decide([waiting("i1", waited_s=2), waiting("i2", waited_s=1)], agents, NOW)
    assert picks(ds) == [("i1", ("c",)), ("i2", ("b",))]
    assert "fewest calls (2 answered)" in ds[0].reason


def test_linear_hunts_in_member_order() -> None:
    r = router(QueueConfig("q", Strategy.LINEAR, members=("m3", "m1", "m2")))
    agents = [ready("m1", idle_s=500), ready("m2"), ready("m3", idle_s=1)]
    assert one_by_one(r, agents, 3) == ["m3", "m3", "m3"]  # always the first free member
    agents[2].state = AgentState.ON_CALL
    (d,) = r.decide([waiting("x")], agents, NOW)
    assert d.agent_ids == ("m1",)
    assert "linear hunt" in d.reason and "member 2 of 3" in d.reason


def test_linear_members_first_then_group_agents_by_id() -> None:
    r = router(QueueConfig("q", Strategy.LINEAR, members=("m1",), groups=frozenset({"g"})))
    agents = [ready("g2", groups=frozenset({"g"})), ready("g1", groups=frozenset({"g"})), ready("m1")]
    ds = r.decide([waiting(f"i{k}", waited_s=10 - k) for k in range(3)], agents, NOW)
    assert [d.agent_ids[0] for d in ds] == ["m1", "g1", "g2"]


def test_round_robin_wraps_and_remembers_across_passes() -> None:
    r = router(QueueConfig("q", Strategy.ROUND_ROBIN, members=("a", "b", "c")))
    agents = [ready("a"), ready("b"), ready("c")]
    assert one_by_one(r, agents, 5) == ["a", "b", "c", "a", "b"]
    assert r.round_robin_last("q") == "b"


def test_round_robin_skips_unavailable_members_and_continues_after_the_last_chosen() -> None:
    r = router(QueueConfig("q", Strategy.ROUND_ROBIN, members=("a", "b", "c", "d")))
    agents = [ready("a"), ready("b"), ready("c"), ready("d")]
    assert one_by_one(r, agents, 1) == ["a"]
    agents[1].device_registered = False
    agents[2].state = AgentState.NOT_READY
    assert one_by_one(r, agents, 2) == ["d", "a"]
    agents[1].device_registered = True
    assert one_by_one(r, agents, 1) == ["b"]


def test_round_robin_advances_within_one_pass() -> None:
    r = router(QueueConfig("q", Strategy.ROUND_ROBIN, members=("a", "b", "c")))
    r.decide([waiting("first")], [ready("a"), ready("b"), ready("c")], NOW)  # -> a
    ds = r.decide(
        [waiting("i1", waited_s=2), waiting("i2", waited_s=1)], [ready("a"), ready("b"), ready("c")], NOW
    )
    assert picks(ds) == [("i1", ("b",)), ("i2", ("c",))]
    assert r.round_robin_last("q") == "c"


def test_round_robin_memory_moves_only_for_decisions_returned() -> None:
    r = router(QueueConfig("q", Strategy.ROUND_ROBIN, members=("a", "b")))
    assert r.decide([], [ready("a")], NOW) == []
    assert r.decide([waiting("i")], [], NOW) == []
    assert r.round_robin_last("q") is None


def test_skills_best_takes_the_highest_level_sum_then_longest_idle() -> None:
    needs = (SkillRequirement("billing", 3), SkillRequirement("english", 2))
    r = router(QueueConfig("q", Strategy.SKILLS_BEST, required_skills=needs))
    agents = [
        ready("specialist", {"billing": 10, "english": 2}),  # 12
        ready("allround", {"billing": 7, "english": 7}, idle_s=5),  # 14
        ready("allround2", {"billing": 8, "english": 6}, idle_s=50),  # 14, idle longer
        ready("weak", {"billing": 3, "english": 2}, idle_s=1000),  # 5
        ready("noenglish", {"billing": 10}, idle_s=2000),  # not eligible
    ]
    ds = r.decide([waiting(f"i{k}", waited_s=10 - k) for k in range(5)], agents, NOW)
    assert [d.agent_ids[0] for d in ds] == ["allround2", "allround", "specialist", "weak"]
    assert "best skill match (level sum 14)" in ds[0].reason
    assert "billing 8>=3, english 6>=2" in ds[0].reason


def test_skills_least_occupied_takes_the_least_busy_since_login() -> None:
    r = router(QueueConfig("q", Strategy.SKILLS_LEAST_OCCUPIED, required_skills=(SkillRequirement("s"),)))
    busy = ready("busy", {"s": 5}, idle_s=300)
    busy.logged_in_at, busy.busy_s = ago(1000), 800.0  # 80 %
    calm = ready("calm", {"s": 5}, idle_s=5)
    calm.logged_in_at, calm.busy_s = ago(1000), 100.0  # 10 %
    fresh = ready("fresh", {"s": 5}, idle_s=5)
    fresh.logged_in_at, fresh.busy_s = ago(1000), 100.0  # 10 %, ties with calm
    fresh.ready_since = ago(6)  # idle a second longer
    ds = r.decide([waiting(f"i{k}", waited_s=10 - k) for k in range(3)], [busy, calm, fresh], NOW)
    assert [d.agent_ids[0] for d in ds] == ["fresh", "calm", "busy"]
    assert "least occupied (10% busy since login)" in ds[0].reason


def test_ring_all_offers_every_eligible_agent_at_once() -> None:
    r = router(QueueConfig("q", Strategy.RING_ALL, required_skills=(SkillRequirement("s", 5),)))
    agents = [ready("a", {"s": 5}, idle_s=10), ready("b", {"s": 9}, idle_s=90), ready("low", {"s": 2})]
    ds = r.decide([waiting("i1", waited_s=5), waiting("i2")], agents, NOW)
    assert picks(ds) == [("i1", ("b", "a"))]  # longest idle first; i2 has nobody left
    assert "ring all, 2 eligible agent(s)" in ds[0].reason


# -- eligibility -----------------------------------------------------------------------------------


def test_required_skills_merge_queue_and_interaction_taking_the_higher_minimum() -> None:
    q = QueueConfig("q", required_skills=(SkillRequirement("billing", 4), SkillRequirement("english", 2)))
    w = waiting("i", skills=(SkillRequirement("billing", 6), SkillRequirement("vip")))
    assert eligible(ready("a", {"billing": 6, "english": 2, "vip": 1}), w, q, NOW) == (True, False)
    assert eligible(ready("b", {"billing": 5, "english": 2, "vip": 1}), w, q, NOW) == (False, False)
    assert eligible(ready("c", {"billing": 9, "english": 9}), w, q, NOW) == (False, False)
    assert eligible(ready("d", {"billing": 9, "vip": 3}), w, q, NOW) == (False, False)


def test_groups_and_members_restrict_the_queue() -> None:
    q = QueueConfig("q", groups=frozenset({"sales"}), members=("boss",))
    w = waiting("i")
    assert eligible(ready("s", groups=frozenset({"sales", "x"})), w, q, NOW)[0]
    assert eligible(ready("boss"), w, q, NOW)[0]
    assert not eligible(ready("other", groups=frozenset({"support"})), w, q, NOW)[0]
    assert eligible(ready("anyone"), w, QueueConfig("open"), NOW)[0]  # neither: every agent


def test_not_routable_or_excluded_agents_are_not_eligible() -> None:
    q = QueueConfig("q")
    a = ready("a")
    assert not eligible(a, waiting("i", excluded_agents=frozenset({"a"})), q, NOW)[0]
    a.device_registered = False
    assert not eligible(a, waiting("i"), q, NOW)[0]
    for state in (AgentState.NOT_READY, AgentState.RESERVED, AgentState.WRAP_UP, AgentState.LOGGED_OUT):
        b = ready("b")
        b.state = state
        assert not eligible(b, waiting("i"), q, NOW)[0]


def test_excluded_agent_is_skipped_and_the_next_one_offered() -> None:
    r = router(QueueConfig("q"))
    ds = r.decide([waiting("i", excluded_agents=frozenset({"a"}))], [ready("a", idle_s=99), ready("b")], NOW)
    assert picks(ds) == [("i", ("b",))]


def test_interaction_without_an_eligible_agent_waits_and_others_are_still_served() -> None:
    r = router(QueueConfig("q"))
    ds = r.decide(
        [waiting("french", waited_s=50, skills=(SkillRequirement("french"),)), waiting("any", waited_s=1)],
        [ready("a", {"english": 5})],
        NOW,
    )
    assert picks(ds) == [("any", ("a",))]


def test_agent_in_several_queues_gets_the_interaction_first_in_global_risk_order() -> None:
    sales = QueueConfig("sales", groups=frozenset({"sales"}))
    support = QueueConfig(
        "support", groups=frozenset({"support"}), targets={Tier.MEDIUM: ServiceTarget(80, 10)}
    )
    r = router(sales, support)
    both = ready("both", groups=frozenset({"sales", "support"}))
    s = waiting("s", "sales", waited_s=25)  # slack 5
    t = waiting("t", "support", waited_s=3)  # slack 7
    assert picks(r.decide([t, s], [both], NOW)) == [("s", ("both",))]
    t2 = waiting("t", "support", waited_s=6)  # slack 4
    assert picks(r.decide([s, t2], [both], NOW)) == [("t", ("both",))]


def test_unknown_queue_is_skipped() -> None:
    r = router(QueueConfig("q"))
    assert picks(r.decide([waiting("x", "gone", waited_s=99), waiting("i")], [ready("a")], NOW)) == [
        ("i", ("a",))
    ]


def test_duplicates_are_refused() -> None:
    r = router(QueueConfig("q"))
    with pytest.raises(ValueError, match="twice"):
        r.decide([waiting("i")], [ready("a"), ready("a")], NOW)
    with pytest.raises(ValueError, match="twice"):
        r.decide([waiting("i"), waiting("i")], [ready("a")], NOW)


# -- sticky ----------------------------------------------------------------------------------------


def test_sticky_holds_for_the_last_agent_then_widens() -> None:
    r = router(QueueConfig("q", sticky_s=20))
    last = ready("last", idle_s=1)
    other = ready("other", idle_s=500)
    w = waiting("i", waited_s=5, last_agent_id="last")
    (d,) = r.decide([w], [last, other], NOW)
    assert d.agent_ids == ("last",) and d.sticky and "sticky" in d.reason
    last.state = AgentState.ON_CALL  # busy: the call waits for them...
    assert r.decide([w], [last, other], NOW) == []
    w_later = waiting("i", waited_s=20, last_agent_id="last")  # ...until sticky_s, then anyone
    (d,) = r.decide([w_later], [last, other], NOW)
    assert d.agent_ids == ("other",) and not d.sticky


def test_after_the_sticky_window_the_last_agent_can_still_win_normally() -> None:
    r = router(QueueConfig("q", sticky_s=20))
    (d,) = r.decide(
        [waiting("i", waited_s=30, last_agent_id="last")], [ready("last", idle_s=99), ready("o")], NOW
    )
    assert d.agent_ids == ("last",) and not d.sticky


def test_sticky_widens_at_once_when_the_last_agent_is_logged_out_unknown_or_excluded() -> None:
    r = router(QueueConfig("q", sticky_s=60))
    gone = ready("last")
    gone.state = AgentState.LOGGED_OUT
    for w, agents in [
        (waiting("i", last_agent_id="last"), [gone, ready("o")]),
        (waiting("i", last_agent_id="stranger"), [ready("o")]),
        (
            waiting("i", last_agent_id="last", excluded_agents=frozenset({"last"})),
            [ready("last"), ready("o")],
        ),
    ]:
        (d,) = r.decide([w], agents, NOW)
        assert d.agent_ids == ("o",) and not d.sticky


def test_sticky_needs_the_last_agent_to_be_eligible() -> None:
    r = router(QueueConfig("q", sticky_s=60, required_skills=(SkillRequirement("s", 5),)))
    w = waiting("i", last_agent_id="last")
    assert r.decide([w], [ready("last", {"s": 2}), ready("o", {"s": 9})], NOW) == []


def test_sticky_off_by_default() -> None:
    (d,) = router(QueueConfig("q")).decide(
        [waiting("i", last_agent_id="last")], [ready("last"), ready("o", idle_s=99)], NOW
    )
    assert d.agent_ids == ("o",)


# -- relaxation ------------------------------------------------------------------------------------


def relaxing_queue() -> QueueConfig:
    return QueueConfig(
        "q",
        groups=frozenset({"tier1"}),
        required_skills=(SkillRequirement("billing", 7),),
        relaxations=(
            Relaxation(after_s=30, lower_min_level_by=2),
            Relaxation(after_s=60, lower_min_level_by=2, add_groups=frozenset({"tier2"})),
        ),
    )


def test_relaxation_lowers_the_minimum_after_n_seconds() -> None:
    r = router(relaxing_queue())
    junior = ready("junior", {"billing": 5}, groups=frozenset({"tier1"}))
    assert r.decide([waiting("i", waited_s=29)], [junior], NOW) == []
    (d,) = r.decide([waiting("i", waited_s=30)], [junior], NOW)
    assert d.agent_ids == ("junior",) and d.relaxed
    assert "relaxed after 30 s (step 1), minimum levels -2" in d.reason


def test_relaxation_steps_are_cumulative_and_add_groups() -> None:
    q = relaxing_queue()
    outsider = ready("outsider", {"billing": 3}, groups=frozenset({"tier2"}))
    assert eligible(outsider, waiting("i", waited_s=59), q, NOW) == (False, False)
    assert eligible(outsider, waiting("i", waited_s=60), q, NOW) == (True, True)  # 7-2-2 = 3, +tier2
    (d,) = router(q).decide([waiting("i", waited_s=61)], [outsider], NOW)
    assert (
        d.relaxed and "step 2" in d.reason and "minimum levels -4" in d.reason and "groups +tier2" in d.reason
    )


def test_relaxed_minimum_never_goes_below_one() -> None:
    q = QueueConfig("q", required_skills=(SkillRequirement("s", 3),), relaxations=(Relaxation(0, 99),))
    assert eligible(ready("a", {"s": 1}), waiting("i"), q, NOW) == (True, True)
    assert eligible(ready("b", {"other": 9}), waiting("i"), q, NOW) == (False, False)  # never drops a skill


def test_a_full_match_is_preferred_over_a_relaxed_one() -> None:
    r = router(relaxing_queue())
    full = ready("full", {"billing": 8}, groups=frozenset({"tier1"}), idle_s=1)
    relaxed = ready("relaxed", {"billing": 5}, groups=frozenset({"tier1"}), idle_s=999)
    (d,) = r.decide([waiting("i", waited_s=45)], [full, relaxed], NOW)
    assert d.agent_ids == ("full",) and not d.relaxed


def test_relaxation_keeps_the_place_in_line() -> None:
    r = router(relaxing_queue())
    old = waiting("old", waited_s=40)  # relaxed, queued earlier
    new = waiting("new", waited_s=1)
    (d,) = r.decide([new, old], [ready("a", {"billing": 9}, groups=frozenset({"tier1"}))], NOW)
    assert d.interaction_id == "old"
    assert old.queued_at == ago(40)


# -- overflow --------------------------------------------------------------------------------------


def overflow_router(*rules: Overflow, groups: frozenset[str] = frozenset()) -> Router:
    return router(
        QueueConfig("q", groups=groups, overflow=rules), QueueConfig("backup"), QueueConfig("other")
    )


def test_overflow_on_max_wait() -> None:
    r = overflow_router(Overflow("backup", max_wait_s=60))
    assert r.overflow_for(waiting("i", waited_s=59), [], [], NOW) is None
    assert r.overflow_for(waiting("i", waited_s=60), [], [], NOW) == "backup"


def test_overflow_on_max_length_sends_the_back_of_the_queue() -> None:
    r = overflow_router(Overflow("backup", max_length=2))
    ws = [waiting(f"i{k}", waited_s=10 - k) for k in range(4)] + [waiting("elsewhere", "other", waited_s=50)]
    agents = [ready("a")]
    assert [r.overflow_for(w, ws, agents, NOW) for w in ws] == [None, None, "backup", "backup", None]
    assert r.overflows(ws, agents, NOW) == {"i2": "backup", "i3": "backup"}


def test_overflow_when_no_agents_could_take_it() -> None:
    r = overflow_router(Overflow("backup", when_no_agents=True), groups=frozenset({"sales"}))
    w = waiting("i")
    seller = ready("s", groups=frozenset({"sales"}))
    assert r.overflow_for(w, [w], [ready("x")], NOW) == "backup"  # not a member
    seller.state = AgentState.ON_CALL  # busy agents free up on their own: no overflow
    assert r.overflow_for(w, [w], [seller], NOW) is None
    seller.state = AgentState.NOT_READY
    assert r.overflow_for(w, [w], [seller], NOW) == "backup"
    seller.state, seller.device_registered = AgentState.READY, False
    assert r.overflow_for(w, [w], [seller], NOW) == "backup"
    assert r.overflows([w], [seller], NOW) == {"i": "backup"}


def test_first_matching_overflow_rule_wins() -> None:
    r = overflow_router(Overflow("other", max_wait_s=120), Overflow("backup", max_wait_s=30))
    assert r.overflow_for(waiting("i", waited_s=40), [], [], NOW) == "backup"
    assert r.overflow_for(waiting("i", waited_s=130), [], [], NOW) == "other"


def test_overflow_on_expected_wait_from_the_live_queue() -> None:
    r = overflow_router(Overflow("backup", expected_wait_over_s=100))
    busy = ready("a")
    busy.state = AgentState.ON_CALL
    ws = [waiting("first", waited_s=20), waiting("second", waited_s=10)]
    # No handle time known yet: the wait is unknown, which is not "too long".
    assert r.overflows(ws, [busy], NOW) == {}
    r.record_handle_time("q", 60.0, NOW)  # one agent, 60 s per call: 60 s, then 120 s
    assert r.overflows(ws, [busy], NOW) == {"second": "backup"}


def test_overflow_on_average_speed_of_answer() -> None:
    r = overflow_router(Overflow("backup", asa_over_s=30))
    w = waiting("i", waited_s=1)
    assert r.overflow_for(w, [w], [ready("a")], NOW) is None
    r.record_answer("q", "earlier", 45.0, NOW)
    assert r.overflow_for(w, [w], [ready("a")], NOW) == "backup"


def test_overflow_rules_are_validated() -> None:
    with pytest.raises(ValueError):
        Overflow("backup")
    with pytest.raises(ValueError, match="itself"):
        QueueConfig("q", overflow=(Overflow("q", max_wait_s=1),))
    with pytest.raises(ValueError, match="unknown queue"):
        Router({"q": QueueConfig("q", overflow=(Overflow("nowhere", max_wait_s=1),))})


# -- statistics ------------------------------------------------------------------------------------


def test_queue_stats() -> None:
    q = QueueConfig("q", required_skills=(SkillRequirement("s"),))
    r = router(q)
    on_call = ready("busy", {"s": 3})
    on_call.state = AgentState.ON_CALL
    paused = ready("paused", {"s": 3})
    paused.state = AgentState.NOT_READY
    gone = ready("gone", {"s": 3})
    gone.state = AgentState.LOGGED_OUT
    agents = [ready("a", {"s": 3}), on_call, paused, gone, ready("unskilled")]
    ws = [waiting("i1", waited_s=42), waiting("i2", waited_s=7), waiting("x", "other", waited_s=99)]
    r.record_answer("q", "old", 10, NOW - timedelta(hours=2))  # outside the 30 min window
    r.record_answer("q", "a1", 4, NOW - timedelta(minutes=5), tier=Tier.TOP)  # within 10 s
    r.record_answer("q", "a2", 40, NOW - timedelta(minutes=1))  # beyond medium's 30 s
    r.record_handle_time("q", 100, NOW - timedelta(minutes=1))
    r.record_handle_time("q", 200, NOW - timedelta(minutes=2))
    s = r.stats("q", ws, agents, NOW)
    assert (s.queue, s.agents_logged_in, s.agents_ready, s.waiting) == ("q", 3, 1, 2)
    assert s.oldest_wait_s == 42
    assert s.answered == 2
    assert s.average_speed_of_answer_s == 22
    assert s.service_level_percent == 50
    assert s.average_handle_s == 150
    # a newcomer is 3rd; 1 ready agent; 2 serving (ready + on call): (3 - 1) * 150 / 2
    assert s.expected_wait_s == pytest.approx(150, rel=0.01)  # handle times weigh by age


def test_stats_of_an_empty_queue_and_unknown_queue() -> None:
    r = router(QueueConfig("q"))
    s = r.stats("q", [], [], NOW)
    assert (s.agents_logged_in, s.waiting, s.oldest_wait_s) == (0, 0, 0)
    assert (
        s.expected_wait_s is None and s.average_speed_of_answer_s is None and s.service_level_percent is None
    )
    with pytest.raises(KeyError):
        r.stats("nope", [], [], NOW)


# -- reasons and live configuration ----------------------------------------------------------------


def test_every_decision_explains_itself() -> None:
    for strategy in Strategy:
        r = router(QueueConfig("q", strategy, members=("a",), required_skills=(SkillRequirement("s", 2),)))
        (d,) = r.decide([waiting("i", waited_s=12, tier=Tier.HIGH)], [ready("a", {"s": 4})], NOW)
        assert d.reason.startswith("queue q, tier high, waited 12 s (slack +8 s): ")
        assert len(d.reason) > 40


def test_update_queues_takes_effect_at_the_next_decision_and_keeps_round_robin_memory() -> None:
    rr = QueueConfig("q", Strategy.ROUND_ROBIN, members=("a", "b", "c"))
    r = router(rr, QueueConfig("old", Strategy.ROUND_ROBIN, members=("a",)))
    agents = [ready("a"), ready("b"), ready("c")]
    assert one_by_one(r, agents, 2) == ["a", "b"]
    one_by_one(r, agents, 1, queue="old")
    r.update_queues({"q": rr, "new": QueueConfig("new")})
    assert r.round_robin_last("q") == "b" and r.round_robin_last("old") is None
    assert one_by_one(r, agents, 1) == ["c"]
    skilled = QueueConfig(
        "q", Strategy.ROUND_ROBIN, members=("a", "b", "c"), required_skills=(SkillRequirement("x"),)
    )
    r.update_queues({"q": skilled})
    agents[1].set_skill("x", 3)
    assert one_by_one(r, agents, 2) == ["b", "b"]
    assert set(r.queues) == {"q"}


def test_queue_names_must_match_their_keys() -> None:
    with pytest.raises(ValueError, match="configured under"):
        Router({"a": QueueConfig("b")})


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SkillRequirement("s", 11)
    with pytest.raises(ValueError):
        ServiceTarget(0, 10)
    with pytest.raises(ValueError):
        ServiceTarget(80, 0)
    with pytest.raises(ValueError, match="increasing"):
        QueueConfig("q", relaxations=(Relaxation(60), Relaxation(30)))
    with pytest.raises(ValueError, match="twice"):
        QueueConfig("q", members=("a", "a"))


def test_decide_does_not_touch_agents_or_interactions() -> None:
    r = router(QueueConfig("q"))
    a = ready("a")
    w = waiting("i")
    before = (repr(a), repr(w))
    r.decide([w], [a], NOW)
    assert (repr(a), repr(w)) == before


def test_an_agent_taken_by_another_queue_is_not_offered_again_past_an_excluded_one() -> None:
    """Pools are built once per pass and shared; agents taken meanwhile must still be skipped."""
    r = router(QueueConfig("q"), QueueConfig("q2", Strategy.FEWEST_CALLS))
    agents = [ready("x", idle_s=300, calls=5), ready("y", idle_s=200), ready("z", idle_s=100, calls=5)]
    ws = [
        waiting("w1", "q", waited_s=30, excluded_agents=frozenset({"x", "y"})),  # builds q's pool, takes z
        waiting("w2", "q2", waited_s=20),  # takes y (fewest calls)
        waiting("w3", "q", waited_s=10, excluded_agents=frozenset({"x"})),  # nobody left
    ]
    assert picks(r.decide(ws, agents, NOW)) == [("w1", ("z",)), ("w2", ("y",))]


def test_members_and_groups_combine_in_one_membership_rule() -> None:
    """A queue naming both admits its members and its groups' agents; the router, the desk's
    "could anyone answer" and the dialer's count all ask this one rule."""
    q = QueueConfig(
        "escalations",
        members=("1001",),
        groups=frozenset({"seniors"}),
        relaxations=(Relaxation(60, 0, frozenset({"juniors"})),),
    )
    member, senior, junior, other = (
        ready("1001"),
        ready("1002", groups=frozenset({"seniors"})),
        ready("1003", groups=frozenset({"juniors"})),
        ready("1004"),
    )
    assert is_member(member, q) and is_member(senior, q)
    assert not is_member(junior, q) and is_member(junior, q, step=1) and is_member(junior, q, step=None)
    assert not is_member(other, q, step=None)
    assert could_ever_serve(senior, q) and could_ever_serve(junior, q) and not could_ever_serve(other, q)
    senior.device_registered = False
    assert not could_ever_serve(senior, q)
    assert qualifies(member, q) and not qualifies(junior, q)
    decision = Router({"escalations": q}).decide([waiting("w", "escalations")], [senior, ready("1005")], NOW)
    assert decision == []  # 1005 is no member; the senior's phone is gone
    senior.device_registered = True
    [d] = Router({"escalations": q}).decide([waiting("w", "escalations")], [senior, other], NOW)
    assert d.agent_ids == ("1002",)
    everyone = QueueConfig("open")
    assert is_member(other, everyone) and could_ever_serve(other, everyone)


def test_a_customers_tier() -> None:
    assert customer_tier(True, "low") is Tier.TOP
    assert customer_tier(False, "high") is Tier.HIGH
    assert customer_tier(False, None) is Tier.MEDIUM
    assert customer_tier(False, "gold") is Tier.MEDIUM
