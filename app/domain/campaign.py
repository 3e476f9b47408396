"""Outbound campaigns: which customer may be called now, and what each call's result means.

Pure: no I/O, no asyncio. The dialer (pacing in app/domain/pacing.py decides how many
calls) asks these rules which leads are callable and records every result through them:

- **Callable** means: the campaign is active, the number is not on the do-not-call list,
  the customer is not excluded by the campaign's selection rules, it is within the calling
  window *in the customer's own time zone*, the number is not locked out after an abandoned
  call, its retry pause is over, and it has attempts left.
- **Results** map to retries per outcome (busy, no answer, machine, failed) with their own
  spacing and limits. A live answer that no agent took within the connect window is an
  abandoned call: the customer heard the identifying message, and the number is locked out
  for `lockout_after_abandon_s` (the UK rule: 72 h), counting against the abandon rate.
- **Trunks** are chosen by the dialled number's longest matching prefix (a least-cost table).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CallResult(StrEnum):
    CONNECTED = "connected"  # a live answer that reached an agent
    ABANDONED = "abandoned"  # a live answer no agent took in time: identifying message, counted
    MACHINE = "machine"  # answering machine (AMD), message left or hung up
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    INVALID = "invalid"  # the number does not exist: never again
    FAILED = "failed"  # the trunk refused, or we could not place it


class LeadStatus(StrEnum):
    PENDING = "pending"  # callable when the rules allow
    DIALING = "dialing"
    DONE = "done"  # talked to an agent
    EXHAUSTED = "exhausted"  # no attempts left
    INVALID = "invalid"


# Q.850 causes when a call we placed ended before answer.
_CAUSES = {
    17: CallResult.BUSY,
    16: CallResult.NO_ANSWER,  # hung up on our side at the ring timeout
    18: CallResult.NO_ANSWER,
    19: CallResult.NO_ANSWER,
    0: CallResult.NO_ANSWER,
    34: CallResult.CONGESTION,
    38: CallResult.CONGESTION,
    41: CallResult.CONGESTION,
    42: CallResult.CONGESTION,
    1: CallResult.INVALID,
    3: CallResult.INVALID,
    28: CallResult.INVALID,
}


def unanswered_result(cause: int | None) -> CallResult:
    """What an unanswered call's hang-up cause means for the lead."""
    return _CAUSES.get(cause if cause is not None else 0, CallResult.FAILED)


def answered_result(amd_status: str | None) -> CallResult | None:
    """Asterisk's AMD verdict: MACHINE is a machine; HUMAN, NOTSURE or no AMD is a person
    (a person wrongly taken for a machine would be an abandoned call, so doubt goes to the person)."""
    return CallResult.MACHINE if (amd_status or "").upper() == "MACHINE" else None


@dataclass(frozen=True)
class RetryRule:
    after_s: float
    max_attempts: int


DEFAULT_RETRIES: Mapping[CallResult, RetryRule] = {
    CallResult.BUSY: RetryRule(600, 3),
    CallResult.NO_ANSWER: RetryRule(3600, 3),
    CallResult.MACHINE: RetryRule(4 * 3600, 2),
    CallResult.CONGESTION: RetryRule(300, 3),
    CallResult.FAILED: RetryRule(3600, 2),
    CallResult.ABANDONED: RetryRule(72 * 3600, 2),
}


@dataclass(frozen=True)
class CallingWindow:
    """When customers may be called, in each customer's own time zone."""

    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat")
    start: str = "09:00"
    end: str = "21:00"

    def allows(self, local: datetime) -> bool:
        if DAYS[local.weekday()] not in self.days:
            return False
        return _clock(self.start) <= local.time() < _clock(self.end)

    def next_open(self, local: datetime) -> datetime:
        """The next moment (local time) the window opens at or after `local`."""
        for step in range(8):
            day = (local + timedelta(days=step)).date()
            opening = datetime.combine(day, _clock(self.start), local.tzinfo)
            closing = datetime.combine(day, _clock(self.end), local.tzinfo)
            if DAYS[day.weekday()] not in self.days or closing <= local:
                continue
            return max(opening, local)
        return local + timedelta(days=7)  # no open day at all: checked at load, never here


@dataclass(frozen=True)
class Exclusion:
    """Leave out customers whose attribute equals a value (e.g. already own product X)."""

    attribute: str
    equals: str


@dataclass(frozen=True)
class TrunkRoute:
    prefix: str  # "" matches every number
    trunk: str


@dataclass(frozen=True)
class CampaignRules:
    name: str
    window: CallingWindow = CallingWindow()
    default_timezone: str = "UTC"
    retries: Mapping[CallResult, RetryRule] = field(default_factory=lambda: dict(DEFAULT_RETRIES))
    max_attempts: int = 6  # over all results
    lockout_after_abandon_s: float = 72 * 3600.0
    exclusions: tuple[Exclusion, ...] = ()
    trunks: tuple[TrunkRoute, ...] = (TrunkRoute("", "carrier"),)


