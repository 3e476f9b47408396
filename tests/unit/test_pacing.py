"""Outbound pacing (app/domain/pacing.py): the modes, the predictive rule and its limits, the live
estimators, the compliance gauge and the blending rule."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.pacing import (
    DAY_S,
    BusyAgent,
    CampaignEstimates,
    CampaignStatistics,
    ComplianceGauge,
    DialMode,
    DialOutcome,
    InboundService,
    PacingSettings,
    PacingSnapshot,
    abandon_aim,
    agents_for_outbound,
    calls_to_place,
    decide,
    may_take_outbound,
    progressive_calls,
    window_after_agent_ring,
)

PROPERTY = settings(deadline=None, max_examples=120)
PREDICTIVE = PacingSettings(mode=DialMode.PREDICTIVE)


def fed(
    answer_rate: float,
    hours: float = 2.0,
    *,
    seed: int = 1,
    stats: CampaignStatistics | None = None,
    start: float = 0.0,
    every_s: float = 2.0,
    answer_median_s: float = 8.0,
    talk_median_s: float = 200.0,
    wrap_median_s: float = 20.0,
) -> CampaignStatistics:
    """A campaign's statistics after `hours` of synthetic traffic: a dial ends every `every_s`,
    live with `answer_rate` after a lognormal ring, otherwise busy (4 s) or unanswered (25 s); a
    call ends every 20 s with lognormal talk and wrap-up times."""
    rng = random.Random(seed)
    stats = stats or CampaignStatistics()
    t = start
    while t < start + hours * 3600:
        t += every_s
        if rng.random() < answer_rate:
            stats.record_dial(DialOutcome.LIVE, rng.lognormvariate(math.log(answer_median_s), 0.4), t)
        elif rng.random() < 0.3:
            stats.record_dial(DialOutcome.BUSY, 4.0, t)
        else:
            stats.record_dial(DialOutcome.NO_ANSWER, 25.0, t)
        if int(t) % 20 == 0:
            stats.record_talk(rng.lognormvariate(math.log(talk_median_s), 0.7), t)
            stats.record_wrap_up(rng.lognormvariate(math.log(wrap_median_s), 0.4), t)
    return stats


@cache
def learnt(answer_rate: float) -> CampaignEstimates:
    return fed(answer_rate).estimates()


def known(answer_rate: float) -> CampaignEstimates:
    """Estimates whose answer rate is as good as certain."""
    return replace(learnt(0.3), answer_rate=answer_rate, answer_evidence=1e9)


def snap(
    free: int,
    estimates: CampaignEstimates | None = None,
    *,
    busy: tuple[BusyAgent, ...] = (),
    ringing: tuple[float, ...] = (),
    waiting: int = 0,
    headroom: float = 1.0,
) -> PacingSnapshot:
    return PacingSnapshot(
        agents_free=free,
        estimates=estimates or learnt(0.3),
        busy=busy,
        ringing_s=ringing,
        customers_waiting=waiting,
        headroom=headroom,
    )


# -- generators ------------------------------------------------------------------------------------


@st.composite
def snapshots(draw: st.DrawFn) -> PacingSnapshot:
    busy = draw(
        st.lists(
            st.builds(BusyAgent, st.floats(0, 900), st.booleans()),
            max_size=15,
        )
    )
    return snap(
        draw(st.integers(0, 15)),
        draw(st.sampled_from([learnt(0.15), learnt(0.3), learnt(0.6), CampaignStatistics().estimates()])),
        busy=tuple(busy),
        ringing=tuple(draw(st.lists(st.floats(0, 30), max_size=20))),
        waiting=draw(st.integers(0, 3)),
        headroom=draw(st.floats(0, 1)),
    )


pacing_settings = st.builds(
    PacingSettings,
    mode=st.sampled_from(list(DialMode)),
    abandon_target=st.sampled_from([0.0, 0.01, 0.03, 0.05]),
    max_lines_per_agent=st.sampled_from([1.0, 1.5, 2.0, 3.0]),
    balance=st.floats(-1, 1),
)


# -- modes -----------------------------------------------------------------------------------------


def test_preview_places_nothing() -> None:
    assert calls_to_place(snap(5), PacingSettings(mode=DialMode.PREVIEW)) == 0


@pytest.mark.parametrize("mode", list(DialMode))
def test_kill_switch_and_no_agent_place_nothing(mode: DialMode) -> None:
    assert calls_to_place(snap(8), PacingSettings(mode=mode, kill_switch=True)) == 0
    assert calls_to_place(snap(0), PacingSettings(mode=mode)) == 0
    assert decide(snap(8), PacingSettings(mode=mode, kill_switch=True)).reason == "kill switch"


def test_progressive_is_one_line_per_free_agent_not_already_covered() -> None:
    progressive = PacingSettings(mode=DialMode.PROGRESSIVE)
    assert calls_to_place(snap(5), progressive) == 5
    assert calls_to_place(snap(5, ringing=(3.0, 9.0)), progressive) == 3
    assert calls_to_place(snap(5, ringing=(3.0, 9.0), waiting=1), progressive) == 2
    assert calls_to_place(snap(2, ringing=(1.0, 2.0, 3.0)), progressive) == 0
    # busy agents do not count, however soon they free up
    assert calls_to_place(snap(0, busy=(BusyAgent(5.0, wrapping_up=True),)), progressive) == 0


@PROPERTY
@given(snapshots(), pacing_settings)
def test_never_more_than_the_free_agents_in_progressive(s: PacingSnapshot, ps: PacingSettings) -> None:
    calls = calls_to_place(s, replace(ps, mode=DialMode.PROGRESSIVE))
    assert 0 <= calls <= max(0, s.agents_free - len(s.ringing_s) - s.customers_waiting)


@PROPERTY
@given(snapshots(), pacing_settings)
def test_never_more_lines_than_the_cap_per_agent(s: PacingSnapshot, ps: PacingSettings) -> None:
    calls = calls_to_place(s, ps)
    cap = math.floor(ps.max_lines_per_agent * s.agents_staffed + 1e-9)
    assert calls >= 0
    assert calls == 0 or s.lines_in_use + calls <= cap


@PROPERTY
@given(snapshots(), pacing_settings)
def test_predictive_places_at_least_progressive_within_the_cap(s: PacingSnapshot, ps: PacingSettings) -> None:
    ps = replace(ps, mode=DialMode.PREDICTIVE)
    cap = math.floor(ps.max_lines_per_agent * s.agents_staffed + 1e-9)
    floor = min(progressive_calls(s), max(0, cap - s.lines_in_use))
    assert calls_to_place(s, ps) >= floor


@PROPERTY
@given(snapshots(), pacing_settings)
def test_a_decision_keeps_its_expected_abandons_within_its_aim(s: PacingSnapshot, ps: PacingSettings) -> None:
    d = decide(s, replace(ps, mode=DialMode.PREDICTIVE))
    if d.calls > progressive_calls(s):
        assert d.expected_abandons <= d.aim * d.expected_answers + 1e-9
        assert d.aim <= ps.abandon_target


# -- the predictive rule ---------------------------------------------------------------------------


def test_with_no_busy_agent_the_abandons_are_the_binomial_excess() -> None:
    # Nobody frees up: whatever the timing, the live answers beyond the free agents are lost,
    # so the rule is exactly: the largest N with E[(Bin(N, p) - free)+] <= aim * N * p.
    p, free, aim = 0.3, 10, 0.03

    def excess(n: int) -> float:
        return sum((k - free) * math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(free + 1, n + 1))

    n = free
    while n < 3 * free and excess(n + 1) <= aim * (n + 1) * p:
        n += 1
    d = decide(snap(free, known(p)), PREDICTIVE)
    assert d.calls == n > free
    assert d.expected_abandons == pytest.approx(excess(n), rel=1e-6)
    assert d.expected_answers == pytest.approx(n * p)


def test_one_free_agent_and_one_ringing_call_abandon_nothing() -> None:
    # A call answers at most once, so one agent is enough for it, whatever the slots.
    d = decide(snap(1, known(0.6), ringing=(4.0,)), replace(PREDICTIVE, abandon_target=0.0))
    assert d.calls == 0
    assert d.expected_abandons == pytest.approx(0.0, abs=1e-9)
    assert d.expected_answers > 0.5


def test_a_waiting_customer_with_no_agent_in_sight_is_lost() -> None:
    d = decide(snap(0, known(0.3), busy=(BusyAgent(1.0),), waiting=1), PREDICTIVE)
    assert d.calls == 0
    assert d.expected_abandons == pytest.approx(1.0, abs=0.01)


def test_dials_ahead_for_agents_about_to_free_up() -> None:
    wrapping = tuple(BusyAgent(25.0, wrapping_up=True) for _ in range(6))  # wrap-up median 20 s
    long_calls = tuple(BusyAgent(30.0) for _ in range(6))  # just started: talk median 200 s
    assert calls_to_place(snap(0, learnt(0.3), busy=wrapping), PREDICTIVE) >= 3
    assert calls_to_place(snap(0, learnt(0.3), busy=long_calls), PREDICTIVE) == 0


def test_dials_more_when_fewer_answer() -> None:
    counts = [calls_to_place(snap(10, learnt(rate)), PREDICTIVE) for rate in (0.6, 0.3, 0.15)]
    assert counts == sorted(counts)
    assert counts[0] >= 10
    assert counts[-1] > 2 * 10


def test_a_call_ringing_long_past_the_usual_answer_time_counts_for_little() -> None:
    est = learnt(0.6)
    assert est.live_given_ringing(0.0) == pytest.approx(est.answer_rate)
    assert est.live_given_ringing(22.0) < 0.1 < 0.5 < est.live_given_ringing(3.0)
    # so an old ringing call holds back fewer new dials than a fresh one
    old = calls_to_place(snap(4, est, ringing=(22.0,) * 4), PREDICTIVE)
    new = calls_to_place(snap(4, est, ringing=(1.0,) * 4), PREDICTIVE)
    assert old > new


def test_slows_as_the_allowance_runs_out_and_is_progressive_when_none_is_left() -> None:
    s = snap(8, learnt(0.15), busy=tuple(BusyAgent(60.0 * k) for k in range(12)), ringing=(2.0, 5.0))
    counts = [
        calls_to_place(replace(s, headroom=h), PREDICTIVE) for h in (1.0, 0.6, 0.5, 0.4, 0.25, 0.1, 0.0)
    ]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == counts[2] > counts[4] > counts[-1]
    assert counts[-1] == progressive_calls(s) == 6
    assert decide(replace(s, headroom=0.0), PREDICTIVE).reason.startswith("predictive held to progressive")


@PROPERTY
@given(snapshots(), st.floats(0, 1), st.floats(0, 1))
def test_less_headroom_never_dials_more(s: PacingSnapshot, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert calls_to_place(replace(s, headroom=low), PREDICTIVE) <= calls_to_place(
        replace(s, headroom=high), PREDICTIVE
    )


def test_the_aim() -> None:
    target = PacingSettings(abandon_target=0.03)
    assert abandon_aim(target, 1.0) == pytest.approx(0.03)
    assert abandon_aim(target, 0.5) == pytest.approx(0.03)  # half the allowance used: still full
    assert abandon_aim(target, 0.25) == pytest.approx(0.015)
    assert abandon_aim(target, 0.0) == 0.0
    assert abandon_aim(target, -0.2) == 0.0  # over the limit
    # balance: -1 is progressive, +1 waits until three quarters are used
    assert abandon_aim(replace(target, balance=-1), 1.0) == 0.0
    assert abandon_aim(replace(target, balance=-0.5), 1.0) == pytest.approx(0.015)
    assert abandon_aim(replace(target, balance=1), 0.25) == pytest.approx(0.03)
    assert abandon_aim(replace(target, balance=1), 0.125) == pytest.approx(0.015)


def test_balance_trades_agent_wait_for_customer_wait() -> None:
    s = snap(6, learnt(0.15), busy=tuple(BusyAgent(40.0 * k) for k in range(10)), headroom=0.3)
    counts = [calls_to_place(s, replace(PREDICTIVE, balance=b)) for b in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    assert counts == sorted(counts)
    assert counts[0] == progressive_calls(s) < counts[-1]


def test_an_uncertain_answer_rate_holds_a_fresh_campaign_back() -> None:
    # The prior says 25 %, from four dials' worth of evidence: the truth may well be 50 %.
    fresh = CampaignStatistics().estimates()
    assert len(fresh.answer_rate_nodes(20)) == 5
    sure = replace(fresh, answer_evidence=1e9)
    assert sure.answer_rate_nodes(20) == (sure.answer_rate,)
    assert calls_to_place(snap(20, fresh), PREDICTIVE) < calls_to_place(snap(20, sure), PREDICTIVE)


def test_settings_are_checked() -> None:
    for bad in (
        {"abandon_target": -0.01},
        {"abandon_target": 1.0},
        {"max_lines_per_agent": 0.5},
        {"balance": 1.5},
        {"connect_window_s": -1.0},
    ):
        with pytest.raises(ValueError):
            PacingSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        snap(-1)


# -- estimators ------------------------------------------------------------------------------------


def test_priors_before_any_data() -> None:
    est = CampaignStatistics().estimates()
    assert est.answer_rate == pytest.approx(0.25)
    assert est.talk.median_s == pytest.approx(180.0)
    assert est.wrap_up.median_s == pytest.approx(15.0)
    assert est.time_to_answer_s == pytest.approx(10.0, abs=0.5)
    assert est.time_to_other_s == pytest.approx(15.0, abs=0.5)


def test_estimators_converge_on_synthetic_traffic() -> None:
    est = learnt(0.3)
    assert est.answer_rate == pytest.approx(0.3, abs=0.03)
    assert est.time_to_answer_s == pytest.approx(8.0, abs=1.0)
    assert est.talk.median_s == pytest.approx(200.0, rel=0.12)
    assert est.talk.sigma == pytest.approx(0.7, abs=0.08)
    assert est.wrap_up.median_s == pytest.approx(20.0, rel=0.1)
    assert est.handle_mean_s == pytest.approx(
        200 * math.exp(0.7**2 / 2) + 20 * math.exp(0.4**2 / 2), rel=0.15
    )


def test_estimates_follow_a_change_within_the_hour() -> None:
    stats = fed(0.3, hours=2)
    fed(0.1, hours=1, stats=stats, start=2 * 3600, seed=2)  # four half-lives of 15 minutes
    assert stats.estimates().answer_rate == pytest.approx(0.1, abs=0.03)


def test_a_pause_does_not_make_the_campaign_forget() -> None:
    stats = fed(0.6, hours=1)
    before = stats.estimates().answer_rate
    stats.record_dial(DialOutcome.BUSY, 3.0, 3600 + 12 * 3600)  # the next morning
    assert stats.estimates().answer_rate == pytest.approx(before, abs=0.01)


def test_weights_stay_finite_over_a_long_campaign() -> None:
    # A half-life of one second over thousands of seconds: the growing weights are rescaled.
    stats = CampaignStatistics(dial_half_life_s=1.0, handle_half_life_s=1.0)
    fed(0.3, hours=1.0, stats=stats, every_s=1.0)
    est = stats.estimates()
    assert all(math.isfinite(x) for x in (est.answer_rate, est.answer_evidence, est.talk.mu, est.talk.sigma))
    assert 0.0 < est.answer_rate < 1.0
    assert est.answer_evidence == pytest.approx(4.0 + 1 / (1 - 2**-1), rel=0.01)  # prior + 2 dials


def test_estimates_are_cached_until_the_next_event() -> None:
    stats = fed(0.3, hours=0.2)
    assert stats.estimates() is stats.estimates()
    first = stats.estimates()
    stats.record_talk(100.0, 10_000.0)
    assert stats.estimates() is not first


# -- compliance gauge ------------------------------------------------------------------------------


def test_gauge_counts_abandons_over_live_answers() -> None:
    gauge = ComplianceGauge(0.03, min_answers=0)
    for k in range(97):
        gauge.record_connected(float(k))
    for k in range(3):
        gauge.record_abandoned(100.0 + k)
    reading = gauge.reading(200.0)
    day, month = reading.windows
    assert (day.live_answers, day.abandoned) == (100, 3)
    assert day.rate == pytest.approx(0.03)
    assert month.rate == pytest.approx(0.03)
    assert reading.worst_rate == pytest.approx(0.03)
    assert reading.headroom == pytest.approx(0.0)


def test_amd_false_positives_count_as_abandoned_at_the_time_of_the_call() -> None:
    gauge = ComplianceGauge(0.03, min_answers=0)
    for k in range(50):
        gauge.record_connected(1000.0 + k)
    gauge.record_amd_false_positive(10.0)  # known later, about an early call
    day = gauge.reading(2000.0).windows[0]
    assert (day.live_answers, day.abandoned) == (51, 1)
    # once that call is a day old it leaves the 24 h window, not the 30-day one
    later = gauge.reading(10.0 + DAY_S + 120)
    assert (later.windows[0].live_answers, later.windows[0].abandoned) == (50, 0)
    assert (later.windows[1].live_answers, later.windows[1].abandoned) == (51, 1)
    # news older than every window changes nothing
    gauge.record_amd_false_positive(-40 * DAY_S)
    assert gauge.reading(2000.0).windows[1].abandoned == 1


def test_headroom_starts_full_and_weighs_early_abandons_as_in_a_full_window() -> None:
    gauge = ComplianceGauge(0.03, min_answers=100)
    assert gauge.reading(0.0).headroom == 1.0
    assert gauge.reading(0.0).worst_rate is None
    gauge.record_abandoned(1.0)  # 1 of 1: 100 %, but weighs as 1 of 100
    assert gauge.reading(2.0).headroom == pytest.approx(1 - 1 / 3)
    for k in range(400):
        gauge.record_connected(10.0 + k)
    assert gauge.reading(500.0).headroom == pytest.approx(1 - 1 / (0.03 * 401))


def test_headroom_follows_the_tightest_window() -> None:
    gauge = ComplianceGauge(0.03, min_answers=0)
    for k in range(1000):  # a clean month
        gauge.record_connected(float(k))
    for k in range(100):  # then a bad day
        if k < 3:
            gauge.record_abandoned(5 * DAY_S + k)
        else:
            gauge.record_connected(5 * DAY_S + k)
    reading = gauge.reading(5 * DAY_S + 200)
    assert reading.windows[0].rate == pytest.approx(0.03)
    assert reading.windows[1].rate == pytest.approx(3 / 1100)
    assert reading.headroom == pytest.approx(0.0)


def test_gauge_feeds_the_pacing() -> None:
    gauge = ComplianceGauge(0.03, min_answers=100)
    s = snap(8, learnt(0.15))
    full = calls_to_place(replace(s, headroom=gauge.reading(0.0).headroom), PREDICTIVE)
    for k in range(3):
        gauge.record_abandoned(float(k))
    spent = calls_to_place(replace(s, headroom=gauge.reading(10.0).headroom), PREDICTIVE)
    assert spent == progressive_calls(s) < full


# -- blending --------------------------------------------------------------------------------------


def test_blended_agents_take_outbound_only_while_inbound_is_served() -> None:
    assert may_take_outbound(InboundService(offered=100, answered_in_time=85, waiting=0), 80)
    assert not may_take_outbound(InboundService(offered=100, answered_in_time=75, waiting=0), 80)
    assert not may_take_outbound(InboundService(offered=100, answered_in_time=95, waiting=1), 80)
    assert may_take_outbound(InboundService(offered=0, answered_in_time=0, waiting=0), 80)
    assert not may_take_outbound(InboundService(offered=0, answered_in_time=0, waiting=2), 80)
    busy_inbound = InboundService(offered=10, answered_in_time=5, waiting=0)
    assert agents_for_outbound(3, 4, busy_inbound, 80) == 3
    assert agents_for_outbound(3, 4, InboundService(10, 9, 0), 80) == 7
    with pytest.raises(ValueError):
        InboundService(offered=5, answered_in_time=6, waiting=0)


def test_a_ringing_agents_ring_time_is_taken_from_the_connect_window() -> None:
    assert window_after_agent_ring(2.0, 0.0) == 2.0  # a nailed-up line: nothing rings
    assert window_after_agent_ring(2.0, 1.5) == 0.5
    assert window_after_agent_ring(2.0, 3.0) == 0.0, "a phone slower than the window leaves none"
    assert window_after_agent_ring(2.0, -1.0) == 2.0
