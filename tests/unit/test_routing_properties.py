"""Properties of the router over generated agents, queues and waiting interactions.

Eligibility is re-derived here from the rules as written (an oracle independent of the
router's indexes and caches), and each property is checked against it."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.agent_state import Agent, AgentState
from app.domain.routing import (
    Overflow,
    QueueConfig,
    Relaxation,
    Router,
    SkillRequirement,
    Strategy,
    Tier,
    WaitingInteraction,
    _iter_risk_order,
    eligible,
    risk_order,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SKILLS = ("billing", "english", "french", "tech")
GROUPS = ("g1", "g2", "g3")
AGENT_IDS = tuple(f"a{k}" for k in range(8))
QUEUE_NAMES = ("q1", "q2", "q3")

PROPERTY = settings(deadline=None, max_examples=150)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# -- generators ------------------------------------------------------------------------------------


@st.composite
def agents_st(draw: st.DrawFn) -> list[Agent]:
    ids = draw(st.lists(st.sampled_from(AGENT_IDS), unique=True, min_size=1, max_size=len(AGENT_IDS)))
    agents = []
    for agent_id in ids:
        state = draw(st.sampled_from([AgentState.READY] * 8 + list(AgentState)))
        agents.append(
            Agent(
                agent_id,
                agent_id,
                skills=draw(
                    st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), min_size=1, max_size=4)
                ),
                groups=draw(st.frozensets(st.sampled_from(GROUPS), max_size=2)),
                state=state,
                device_registered=draw(st.sampled_from([True] * 7 + [False])),
                ready_since=draw(st.none() | st.integers(0, 600).map(ago)),
                calls_answered=draw(st.integers(0, 5)),
                logged_in_at=ago(3600),
                busy_s=draw(st.floats(0, 3600)),
            )
        )
    return agents


requirements_st = st.lists(
    st.builds(SkillRequirement, st.sampled_from(SKILLS), st.sampled_from([1, 1, 2, 3, 5, 8])), max_size=2
).map(tuple)


@st.composite
def queue_st(draw: st.DrawFn, name: str) -> QueueConfig:
    afters = sorted(draw(st.lists(st.integers(0, 120), max_size=2)))
    return QueueConfig(
        name,
        strategy=draw(st.sampled_from(list(Strategy))),
        groups=draw(st.frozensets(st.sampled_from(GROUPS), max_size=2)),
        members=tuple(draw(st.lists(st.sampled_from(AGENT_IDS), unique=True, max_size=4))),
        required_skills=draw(requirements_st.map(lambda reqs: reqs[:1])),
        sticky_s=draw(st.sampled_from([0, 30, 60])),
        relaxations=tuple(
            Relaxation(
                after,
                draw(st.integers(0, 5)),
                draw(st.frozensets(st.sampled_from(GROUPS), max_size=1)),
            )
            for after in afters
        ),
    )


@st.composite
def queues_st(draw: st.DrawFn) -> dict[str, QueueConfig]:
    n = draw(st.integers(2, len(QUEUE_NAMES)))
    return {name: draw(queue_st(name)) for name in QUEUE_NAMES[:n]}


@st.composite
def waiting_st(draw: st.DrawFn) -> list[WaitingInteraction]:
    n = draw(st.integers(0, 12))
    return [
        WaitingInteraction(
            f"w{k}",
            draw(st.sampled_from(QUEUE_NAMES[:2] * 4 + QUEUE_NAMES[2:] + ("gone",))),
            ago(draw(st.integers(0, 40) | st.integers(0, 200))),
            draw(st.sampled_from(list(Tier))),
            customer_value=draw(st.sampled_from([0, 0, 10, 100])),
            required_skills=draw(requirements_st),
            last_agent_id=draw(st.none() | st.sampled_from(AGENT_IDS)),
            excluded_agents=draw(st.frozensets(st.sampled_from(AGENT_IDS), max_size=2)),
        )
        for k in range(n)
    ]


# -- the oracle ------------------------------------------------------------------------------------


def wait_s(w: WaitingInteraction, now: datetime = NOW) -> float:
    return (now - w.queued_at).total_seconds()


def oracle(a: Agent, w: WaitingInteraction, q: QueueConfig, relaxed: bool, now: datetime = NOW) -> bool:
    """The eligibility rule as the issue states it, with or without the relaxation reached."""
    if not (a.state is AgentState.READY and a.device_registered) or a.id in w.excluded_agents:
        return False
    need: dict[str, int] = {}
    for r in (*q.required_skills, *w.required_skills):
        need[r.skill] = max(need.get(r.skill, 1), r.min_level)
    lowered, groups = 0, set(q.groups)
    if relaxed:
        for step in q.relaxations:
            if wait_s(w, now) >= step.after_s:
                lowered += step.lower_min_level_by
                groups |= step.add_groups
    member = (not q.members and not q.groups) or a.id in q.members or bool(groups & a.groups)
    return member and all(a.skills.get(s, 0) >= max(1, lvl - lowered) for s, lvl in need.items())


def held_for_last_agent(w: WaitingInteraction, q: QueueConfig, by_id: dict[str, Agent]) -> bool:
    last = by_id.get(w.last_agent_id or "")
    return (
        q.sticky_s > 0
        and wait_s(w) < q.sticky_s
        and last is not None
        and last.state is not AgentState.LOGGED_OUT
        and last.id not in w.excluded_agents
    )


def can_take(
    a: Agent, w: WaitingInteraction, queues: dict[str, QueueConfig], by_id: dict[str, Agent]
) -> bool:
    q = queues.get(w.queue)
    if q is None:
        return False
    if held_for_last_agent(w, q, by_id) and a.id != w.last_agent_id:
        return False
    return oracle(a, w, q, relaxed=True)


# -- properties ------------------------------------------------------------------------------------


@PROPERTY
@given(queues_st(), agents_st(), waiting_st())
def test_no_agent_holds_two_offers_in_one_pass(
    queues: dict[str, QueueConfig], agents: list[Agent], waiting: list[WaitingInteraction]
) -> None:
    decisions = Router(queues).decide(waiting, agents, NOW)
    offered = [agent_id for d in decisions for agent_id in d.agent_ids]
    assert len(offered) == len(set(offered))
    assert len({d.interaction_id for d in decisions}) == len(decisions)
    by_id = {a.id: a for a in agents}
    assert all(by_id[agent_id].routable for agent_id in offered)
    for d in decisions:
        if queues[d.queue].strategy is not Strategy.RING_ALL or d.sticky:
            assert len(d.agent_ids) == 1


@PROPERTY
@given(queues_st(), agents_st(), waiting_st())
def test_no_offer_to_an_agent_lacking_a_required_skill_unless_relaxation_allowed_it(
    queues: dict[str, QueueConfig], agents: list[Agent], waiting: list[WaitingInteraction]
) -> None:
    by_id = {a.id: a for a in agents}
    by_w = {w.id: w for w in waiting}
    for d in Router(queues).decide(waiting, agents, NOW):
        w, q = by_w[d.interaction_id], queues[d.queue]
        assert d.queue == w.queue
        strict = [oracle(by_id[a], w, q, relaxed=False) for a in d.agent_ids]
        assert d.relaxed == (not all(strict))
        for agent_id in d.agent_ids:
            assert oracle(by_id[agent_id], w, q, relaxed=True)
            assert eligible(by_id[agent_id], w, q, NOW) == (
                True,
                not oracle(by_id[agent_id], w, q, relaxed=False),
            )
        if d.sticky:
            assert d.agent_ids == (w.last_agent_id,)
        assert d.reason


@PROPERTY
@given(queues_st(), agents_st(), waiting_st())
def test_the_most_at_risk_interaction_gets_each_agent_first(
    queues: dict[str, QueueConfig], agents: list[Agent], waiting: list[WaitingInteraction]
) -> None:
    """Greedy in global risk order: an agent offered to w could take no unserved interaction
    ahead of w; and an interaction left waiting could be taken by no agent left free."""
    by_id = {a.id: a for a in agents}
    decisions = Router(queues).decide(waiting, agents, NOW)
    served = {d.interaction_id for d in decisions}
    taken = {agent_id for d in decisions for agent_id in d.agent_ids}
    order = risk_order(waiting, queues, NOW)
    rank = {w.id: k for k, w in enumerate(order)}
    for d in decisions:
        for u in order[: rank[d.interaction_id]]:
            if u.id not in served:
                assert not any(can_take(by_id[a], u, queues, by_id) for a in d.agent_ids), (u.id, d)
    for u in order:
        if u.id not in served:
            assert not any(can_take(a, u, queues, by_id) for a in agents if a.id not in taken)


@PROPERTY
@given(queues_st(), agents_st(), waiting_st())
def test_fifo_within_a_tier(
    queues: dict[str, QueueConfig], agents: list[Agent], waiting: list[WaitingInteraction]
) -> None:
    """Among interactions alike (queue, tier, requirements, exclusions, no sticky hold), those
    served are the ones that queued first."""
    by_id = {a.id: a for a in agents}
    served = {d.interaction_id for d in Router(queues).decide(waiting, agents, NOW)}
    for u in waiting:
        for v in waiting:
            alike = (u.queue, u.tier, u.required_skills, u.excluded_agents) == (
                v.queue,
                v.tier,
                v.required_skills,
                v.excluded_agents,
            )
            q = queues.get(u.queue)
            if not alike or q is None or held_for_last_agent(u, q, by_id) or held_for_last_agent(v, q, by_id):
                continue
            if v.id in served and u.id not in served:
                assert (u.queued_at, -u.customer_value, u.id) > (v.queued_at, -v.customer_value, v.id)


@PROPERTY
@given(
    st.lists(st.tuples(st.sampled_from(list(Tier)), st.integers(0, 100), st.integers(0, 50)), max_size=15),
    st.integers(0, 6),
)
def test_higher_risk_first_when_agents_are_short(arrivals: list[tuple[Tier, int, int]], free: int) -> None:
    """One queue, interchangeable agents: the k served are exactly the k with the least slack."""
    queues = {"q": QueueConfig("q")}
    waiting = [
        WaitingInteraction(f"w{k}", "q", ago(waited), tier, customer_value=value)
        for k, (tier, waited, value) in enumerate(arrivals)
    ]
    agents = [Agent(f"a{k}", "x", state=AgentState.READY, device_registered=True) for k in range(free)]
    served = [d.interaction_id for d in Router(queues).decide(waiting, agents, NOW)]
    targets = {Tier.TOP: 10, Tier.HIGH: 20, Tier.MEDIUM: 30, Tier.LOW: 60}
    expected = sorted(
        waiting, key=lambda w: (targets[w.tier] - wait_s(w), w.queued_at, -w.customer_value, w.id)
    )
    assert served == [w.id for w in expected[:free]]


@PROPERTY
@given(queues_st(), agents_st(), waiting_st(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(
    queues: dict[str, QueueConfig],
    agents: list[Agent],
    waiting: list[WaitingInteraction],
    rnd: random.Random,
) -> None:
    first = Router(queues).decide(waiting, agents, NOW)
    assert Router(queues).decide(waiting, agents, NOW) == first
    agents2, waiting2 = list(agents), list(waiting)
    rnd.shuffle(agents2)
    rnd.shuffle(waiting2)
    shuffled_queues = dict(rnd.sample(list(queues.items()), len(queues)))
    assert Router(shuffled_queues).decide(waiting2, agents2, NOW) == first


@settings(deadline=None, max_examples=60)
@given(queues_st(), agents_st(), st.data())
def test_no_agent_holds_two_offers_across_passes(
    queues: dict[str, QueueConfig], agents: list[Agent], data: st.DataObject
) -> None:
    """The caller reserves each decision's agents; whatever happens next, no later pass offers
    an agent who still holds an offer or a call."""
    router = Router(queues)
    by_id = {a.id: a for a in agents}
    waiting: dict[str, WaitingInteraction] = {}
    holding: dict[str, str] = {}  # agent -> interaction
    now = NOW
    serial = 0
    for _ in range(8):
        for w in data.draw(waiting_st()):
            serial += 1
            w.id = f"r{serial}"
            w.queued_at = now - (NOW - w.queued_at)
            waiting[w.id] = w
        for d in router.decide(list(waiting.values()), agents, now):
            for agent_id in d.agent_ids:
                assert agent_id not in holding, f"{agent_id} already holds {holding[agent_id]}"
                assert by_id[agent_id].routable
                by_id[agent_id].reserve(now, d.interaction_id)  # raises if not ready
                holding[agent_id] = d.interaction_id
            del waiting[d.interaction_id]
        now += timedelta(seconds=data.draw(st.integers(1, 30)))
        for a in agents:
            event = data.draw(st.integers(0, 5))
            if a.state is AgentState.RESERVED:
                a.ring(now)
            elif a.state is AgentState.RINGING and event < 3:
                a.answer(now)
            elif a.state is AgentState.RINGING:
                a.offer_failed(now, "no answer", set_not_ready=event == 5)
                holding.pop(a.id, None)
            elif a.state is AgentState.ON_CALL and event < 3:
                a.hang_up(now, wrap_up_s=data.draw(st.sampled_from([0, 10])))
                if a.interaction_id is None:  # no wrap-up: ready at once
                    holding.pop(a.id, None)
            elif a.state is AgentState.WRAP_UP and a.wrap_up_expired(now):
                holding.pop(a.id, None)
            elif a.state is AgentState.NOT_READY and event < 2:
                a.ready(now)
            elif a.state is AgentState.LOGGED_OUT and event == 0:
                a.login(now)
            elif a.state is AgentState.READY and event == 5:
                a.not_ready(now, "break")
        assert all(by_id[agent_id].interaction_id == it for agent_id, it in holding.items())


@settings(deadline=None, max_examples=80)
@given(
    st.lists(st.tuples(st.integers(1, 10), st.sampled_from(["g1", "g2"])), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 10), st.sampled_from(list(Tier)), st.integers(1, 10)), max_size=30),
    st.sampled_from([0, 15, 40, 120]),
)
def test_no_interaction_starves_under_relaxation(
    agent_specs: list[tuple[int, str]], arrivals: list[tuple[int, Tier, int]], relax_after: int
) -> None:
    """Agents of every level, callers needing up to level 10; after `relax_after` s any agent of
    the backup group with the skill may answer. Each round (5 s) every agent is free again.
    Every interaction is served within relax_after/5 + (total - 1)/agents rounds of arriving."""
    dt = 5
    queue = QueueConfig(
        "q",
        groups=frozenset({"g1"}),
        required_skills=(SkillRequirement("s"),),
        relaxations=(Relaxation(relax_after, lower_min_level_by=9, add_groups=frozenset({"g2"})),),
    )
    router = Router({"q": queue})
    agents = [
        Agent(f"a{k}", "x", skills={"s": level}, groups=frozenset({group}), device_registered=True)
        for k, (level, group) in enumerate(agent_specs)
    ]
    for a in agents:
        a.login(NOW)
        a.ready(NOW)
    arrived_round: dict[str, int] = {}
    served_round: dict[str, int] = {}
    waiting: dict[str, WaitingInteraction] = {}
    bound = math.ceil(relax_after / dt) + (len(arrivals) - 1) // len(agents) if arrivals else 0
    last_arrival = max((r for r, _, _ in arrivals), default=0)
    for rnd in range(last_arrival + bound + 2):
        now = NOW + timedelta(seconds=rnd * dt)
        for k, (arrival, tier, level) in enumerate(arrivals):
            if arrival == rnd:
                w = WaitingInteraction(
                    f"w{k}", "q", now, tier, required_skills=(SkillRequirement("s", level),)
                )
                waiting[w.id] = w
                arrived_round[w.id] = rnd
        for d in router.decide(list(waiting.values()), agents, now):
            (agent_id,) = d.agent_ids
            a = next(a for a in agents if a.id == agent_id)
            a.reserve(now, d.interaction_id)
            a.ring(now)
            a.answer(now)
            a.hang_up(now, wrap_up_s=0)
            served_round[d.interaction_id] = rnd
            del waiting[d.interaction_id]
    assert not waiting
    for wid, rnd in served_round.items():
        assert rnd - arrived_round[wid] <= bound, (wid, arrived_round[wid], rnd, bound)


@PROPERTY
@given(queues_st(), waiting_st())
def test_lazy_and_sorted_risk_order_agree(
    queues: dict[str, QueueConfig], waiting: list[WaitingInteraction]
) -> None:
    expected = risk_order(waiting, queues, NOW)
    assert list(_iter_risk_order(waiting, queues, lazy=True)) == expected
    assert list(_iter_risk_order(waiting, queues, lazy=False)) == expected


@PROPERTY
@given(queues_st(), agents_st(), waiting_st(), st.data())
def test_batch_overflows_agree_with_overflow_for(
    queues: dict[str, QueueConfig],
    agents: list[Agent],
    waiting: list[WaitingInteraction],
    data: st.DataObject,
) -> None:
    names = list(queues)
    rule = st.builds(
        lambda to, wait, length, empty: Overflow(
            to, wait, length, empty or (wait is None and length is None)
        ),
        st.sampled_from(names),
        st.none() | st.integers(0, 150),
        st.none() | st.integers(0, 5),
        st.booleans(),
    )
    configured = {
        name: replace(
            q, overflow=tuple(o for o in data.draw(st.lists(rule, max_size=3)) if o.to_queue != name)
        )
        for name, q in queues.items()
    }
    router = Router(configured)
    one_by_one = {w.id: router.overflow_for(w, waiting, agents, NOW) for w in waiting}
    assert router.overflows(waiting, agents, NOW) == {k: v for k, v in one_by_one.items() if v is not None}
