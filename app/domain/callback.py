"""A callback: a caller who left the line but kept their place in it.

Pure: no I/O, no asyncio. The callback waits in its queue as an ordinary waiting
interaction whose arrival time is the caller's original one, so the routing rules
(service tiers, FIFO within a tier) serve it exactly when the caller would have been
served had they stayed on the line, never ahead of a live caller who arrived earlier.

When its turn comes the agent is called first; only when they answer is the customer
dialled, so the customer never picks up to silence. An unreachable customer (busy, no
answer, failed) is retried after a pause, up to a limit; an agent who does not answer
is not the customer's fault and costs no attempt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class CallbackStatus(StrEnum):
    WAITING = "waiting"  # in line (or pausing before a retry)
    DIALING = "dialing"  # an agent was chosen; agent and customer legs are being set up
    COMPLETED = "completed"  # the customer talked to an agent
    FAILED = "failed"  # every attempt failed to reach the customer
    CANCELLED = "cancelled"


class CallbackSource(StrEnum):
    IVR = "ivr"  # pressed the callback key while waiting
    WEB = "web"  # "call me" request through the API
    VOICEMAIL = "voicemail"


class AttemptResult(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # congestion, invalid number, the trunk refused
    REFUSED = "refused"  # the outbound policy will never let us call this number: no retry


# Q.850 causes seen when dialling out, mapped to what they mean for a retry.
_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({16, 18, 19, 0})

_PHONE = re.compile(r"^\+?[0-9]{3,20}$")


class CallbackError(Exception):
    pass


def valid_phone(number: str) -> bool:
    """Digits only (a leading + allowed), 3-20 of them: what the carrier trunk can dial."""
    return bool(_PHONE.fullmatch(number))


def attempt_result(cause: int | None) -> AttemptResult:
    if cause in _BUSY_CAUSES:
        return AttemptResult.BUSY
    if cause in _NO_ANSWER_CAUSES or cause is None:
        return AttemptResult.NO_ANSWER
    return AttemptResult.FAILED


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_after_s: float = 300.0


@dataclass
class Callback:
    id: str
    phone: str
    queue: str
    # The caller's place in line: the time they first joined the queue.
    place_at: datetime
    requested_at: datetime
    source: CallbackSource
    tier: str = "medium"
    customer_id: int | None = None
    origin_interaction_id: str | None = None
    status: CallbackStatus = CallbackStatus.WAITING
    attempts: int = 0
    not_before: datetime | None = None  # the next attempt may not start earlier
    last_result: str | None = None
    agent_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # The language the call that asked for it was served in (or a web request's): the
    # customer hears the callback in it (`language_on_our_call`). None: not known.
    language: str | None = None

    def __post_init__(self) -> None:
        if not valid_phone(self.phone):
            raise CallbackError(f"cannot call back {self.phone!r}: not a dialable number")

    @property
    def open(self) -> bool:
        return self.status in (CallbackStatus.WAITING, CallbackStatus.DIALING)

    def due(self, now: datetime) -> bool:
        return self.status is CallbackStatus.WAITING and (self.not_before is None or now >= self.not_before)

    def start_attempt(self, agent_id: str) -> None:
        if self.status is not CallbackStatus.WAITING:
            raise CallbackError(f"callback {self.id} is {self.status.value}, cannot dial")
        self.status = CallbackStatus.DIALING
        self.agent_id = agent_id

    def agent_missed(self) -> None:
        """The chosen agent did not take it: back in line at once, no attempt spent."""
        self._require_dialing()
        self.status = CallbackStatus.WAITING
        self.agent_id = None

    def finish_attempt(self, result: AttemptResult, now: datetime, policy: RetryPolicy) -> None:
        """The customer leg ended before or at answer; decide what comes next."""
        self._require_dialing()
        self.attempts += 1
        self.last_result = result.value
        if result is AttemptResult.ANSWERED:
            self.status = CallbackStatus.COMPLETED
        elif result is AttemptResult.REFUSED or self.attempts >= policy.max_attempts:
            self.status = CallbackStatus.FAILED
        else:
            self.status = CallbackStatus.WAITING
            self.agent_id = None
            self.not_before = now + timedelta(seconds=policy.retry_after_s)

    def interrupted(self, now: datetime, policy: RetryPolicy) -> None:
        """The service stopped mid-attempt: count it as unanswered and try again later."""
        if self.status is CallbackStatus.DIALING:
            self.finish_attempt(AttemptResult.FAILED, now, policy)

    def refuse(self) -> None:
        """The outbound policy will never let us call this number: the callback ends, failed."""
        if not self.open:
            raise CallbackError(f"callback {self.id} is already {self.status.value}")
        self.status = CallbackStatus.FAILED
        self.last_result = AttemptResult.REFUSED.value
        self.agent_id = None

    def cancel(self) -> None:
        if not self.open:
            raise CallbackError(f"callback {self.id} is already {self.status.value}")
        self.status = CallbackStatus.CANCELLED

    def _require_dialing(self) -> None:
        if self.status is not CallbackStatus.DIALING:
            raise CallbackError(f"callback {self.id} is {self.status.value}, not dialing")
