"""An agent and the state machine that says whether a call may be offered to them.

Pure: no I/O, no asyncio. The flows drive it; the store persists the events it records.

    logged_out --login--> not_ready("login") --ready--> ready --reserve--> reserved --ring--> ringing
    ringing --answer--> on_call --hang_up--> wrap_up --(timer: wrap_up_expired)--> ready
    reserved/ringing --offer_failed--> ready, or not_ready(reason) when the caller asks for it
    ready/wrap_up/not_ready --not_ready(reason)--> not_ready;  ready/wrap_up/not_ready --logout--> logged_out

Every transition records an `AgentStateEvent` with its timestamp in `pending`; the caller drains
and persists them, as with `Interaction.pending`. A transition that is not on this map raises
`IllegalAgentTransition` and changes nothing: the caller learns that its picture of the agent was
wrong instead of having it quietly patched over.

Choices, one paragraph each:

Logging in lands in not_ready with reason "login", never straight in ready: an agent who has just
logged in may still be putting on a headset, so taking calls is their own explicit act.

A failed offer (ring-no-answer, originate failure, caller gone while ringing) that sends the agent
back to ready keeps the `ready_since` of the idle period the offer interrupted. The agent handled
no call, so their idle period did not end; resetting it would move them to the back of a
longest-idle line because a caller hung up during ringing. This is also what app_queue does (a
missed ring does not update a member's last-call time). A silent agent is handled by the two
mechanisms made for it: the interaction excludes them (`WaitingInteraction.excluded_agents`) and,
by configuration, `set_not_ready=True` takes them out of routing with a reason.

`ready_since` is the start of the current idle period: set on every entry into ready (except
the failed-offer return above), kept while reserved and ringing (so a failed offer can restore
it), cleared on answer, not ready and logout. A ready agent whose `ready_since` is None (built
directly in that state, e.g. restored after a restart) counts as idle since forever: routing
puts them first, like the "never used yet" agents of the previous longest-idle rule.

Occupancy for the "least occupied" strategy is measured, not guessed: `busy_s` accumulates the
time spent reserved, ringing, on a call and in wrap-up since login, and `occupancy(now)` divides
it by the time logged in. It restarts at each login (a shift's occupancy, as in the usual
real-time reports).

Device registration is orthogonal to the state: an agent may be ready with an unregistered
phone, and is then simply not routable. `set_device` records an event only when the value
changes, with `from_state == to_state`.

After a restart the state is read back from what was stored (`restore`): Not Ready keeps its
reason, wrap-up its end, a call or an offer its interaction (the call runtime then finds out
whether that call is still there). Registering a phone logs in only an agent who was logged out,
so nobody on a break comes back Ready because their phone re-registered. What is not stored
(busy time for occupancy, calls answered) starts again from zero.

"Not Ready after this call": while an offer or a call holds the agent, going Not Ready now would
drop the caller, so the request is kept (`not_ready_next`) and honoured where the call lets go
of the agent: at the end of wrap-up, at a hang-up without wrap-up, or when the offer fails. The
agent's own Ready or Not Ready replaces it. It is not stored: after a restart the agent is asked
again, which is safer than a break nobody remembers asking for.

What the panel offers in each state is decided here too (`controls`): a button is shown only
when pressing it does something in that state, so the page never offers Ready while ringing.

A wrap-up timer never moves the agent blindly: `wrap_up_expired(now)` re-checks that the agent is
still in wrap-up and that this wrap-up's end has come (a timer left over from an earlier wrap-up,
or one firing after the agent pressed ready, does nothing and returns False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

MIN_SKILL_LEVEL = 1
MAX_SKILL_LEVEL = 10


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # an offer is decided, the agent's phone is not ringing yet
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after-call work, timed
    NOT_READY = "not_ready"  # logged in, with a reason code


# States in which the agent is working on an interaction (counted as busy for occupancy).
BUSY_STATES = frozenset({AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP})
# Idle points: where the agent may log out or go not ready.
IDLE_STATES = frozenset({AgentState.READY, AgentState.NOT_READY, AgentState.WRAP_UP})


class IllegalAgentTransition(Exception):
    pass


# Where "Not Ready" means "after this call": an offer or a call holds the agent.
HELD_STATES = frozenset({AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL})


@dataclass(frozen=True)
class AgentControls:
    """The state buttons an agent's panel offers now, each one meaning something in this state."""

    ready: bool  # go Ready (from Not Ready, or end wrap-up early)
    not_ready: bool  # go Not Ready now (or change the reason)
    not_ready_after_call: bool  # ask for Not Ready when the offer or call lets go
    stay_ready_after_call: bool  # take that request back
    decline: bool  # refuse a ringing offer

    def names(self) -> tuple[str, ...]:
        return tuple(name for name, on in vars(self).items() if on)


