"""The SIP ban rule (app/domain/sip_bans.py) and the service that enforces it, over fakes."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.adapters.sip_acl import render_acl
from app.domain.sip_bans import AuthFailure, Ban, BanRules, Bans, parse_remote_address, parse_security_event
from app.errors import PbxError
from app.security.service import SipBanService

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
RULES = BanRules(max_failures=3, find_time_s=60, ban_time_s=100)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_the_limit_th_failure_within_the_window_bans_until_ban_time_after_it() -> None:
    bans = Bans(RULES)
    assert bans.failure("192.0.2.1", at(0)) is None
    assert bans.failure("192.0.2.1", at(10)) is None
    ban = bans.failure("192.0.2.1", at(20))
    assert ban == Ban("192.0.2.1", at(20), at(120), 3)
    assert bans.banned("192.0.2.1") and not bans.banned("192.0.2.2")
    assert bans.failure("192.0.2.1", at(21)) is None  # already banned: no second ban


def test_failures_older_than_the_window_do_not_count() -> None:
    bans = Bans(RULES)
    bans.failure("192.0.2.1", at(0))
    bans.failure("192.0.2.1", at(30))
    assert bans.failure("192.0.2.1", at(61)) is None  # the one at 0 has left the window
    assert bans.failure("192.0.2.1", at(62)) is not None


def test_sources_are_counted_apart() -> None:
    bans = Bans(RULES)
    for i in range(2):
        assert bans.failure("192.0.2.1", at(i)) is None
        assert bans.failure("192.0.2.2", at(i)) is None
    assert [b.address for b in bans.active] == []


def test_allow_listed_addresses_and_networks_are_never_banned() -> None:
    rules = BanRules(3, 60, 100, (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")))
    bans = Bans(rules)
    for i in range(50):
        assert bans.failure("10.1.2.3", at(i)) is None
        assert bans.failure("::1", at(i)) is None
    assert bans.active == []


def test_a_flood_from_many_sources_forgets_the_least_recent_one_first() -> None:
    bans = Bans(BanRules(max_failures=3, find_time_s=60, ban_time_s=100, allow=(), max_tracked=2))
    bans.failure("192.0.2.1", at(0))
    bans.failure("192.0.2.2", at(1))
    bans.failure("192.0.2.1", at(2))  # .1 heard from again: .2 is now the least recent
    bans.failure("192.0.2.3", at(3))  # a third source: .2 is forgotten, .1 is not
    assert bans.failure("192.0.2.1", at(4)) is not None
    assert bans.failure("192.0.2.2", at(5)) is None
    assert bans.failure("192.0.2.2", at(6)) is None  # it counts from nothing again
    assert bans.failure("192.0.2.2", at(7)) is not None


def test_ipv4_mapped_ipv6_spelling_is_the_same_source() -> None:
    bans = Bans(RULES)
    bans.failure("192.0.2.1", at(0))
    bans.failure("::ffff:192.0.2.1", at(1))
    assert bans.failure("192.0.2.1", at(2)) is not None


def test_a_ban_expires_at_its_time_and_the_source_starts_afresh() -> None:
    bans = Bans(RULES)
    for i in range(3):
        bans.failure("192.0.2.1", at(i))
    assert bans.next_expiry() == at(102)
    assert bans.expired(at(101)) == []
    assert [b.address for b in bans.expired(at(102))] == ["192.0.2.1"]
    assert not bans.banned("192.0.2.1") and bans.next_expiry() is None
    assert bans.failure("192.0.2.1", at(103)) is None  # its history went with the ban


def test_a_repeat_offender_is_banned_twice_as_long_each_time_up_to_the_maximum() -> None:
    rules = BanRules(max_failures=3, find_time_s=60, ban_time_s=100, max_ban_time_s=350)
    bans = Bans(rules)
    lengths = []
    t = 0.0
    for _ in range(4):
        for _ in range(3):
            t += 1
            ban = bans.failure("192.0.2.1", at(t))
        assert ban is not None
        lengths.append((ban.until - ban.since).total_seconds())
        t = (ban.until - T0).total_seconds()
        bans.expired(at(t))
    assert lengths == [100, 200, 350, 350]
    # Another source starts at the base time; and a day later, so does this one.
    other = [bans.failure("192.0.2.2", at(t + i)) for i in range(1, 4)][-1]
    assert other is not None and other.until - other.since == timedelta(seconds=100)
    later = t + 86400
    again = [bans.failure("192.0.2.1", at(later + i)) for i in range(1, 4)][-1]
    assert again is not None and again.until - again.since == timedelta(seconds=100)


def test_earlier_bans_kept_in_the_database_count_after_a_restart() -> None:
    history = [Ban("192.0.2.1", at(0), at(100), 3), Ban("192.0.2.1", at(200), at(400), 3)]
    bans = Bans(RULES, (), history)
    ban = [bans.failure("192.0.2.1", at(500 + i)) for i in range(3)][-1]
    assert ban is not None and ban.until - ban.since == timedelta(seconds=400)


def test_lifting_ends_a_ban_now() -> None:
    bans = Bans(RULES, [Ban("192.0.2.1", at(0), at(100), 3)])
    assert bans.lift("192.0.2.9") is None
    assert bans.lift("192.0.2.1") is not None and bans.active == []


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("IPV4/UDP/127.0.0.3/5060", "127.0.0.3"),
        ("IPV6/UDP/2001:db8::1/5060", "2001:db8::1"),
        ("IPV6/TCP/::ffff:198.51.100.7/5061", "198.51.100.7"),
        ("IPV4/UDP/not-an-ip/5060", None),
        ("garbage", None),
    ],
)
def test_remote_address_is_parsed_from_asterisk_form(value: str, address: str | None) -> None:
    assert parse_remote_address(value) == address


def test_only_failed_authentications_are_failures() -> None:
    # Recorded from Asterisk 22.10.1 (res_pjsip): a wrong password for 1001, an unknown account.
    wrong = {
        "Event": "ChallengeResponseFailed",
        "Privilege": "security,all",
        "Service": "PJSIP",
        "AccountID": "1001",
        "SessionID": "ee16b986396d7137b072d235",
        "LocalAddress": "IPV4/UDP/127.0.0.1/51078",
        "RemoteAddress": "IPV4/UDP/127.0.0.3/39103",
        "Challenge": "1796293375/b13bcbe659ed612b76207ebf665b7386",
        "Response": "28f0da7619e05159f1a0e75593c8ddde",
    }
    unknown = {**wrong, "Event": "InvalidAccountID", "AccountID": "9999"}
    assert parse_security_event(wrong) == AuthFailure("ChallengeResponseFailed", "127.0.0.3", "1001")
    assert parse_security_event(unknown) == AuthFailure("InvalidAccountID", "127.0.0.3", "9999")
    for event in ("ChallengeSent", "SuccessfulAuth", "FailedACL"):
        assert parse_security_event({**wrong, "Event": event}) is None
    assert parse_security_event({**wrong, "RemoteAddress": "junk"}) is None


def test_acl_file_denies_each_banned_address_and_holds_no_section_without_bans() -> None:
    assert "[" not in render_acl([])
    text = render_acl(["192.0.2.1", "2001:db8::1", "192.0.2.1"])
    assert "type = acl" in text
    assert [line for line in text.splitlines() if line.startswith("deny")] == [
        "deny = 192.0.2.1/32",
        "deny = 2001:db8::1/128",
    ]


# -- the service, over fakes ------------------------------------------------------------------


class FakeStore:
    def __init__(self, bans: Iterable[Ban] = ()) -> None:
        self.rows = {b.address: b for b in bans}
        self.events: list[tuple[str, str]] = []

    async def bans(self) -> list[Ban]:
        return list(self.rows.values())

    async def banned_since(self, since: datetime) -> list[Ban]:
        return []

    async def banned(self, ban: Ban, data: dict[str, Any]) -> None:
        self.rows[ban.address] = ban
        self.events.append(("banned", ban.address))

    async def ended(self, ban: Ban, kind: str, at: datetime, data: dict[str, Any]) -> None:
        self.rows.pop(ban.address, None)
        self.events.append((kind, ban.address))


class FakeAcl:
    def __init__(self) -> None:
        self.applied: list[list[str]] = []
        self.failing = False

    async def apply(self, addresses: Iterable[str]) -> None:
        if self.failing:
            raise PbxError("AMI is down")
        self.applied.append(sorted(addresses))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def settle(check: Any, timeout: float = 2.0) -> None:
    """Let the service's task run until `check` holds (at most `timeout` seconds)."""
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not settled within {timeout} s")


