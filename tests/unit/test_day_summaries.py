"""When the reports' day summaries fall due (app/domain/summaries.py) and what the nightly job
does with them (app/supervision/summaries.py, against an in-memory store)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.summaries import RETRY, day_bounds, days_to_summarise, next_summary_run, summary_time
from app.supervision.summaries import SummaryJob

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
FIVE = timedelta(minutes=5)


def at(zone: ZoneInfo, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_a_day_is_summed_up_a_few_minutes_after_the_centers_midnight_not_utcs() -> None:
    # 00:05 on 1 December in Shanghai is 16:05 UTC on 30 November.
    assert summary_time(date(2026, 11, 30), SHANGHAI, FIVE) == datetime(2026, 11, 30, 16, 5, tzinfo=UTC)
    assert summary_time(date(2026, 11, 30), KATHMANDU, FIVE) == datetime(2026, 11, 30, 18, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        ("2026-12-01T00:04:59", "2026-12-01T00:05:00"),  # tonight's, just before
        ("2026-12-01T00:05:00", "2026-12-02T00:05:00"),  # at it: the next is tomorrow's
        ("2026-12-01T13:00:00", "2026-12-02T00:05:00"),
        ("2026-11-30T23:59:00", "2026-12-01T00:05:00"),
    ],
)
def test_the_next_run_is_the_next_midnight_of_the_center_plus_the_delay(now: str, due: str) -> None:
    assert next_summary_run(at(SHANGHAI, now), SHANGHAI, FIVE) == at(SHANGHAI, due)


def test_across_a_daylight_saving_change_the_day_is_23_or_25_hours_and_the_run_stays_after_midnight() -> None:
    spring, autumn = date(2026, 3, 8), date(2026, 11, 1)  # New York's changes in 2026
    for day, hours in ((spring, 23), (autumn, 25)):
        start, end = day_bounds(day, NEW_YORK)
        assert end - start == timedelta(hours=hours)
        assert end.astimezone(NEW_YORK).hour == 0
    assert next_summary_run(at(NEW_YORK, "2026-03-08T12:00:00"), NEW_YORK, FIVE) == at(
        NEW_YORK, "2026-03-09T00:05:00"
    )
    assert next_summary_run(at(NEW_YORK, "2026-11-01T23:00:00"), NEW_YORK, FIVE).astimezone(NEW_YORK) == at(
        NEW_YORK, "2026-11-02T00:05:00"
    )


def test_every_finished_day_still_missing_is_due_oldest_first() -> None:
    now = at(SHANGHAI, "2026-12-03T09:00:00")
    first = date(2026, 11, 28)
    kept = {date(2026, 11, 29)}
    assert days_to_summarise(now, SHANGHAI, FIVE, first, kept) == [
        date(2026, 11, 28),
        date(2026, 11, 30),
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]
    # Today is never due, nor yesterday before the delay has passed after midnight.
    early = at(SHANGHAI, "2026-12-03T00:04:00")
    assert days_to_summarise(early, SHANGHAI, FIVE, date(2026, 12, 2), ()) == []
    assert days_to_summarise(now, SHANGHAI, FIVE, None, ()) == []  # no event at all yet


class FakeDays:
    def __init__(self, first: date | None, open_days: set[date]) -> None:
        self.first = first
        self.open_days = open_days
        self.kept: dict[date, int] = {}

    async def forget_other_zone(self) -> str | None:
        return None

    async def first_day(self) -> date | None:
        return self.first

    async def kept_days(self, since: date) -> set[date]:
        return {d for d in self.kept if d >= since}

    async def summarise(self, day: date) -> int | None:
        if day in self.open_days:
            return None
        self.kept[day] = 7
        return 7


async def test_the_job_writes_what_is_due_holds_back_a_day_with_a_call_on_and_writes_each_day_once() -> None:
    store = FakeDays(date(2026, 11, 30), {date(2026, 12, 1)})
    now = at(SHANGHAI, "2026-12-03T00:06:00")
    job = SummaryJob(store, SHANGHAI, FIVE, lambda: now)
    assert await job.run_once() == ([date(2026, 11, 30), date(2026, 12, 2)], [date(2026, 12, 1)])
    store.open_days.clear()
    assert await job.run_once() == ([date(2026, 12, 1)], [])
    assert await job.run_once() == ([], [])
    waiting = SummaryJob(FakeDays(date(2026, 12, 2), set()), SHANGHAI, FIVE, lambda: now, lambda: 4)
    assert await waiting.run_once() == ([], [date(2026, 12, 2)])  # the write-behind is not empty
    assert RETRY < timedelta(days=1)