@dataclass(frozen=True)
class AgentStateEvent:
    agent_id: str
    at: datetime
    from_state: AgentState
    to_state: AgentState
    reason: str | None = None
    interaction_id: str | None = None


@dataclass(frozen=True)
class AgentSnapshot:
    """An agent's state as it stands, as stored beside the history (what a restart restores)."""

    state: AgentState
    since: datetime | None
    reason: str | None = None
    interaction_id: str | None = None
    wrap_up_until: datetime | None = None
    logged_in_at: datetime | None = None


# A skill's name is a code (the panel shows its label): letters in any script, digits, '_', '.'
# and '-'. No spaces, commas or control characters: the name goes into routing reasons (parsed
# back for the panel), log lines and CSV reports.
_SKILL_NAME = re.compile(r"\w[\w.-]{0,39}")


def skill_name_problem(skill: object) -> str | None:
    """Why `skill` cannot be a skill's name, or None when it can."""
    if not isinstance(skill, str) or not _SKILL_NAME.fullmatch(skill):
        return f"a skill name is 1-40 letters, digits, '_', '.' or '-' (no spaces), got {skill!r}"
    return None


def validate_skill(skill: str, level: int) -> None:
    """Raise ValueError unless `skill` is a skill's name and `level` an int in 1..10."""
    if (problem := skill_name_problem(skill)) is not None:
        raise ValueError(problem)
    if isinstance(level, bool) or not isinstance(level, int):
        raise ValueError(f"skill {skill!r}: level must be an integer, got {level!r}")
    if not MIN_SKILL_LEVEL <= level <= MAX_SKILL_LEVEL:
        raise ValueError(f"skill {skill!r}: level must be {MIN_SKILL_LEVEL}..{MAX_SKILL_LEVEL}, got {level}")


