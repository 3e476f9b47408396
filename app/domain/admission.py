"""Call admission at the door: how many calls a source address and a trunk may start per second
and hold at once.

A flood (a scanner, a hijacked phone, a carrier gone wrong) must not take the center down for
everyone: calls over a limit are refused before they are answered (the PBX answers 503), while
calls from other sources go on. The rate is a token bucket per source and per trunk (a burst is
allowed, the sustained rate is not exceeded); the concurrency limit keeps the box inside its RTP
ports, which would otherwise run out and fail legitimate calls with it.

Pure: the caller passes the time (monotonic seconds).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Limit:
    calls_per_s: float  # sustained rate
    burst: int  # calls that may start at once after a quiet spell
    concurrent: int  # calls held at the same time


@dataclass(frozen=True)
class CallLimits:
    per_source: Limit
    per_trunk: Limit
    trunks: frozenset[str]  # endpoint names that are trunks (the carrier)


class Rule(StrEnum):
    SOURCE_RATE = "source_rate"
    SOURCE_CONCURRENT = "source_concurrent"
    TRUNK_RATE = "trunk_rate"
    TRUNK_CONCURRENT = "trunk_concurrent"


@dataclass(frozen=True)
class Refusal:
    rule: Rule
    key: str  # the source address or the trunk's name
    limit: float
    first: bool  # the first refusal of this key since it last had a call admitted

    def __str__(self) -> str:
        what = {
            Rule.SOURCE_RATE: f"source {self.key} over {self.limit:g} calls/s",
            Rule.SOURCE_CONCURRENT: f"source {self.key} already holds {self.limit:g} calls",
            Rule.TRUNK_RATE: f"trunk {self.key} over {self.limit:g} calls/s",
            Rule.TRUNK_CONCURRENT: f"trunk {self.key} already holds {self.limit:g} calls",
        }
        return what[self.rule]


def source_address(remote: str) -> str:
    """The IP address of a SIP peer as Asterisk shows it ("192.0.2.7:5060", "[2001:db8::1]:5060");
    "unknown" for anything else (the call is still limited, under that key)."""
    text = remote.strip()
    if text.startswith("["):
        host = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        host = text.split(":", 1)[0]
    else:
        host = text
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"


def trunk_of(channel_name: str, trunks: frozenset[str]) -> str | None:
    """The trunk a channel came in on ("PJSIP/carrier-0000002a" → "carrier"), if it is one."""
    tech, _, rest = channel_name.partition("/")
    endpoint = rest.rpartition("-")[0]
    return endpoint if tech == "PJSIP" and endpoint in trunks else None


@dataclass
class _Bucket:
    tokens: float
    at: float
    held: int = 0
    refusing: bool = False


@dataclass
class Admission:
    limits: CallLimits
    _sources: dict[str, _Bucket] = field(default_factory=dict)
    _trunks: dict[str, _Bucket] = field(default_factory=dict)
    _since_sweep: int = 0
    admitted: int = 0
    refused: dict[Rule, int] = field(default_factory=lambda: dict.fromkeys(Rule, 0))

    # A spoofed-source flood must not grow memory without bound: idle full buckets are dropped.
    SWEEP_EVERY = 1000

    def admit(self, source: str, trunk: str | None, now: float) -> Refusal | None:
        """Take one call from `source` (on `trunk`, if it came in on one), or say why not.
        Nothing is taken when the call is refused."""
        self._sweep(now)
        src = self._bucket(self._sources, source, self.limits.per_source, now)
        trk = self._bucket(self._trunks, trunk, self.limits.per_trunk, now) if trunk else None
        refusal = (
            self._check(src, Rule.SOURCE_CONCURRENT, Rule.SOURCE_RATE, source, self.limits.per_source)
            if src
            else None
        )
        if refusal is None and trk is not None and trunk is not None:
            refusal = self._check(trk, Rule.TRUNK_CONCURRENT, Rule.TRUNK_RATE, trunk, self.limits.per_trunk)
        if refusal is not None:
            self.refused[refusal.rule] += 1
            return refusal
        for b in (src, trk):
            if b is not None:
                b.tokens -= 1
                b.held += 1
                b.refusing = False
        self.admitted += 1
        return None

    def occupy(self, source: str, trunk: str | None) -> None:
        """A call already in progress (taken over after a restart) holds its place."""
        self._sources.setdefault(source, _Bucket(float(self.limits.per_source.burst), 0.0)).held += 1
        if trunk:
            self._trunks.setdefault(trunk, _Bucket(float(self.limits.per_trunk.burst), 0.0)).held += 1

    def release(self, source: str, trunk: str | None) -> None:
        """An admitted call ended."""
        for table, key in ((self._sources, source), (self._trunks, trunk)):
            b = table.get(key) if key else None
            if b is not None and b.held > 0:
                b.held -= 1

    def held(self, source: str | None = None, trunk: str | None = None) -> int:
        table, key = (self._trunks, trunk) if trunk else (self._sources, source)
        b = table.get(key or "")
        return b.held if b else 0

    # -- inside -----------------------------------------------------------------------

    @staticmethod
    def _bucket(table: dict[str, _Bucket], key: str | None, limit: Limit, now: float) -> _Bucket | None:
        if key is None:
            return None
        b = table.get(key)
        if b is None:
            b = table[key] = _Bucket(float(limit.burst), now)
        else:
            b.tokens = min(float(limit.burst), b.tokens + (now - b.at) * limit.calls_per_s)
            b.at = now
        return b

    @staticmethod
    def _check(b: _Bucket, concurrent: Rule, rate: Rule, key: str, limit: Limit) -> Refusal | None:
        if b.held >= limit.concurrent:
            rule, value = concurrent, float(limit.concurrent)
        elif b.tokens < 1:
            rule, value = rate, limit.calls_per_s
        else:
            return None
        first = not b.refusing
        b.refusing = True
        return Refusal(rule, key, value, first)

    def _sweep(self, now: float) -> None:
        self._since_sweep += 1
        if self._since_sweep < self.SWEEP_EVERY:
            return
        self._since_sweep = 0
        for table, limit in ((self._sources, self.limits.per_source), (self._trunks, self.limits.per_trunk)):
            idle = [
                k
                for k, b in table.items()
                if b.held == 0 and b.tokens + (now - b.at) * limit.calls_per_s >= limit.burst
            ]
            for k in idle:
                del table[k]
