"""The outbound policy: what the center may dial, for what, and how often (app/domain/outbound.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.outbound import Dialled, DialPlan, OutboundPolicy, Purpose, Refused

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CARRIER = "carrier"


def reason(policy: OutboundPolicy, number: str, purpose: Purpose = Purpose.CALLBACK) -> Refused | None:
    refusal = policy.check(number, purpose, CARRIER, T0)
    return None if refusal is None else refusal.reason


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("13800138000", None),  # a mobile
        ("+8613800138000", None),  # the same mobile with the country code
        ("008613800138000", None),
        ("01012345678", None),  # a Beijing landline
        ("+861012345678", None),  # the same landline: the national prefix comes back
        ("9011441234567", Refused.NOT_IN_DIAL_PLAN),  # a PBX-style "9, 011" international dial string
        ("+88212345678", Refused.INTERNATIONAL),  # an international satellite (premium) range
        ("0044201234567", Refused.INTERNATIONAL),
        ("+14155550100", Refused.INTERNATIONAL),
        ("1380013800", Refused.NOT_IN_DIAL_PLAN),  # a digit short
        ("110", Refused.NOT_IN_DIAL_PLAN),  # short codes are not dialled out
        ("", Refused.MALFORMED),
        ("1380013800\r\n0", Refused.MALFORMED),
        ("138 0013 8000", Refused.MALFORMED),  # callers' numbers are normalised before they get here
        ("sip:evil@example.com", Refused.MALFORMED),
    ],
)
def test_the_default_dial_plan_allows_national_numbers_only(number: str, why: Refused | None) -> None:
    assert reason(OutboundPolicy(DialPlan()), number) is why


def test_a_denied_prefix_wins_over_a_matching_kind() -> None:
    policy = OutboundPolicy(DialPlan(denied_prefixes=("0900", "1700")))
    assert reason(policy, "09001234567") is Refused.DENIED_RANGE
    assert reason(policy, "+869001234567") is Refused.DENIED_RANGE  # written internationally too
    assert reason(policy, "17001234567") is Refused.DENIED_RANGE
    assert reason(policy, "13800138000") is None


def test_international_calls_are_a_kind_a_purpose_may_be_given() -> None:
    plan = DialPlan(international=True, purposes={Purpose.CALLBACK: ("mobile", "landline")})
    policy = OutboundPolicy(plan)
    assert reason(policy, "+14155550100", Purpose.TRANSFER) is None
    assert reason(policy, "+14155550100", Purpose.CALLBACK) is Refused.NOT_FOR_PURPOSE
    assert reason(policy, "13800138000", Purpose.CALLBACK) is None


def test_a_purpose_reaches_only_its_kinds() -> None:
    policy = OutboundPolicy(DialPlan(purposes={Purpose.DIALER: ("mobile",)}))
    assert reason(policy, "01012345678", Purpose.DIALER) is Refused.NOT_FOR_PURPOSE
    assert reason(policy, "01012345678", Purpose.CALLBACK) is None  # not named: every kind


def test_a_number_is_called_at_most_so_often_an_hour_and_a_day() -> None:
    policy = OutboundPolicy(DialPlan(per_number_hour=2, per_number_day=3))
    number = "13800138000"
    assert policy.admit(number, Purpose.CALLBACK, CARRIER, T0) is None
    assert policy.admit(number, Purpose.DIALER, CARRIER, T0 + timedelta(minutes=1)) is None
    third = policy.admit(number, Purpose.CALLBACK, CARRIER, T0 + timedelta(minutes=2))
    assert third is not None and third.reason is Refused.NUMBER_HOURLY_LIMIT and not third.reason.lasting
    assert policy.check("13800138001", Purpose.CALLBACK, CARRIER, T0) is None  # another number
    later = T0 + timedelta(hours=1, minutes=1)
    assert policy.admit(number, Purpose.CALLBACK, CARRIER, later) is None
    fourth = policy.admit(number, Purpose.CALLBACK, CARRIER, later + timedelta(hours=2))
    assert fourth is not None and fourth.reason is Refused.NUMBER_DAILY_LIMIT
    assert policy.admit(number, Purpose.CALLBACK, CARRIER, T0 + timedelta(days=1, minutes=2)) is None


def test_a_refused_call_is_not_counted() -> None:
    policy = OutboundPolicy(DialPlan(per_number_hour=1, per_number_day=1))
    assert policy.admit("+88212345678", Purpose.CALLBACK, CARRIER, T0) is not None
    assert policy.admit("13800138000", Purpose.CALLBACK, CARRIER, T0) is None
    assert policy.admit("13800138000", Purpose.CALLBACK, CARRIER, T0) is not None


def test_a_trunk_carries_at_most_so_many_calls() -> None:
    policy = OutboundPolicy(DialPlan(per_trunk_hour=3, per_trunk_day=5))
    numbers = [f"1380013800{i}" for i in range(8)]
    assert [policy.admit(n, Purpose.DIALER, CARRIER, T0) for n in numbers[:3]] == [None] * 3
    refused = policy.admit(numbers[3], Purpose.DIALER, CARRIER, T0)
    assert refused is not None and refused.reason is Refused.TRUNK_HOURLY_LIMIT
    assert "trunk carrier" in refused.detail
    assert policy.admit(numbers[3], Purpose.DIALER, "other-trunk", T0) is None
    later = T0 + timedelta(hours=2)
    assert policy.admit(numbers[4], Purpose.DIALER, CARRIER, later) is None
    assert policy.admit(numbers[5], Purpose.DIALER, CARRIER, later) is None
    daily = policy.admit(numbers[6], Purpose.DIALER, CARRIER, later)
    assert daily is not None and daily.reason is Refused.TRUNK_DAILY_LIMIT


def test_a_refusal_says_why_in_words() -> None:
    refusal = OutboundPolicy(DialPlan()).check("+88212345678", Purpose.CALLBACK, CARRIER, T0)
    assert refusal is not None and refusal.reason.lasting
    assert str(refusal) == "+88212345678 is an international number; this center does not call abroad"


def test_admitted_calls_are_handed_on_and_counted_again_after_a_restart() -> None:
    kept: list[Dialled] = []
    plan = DialPlan(per_number_hour=2, per_number_day=10, per_trunk_hour=100, per_trunk_day=3)
    before = OutboundPolicy(plan, on_admit=kept.append)
    for i in range(2):
        assert before.admit("13800138000", Purpose.CALLBACK, CARRIER, T0 + timedelta(minutes=i)) is None
    assert before.admit("13800138000", Purpose.CALLBACK, CARRIER, T0 + timedelta(minutes=2)) is not None
    assert [(d.number, d.purpose) for d in kept] == [("13800138000", Purpose.CALLBACK)] * 2

    after = OutboundPolicy(plan)  # a restart: new memory, the kept calls read back
    stale = Dialled(T0 - timedelta(days=2), "13900139000", CARRIER, Purpose.DIALER)
    assert after.restore([*kept, stale], T0 + timedelta(minutes=3)) == 2
    refusal = after.check("13800138000", Purpose.CALLBACK, CARRIER, T0 + timedelta(minutes=3))
    assert refusal is not None and refusal.reason is Refused.NUMBER_HOURLY_LIMIT
    assert after.admit("13700137000", Purpose.DIALER, CARRIER, T0 + timedelta(minutes=4)) is None
    refusal = after.check("13600136000", Purpose.DIALER, CARRIER, T0 + timedelta(minutes=5))
    assert refusal is not None and refusal.reason is Refused.TRUNK_DAILY_LIMIT
