"""The outbound policy: which numbers the center may call, for what, and how often.

Every call the center places through a trunk (a callback, a transfer or consult to a number, a
dialer attempt; experts and fax later) asks this one policy first. Toll fraud is the center
paying for calls someone else chose, so the rule is "refuse unless the dial plan allows it":

- a destination must be a number of one of the dial plan's kinds (e.g. mobile, landline),
  written nationally or with the home country code; another country's number is refused unless
  the plan allows international calls, and denied prefixes (premium ranges) are refused even when
  a kind matches;
- each purpose may reach only the kinds listed for it;
- a destination may be called at most so many times an hour and a day, and a trunk carries at
  most so many calls an hour and a day (a spend-style cap: a flood of requests stops there).

Pure: the caller passes the time; counts live in memory, and each admitted call is handed to
`on_admit` so the composition root can keep it in PostgreSQL and `restore` it after a restart.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Purpose(StrEnum):
    CALLBACK = "callback"  # a customer called back (from the wait, a voicemail, the web or the API)
    TRANSFER = "transfer"  # an agent sends or consults a caller to a number outside
    DIALER = "dialer"  # a campaign's attempt
    EXPERT = "expert"  # an expert reached on an outside number
    FAX = "fax"  # a fax sent to a number


class Refused(StrEnum):
    """Why a destination was refused. The first group is about the number (never worth a retry);
    the second about how often it was called (a later try may pass)."""

    MALFORMED = "malformed"
    INTERNATIONAL = "international"
    DENIED_RANGE = "denied_range"
    NOT_IN_DIAL_PLAN = "not_in_dial_plan"
    NOT_FOR_PURPOSE = "not_for_purpose"
    NUMBER_HOURLY_LIMIT = "number_hourly_limit"
    NUMBER_DAILY_LIMIT = "number_daily_limit"
    TRUNK_HOURLY_LIMIT = "trunk_hourly_limit"
    TRUNK_DAILY_LIMIT = "trunk_daily_limit"

    @property
    def lasting(self) -> bool:
        return self not in _LIMITS


_LIMITS = {
    Refused.NUMBER_HOURLY_LIMIT,
    Refused.NUMBER_DAILY_LIMIT,
    Refused.TRUNK_HOURLY_LIMIT,
    Refused.TRUNK_DAILY_LIMIT,
}

# Digits with an optional leading +, as a trunk can dial them.
_NUMBER = re.compile(r"\+?[0-9]{3,20}")

# Mainland China, the demo's home: mobiles 1[3-9]x, landlines 0 + area code + local number.
DEFAULT_KINDS: tuple[tuple[str, str], ...] = (
    ("mobile", r"1[3-9][0-9]{9}"),
    ("landline", r"0[1-9][0-9]{8,10}"),
)


@dataclass(frozen=True)
class DialPlan:
    country_code: str = "86"
    international_prefix: str = "00"  # what precedes a country code when dialled without '+'
    national_prefix: str = "0"  # what precedes an area code in national form
    # Kinds of number the trunk may dial, in national form: name -> regular expression (whole number).
    kinds: tuple[tuple[str, str], ...] = DEFAULT_KINDS
    # National-form prefixes refused even where a kind matches (premium-rate ranges, say).
    denied_prefixes: tuple[str, ...] = ()
    # Numbers of other countries: refused unless this is true (they are then of kind "international").
    international: bool = False
    # Purpose -> the kinds it may reach; a purpose not named may reach every kind.
    purposes: Mapping[Purpose, tuple[str, ...]] = field(default_factory=dict)
    per_number_hour: int = 4
    per_number_day: int = 10
    per_trunk_hour: int = 1000
    per_trunk_day: int = 10000
    # What the IVR collected (account numbers, say) goes out with calls over the trunks only when
    # the carrier is meant to carry it: it leaves our network there.
    call_data: bool = False


@dataclass(frozen=True)
class Refusal:
    number: str
    purpose: Purpose
    reason: Refused
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Dialled:
    """A number the policy let through a trunk: what the hourly and daily limits count."""

    at: datetime
    number: str
    trunk: str
    purpose: Purpose


class OutboundPolicy:
    def __init__(self, plan: DialPlan, on_admit: Callable[[Dialled], None] = lambda d: None) -> None:
        self.plan = plan
        self._kinds = [(name, re.compile(pattern)) for name, pattern in plan.kinds]
        self._by_number: dict[str, deque[datetime]] = {}
        self._by_trunk: dict[str, deque[datetime]] = {}
        # Told of every admitted call, so its count can be kept where a restart finds it.
        self._on_admit = on_admit

    def restore(self, dialled: Iterable[Dialled], now: datetime) -> int:
        """Count again what was dialled in the last day (read back after a restart), oldest first."""
        n = 0
        for d in sorted(dialled, key=lambda d: d.at):
            if d.at > now - _DAY:
                self._by_number.setdefault(d.number, deque()).append(d.at)
                self._by_trunk.setdefault(d.trunk, deque()).append(d.at)
                n += 1
        return n

    def kind_of(self, number: str) -> str | Refused:
        """The dial plan's kind of this number, or why it has none."""
        p = self.plan
        if not _NUMBER.fullmatch(number):
            return Refused.MALFORMED
        digits = number
        abroad = None
        if number.startswith("+"):
            abroad = number[1:]
        elif p.international_prefix and number.startswith(p.international_prefix):
            abroad = number[len(p.international_prefix) :]
        if abroad is not None:
            if not abroad.startswith(p.country_code):
                return "international" if p.international else Refused.INTERNATIONAL
            rest = abroad[len(p.country_code) :]
            candidates = [rest, p.national_prefix + rest]
        else:
            candidates = [digits]
        for national in candidates:
            if any(national.startswith(prefix) for prefix in p.denied_prefixes):
                return Refused.DENIED_RANGE
            for name, pattern in self._kinds:
                if pattern.fullmatch(national):
                    return name
        return Refused.NOT_IN_DIAL_PLAN

    def check(self, number: str, purpose: Purpose, trunk: str, now: datetime) -> Refusal | None:
        """Why `number` may not be called for `purpose` through `trunk` now, or None if it may."""
        kind = self.kind_of(number)
        if isinstance(kind, Refused):
            return Refusal(number, purpose, kind, _DETAIL[kind].format(number=number))
        allowed = self.plan.purposes.get(purpose)
        if allowed is not None and kind not in allowed:
            detail = f"{kind} numbers may not be called for a {purpose.value} here"
            return Refusal(number, purpose, Refused.NOT_FOR_PURPOSE, detail)
        p = self.plan
        for counts, key, (hour, day), (hourly, daily), what in (
            (self._by_number, number, (p.per_number_hour, p.per_number_day), _NUMBER_LIMITS, number),
            (self._by_trunk, trunk, (p.per_trunk_hour, p.per_trunk_day), _TRUNK_LIMITS, f"trunk {trunk}"),
        ):
            times = counts.get(key)
            if times is not None:
                _forget(times, now)
            if not times:
                counts.pop(key, None)  # the counts hold only numbers called in the last day
                continue
            if len(times) >= day:
                return Refusal(number, purpose, daily, f"{what} has had {day} calls today (the limit)")
            if sum(1 for t in times if t > now - _HOUR) >= hour:
                return Refusal(number, purpose, hourly, f"{what} has had {hour} calls this hour (the limit)")
        return None

    def admit(self, number: str, purpose: Purpose, trunk: str, now: datetime) -> Refusal | None:
        """`check`, and when the call may go, count it against the number's and the trunk's limits."""
        refusal = self.check(number, purpose, trunk, now)
        if refusal is None:
            self._by_number.setdefault(number, deque()).append(now)
            self._by_trunk.setdefault(trunk, deque()).append(now)
            self._on_admit(Dialled(now, number, trunk, purpose))
        return refusal


_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_NUMBER_LIMITS = (Refused.NUMBER_HOURLY_LIMIT, Refused.NUMBER_DAILY_LIMIT)
_TRUNK_LIMITS = (Refused.TRUNK_HOURLY_LIMIT, Refused.TRUNK_DAILY_LIMIT)
_DETAIL = {
    Refused.MALFORMED: "not a phone number: {number!r}",
    Refused.INTERNATIONAL: "{number} is an international number; this center does not call abroad",
    Refused.DENIED_RANGE: "{number} is in a range this center never calls (premium or barred)",
    Refused.NOT_IN_DIAL_PLAN: "{number} is not a number this center calls (not in its dial plan)",
}


def _forget(times: deque[datetime], now: datetime) -> None:
    while times and times[0] <= now - _DAY:
        times.popleft()
