"""The agent state machine: every legal transition, the illegal ones refused, events recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.agent_state import Agent, AgentState, AgentStateEvent, IllegalAgentTransition

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
S = AgentState


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def agent(**kw: object) -> Agent:
    return Agent("1001", "Li Wei", device_registered=True, **kw)  # type: ignore[arg-type]


def ready_agent() -> Agent:
    a = agent()
    a.login(at(0))
    a.ready(at(1))
    a.drain()
    return a


def on_call_agent() -> Agent:
    a = ready_agent()
    a.reserve(at(2), "i1")
    a.ring(at(3))
    a.answer(at(5))
    a.drain()
    return a


def moves(events: list[AgentStateEvent]) -> list[tuple[S, S]]:
    return [(e.from_state, e.to_state) for e in events]


def test_full_cycle_records_every_transition_with_its_time() -> None:
    a = agent()
    a.login(at(0))
    a.ready(at(1))
    a.reserve(at(2), "i1")
    a.ring(at(3))
    a.answer(at(5))
    a.hang_up(at(65), wrap_up_s=10)
    assert a.wrap_up_expired(at(75))
    a.not_ready(at(80), "lunch")
    a.logout(at(90))
    events = a.drain()
    assert moves(events) == [
        (S.LOGGED_OUT, S.NOT_READY),
        (S.NOT_READY, S.READY),
        (S.READY, S.RESERVED),
        (S.RESERVED, S.RINGING),
        (S.RINGING, S.ON_CALL),
        (S.ON_CALL, S.WRAP_UP),
        (S.WRAP_UP, S.READY),
        (S.READY, S.NOT_READY),
        (S.NOT_READY, S.LOGGED_OUT),
    ]
    assert [e.at for e in events] == [at(s) for s in (0, 1, 2, 3, 5, 65, 75, 80, 90)]
    assert all(e.agent_id == "1001" for e in events)
    assert events[0].reason == "login"
    assert [e.interaction_id for e in events[2:6]] == ["i1"] * 4
    assert events[7].reason == "lunch"
    assert a.drain() == []
    assert a.state is S.LOGGED_OUT and a.state_since == at(90)


def test_login_lands_in_not_ready_with_reason_login() -> None:
    a = agent()
    a.login(at(0))
    assert a.state is S.NOT_READY
    assert a.not_ready_reason == "login"
    assert a.logged_in_at == at(0)
    assert not a.routable


def test_ready_starts_the_idle_period() -> None:
    a = ready_agent()
    assert a.state is S.READY
    assert a.ready_since == at(1)
    assert a.not_ready_reason is None
    assert a.routable


def test_answer_counts_the_call_and_ends_the_idle_period() -> None:
    a = on_call_agent()
    assert a.state is S.ON_CALL
    assert a.calls_answered == 1
    assert a.ready_since is None
    assert a.interaction_id == "i1"


def test_hang_up_without_wrap_up_goes_straight_to_ready() -> None:
    a = on_call_agent()
    a.hang_up(at(60), wrap_up_s=0)
    assert a.state is S.READY
    assert a.ready_since == at(60)
    assert a.interaction_id is None
    assert moves(a.drain()) == [(S.ON_CALL, S.READY)]


def test_hang_up_starts_a_timed_wrap_up() -> None:
    a = on_call_agent()
    a.hang_up(at(60), wrap_up_s=15)
    assert a.state is S.WRAP_UP
    assert a.wrap_up_until == at(75)
    assert a.interaction_id == "i1"  # after-call work is about that interaction
    assert not a.routable


def test_negative_wrap_up_is_refused() -> None:
    a = on_call_agent()
    with pytest.raises(ValueError):
        a.hang_up(at(60), wrap_up_s=-1)
    assert a.state is S.ON_CALL


def test_wrap_up_timer_rechecks_state_when_it_fires() -> None:
    a = on_call_agent()
    a.hang_up(at(60), wrap_up_s=15)
    assert not a.wrap_up_expired(at(74))  # early: nothing happens
    assert a.wrap_up_until == at(75)
    assert a.wrap_up_expired(at(75.2))
    assert a.state is S.READY and a.ready_since == at(75.2)
    assert not a.wrap_up_expired(at(76))  # a second firing does nothing
    events = a.drain()
    assert moves(events) == [(S.ON_CALL, S.WRAP_UP), (S.WRAP_UP, S.READY)]
    assert events[-1].reason == "wrap-up ended"


def test_wrap_up_timer_after_agent_moved_on_does_nothing() -> None:
    a = on_call_agent()
    a.hang_up(at(60), wrap_up_s=15)
    a.ready(at(62))  # agent ends after-call work early
    a.reserve(at(63), "i2")
    assert not a.wrap_up_expired(at(75))
    assert a.state is S.RESERVED and a.interaction_id == "i2"


def test_stale_timer_of_an_earlier_wrap_up_does_not_cut_a_new_one() -> None:
    a = on_call_agent()
    a.hang_up(at(60), wrap_up_s=15)
    a.ready(at(61))
    a.reserve(at(62), "i2")
    a.ring(at(63))
    a.answer(at(64))
    a.hang_up(at(70), wrap_up_s=15)
    assert not a.wrap_up_expired(at(75))  # the first wrap-up's timer
    assert a.state is S.WRAP_UP
    assert a.wrap_up_expired(at(85))


def test_not_ready_from_every_idle_point_and_reason_change() -> None:
    a = ready_agent()
    a.not_ready(at(2), "break")
    assert a.state is S.NOT_READY and a.not_ready_reason == "break" and a.ready_since is None
    a.not_ready(at(3), "training")
    assert a.not_ready_reason == "training"
    events = a.drain()
    assert moves(events) == [(S.READY, S.NOT_READY), (S.NOT_READY, S.NOT_READY)]
    assert [e.reason for e in events] == ["break", "training"]
    b = on_call_agent()
    b.hang_up(at(60), wrap_up_s=30)
    b.not_ready(at(61), "coaching")
    assert b.state is S.NOT_READY and b.wrap_up_until is None
    assert not b.wrap_up_expired(at(120))


def test_ready_from_wrap_up_ends_it_early() -> None:
    a = on_call_agent()
    a.hang_up(at(60), wrap_up_s=30)
    a.ready(at(70))
    assert a.state is S.READY and a.wrap_up_until is None and a.ready_since == at(70)


@pytest.mark.parametrize("start", [S.READY, S.NOT_READY, S.WRAP_UP])
def test_logout_from_every_idle_state(start: S) -> None:
    a = on_call_agent() if start is S.WRAP_UP else ready_agent()
    if start is S.WRAP_UP:
        a.hang_up(at(60), wrap_up_s=30)
    elif start is S.NOT_READY:
        a.not_ready(at(2), "break")
    a.drain()
    a.logout(at(100))
    assert a.state is S.LOGGED_OUT
    assert a.ready_since is None and a.wrap_up_until is None and a.interaction_id is None
    assert a.logged_in_at is None
    assert moves(a.drain()) == [(start, S.LOGGED_OUT)]


def test_ring_no_answer_back_to_ready_keeps_its_place_in_the_idle_line() -> None:
    a = ready_agent()
    a.reserve(at(2), "i1")
    a.ring(at(3))
    a.offer_failed(at(18), "no answer", set_not_ready=False)
    assert a.state is S.READY and a.routable
    assert a.ready_since == at(1)  # the idle period the offer interrupted
    assert a.interaction_id is None
    assert a.calls_answered == 0
    events = a.drain()
    assert moves(events)[-1] == (S.RINGING, S.READY)
    assert events[-1].reason == "no answer" and events[-1].interaction_id == "i1"


def test_ring_no_answer_with_not_ready() -> None:
    a = ready_agent()
    a.reserve(at(2), "i1")
    a.ring(at(3))
    a.offer_failed(at(18), "no answer", set_not_ready=True)
    assert a.state is S.NOT_READY and a.not_ready_reason == "no answer"
    assert not a.routable and a.ready_since is None
    event = a.drain()[-1]
    assert (event.from_state, event.to_state, event.reason) == (S.RINGING, S.NOT_READY, "no answer")


def test_offer_can_fail_before_ringing() -> None:
    a = ready_agent()
    a.reserve(at(2), "i1")
    a.offer_failed(at(2.5), "originate failed", set_not_ready=False)
    assert a.state is S.READY and a.ready_since == at(1)


def test_device_unregistered_means_not_routable() -> None:
    a = ready_agent()
    a.set_device(at(5), registered=False)
    assert a.state is S.READY
    assert not a.routable
    a.set_device(at(6), registered=False)  # no change, no event
    a.set_device(at(7), registered=True)
    assert a.routable
    events = a.drain()
    assert [(e.at, e.reason) for e in events] == [
        (at(5), "device unregistered"),
        (at(7), "device registered"),
    ]
    assert all(e.from_state is e.to_state is S.READY for e in events)


@pytest.mark.parametrize("state", list(S))
def test_only_ready_and_registered_is_routable(state: S) -> None:
    assert agent(state=state).routable is (state is S.READY)
    assert not Agent("x", "x", state=state, device_registered=False).routable


ILLEGAL = [
    (S.LOGGED_OUT, "ready"),
    (S.LOGGED_OUT, "not_ready"),
    (S.LOGGED_OUT, "logout"),
    (S.LOGGED_OUT, "reserve"),
    (S.LOGGED_OUT, "answer"),
    (S.LOGGED_OUT, "hang_up"),
    (S.NOT_READY, "login"),
    (S.NOT_READY, "reserve"),
    (S.NOT_READY, "ring"),
    (S.READY, "ready"),
    (S.READY, "login"),
    (S.READY, "ring"),
    (S.READY, "answer"),
    (S.READY, "hang_up"),
    (S.READY, "offer_failed"),
    (S.RESERVED, "reserve"),
    (S.RESERVED, "answer"),
    (S.RESERVED, "logout"),
    (S.RESERVED, "not_ready"),
    (S.RESERVED, "ready"),
    (S.RINGING, "ring"),
    (S.RINGING, "logout"),
    (S.RINGING, "hang_up"),
    (S.ON_CALL, "ready"),
    (S.ON_CALL, "not_ready"),
    (S.ON_CALL, "logout"),
    (S.ON_CALL, "offer_failed"),
    (S.ON_CALL, "reserve"),
    (S.WRAP_UP, "reserve"),
    (S.WRAP_UP, "hang_up"),
    (S.WRAP_UP, "answer"),
]


def _do(a: Agent, action: str) -> None:
    now = at(100)
    if action == "reserve":
        a.reserve(now, "i9")
    elif action == "not_ready":
        a.not_ready(now, "break")
    elif action == "offer_failed":
        a.offer_failed(now, "no answer", set_not_ready=False)
    elif action == "hang_up":
        a.hang_up(now, 10)
    else:
        getattr(a, action)(now)


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_illegal_transitions_are_refused_and_change_nothing(state: S, action: str) -> None:
    a = agent(
        state=state, state_since=at(50), interaction_id="i1" if state in (S.RESERVED, S.ON_CALL) else None
    )
    before = (a.state, a.state_since, a.interaction_id, a.calls_answered, a.ready_since)
    with pytest.raises(IllegalAgentTransition, match="1001"):
        _do(a, action)
    assert (a.state, a.state_since, a.interaction_id, a.calls_answered, a.ready_since) == before
    assert a.drain() == []


def test_skill_levels_are_validated() -> None:
    with pytest.raises(ValueError, match=r"1\.\.10"):
        Agent("a", "A", skills={"billing": 11})
    with pytest.raises(ValueError):
        Agent("a", "A", skills={"billing": 0})
    with pytest.raises(ValueError):
        Agent("a", "A", skills={"": 3})
    # A skill is a code: no spaces, commas or control characters (routing reasons, logs, CSV).
    for bad in ("a\nb", "a b", "a,b", "x" * 41, "-lead"):
        with pytest.raises(ValueError, match="skill name"):
            Agent("a", "A", skills={bad: 3})
    assert Agent("a", "A", skills={"普通话": 5, "repairs-north.v2": 3}).skills["普通话"] == 5
    a = Agent("a", "A", skills={"billing": 10})
    a.set_skill("english", 1)
    with pytest.raises(ValueError):
        a.set_skill("english", 12)
    assert a.skills == {"billing": 10, "english": 1}
    a.remove_skill("billing")
    a.remove_skill("absent")
    assert a.skills == {"english": 1}


def test_occupancy_counts_time_working_since_login() -> None:
    a = agent()
    a.login(at(0))
    a.ready(at(0))
    a.reserve(at(10), "i1")
    a.ring(at(11))
    a.answer(at(15))
    assert a.occupancy(at(20)) == pytest.approx(10 / 20)  # busy since 10 s
    a.hang_up(at(40), wrap_up_s=10)
    assert a.wrap_up_expired(at(50))
    assert a.busy_s == pytest.approx(40)
    assert a.occupancy(at(100)) == pytest.approx(0.4)
    a.logout(at(100))
    a.login(at(200))
    assert a.busy_s == 0 and a.occupancy(at(300)) == 0
    assert Agent("x", "X").occupancy(at(0)) == 0


# -- what the panel offers, and "Not Ready after this call" -------------------------------------


def state(a: Agent) -> AgentState:
    return a.state  # read afresh after each step (mypy would keep the first narrowing)


def talking_agent() -> Agent:
    a = ready_agent()
    a.reserve(at(2), "it-1")
    a.ring(at(3))
    a.answer(at(4))
    a.drain()
    return a


def test_controls_offer_only_what_means_something_in_each_state() -> None:
    a = agent()
    assert a.controls().names() == ("ready", "not_ready")  # logged out: either logs in
    a.login(at(0))
    assert a.controls().names() == ("ready", "not_ready")  # not ready: Ready, or another reason
    a.ready(at(1))
    assert a.controls().names() == ("not_ready",)  # no Ready button that does nothing
    a.reserve(at(2), "it-1")
    assert a.controls().names() == ("not_ready_after_call",)
    a.ring(at(3))
    assert a.controls().names() == ("not_ready_after_call", "decline")
    a.answer(at(4))
    assert a.controls().names() == ("not_ready_after_call",)
    a.ask_not_ready(at(5), "lunch")
    assert a.controls().names() == ("stay_ready_after_call",)
    a.ask_ready(at(6))
    assert a.controls().names() == ("not_ready_after_call",)
    a.hang_up(at(7), wrap_up_s=30)
    assert a.controls().names() == ("ready", "not_ready")  # Ready ends wrap-up early


def test_not_ready_after_the_call_waits_for_the_end_of_wrap_up() -> None:
    a = talking_agent()
    a.ask_not_ready(at(5), "lunch")
    assert state(a) is S.ON_CALL and a.not_ready_next == "lunch"
    assert a.drain() == []  # nothing happened yet: the caller is still there
    a.hang_up(at(10), wrap_up_s=30)
    assert state(a) is S.WRAP_UP
    assert a.wrap_up_expired(at(40))
    assert state(a) is S.NOT_READY and a.not_ready_reason == "lunch" and a.not_ready_next is None
    assert a.ready_since is None and a.interaction_id is None
    assert [(e.from_state, e.to_state, e.reason) for e in a.drain()] == [
        (S.ON_CALL, S.WRAP_UP, "call ended"),
        (S.WRAP_UP, S.NOT_READY, "lunch"),
    ]


def test_not_ready_after_the_call_without_wrap_up_goes_at_hang_up() -> None:
    a = talking_agent()
    a.ask_not_ready(at(5), "meeting")
    a.hang_up(at(10), wrap_up_s=0)
    assert state(a) is S.NOT_READY and a.not_ready_reason == "meeting"


def test_not_ready_after_the_call_applies_when_the_offer_fails() -> None:
    a = ready_agent()
    a.reserve(at(2), "it-1")
    a.ring(at(3))
    a.ask_not_ready(at(4), "break")
    a.offer_failed(at(5), "declined", set_not_ready=False)
    assert state(a) is S.NOT_READY and a.not_ready_reason == "break" and a.not_ready_next is None


def test_ready_in_wrap_up_replaces_the_request_and_taking_it_back_keeps_the_agent_ready() -> None:
    a = talking_agent()
    a.ask_not_ready(at(5), "lunch")
    a.hang_up(at(10), wrap_up_s=30)
    a.ready(at(12))  # the agent changed their mind: their own Ready wins
    assert state(a) is S.READY and a.not_ready_next is None
    b = talking_agent()
    b.ask_not_ready(at(5), "lunch")
    b.ask_ready(at(6))
    b.hang_up(at(10), wrap_up_s=0)
    assert state(b) is S.READY


def test_asking_outside_a_call_acts_at_once_and_idle_states_refuse_the_after_call_request() -> None:
    a = ready_agent()
    a.ask_not_ready(at(2), "break")
    assert state(a) is S.NOT_READY
    a.ask_ready(at(3))
    assert state(a) is S.READY
    with pytest.raises(IllegalAgentTransition):
        a.not_ready_after_call("break")
    assert a.not_ready_next is None


def test_logout_forgets_the_request() -> None:
    a = talking_agent()
    a.ask_not_ready(at(5), "lunch")
    a.hang_up(at(6), wrap_up_s=30)
    a.logout(at(7))
    assert a.not_ready_next is None and a.state is S.LOGGED_OUT
