"""Call admission at the door (app/domain/admission.py): per-source and per-trunk limits."""

from __future__ import annotations

import pytest

from app.domain.admission import Admission, CallLimits, Limit, Rule, source_address, trunk_of

LIMITS = CallLimits(
    per_source=Limit(calls_per_s=10, burst=20, concurrent=30),
    per_trunk=Limit(calls_per_s=25, burst=50, concurrent=60),
    trunks=frozenset({"carrier"}),
)


def flood(a: Admission, source: str, trunk: str | None, calls: int, rate: float, t0: float = 0.0) -> int:
    """Calls from `source` at `rate` calls/s, each ending at once; how many were admitted."""
    admitted = 0
    for i in range(calls):
        if a.admit(source, trunk, t0 + i / rate) is None:
            admitted += 1
            a.release(source, trunk)
    return admitted


def test_a_burst_is_admitted_then_the_sustained_rate_and_no_more() -> None:
    a = Admission(LIMITS)
    # 100 calls/s for 10 s: the burst (20), then 10 calls/s for the rest (about 99 more).
    admitted = flood(a, "192.0.2.7", None, 1000, 100.0)
    assert 20 + 95 <= admitted <= 20 + 100
    assert a.refused[Rule.SOURCE_RATE] == 1000 - admitted


def test_a_flooding_source_leaves_other_sources_their_own_limit() -> None:
    a = Admission(LIMITS)
    flood(a, "192.0.2.7", None, 500, 100.0)
    assert flood(a, "198.51.100.9", None, 20, 1.0, t0=5.0) == 20


def test_the_trunk_limit_covers_all_its_addresses_together() -> None:
    a = Admission(LIMITS)
    admitted = 0
    for i in range(300):  # three carrier addresses, 100 calls/s in all, for 3 s, each call short
        source = f"203.0.113.{i % 3 + 1}"
        if a.admit(source, "carrier", i / 100.0) is None:
            admitted += 1
            a.release(source, "carrier")
    # Each address alone is within its own limit for the first 2 s; together they are over.
    assert a.refused[Rule.TRUNK_RATE] > 0
    assert admitted <= 50 + 3 * 25 + 1


def test_concurrency_is_limited_until_calls_end() -> None:
    a = Admission(LIMITS)
    t = 0.0
    for _ in range(30):
        t += 1.0  # slow enough for the rate: only the concurrency counts
        assert a.admit("192.0.2.7", None, t) is None
    refusal = a.admit("192.0.2.7", None, t + 1)
    assert refusal is not None and refusal.rule is Rule.SOURCE_CONCURRENT and refusal.first
    again = a.admit("192.0.2.7", None, t + 2)
    assert again is not None and not again.first  # logged once, not per call
    a.release("192.0.2.7", None)
    assert a.admit("192.0.2.7", None, t + 3) is None
    assert a.held(source="192.0.2.7") == 30


def test_a_refused_call_takes_nothing() -> None:
    a = Admission(LIMITS)
    for i in range(60):
        a.admit("192.0.2.7", "carrier", 0.0 + i * 0.001)
    assert a.held(source="192.0.2.7") == 20
    assert a.held(trunk="carrier") == 20


def test_calls_taken_over_after_a_restart_hold_their_place() -> None:
    a = Admission(LIMITS)
    for _ in range(30):
        a.occupy("192.0.2.7", "carrier")
    refusal = a.admit("192.0.2.7", "carrier", 100.0)
    assert refusal is not None and refusal.rule is Rule.SOURCE_CONCURRENT
    assert a.held(trunk="carrier") == 30


def test_spoofed_sources_do_not_grow_memory_without_bound() -> None:
    a = Admission(LIMITS)
    for i in range(50_000):
        src = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        if a.admit(src, None, i * 0.01) is None:
            a.release(src, None)
    assert len(a._sources) < 2 * Admission.SWEEP_EVERY


@pytest.mark.parametrize(
    ("remote", "address"),
    [
        ("192.0.2.7:5060", "192.0.2.7"),
        ("[2001:db8::1]:5061", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("", "unknown"),
        ("evil\r\nhost:5060", "unknown"),
        ("[2001:db8::1", "unknown"),
    ],
)
def test_source_address_is_an_ip_or_unknown(remote: str, address: str) -> None:
    assert source_address(remote) == address


def test_trunk_of_a_channel() -> None:
    trunks = frozenset({"carrier"})
    assert trunk_of("PJSIP/carrier-0000002a", trunks) == "carrier"
    assert trunk_of("PJSIP/1001-0000002b", trunks) is None
    assert trunk_of("Local/x@y-00000001;1", trunks) is None
