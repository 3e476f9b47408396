"""When the reports' day summaries are written (app/supervision/summaries.py does the writing).

A day is the center's: from one midnight to the next in its time zone (23 or 25 hours across a
daylight-saving change). Its summary (each call's facts, each agent's time per quarter hour) is
written by a nightly job `after` the midnight that ends it (a few minutes, so that the last
events of the day are saved), and on start for every finished day still missing. A day none of
whose summaries is written yet is read from the events by the reports, to the same figures.

A day is not summed up while one of its calls is still going on or the write-behind still holds
events; the job tries again `RETRY` later. Pure: the caller gives the time and what is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

RETRY = timedelta(minutes=15)  # a day held back (a call still on, writes waiting) is tried again


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The center's midnight that opens `day`, in UTC (arithmetic on a time of the zone itself
    would be wall-clock: 24 hours a day even across a daylight-saving change)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return day_start(day, zone), day_start(day + timedelta(days=1), zone)


def center_day(at: datetime, zone: ZoneInfo) -> date:
    """The center's day `at` falls in."""
    return at.astimezone(zone).date()


def summary_time(day: date, zone: ZoneInfo, after: timedelta) -> datetime:
    """When `day`'s summary is due: `after` past the midnight that ends it (absolute time, so
    a day with a daylight-saving change waits as long as any other)."""
    return day_bounds(day, zone)[1] + after


def next_summary_run(now: datetime, zone: ZoneInfo, after: timedelta) -> datetime:
    """The first time after `now` that a day's summary falls due: today's, or, when that has
    passed already, tomorrow's."""
    today = center_day(now, zone)
    for day in (today - timedelta(days=1), today, today + timedelta(days=1)):
        due = summary_time(day, zone, after)
        if due > now:
            return due
    raise AssertionError("a day's summary falls due within two days")  # pragma: no cover


def days_to_summarise(
    now: datetime, zone: ZoneInfo, after: timedelta, first: date | None, kept: Iterable[date]
) -> list[date]:
    """The days from `first` (the day of the oldest event; None: no event yet) whose summary is
    due by `now` and not written, oldest first."""
    if first is None:
        return []
    kept = set(kept)
    last = center_day(now, zone)
    days = []
    day = first
    while day <= last:
        if day not in kept and summary_time(day, zone, after) <= now:
            days.append(day)
        day += timedelta(days=1)
    return days
