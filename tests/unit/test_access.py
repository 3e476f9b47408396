"""Who may do what in the panel, when a session is over, when sign-in is throttled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.access import (
    Principal,
    Role,
    SessionVerdict,
    may_change_state,
    may_supervise,
    may_view_agent,
    retry_after_s,
    session_verdict,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ALICE = Principal("1001", Role.AGENT, "1001")
EXPERT = Principal("1007", Role.EXPERT, "1007")
LEAD = Principal("lead", Role.SUPERVISOR, None)
ADMIN = Principal("root", Role.ADMIN, None)


@pytest.mark.parametrize(
    ("who", "own", "other", "supervise"),
    [
        (ALICE, True, False, False),
        (EXPERT, True, False, False),
        (LEAD, True, True, True),
        (ADMIN, True, True, True),
    ],
)
def test_roles(who: Principal, own: bool, other: bool, supervise: bool) -> None:
    mine = who.agent_id or "1001"
    assert may_view_agent(who, mine) is own and may_change_state(who, mine) is own
    assert may_view_agent(who, "1999") is other and may_change_state(who, "1999") is other
    assert may_supervise(who) is supervise


def test_an_agent_without_an_agent_id_sees_nobody() -> None:
    assert not may_view_agent(Principal("x", Role.AGENT, None), "1001")


def test_session_ends_when_idle_or_too_old() -> None:
    idle, most = 1800.0, 12 * 3600.0
    assert session_verdict(T0, T0, T0 + timedelta(minutes=29), idle, most) is SessionVerdict.VALID
    assert session_verdict(T0, T0, T0 + timedelta(minutes=30), idle, most) is SessionVerdict.IDLE
    recent = T0 + timedelta(hours=12) - timedelta(seconds=1)
    assert session_verdict(T0, recent, recent, idle, most) is SessionVerdict.VALID
    assert session_verdict(T0, recent, T0 + timedelta(hours=12), idle, most) is SessionVerdict.EXPIRED


def test_throttle_allows_up_to_the_limit_then_says_how_long_to_wait() -> None:
    fails = [T0 + timedelta(seconds=s) for s in (0, 10, 20, 30)]
    now = T0 + timedelta(seconds=40)
    assert retry_after_s(fails, now, 5, 300) == 0
    fails.append(T0 + timedelta(seconds=40))
    assert retry_after_s(fails, now, 5, 300) == 260  # the oldest leaves the window at T0+300
    assert retry_after_s(fails, T0 + timedelta(seconds=300), 5, 300) == 0
    # Failures older than the window do not count at all.
    assert retry_after_s([T0 - timedelta(seconds=400)] * 10, T0, 5, 300) == 0


def test_throttle_with_more_failures_than_the_limit_waits_for_enough_to_expire() -> None:
    fails = [T0 + timedelta(seconds=s) for s in range(7)]
    # Seven in the window, limit five: three must leave before one more is allowed.
    assert retry_after_s(fails, T0 + timedelta(seconds=7), 5, 300) == 295
