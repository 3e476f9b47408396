"""Banning SIP password guessers, fail2ban-style: the rule, with no I/O.

- A **failure** is one of Asterisk's security events that means "this source tried an
  identity and got it wrong": `ChallengeResponseFailed` (wrong digest password for a known
  account), `InvalidAccountID` (an account that does not exist), `InvalidPassword`.
  `ChallengeSent` is the normal first step of every digest exchange and counts for nothing.
  `FailedACL` does not count either: a banned source's requests raise it, and counting them
  would let a ban extend itself forever; the ban already stops that source.
- A source address with `max_failures` failures within the last `find_time_s` seconds is
  banned until `ban_time_s` after the failure that tipped it (fail2ban's Asterisk jail: 10 in
  600 s, 600 s). Its failure history is then forgotten: once the ban ends, it starts afresh.
- A repeat offender is banned longer (fail2ban's `bantime.increment`): each earlier ban of the
  same address within the last `repeat_window_s` doubles the ban, up to `max_ban_time_s`. A
  patient guesser who waits out each ban gets about `max_failures` guesses per ban, and the
  bans grow: 10 min, 20, 40 ... up to a week by default.
- An address in the allow-list (addresses or networks) is never banned, whatever it sends.
- A ban ends when its time is up (`expired`) or when a supervisor lifts it (`lift`).
- At most `max_tracked` sources are followed at once: a flood from many (perhaps spoofed)
  addresses forgets the source heard from least recently first, so memory stays bounded.

Addresses are compared in their canonical form (`ipaddress`), so `::ffff:…` spellings or
leading zeros cannot dodge a ban or the allow-list.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FAILURE_EVENTS = frozenset({"ChallengeResponseFailed", "InvalidAccountID", "InvalidPassword"})


@dataclass(frozen=True)
class BanRules:
    max_failures: int = 10
    find_time_s: float = 600.0
    ban_time_s: float = 600.0
    allow: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"),)
    max_tracked: int = 65_536
    max_ban_time_s: float = 7 * 86400.0
    repeat_window_s: float = 86400.0

    def ban_time(self, earlier_bans: int) -> timedelta:
        """How long a ban lasts for a source banned `earlier_bans` times within the window."""
        return timedelta(seconds=min(self.max_ban_time_s, self.ban_time_s * 2 ** min(earlier_bans, 32)))


@dataclass(frozen=True)
class AuthFailure:
    """One failed attempt, parsed from an AMI security event."""

    event: str
    address: str  # canonical IP address
    account: str  # what the source claimed to be (AccountID), for the log only


@dataclass(frozen=True)
class Ban:
    address: str
    since: datetime
    until: datetime
    failures: int


def canonical(address: str) -> str | None:
    """The canonical text of an IP address, or None when it is not one."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def parse_remote_address(value: str) -> str | None:
    """Asterisk's `RemoteAddress`, e.g. `IPV4/UDP/127.0.0.3/5060` or `IPV6/UDP/::1/5060`."""
    parts = value.split("/")
    if len(parts) < 4:
        return None
    return canonical("/".join(parts[2:-1]))


def parse_security_event(fields: Mapping[str, str]) -> AuthFailure | None:
    """An AMI security event as a failure, or None when it is not one (or is malformed)."""
    event = fields.get("Event", "")
    if event not in FAILURE_EVENTS:
        return None
    address = parse_remote_address(fields.get("RemoteAddress", ""))
    if address is None:
        return None
    return AuthFailure(event, address, fields.get("AccountID", ""))


class Bans:
    """Failures per source within the window, and the bans they led to."""

    def __init__(self, rules: BanRules, bans: Iterable[Ban] = (), history: Iterable[Ban] = ()) -> None:
        self.rules = rules
        self._failures: dict[str, deque[datetime]] = {}
        self._bans: dict[str, Ban] = {b.address: b for b in bans}
        # When each source was banned before (for repeat offenders), oldest first.
        self._history: dict[str, deque[datetime]] = {}
        for b in sorted([*history, *bans], key=lambda b: b.since):
            times = self._history.setdefault(b.address, deque())
            if b.since not in times:
                times.append(b.since)

    @property
    def active(self) -> list[Ban]:
        return sorted(self._bans.values(), key=lambda b: (b.since, b.address))

    def banned(self, address: str) -> bool:
        return address in self._bans

    def allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.rules.allow)

    def failure(self, address: str, at: datetime) -> Ban | None:
        """Count one failure; the new ban if it tips the source over the limit."""
        address = canonical(address) or address
        if address in self._bans or canonical(address) is None or self.allowed(address):
            return None
        window = self._failures.pop(address, None) or deque()
        self._failures[address] = window  # last heard from: last in order
        if len(self._failures) > self.rules.max_tracked:
            del self._failures[next(iter(self._failures))]
        window.append(at)
        self._forget_before(address, at - timedelta(seconds=self.rules.find_time_s))
        if len(window) < self.rules.max_failures:
            return None
        del self._failures[address]
        earlier = self._history.setdefault(address, deque())
        while earlier and earlier[0] <= at - timedelta(seconds=self.rules.repeat_window_s):
            earlier.popleft()
        ban = Ban(address, at, at + self.rules.ban_time(len(earlier)), len(window))
        earlier.append(at)
        if len(self._history) > self.rules.max_tracked:
            del self._history[next(iter(self._history))]
        self._bans[address] = ban
        return ban

    def expired(self, now: datetime) -> list[Ban]:
        """End every ban whose time is up (and forget stale failures); the bans ended."""
        ended = [b for b in self._bans.values() if b.until <= now]
        for ban in ended:
            del self._bans[ban.address]
        cutoff = now - timedelta(seconds=self.rules.find_time_s)
        for address in list(self._failures):
            self._forget_before(address, cutoff)
        return ended

    def lift(self, address: str) -> Ban | None:
        """End a ban now (a supervisor's decision); None when the address is not banned."""
        return self._bans.pop(canonical(address) or address, None)

    def next_expiry(self) -> datetime | None:
        return min((b.until for b in self._bans.values()), default=None)

    def _forget_before(self, address: str, cutoff: datetime) -> None:
        window = self._failures[address]
        while window and window[0] <= cutoff:
            window.popleft()
        if not window:
            del self._failures[address]
