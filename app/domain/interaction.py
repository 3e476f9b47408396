"""An interaction: one customer contact from arrival to end, and its journey as events.

Pure: no I/O, no asyncio. The flows drive it; the store persists what it records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    ENDED = "ended"


class Outcome(StrEnum):
    COMPLETED = "completed"  # talked to an agent
    NO_AGENT = "no_agent"  # asked for an agent, none could take the call
    ABANDONED = "abandoned"  # caller hung up while waiting for an agent
    HUNG_UP_IN_IVR = "hung_up_in_ivr"
    NO_INPUT = "no_input"  # menu timed out on every attempt
    FAILED = "failed"  # the system could not carry the call on
    LOST = "lost"  # call ended while the app was down; found afterwards
    CALLBACK_REQUESTED = "callback_requested"  # left the line keeping their place: we call back
    CUSTOMER_UNREACHED = "customer_unreached"  # a callback attempt: the customer did not pick up
    VOICEMAIL = "voicemail"  # left a message instead of waiting
    SELF_SERVICE = "self_service"  # served by the IVR (e.g. heard their balance)
    CLOSED = "closed"  # called outside opening hours
    BLOCKED = "blocked"  # a number the flow refuses
    DROPPED = "dropped"  # the PBX lost the call (e.g. Asterisk restarted): nobody's choice
    REFUSED = "refused"  # turned away unanswered: its source or trunk was over its call limits
    FAX = "fax"  # a fax call: a document sent back on it, or a fax received (table faxes)
    REPLAYED = "replayed"  # a replay of a recorded call (app/replay/) stopped where the flow handed it on


class IllegalTransition(Exception):
    pass


@dataclass(frozen=True)
class InteractionEvent:
    at: datetime
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Interaction:
    id: str
    caller_channel_id: str
    ani: str
    dnis: str
    arrived_at: datetime
    customer_id: int | None = None
    phase: Phase = Phase.IVR
    digits: str = ""
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    agent_id: str | None = None
    outcome: Outcome | None = None
    queue: str | None = None
    tier: str | None = None
    # "inbound", or "outbound" for calls we place (then `ani` is the customer's number).
    direction: str = "inbound"
    callback_id: str | None = None
    # What the IVR collected (field -> value) and the skills the flow asked for (skill -> level):
    # both travel with the call to the agent, and survive a restart of the app.
    collected: dict[str, str] = field(default_factory=dict)
    skills: dict[str, int] = field(default_factory=dict)
    # Where the call stands on the PBX (legs, bridge, hold...), kept for recovery after a restart.
    # Opaque here: the call runtime writes and reads it.
    legs: dict[str, Any] = field(default_factory=dict)
    # The language the caller is served in (en, zh); None: not chosen, prompts play as written.
    language: str | None = None
    # Recorded but not yet persisted; the flow drains this after each step.
    pending: list[InteractionEvent] = field(default_factory=list)

    def record(self, at: datetime, kind: str, **data: Any) -> InteractionEvent:
        event = InteractionEvent(at, kind, data)
        self.pending.append(event)
        return event

    def drain(self) -> list[InteractionEvent]:
        out, self.pending = self.pending, []
        return out

    def _require(self, *phases: Phase) -> None:
        if self.phase not in phases:
            allowed = ", ".join(p.value for p in phases)
            raise IllegalTransition(f"interaction {self.id} is {self.phase.value}, expected {allowed}")

    def digit(self, at: datetime, digit: str) -> None:
        self._require(Phase.IVR)
        self.digits += digit
        self.record(at, "dtmf", digit=digit)

    def collect(self, at: datetime, name: str, value: str, **data: Any) -> None:
        """The caller entered `value` for the flow's field `name` (it travels with the call)."""
        self.collected[name] = value
        self.record(at, "collected", field=name, value=value, **data)

    def enqueue(self, at: datetime, queue: str, tier: str, reason: str) -> None:
        self._require(Phase.IVR, Phase.OFFERED, Phase.QUEUED)
        if self.queued_at is None:
            self.queued_at = at  # the caller's place in line; never reset by overflow or retries
        self.phase = Phase.QUEUED
        moved = self.queue is not None and self.queue != queue
        self.queue = queue
        self.tier = tier
        kind = "overflowed" if moved and reason == "overflow" else "queued"  # a transfer is a new line
        self.record(at, kind, queue=queue, tier=tier, reason=reason)

    def offer(self, at: datetime, agent_ids: tuple[str, ...], reason: str) -> None:
        self._require(Phase.QUEUED)
        self.phase = Phase.OFFERED
        self.record(at, "offered", agent_id=",".join(agent_ids), reason=reason)

    def offer_failed(self, at: datetime, agent_id: str, reason: str) -> None:
        self._require(Phase.OFFERED)
        self.phase = Phase.QUEUED
        self.record(at, "offer_failed", agent_id=agent_id, reason=reason)

    def connect(self, at: datetime, agent_id: str) -> None:
        self._require(Phase.OFFERED)
        self.phase = Phase.CONNECTED
        self.agent_id = agent_id
        if self.answered_at is None:  # the first answer is the caller's wait; transfers keep it
            self.answered_at = at
        self.record(at, "connected", agent_id=agent_id, queue_wait_ms=self.queue_wait_ms)

    def transfer(self, at: datetime, to: str) -> None:
        """Blind transfer: the agent drops off; the caller waits for the next one (music)."""
        self._require(Phase.CONNECTED)
        self.phase = Phase.QUEUED
        self.record(at, "transferred", to=to, from_agent=self.agent_id, how="blind")

    def requeue(self, at: datetime, reason: str) -> None:
        """The agent's side was lost (e.g. their leg vanished while the app was down): the caller
        waits again, keeping their place in line."""
        self._require(Phase.OFFERED, Phase.CONNECTED)
        self.phase = Phase.QUEUED
        self.record(at, "requeued", reason=reason, from_agent=self.agent_id)

    def hand_over(self, at: datetime, agent_id: str) -> None:
        """Consult transfer completed (or a conference left to one agent): still connected."""
        self._require(Phase.CONNECTED)
        self.record(at, "transferred", to=f"agent:{agent_id}", from_agent=self.agent_id, how="consult")
        self.agent_id = agent_id

    @property
    def queue_wait_ms(self) -> int | None:
        if self.queued_at is None:
            return None
        until = self.answered_at or self.ended_at
        if until is None:
            return None
        return max(0, round((until - self.queued_at).total_seconds() * 1000))

    def end(self, at: datetime, outcome: Outcome, **data: Any) -> None:
        if self.phase is Phase.ENDED:
            return  # both legs hanging up race to end it; the first one wins
        self.phase = Phase.ENDED
        self.ended_at = at
        self.outcome = outcome
        self.record(at, "ended", outcome=outcome.value, **data)


def outcome_when_caller_leaves(phase: Phase) -> Outcome:
    """What it means when the caller hangs up in a given phase."""
    if phase is Phase.IVR:
        return Outcome.HUNG_UP_IN_IVR
    if phase in (Phase.QUEUED, Phase.OFFERED):
        return Outcome.ABANDONED
    return Outcome.COMPLETED
