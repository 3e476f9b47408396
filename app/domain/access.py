"""Who may do what in the agent panel, and when a panel session or a sign-in is refused.

Pure: no I/O, no clock of its own (callers pass `now`).

Roles, one line each:

- agent: sees and changes only their own routing state;
- expert: an agent others may consult; the same rights as an agent in this first slice;
- supervisor: sees every agent, changes any agent's state and skills;
- admin: everything a supervisor may do, and the expert directory's page (user management will
  be theirs alone too);
- qa: finds and replays recorded calls (the QA desk), nothing else.

Sessions end in two ways: idle (no request for `idle_s`; an open panel's websocket counts as
a request) and absolute (`max_s` after sign-in, whatever the activity), so a stolen or forgotten
session cannot be kept alive for ever.

Sign-in throttling counts failures per (username, address) in a sliding window. The attempt is
charged before the password is checked and refunded when it was right, so concurrent guesses
cannot slip past the limit while a hash is being verified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    EXPERT = "expert"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    QA = "qa"  # replays and scores recorded calls (app/recording/); no say over agents


AGENT_ROLES = frozenset({Role.AGENT, Role.EXPERT})
SUPERVISING_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True)
class Principal:
    """The signed-in person as the rules see them."""

    username: str
    role: Role
    agent_id: str | None  # set for agents and experts


def may_view_agent(who: Principal, agent_id: str) -> bool:
    return who.role in SUPERVISING_ROLES or (who.role in AGENT_ROLES and who.agent_id == agent_id)


def may_change_state(who: Principal, agent_id: str) -> bool:
    return may_view_agent(who, agent_id)


def may_supervise(who: Principal) -> bool:
    """List every agent, change anyone's skills."""
    return who.role in SUPERVISING_ROLES


def may_manage_experts(who: Principal) -> bool:
    """The expert directory's page: list it, add and remove experts on outside numbers."""
    return who.role is Role.ADMIN


class SessionVerdict(StrEnum):
    VALID = "valid"
    IDLE = "idle"  # no request for too long
    EXPIRED = "expired"  # past the absolute lifetime


def session_verdict(
    created_at: datetime, last_seen_at: datetime, now: datetime, idle_s: float, max_s: float
) -> SessionVerdict:
    if now >= created_at + timedelta(seconds=max_s):
        return SessionVerdict.EXPIRED
    if now >= last_seen_at + timedelta(seconds=idle_s):
        return SessionVerdict.IDLE
    return SessionVerdict.VALID


def retry_after_s(
    failures_in_window: list[datetime], now: datetime, max_failures: int, window_s: float
) -> int:
    """0 if another attempt is allowed now, else whole seconds until the oldest counted failure
    leaves the window (at least 1)."""
    recent = sorted(at for at in failures_in_window if at > now - timedelta(seconds=window_s))
    if len(recent) < max_failures:
        return 0
    # The attempt that would be allowed next is the one after the (len - max + 1)-th oldest leaves.
    frees_at = recent[len(recent) - max_failures] + timedelta(seconds=window_s)
    return max(1, math.ceil((frees_at - now).total_seconds()))
