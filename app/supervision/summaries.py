"""The nightly job that sums up each finished day of the center for the reports: a few minutes
after the center's midnight (`supervision.summary_after_min`), and at start for every finished
day still missing. The rule of when is app/domain/summaries.py; the writing is
ReportStore.summarise. A day held back (one of its calls still going on, or events still waiting
in the write-behind) is tried again a quarter of an hour later; reports read a day that is not
summed up from the events, to the same figures, so nothing waits on this job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from app.domain.summaries import RETRY, days_to_summarise, next_summary_run

log = logging.getLogger(__name__)


class DaySummaries(Protocol):
    async def forget_other_zone(self) -> str | None: ...

    async def first_day(self) -> date | None: ...

    async def kept_days(self, since: date) -> set[date]: ...

    async def summarise(self, day: date) -> int | None: ...


class SummaryJob:
    def __init__(
        self,
        store: DaySummaries,
        zone: ZoneInfo,
        after: timedelta,
        clock: Callable[[], datetime],
        writes_waiting: Callable[[], int] = lambda: 0,
    ) -> None:
        self._store = store
        self._zone = zone
        self._after = after
        self._clock = clock
        self._writes_waiting = writes_waiting
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> tuple[list[date], list[date]]:
        """Sum up every day due and missing: (days summed up, days held back for now)."""
        was = await self._store.forget_other_zone()
        if was is not None:
            log.warning(
                "day summaries were cut in %s, the center's time zone is now %s: dropped, summing up again",
                was,
                self._zone,
            )
        first = await self._store.first_day()
        if first is None:
            return [], []
        due = days_to_summarise(
            self._clock(), self._zone, self._after, first, await self._store.kept_days(first)
        )
        done: list[date] = []
        held: list[date] = []
        for day in due:
            if self._writes_waiting():
                # Events of that day may still be on their way to the database.
                log.info(
                    "day summary of %s: %d event write(s) still waiting; later", day, self._writes_waiting()
                )
                held.append(day)
                continue
            calls = await self._store.summarise(day)
            if calls is None:
                log.info("day summary of %s: a call of that day is still going on; later", day)
                held.append(day)
            else:
                log.info("day summary of %s (%s) written: %d call(s)", day, self._zone, calls)
                done.append(day)
        return done, held

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="day-summaries")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                _, held = await self.run_once()
                again = bool(held)
            except Exception:  # the database away: reports read the events meanwhile
                log.exception("day summaries failed; trying again in %s", RETRY)
                again = True
            now = self._clock()
            wake = next_summary_run(now, self._zone, self._after)
            if again:
                wake = min(wake, now + RETRY)
            await asyncio.sleep(max(0.0, (wake - now).total_seconds()))
