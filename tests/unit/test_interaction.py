"""The interaction's lifecycle and the agent choice: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.agents import AgentView, choose_agent
from app.domain.interaction import IllegalTransition, Interaction, Outcome, Phase, outcome_when_caller_leaves

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def new() -> Interaction:
    return Interaction("i1", "chan-1", ani="13800138000", dnis="7000", arrived_at=T0)


def test_happy_path_records_every_step_and_queue_wait() -> None:
    it = new()
    it.digit(T0 + timedelta(seconds=5), "1")
    it.queue(T0 + timedelta(seconds=5), reason="menu:1")
    it.offer(T0 + timedelta(seconds=6), "1001")
    it.connect(T0 + timedelta(seconds=8, milliseconds=250), "1001")
    it.end(T0 + timedelta(seconds=60), Outcome.COMPLETED)
    assert it.queue_wait_ms == 3250
    assert it.agent_id == "1001"
    assert [e.kind for e in it.drain()] == ["dtmf", "queued", "offered", "connected", "ended"]
    assert it.drain() == []


def test_failed_offer_keeps_place_and_original_queue_time() -> None:
    it = new()
    it.queue(T0, reason="menu:1")
    it.offer(T0 + timedelta(seconds=1), "1001")
    it.offer_failed(T0 + timedelta(seconds=16), "1001", "no answer")
    assert it.phase is Phase.QUEUED
    it.offer(T0 + timedelta(seconds=16), "1002")
    it.connect(T0 + timedelta(seconds=20), "1002")
    assert it.queue_wait_ms == 20_000


def test_illegal_transitions_are_refused() -> None:
    it = new()
    with pytest.raises(IllegalTransition):
        it.connect(T0, "1001")
    with pytest.raises(IllegalTransition):
        it.offer(T0, "1001")


def test_end_is_idempotent_first_outcome_wins() -> None:
    it = new()
    it.end(T0, Outcome.NO_AGENT)
    it.end(T0 + timedelta(seconds=1), Outcome.HUNG_UP_IN_IVR)
    assert it.outcome is Outcome.NO_AGENT
    assert [e.kind for e in it.drain()] == ["ended"]


def test_caller_leaving_means_different_things_per_phase() -> None:
    assert outcome_when_caller_leaves(Phase.IVR) is Outcome.HUNG_UP_IN_IVR
    assert outcome_when_caller_leaves(Phase.QUEUED) is Outcome.ABANDONED
    assert outcome_when_caller_leaves(Phase.OFFERED) is Outcome.ABANDONED
    assert outcome_when_caller_leaves(Phase.CONNECTED) is Outcome.COMPLETED


def test_longest_idle_registered_free_agent_wins() -> None:
    agents = [
        AgentView("1001", registered=True, busy=False, idle_since=T0 + timedelta(minutes=5)),
        AgentView("1002", registered=True, busy=False, idle_since=T0),
        AgentView("1003", registered=False, busy=False, idle_since=None),
        AgentView("1004", registered=True, busy=True, idle_since=None),
    ]
    assert choose_agent(agents) == "1002"
    assert choose_agent(agents, exclude=frozenset({"1002"})) == "1001"
    assert choose_agent(agents, exclude=frozenset({"1001", "1002"})) is None


def test_never_used_agent_beats_idle_ones_and_ties_follow_config_order() -> None:
    agents = [
        AgentView("1001", True, False, T0),
        AgentView("1002", True, False, None),
        AgentView("1003", True, False, None),
    ]
    assert choose_agent(agents) == "1002"


agent_views = st.lists(
    st.builds(
        AgentView,
        id=st.sampled_from([str(i) for i in range(1001, 1011)]),
        registered=st.booleans(),
        busy=st.booleans(),
        idle_since=st.none() | st.datetimes(timezones=st.just(UTC)),
    ),
    max_size=10,
    unique_by=lambda a: a.id,
)


@given(agent_views, st.frozensets(st.sampled_from([str(i) for i in range(1001, 1011)])))
def test_choice_is_always_a_free_registered_not_excluded_agent(
    agents: list[AgentView], exclude: frozenset[str]
) -> None:
    chosen = choose_agent(agents, exclude)
    eligible = [a for a in agents if a.registered and not a.busy and a.id not in exclude]
    if not eligible:
        assert chosen is None
    else:
        pick = next(a for a in agents if a.id == chosen)
        assert pick in eligible
        # nobody eligible has been idle longer
        for a in eligible:
            if pick.idle_since is not None:
                assert a.idle_since is not None and a.idle_since >= pick.idle_since