@dataclass
class Agent:
    id: str
    name: str
    skills: dict[str, int] = field(default_factory=dict)  # skill -> level 1..10
    groups: frozenset[str] = frozenset()
    state: AgentState = AgentState.LOGGED_OUT
    state_since: datetime | None = None
    not_ready_reason: str | None = None
    device_registered: bool = False  # an unregistered device is not routable
    ready_since: datetime | None = None  # start of the current idle period (longest idle)
    calls_answered: int = 0  # fewest calls
    interaction_id: str | None = None  # the offer or call the agent holds (kept through wrap-up)
    wrap_up_until: datetime | None = None
    logged_in_at: datetime | None = None
    busy_s: float = 0.0  # time reserved, ringing, on call or in wrap-up since login (occupancy)
    not_ready_next: str | None = None  # "Not Ready after this call", with its reason
    # The outbound line nailed up for the shift (app/dialer/nailed.py): "calling" (their phone
    # rings), "connected" (waiting for a customer), "with_customer"; None when there is none.
    outbound_line: str | None = None
    # Recorded but not yet persisted; the caller drains this after each step.
    pending: list[AgentStateEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        for skill, level in self.skills.items():
            validate_skill(skill, level)
        self.groups = frozenset(self.groups)

    # -- events ------------------------------------------------------------------------------------

    def drain(self) -> list[AgentStateEvent]:
        out, self.pending = self.pending, []
        return out

    def _require(self, action: str, *states: AgentState) -> None:
        if self.state not in states:
            allowed = ", ".join(s.value for s in states)
            raise IllegalAgentTransition(
                f"agent {self.id}: cannot {action} while {self.state.value} (allowed from {allowed})"
            )

    def _move(
        self, now: datetime, to: AgentState, reason: str | None = None, interaction_id: str | None = None
    ) -> None:
        if self.state in BUSY_STATES and self.state_since is not None:
            self.busy_s += max(0.0, (now - self.state_since).total_seconds())
        event = AgentStateEvent(self.id, now, self.state, to, reason, interaction_id)
        self.state = to
        self.state_since = now
        self.pending.append(event)

    # -- skills (live changes take effect at the next routing decision) ----------------------------

    def set_skill(self, skill: str, level: int) -> None:
        validate_skill(skill, level)
        self.skills[skill] = level

    def remove_skill(self, skill: str) -> None:
        self.skills.pop(skill, None)

    # -- transitions -------------------------------------------------------------------------------

    def login(self, now: datetime) -> None:
        self._require("log in", AgentState.LOGGED_OUT)
        self.logged_in_at = now
        self.busy_s = 0.0
        self.not_ready_reason = "login"
        self._move(now, AgentState.NOT_READY, reason="login")

    def logout(self, now: datetime, reason: str | None = None) -> None:
        self._require("log out", *IDLE_STATES)
        interaction_id = self.interaction_id
        self.not_ready_reason = None
        self.ready_since = None
        self.wrap_up_until = None
        self.interaction_id = None
        self.not_ready_next = None
        self._move(now, AgentState.LOGGED_OUT, reason=reason, interaction_id=interaction_id)
        self.logged_in_at = None

    def ready(self, now: datetime) -> None:
        self._require("go ready", AgentState.NOT_READY, AgentState.WRAP_UP)
        self.not_ready_next = None  # the agent's own Ready replaces an earlier request
        self._become_ready(now, reason=None)

    def not_ready_after_call(self, reason: str) -> None:
        """Not Ready with `reason` once the offer or call that holds the agent lets go."""
        self._require("ask for not ready after this call", *HELD_STATES)
        self.not_ready_next = reason

    def stay_ready_after_call(self) -> None:
        """Take back "Not Ready after this call"."""
        self._require("take back not ready after this call", *HELD_STATES, AgentState.WRAP_UP)
        self.not_ready_next = None

    def ask_ready(self, now: datetime) -> None:
        """The Ready button: while an offer or call holds the agent it takes back "Not Ready
        after this call"; otherwise the agent goes Ready (ending wrap-up early)."""
        if self.state in HELD_STATES:
            self.stay_ready_after_call()
        else:
            self.ready(now)

    def ask_not_ready(self, now: datetime, reason: str) -> None:
        """The Not Ready button: after this call while an offer or call holds the agent, now otherwise."""
        if self.state in HELD_STATES:
            self.not_ready_after_call(reason)
        else:
            self.not_ready(now, reason)

    def controls(self) -> AgentControls:
        """What the panel offers in this state (see the module docstring)."""
        held = self.state in HELD_STATES
        asked = self.not_ready_next is not None
        return AgentControls(
            # Signed in but logged out: either button logs the agent in (Not Ready asks a reason).
            ready=self.state in (AgentState.LOGGED_OUT, AgentState.NOT_READY, AgentState.WRAP_UP),
            not_ready=self.state in IDLE_STATES or self.state is AgentState.LOGGED_OUT,
            not_ready_after_call=held and not asked,
            stay_ready_after_call=held and asked,
            decline=self.state is AgentState.RINGING,
        )

    def _become_ready(self, now: datetime, reason: str | None) -> None:
        if self.not_ready_next is not None:  # asked for during the call: honoured now
            self._go_not_ready(now, self.not_ready_next)
            return
        interaction_id = self.interaction_id
        self.not_ready_reason = None
        self.wrap_up_until = None
        self.interaction_id = None
        self.ready_since = now
        self._move(now, AgentState.READY, reason=reason, interaction_id=interaction_id)

    def not_ready(self, now: datetime, reason: str) -> None:
        self._require("go not ready", *IDLE_STATES)
        self._go_not_ready(now, reason)

    def _go_not_ready(self, now: datetime, reason: str) -> None:
        self.not_ready_next = None
        interaction_id = self.interaction_id
        self.not_ready_reason = reason
        self.ready_since = None
        self.wrap_up_until = None
        self.interaction_id = None
        self._move(now, AgentState.NOT_READY, reason=reason, interaction_id=interaction_id)

    def reserve(self, now: datetime, interaction_id: str) -> None:
        self._require("be reserved", AgentState.READY)
        self.interaction_id = interaction_id
        self._move(now, AgentState.RESERVED, interaction_id=interaction_id)

    def ring(self, now: datetime) -> None:
        self._require("ring", AgentState.RESERVED)
        self._move(now, AgentState.RINGING, interaction_id=self.interaction_id)

    def answer(self, now: datetime) -> None:
        self._require("answer", AgentState.RINGING)
        self.calls_answered += 1
        self.ready_since = None
        self._move(now, AgentState.ON_CALL, interaction_id=self.interaction_id)

    def offer_failed(self, now: datetime, reason: str, set_not_ready: bool) -> None:
        """The offer ended without an answer. Back to ready (keeping the idle period the offer
        interrupted, see the module docstring), or not ready with `reason` when asked."""
        self._require("fail an offer", AgentState.RESERVED, AgentState.RINGING)
        interaction_id = self.interaction_id
        self.interaction_id = None
        if self.not_ready_next is not None and not set_not_ready:
            set_not_ready, reason = True, self.not_ready_next
        self.not_ready_next = None
        if set_not_ready:
            self.not_ready_reason = reason
            self.ready_since = None
            self._move(now, AgentState.NOT_READY, reason=reason, interaction_id=interaction_id)
        else:
            self._move(now, AgentState.READY, reason=reason, interaction_id=interaction_id)

    def hang_up(self, now: datetime, wrap_up_s: float) -> None:
        """The call ended: wrap-up for `wrap_up_s` seconds, or straight to ready when it is 0."""
        self._require("hang up", AgentState.ON_CALL)
        if wrap_up_s < 0:
            raise ValueError(f"agent {self.id}: wrap_up_s must be >= 0, got {wrap_up_s}")
        if wrap_up_s == 0:
            self._become_ready(now, reason="call ended")
            return
        self.wrap_up_until = now + timedelta(seconds=wrap_up_s)
        self._move(now, AgentState.WRAP_UP, reason="call ended", interaction_id=self.interaction_id)

    def wrap_up_expired(self, now: datetime) -> bool:
        """The wrap-up timer fired: go ready if this wrap-up is still on and over. Safe to call late,
        twice, or after the agent already moved on (then nothing happens and it returns False)."""
        if self.state is not AgentState.WRAP_UP or self.wrap_up_until is None or now < self.wrap_up_until:
            return False
        self._become_ready(now, reason="wrap-up ended")
        return True

    def restore(
        self,
        at: datetime,
        state: AgentState,
        since: datetime | None,
        reason: str | None = None,
        interaction_id: str | None = None,
        wrap_up_until: datetime | None = None,
        logged_in_at: datetime | None = None,
    ) -> None:
        """The state this agent was in before a restart. Not a transition: one event, from and to
        the same state with the reason "restored", says where they were taken up."""
        self.state = state
        self.state_since = since or at
        self.not_ready_reason = reason if state is AgentState.NOT_READY else None
        self.interaction_id = interaction_id if state in BUSY_STATES else None
        self.wrap_up_until = wrap_up_until if state is AgentState.WRAP_UP else None
        self.logged_in_at = (logged_in_at or self.state_since) if state is not AgentState.LOGGED_OUT else None
        self.ready_since = self.state_since if state is AgentState.READY else None
        self.pending.append(AgentStateEvent(self.id, at, state, state, "restored", self.interaction_id))

    def set_device(self, now: datetime, registered: bool) -> None:
        if registered == self.device_registered:
            return
        self.device_registered = registered
        reason = "device registered" if registered else "device unregistered"
        self.pending.append(
            AgentStateEvent(self.id, now, self.state, self.state, reason, self.interaction_id)
        )

    # -- views -------------------------------------------------------------------------------------

    def snapshot(self) -> AgentSnapshot:
        return AgentSnapshot(
            self.state,
            self.state_since,
            self.not_ready_reason,
            self.interaction_id,
            self.wrap_up_until,
            self.logged_in_at,
        )

    @property
    def routable(self) -> bool:
        return self.state is AgentState.READY and self.device_registered

    @property
    def logged_in(self) -> bool:
        return self.state is not AgentState.LOGGED_OUT

    def occupancy(self, now: datetime) -> float:
        """Share of the time since login spent working on interactions, 0..1."""
        if self.logged_in_at is None:
            return 0.0
        busy = self.busy_s
        if self.state in BUSY_STATES and self.state_since is not None:
            busy += max(0.0, (now - self.state_since).total_seconds())
        elapsed = (now - self.logged_in_at).total_seconds()
        if elapsed <= 0:
            return 0.0
        return min(1.0, busy / elapsed)
