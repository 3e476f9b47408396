"""The reports' maths (app/domain/reports.py) on small histories computed by hand: the queue
report by day in the center's zone, the agent report from state changes, the IVR report, the
callbacks and voicemail report, and the campaigns' daily and 30-day abandon rates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.domain.reports import (
    CallbackFacts,
    CallFacts,
    DialFacts,
    StateChange,
    VoicemailFacts,
    add_agent_time,
    agent_buckets,
    agent_intervals,
    agent_report,
    agent_rows,
    campaign_report,
    ivr_report,
    queue_report,
    work_report,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8: 16:00 UTC is already the next day there
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_the_queue_report_counts_each_day_in_the_centers_zone() -> None:
    late = datetime(2026, 12, 1, 15, 59, tzinfo=UTC)  # 23:59 on 1 December in Shanghai
    early = datetime(2026, 12, 1, 16, 1, tzinfo=UTC)  # 00:01 on 2 December in Shanghai
    s = timedelta(seconds=1)
    facts = [
        CallFacts("general", "medium", late, late + 20 * s, late + 320 * s, "completed"),
        CallFacts("general", "medium", late, None, late + 3 * s, "abandoned"),  # short
        CallFacts("general", "medium", early, early + 50 * s, early + 150 * s, "completed"),
        CallFacts("general", "medium", early, None, early + 90 * s, "abandoned"),
        CallFacts("billing", "medium", early, None, None, None),  # still waiting
    ]
    rows = queue_report(facts, SHANGHAI, date(2026, 12, 1), date(2026, 12, 2), lambda q, t: 30.0, 5.0)
    assert [(r["queue"], r["start"]) for r in rows] == [
        ("billing", "2026-12-02"),
        ("general", "2026-12-01"),
        ("general", "2026-12-02"),
    ]
    first, second = rows[1], rows[2]
    assert (first["offered"], first["answered"], first["abandoned"], first["short_abandoned"]) == (2, 1, 1, 1)
    assert first["service_level_percent"] == 100.0  # 20 s in target; the short abandon left out
    assert (first["asa_s"], first["aht_s"]) == (20.0, 300.0)
    assert (second["answered_in_target"], second["service_level_percent"]) == (0, 0.0)  # 50 s late; 1 abandon
    assert (second["longest_answered_wait_s"], second["longest_abandoned_wait_s"]) == (50.0, 90.0)
    assert rows[0]["offered"] == 1 and rows[0]["answered"] == 0
    # A day outside the range is left out.
    assert queue_report(facts, SHANGHAI, date(2026, 12, 2), date(2026, 12, 2), lambda q, t: 30.0, 5.0)[
        1:
    ] == [second]


def test_the_agent_report_adds_time_in_state_within_the_period() -> None:
    changes = [
        # Alice logged in before the period (09:00); only her time from 09:00 counts.
        StateChange("1001", at(-600), "logged_out", "ready"),
        StateChange("1001", at(100), "ready", "ringing"),
        StateChange("1001", at(110), "ringing", "on_call"),
        StateChange("1001", at(410), "on_call", "wrap_up"),
        StateChange("1001", at(440), "wrap_up", "not_ready", "lunch"),
        StateChange("1001", at(2240), "not_ready", "ready"),
        StateChange("1001", at(2300), "ready", "on_call"),  # a second call, 100 s to the end
        # Bob: a break, then logged out; his first change tells where he stood at 09:00.
        StateChange("1002", at(60), "not_ready", "not_ready", "training"),
        StateChange("1002", at(360), "not_ready", "logged_out"),
    ]
    rows = agent_report(changes, T0, at(2400))
    alice, bob = rows
    assert alice == {
        "agent": "1001",
        "calls": 2,
        "logged_in_s": 2400,
        "ready_s": 100 + 60,
        "ringing_s": 10,
        "talk_s": 300 + 100,
        "wrap_up_s": 30,
        "not_ready_s": 1800,
        "aht_s": (400 + 30) / 2,
        "occupancy_percent": round(100 * 440 / (440 + 160), 1),
        "not_ready_by_reason": {"lunch": 1800},
    }
    # Bob's first 60 s were Not Ready with the reason unknown here, then 300 s of training.
    assert (bob["logged_in_s"], bob["not_ready_s"], bob["calls"]) == (360, 360, 0)
    assert bob["not_ready_by_reason"] == {"": 60, "training": 300}
    assert bob["aht_s"] is None and bob["occupancy_percent"] is None


def ivr_call(iid: str, *steps: tuple[str, dict[str, Any]]) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    return [(iid, kind, at(n), data) for n, (kind, data) in enumerate(steps)]


def test_the_ivr_report_says_where_callers_leave_and_what_they_choose() -> None:
    events = [
        *ivr_call(
            "a",
            ("flow", {"name": "main"}),
            ("menu_choice", {"menu": "welcome", "key": "1", "to": "sales"}),
            ("queued", {"queue": "sales"}),
            ("ended", {"outcome": "completed"}),
        ),
        *ivr_call(
            "b",
            ("flow", {"name": "main"}),
            ("menu_choice", {"menu": "welcome", "key": "2", "to": "account"}),
            ("prompt_played", {"prompt": "account"}),
            ("ended", {"outcome": "hung_up_in_ivr"}),
        ),
        *ivr_call(
            "c",
            ("flow", {"name": "main"}),
            ("menu_choice", {"menu": "welcome", "key": "1", "to": "sales"}),
            ("voicemail_started", {"queue": "sales"}),
            ("ended", {"outcome": "voicemail"}),
        ),
        *ivr_call("d", ("flow", {"name": "main"}), ("no_input", {}), ("ended", {"outcome": "no_input"})),
        *ivr_call("x", ("queued", {"queue": "sales"})),  # never in a flow: not in this report
    ]
    report = ivr_report(events)
    assert report["exits"] == [
        {"flow": "main", "step": "(start)", "exit": "no_input", "calls": 1, "percent": 25.0},
        {"flow": "main", "step": "account", "exit": "hung_up", "calls": 1, "percent": 25.0},
        {"flow": "main", "step": "sales", "exit": "queue:sales", "calls": 1, "percent": 25.0},
        {"flow": "main", "step": "sales", "exit": "voicemail", "calls": 1, "percent": 25.0},
    ]
    assert report["choices"] == [
        {"flow": "main", "menu": "welcome", "choice": "1", "to": "sales", "calls": 2, "percent": 66.7},
        {"flow": "main", "menu": "welcome", "choice": "2", "to": "account", "calls": 1, "percent": 33.3},
    ]


def test_callbacks_and_voicemail_by_queue_and_day() -> None:
    day = date(2026, 12, 1)
    callbacks = [
        CallbackFacts("general", "ivr", at(0), "completed", 2, at(600)),
        CallbackFacts("general", "web", at(60), "completed", 1, at(260)),
        CallbackFacts("general", "voicemail", at(120), "failed", 3, at(9000)),
        CallbackFacts("general", "ivr", at(180), "waiting", 0, None),
        CallbackFacts("general", "ivr", at(86_400), "cancelled", 0, at(86_500)),  # the next day
    ]
    voicemails = [
        VoicemailFacts("general", at(30), 20.0, True),
        VoicemailFacts("general", at(90), 10.0, False),
        VoicemailFacts("billing", at(90), None, False),
    ]
    rows = work_report(callbacks, voicemails, UTC, day, day)
    billing, general = rows
    assert general == {
        "start": "2026-12-01",
        "queue": "general",
        "callbacks_requested": 4,
        "from_ivr": 2,
        "from_web": 1,
        "from_voicemail": 1,
        "callbacks_completed": 2,
        "callbacks_failed": 1,
        "callbacks_cancelled": 0,
        "callbacks_open": 1,
        "attempts": 6,
        "avg_time_to_complete_s": (600 + 200) / 2,
        "voicemails": 2,
        "voicemails_handled": 1,
        "avg_voicemail_s": 15.0,
    }
    assert (billing["voicemails"], billing["avg_voicemail_s"], billing["callbacks_requested"]) == (1, None, 0)


def test_campaign_abandon_rates_per_day_and_over_the_30_days_ending_that_day() -> None:
    def dials(day: date, attempts: int, live: int, abandoned: int) -> list[DialFacts]:
        start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
        out = []
        for n in range(attempts):
            is_live, is_abandoned = n < live, n < abandoned
            result = "abandoned" if is_abandoned else "connected" if is_live else "no_answer"
            out.append(DialFacts("renewals", start + timedelta(minutes=n), result, is_live, is_abandoned))
        return out

    history = [
        *dials(date(2026, 11, 2), 100, 50, 5),  # in the 30 days ending 1 December, not 2 December
        *dials(date(2026, 11, 10), 100, 40, 2),
        *dials(date(2026, 12, 1), 10, 10, 0),
        *dials(date(2026, 12, 2), 20, 10, 1),
    ]
    rows = campaign_report(history, UTC, date(2026, 12, 1), date(2026, 12, 3))
    assert [r["start"] for r in rows] == ["2026-12-01", "2026-12-02"]  # no dial on the 3rd: no row
    first, second = rows
    assert (second["attempts"], second["live_answers"], second["abandoned"]) == (20, 10, 1)
    assert second["abandon_percent"] == 10.0
    assert second["abandon_percent_30d"] == round(100 * (2 + 0 + 1) / (40 + 10 + 10), 2)  # 3 Nov to 2 Dec
    assert first["abandon_percent_30d"] == round(100 * (5 + 2) / (50 + 40 + 10), 2)  # 2 Nov to 1 Dec
    assert second["results"] == {"abandoned": 1, "connected": 9, "no_answer": 10}
    assert first["abandon_percent"] == 0.0


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    for report in (campaign_report, lambda *a: queue_report([], a[1], a[2], a[3], lambda q, t: 1, 1)):
        with pytest.raises(ValueError):
            report([], UTC, date(2026, 12, 2), date(2026, 12, 1))
    with pytest.raises(ValueError):
        work_report([], [], UTC, date(2026, 12, 2), date(2026, 12, 1))


def test_agent_time_kept_by_quarter_hour_adds_up_to_the_same_report() -> None:
    changes = [
        StateChange("1001", at(-600), "logged_out", "ready"),
        StateChange("1001", at(100), "ready", "on_call"),
        StateChange("1001", at(1000), "on_call", "wrap_up"),
        StateChange("1001", at(1030), "wrap_up", "not_ready", "lunch"),
        StateChange("1001", at(2000), "not_ready", "logged_out"),
    ]
    kept = agent_buckets(changes, T0, at(3600))
    # 09:00-09:15: 100 s ready, 800 s on a call (begun there); 09:15-09:30: 100 s on the call...
    assert kept[:2] == [("1001", T0, "on_call", None, 800.0, 1), ("1001", T0, "ready", None, 100.0, 0)]
    assert ("1001", at(900), "not_ready", "lunch", 770.0, 0) in kept
    folded: dict[str, dict[str, Any]] = {}
    for agent, _, state, reason, seconds, calls in kept:
        add_agent_time(folded, agent, state, reason, seconds, calls)
    assert agent_rows(folded) == agent_report(changes, T0, at(3600))


def test_agents_per_interval_of_the_day_taken_together() -> None:
    day = T0.replace(hour=0)
    nine = 9 * 3600

    def t(s: float) -> datetime:
        return day + timedelta(seconds=nine + s)

    changes = [
        StateChange("1001", t(0), "logged_out", "ready"),
        StateChange("1001", t(600), "ready", "ringing"),
        StateChange("1001", t(610), "ringing", "on_call"),
        StateChange("1001", t(1200), "on_call", "wrap_up"),
        StateChange("1001", t(1260), "wrap_up", "ready"),
        StateChange("1001", t(2400), "ready", "logged_out"),
        StateChange("1002", t(0), "logged_out", "not_ready", "training"),
        StateChange("1002", t(2700), "not_ready", "logged_out"),
    ]
    first, second = agent_intervals(changes, day, 30)
    # 09:00-09:30: Alice ready 600 + 540 s, 10 s ringing and 590 s talking, 60 s wrapping up;
    # Bob in training all along. Two agents; busy 660 s over 660 + 1140.
    assert first == {
        "start": t(0).isoformat(),
        "agents_logged_in": 2.0,
        "ready_s": 1140,
        "talk_s": 600,
        "wrap_up_s": 60,
        "not_ready_s": 1800,
        "occupancy_percent": round(100 * 660 / 1800, 1),
        "not_ready_by_reason": {"training": 1800},
    }
    # 09:30-10:00: Alice ready 600 s, Bob 900 s more of training: 1500 s over 1800 s.
    assert (second["agents_logged_in"], second["ready_s"], second["occupancy_percent"]) == (0.8, 600, 0.0)
    assert agent_intervals(changes, day, 60)[0]["not_ready_s"] == 2700