def fail(service: SipBanService, address: str, times: int) -> None:
    for _ in range(times):
        service.auth_failure(AuthFailure("ChallengeResponseFailed", address, "1001"))


async def test_service_bans_enforces_records_and_lifts() -> None:
    store, acl, clock = FakeStore(), FakeAcl(), Clock()
    service = SipBanService(RULES, store, acl, clock)
    await service.start()
    assert acl.applied == [[]]  # the file is written even with no ban
    fail(service, "192.0.2.1", 3)
    await settle(lambda: acl.applied[-1] == ["192.0.2.1"] and store.events)
    assert store.events == [("banned", "192.0.2.1")]
    assert service.lift("192.0.2.1", "lead") is not None
    await settle(lambda: acl.applied[-1] == [] and len(store.events) == 2)
    assert store.events[-1] == ("lifted", "192.0.2.1")
    await service.stop()


async def test_service_rebuilds_bans_after_a_restart_and_ends_those_whose_time_is_up() -> None:
    clock = Clock()
    store = FakeStore(
        [Ban("192.0.2.1", clock.now, clock.now + timedelta(seconds=50), 3), Ban("192.0.2.2", at(0), at(1), 3)]
    )
    acl = FakeAcl()
    service = SipBanService(RULES, store, acl, clock)
    await service.start()
    assert acl.applied == [["192.0.2.1"]]
    await settle(lambda: store.events == [("expired", "192.0.2.2")])
    assert [b.address for b in service.active] == ["192.0.2.1"]
    await service.stop()


async def test_service_unbans_when_the_time_is_up() -> None:
    clock = Clock()
    rules = BanRules(max_failures=1, find_time_s=60, ban_time_s=0.05)
    store, acl = FakeStore(), FakeAcl()
    service = SipBanService(rules, store, acl, clock)
    await service.start()
    fail(service, "192.0.2.1", 1)
    await settle(lambda: acl.applied[-1] == ["192.0.2.1"])
    clock.now += timedelta(seconds=1)
    await settle(lambda: acl.applied[-1] == [] and ("expired", "192.0.2.1") in store.events)
    await service.stop()


async def test_service_retries_the_acl_when_asterisk_refused_it() -> None:
    store, acl, clock = FakeStore(), FakeAcl(), Clock()
    service = SipBanService(RULES, store, acl, clock)
    await service.start()
    acl.failing = True
    fail(service, "192.0.2.1", 3)
    await settle(lambda: store.events == [("banned", "192.0.2.1")])  # recorded even so
    acl.failing = False
    await settle(lambda: acl.applied[-1] == ["192.0.2.1"], timeout=5)
    await service.stop()