@dataclass
class Lead:
    id: int
    phone: str
    timezone: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    # The language to speak to them in (the list's `language` column); None: their stored
    # preference, else the center's default (`language_on_our_call`).
    language: str | None = None
    status: LeadStatus = LeadStatus.PENDING
    attempts: int = 0
    results: dict[str, int] = field(default_factory=dict)  # result -> how many times
    next_attempt_at: datetime | None = None
    locked_until: datetime | None = None
    last_result: CallResult | None = None


@dataclass
class DialAttempt:
    """One call placed for a lead, from dial to end: what the compliance gauge counts."""

    id: str
    campaign: str
    lead_id: int
    phone: str
    trunk: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    result: CallResult | None = None
    amd_status: str | None = None
    live_answer: bool = False  # a person picked up: the abandon rate's denominator
    abandoned: bool = False
    message_started_at: datetime | None = None
    agent_id: str | None = None
    interaction_id: str | None = None


def abandon_rate(abandoned: int, live_answers: int) -> float:
    """Abandoned calls over calls a person answered (not over all dials, which under-reports)."""
    return abandoned / live_answers if live_answers else 0.0


def why_not_callable(
    lead: Lead, rules: CampaignRules, now: datetime, on_dnc_list: bool, active: bool = True
) -> str | None:
    """None if the lead may be dialled now; else the reason, for logs and reports."""
    if not active:
        return "campaign stopped"
    if lead.status is not LeadStatus.PENDING:
        return f"lead is {lead.status.value}"
    if on_dnc_list:
        return "on the do-not-call list"
    excluded = exclusion_of(lead, rules)
    if excluded is not None:
        return excluded
    if lead.locked_until is not None and now < lead.locked_until:
        return "locked out after an abandoned call"
    if lead.next_attempt_at is not None and now < lead.next_attempt_at:
        return "retry pause"
    if lead.attempts >= rules.max_attempts:
        return "no attempts left"
    if not rules.window.allows(local_time(lead, rules, now)):
        return "outside the calling window in the customer's time zone"
    return None


def exclusion_of(lead: Lead, rules: CampaignRules) -> str | None:
    for ex in rules.exclusions:
        if lead.attributes.get(ex.attribute) == ex.equals:
            return f"excluded: {ex.attribute} = {ex.equals}"
    return None


def local_time(lead: Lead, rules: CampaignRules, now: datetime) -> datetime:
    return now.astimezone(ZoneInfo(lead.timezone or rules.default_timezone))


def after_call(lead: Lead, result: CallResult, rules: CampaignRules, now: datetime) -> None:
    """Record one call's result on the lead: done, retried later, locked out or given up."""
    lead.attempts += 1
    lead.last_result = result
    lead.results[result.value] = lead.results.get(result.value, 0) + 1
    if result is CallResult.CONNECTED:
        lead.status = LeadStatus.DONE
        return
    if result is CallResult.INVALID:
        lead.status = LeadStatus.INVALID
        return
    if result is CallResult.ABANDONED:
        lead.locked_until = now + timedelta(seconds=rules.lockout_after_abandon_s)
    rule = rules.retries.get(result)
    if rule is None or lead.results[result.value] >= rule.max_attempts or lead.attempts >= rules.max_attempts:
        lead.status = LeadStatus.EXHAUSTED
        return
    lead.status = LeadStatus.PENDING
    lead.next_attempt_at = now + timedelta(seconds=rule.after_s)


def trunk_for(phone: str, routes: Sequence[TrunkRoute]) -> str | None:
    """The trunk of the longest prefix that matches (the cheapest route for that number)."""
    best: TrunkRoute | None = None
    for route in routes:
        if phone.startswith(route.prefix) and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    return best.trunk if best is not None else None


_PHONE = re.compile(r"^\+?[0-9]{3,20}$")


def normalise_phone(raw: str) -> str | None:
    """Digits with an optional leading +; spaces, dashes, dots and brackets dropped. None if unusable."""
    phone = re.sub(r"[\s\-.()]", "", raw)
    return phone if _PHONE.fullmatch(phone) else None


def _clock(text: str) -> time:
    return time.fromisoformat(text)


def agent_line(mode: str, campaign_choice: str | None, agent_choice: str | None) -> str:
    """How an agent takes a campaign's customers: "nailed" or "ringing".

    Nailed: the agent's phone is called once when they go Ready and stays connected; each
    customer who answers is put straight through on that line, so an ordinary desk phone is in
    time. Ringing: the phone rings for each customer, and only a phone that answers by itself
    reaches the customer within the connect window. The agent's own choice wins over the
    campaign's; predictive and progressive default to nailed. Preview always rings the agent
    first: the agent chose to call, and hears the customer's phone ring."""
    if mode == "preview":
        return "ringing"
    return agent_choice or campaign_choice or "nailed"
