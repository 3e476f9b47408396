"""Staffing a queue's intervals from history (app/domain/staffing.py): what an interval saw,
the callers' patience from abandons, the agents Erlang C and Erlang A ask for beside those
staffed, and a forecast day from past days, adjustable."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.reports import CallFacts, StateChange
from app.domain.staffing import IntervalHistory, forecast, interval_histories, patience_estimate, staffing_row

DAY = datetime(2026, 12, 1, tzinfo=UTC)


def at(s: float) -> datetime:
    return DAY + timedelta(seconds=s)


def test_an_interval_of_ten_erlangs_needs_fourteen_agents_by_erlang_c() -> None:
    # 100 calls in 30 min of 180 s each: 10 Erlangs. Published tables: P(wait) 0.2853 with 13
    # agents, 0.1741 with 14; SL = 1 - P(wait) e^(-(N - A) 20 / 180): 79.6 % with 13, 88.8 % with 14.
    h = IntervalHistory(at(9 * 3600), offered=100, handled=100, handle_s=18_000, staffed_s=12 * 1800)
    row = staffing_row("general", h, 1800, 20, 0.80)
    assert row["erlang_c_agents"] == 14
    assert 1 - 0.2853 * math.exp(-3 * 20 / 180) < 0.80 < 1 - 0.1741 * math.exp(-4 * 20 / 180)
    assert (row["calls_per_hour"], row["aht_s"], row["agents_staffed"]) == (200.0, 180.0, 12.0)
    # No caller gave up: no sign of a patience, and Erlang A says what Erlang C says.
    assert row["patience_s"] is None and row["erlang_a_agents"] == 14


def test_impatient_callers_need_fewer_agents_by_erlang_a() -> None:
    # 2000 s waited in all, 10 abandons: a mean patience of 200 s.
    assert patience_estimate(2000, 10) == 200.0
    assert patience_estimate(2000, 0) is None
    h = IntervalHistory(at(0), offered=100, handled=90, handle_s=90 * 180, abandoned=10, waited_s=2000)
    row = staffing_row("general", h, 1800, 20, 0.80, staffed=False)
    assert row["patience_s"] == 200.0 and row["agents_staffed"] is None
    assert row["erlang_a_agents"] < row["erlang_c_agents"] == 14
    assert 0 < row["erlang_a_abandon_percent"] < 10


def test_a_quiet_interval_needs_nobody() -> None:
    row = staffing_row("general", IntervalHistory(at(0)), 1800, 20, 0.8)
    assert (row["erlang_c_agents"], row["erlang_a_agents"], row["aht_s"]) == (0, 0, None)


def test_the_history_of_each_interval_from_calls_and_agent_states() -> None:
    calls = [
        CallFacts("general", "medium", at(60), at(70), at(250), "completed"),  # waited 10, handled 180
        CallFacts("general", "medium", at(100), None, at(130), "abandoned"),  # waited 30
        CallFacts("general", "medium", at(200), None, at(260), "callback_requested"),  # waited 60
        CallFacts("general", "medium", at(1900), at(1905), None, None),  # next interval, still talking
        CallFacts("billing", "medium", at(60), at(61), at(70), "completed"),  # another queue
    ]
    changes = [
        StateChange("1001", at(900), "logged_out", "ready"),  # 900 s in the first half hour
        StateChange("1001", at(2700), "ready", "logged_out"),  # and 900 s in the second
        StateChange("1002", at(0), "logged_out", "ready"),  # serves billing only
    ]
    got = interval_histories(
        calls, changes, lambda a, q: (a, q) == ("1001", "general"), ["general"], DAY, 1800
    )
    general = got["general"]
    assert len(general) == 48
    assert general[0] == IntervalHistory(at(0), 3, 1, 180.0, 1, 10 + 30 + 60, 900.0)
    assert general[1] == IntervalHistory(at(1800), 1, 0, 0.0, 0, 5.0, 900.0)
    assert general[2] == IntervalHistory(at(3600))


def test_a_forecast_day_averages_past_days_by_time_of_day_and_can_be_adjusted() -> None:
    week1 = [IntervalHistory(at(9 * 3600), 10, 10, 1000, 2, 300, 3600)]
    week2 = [IntervalHistory(at(9 * 3600 + 7 * 86_400), 30, 30, 5000, 0, 100, 1800)]
    target = DAY + timedelta(days=14)
    (plain,) = forecast([week1, week2], target, 1800)
    assert plain == IntervalHistory(target + timedelta(hours=9), 20, 20, 3000, 1, 200, 2700)
    (busier,) = forecast([week1, week2], target, 1800, volume_percent=150, aht_percent=110)
    assert busier.offered == 30 and busier.handle_s == pytest.approx(3000 * 1.5 * 1.1)
    assert busier.handle_s / busier.handled == pytest.approx(150 * 1.1)  # AHT up 10 %
    assert busier.waited_s / busier.abandoned == plain.waited_s / plain.abandoned  # same patience
    assert forecast([], target, 1800) == []
    with pytest.raises(ValueError):
        forecast([week1], target, 1800, volume_percent=-5)
