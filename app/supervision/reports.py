"""Reports from the event log (`interaction_events` and `agent_state_events`, the wallboard's
records) and the dialer's and callbacks' rows, over days of the center's time zone
(app/domain/reports.py), and staffing per interval from that history (app/domain/staffing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.adapters.report_store import ReportStore
from app.domain.reports import (
    ROLLING_DAYS,
    CallFacts,
    agent_intervals,
    agent_rows,
    campaign_report,
    interval_report,
    ivr_report,
    queue_report,
    work_report,
)
from app.domain.staffing import forecast, interval_histories, staffing_row

MAX_DAYS = 92  # the longest period one report covers: a quarter
FORECAST_WEEKS = (1, 12)  # how many past same weekdays a forecast may average
# The days a report can be about. Python's dates end at 0001-01-01 and 9999-12-31, and a report
# reaches past its days (the next midnight, the campaigns' rolling 30 days, a forecast's 12 weeks
# back); no contact center's event log starts before 1970.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)


class PeriodError(ValueError):
    """A period or a forecast's settings a report cannot take (said to the user)."""


class Reports:
    def __init__(
        self,
        calls: Callable[[datetime, datetime], Awaitable[list[CallFacts]]],
        zone: ZoneInfo,
        target_s: Callable[[str, str], float],
        short_abandon_s: float,
        clock: Callable[[], datetime],
        store: ReportStore | None = None,
        targets: Callable[[], Mapping[str, tuple[float, float]]] = dict,
        serves: Callable[[str, str], bool] = lambda agent, queue: False,
    ) -> None:
        """`targets`: per queue, its service-level target (seconds, fraction answered within)
        for staffing; `serves(agent, queue)`: whether the agent takes that queue's calls."""
        self._calls = calls
        self.zone = zone
        self._target_s = target_s
        self._short_abandon_s = short_abandon_s
        self._clock = clock
        self._store = store
        self._targets = targets
        self._serves = serves

    def today(self) -> date:
        return self._clock().astimezone(self.zone).date()

    def _start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.zone)

    @staticmethod
    def check_day(day: date) -> date:
        if not FIRST_DAY <= day <= LAST_DAY:
            raise PeriodError(f"a report's days are from {FIRST_DAY} to {LAST_DAY}, not {day}")
        return day

    def period(self, first: date | None, last: date | None) -> tuple[date, date]:
        """The days asked for; today by default, a missing end the same as the start."""
        first = self.check_day(first or last or self.today())
        last = self.check_day(last or first)
        if last < first:
            raise PeriodError(f"the period ends ({last}) before it starts ({first})")
        if (last - first).days >= MAX_DAYS:
            raise PeriodError(f"a report covers at most {MAX_DAYS} days")
        return first, last

    def _head(self, first: date, last: date) -> dict[str, Any]:
        return {"from": first.isoformat(), "to": last.isoformat(), "timezone": str(self.zone)}

    def _bounds(self, first: date, last: date) -> tuple[datetime, datetime]:
        return self._start(first), self._start(last + timedelta(days=1))

    @property
    def store(self) -> ReportStore:
        if self._store is None:
            raise RuntimeError("reports need the database")
        return self._store

    async def interval(self, day: date | None, minutes: int) -> dict[str, Any]:
        day = self.check_day(day or self.today())
        start = self._start(day)
        end = start + timedelta(days=1)
        calls = await self._calls(start, end)
        rows = await asyncio.to_thread(
            interval_report, calls, start, minutes, self._target_s, self._short_abandon_s
        )
        agents: list[dict[str, Any]] = []
        if self._store is not None:  # the agents' side of each interval: occupancy, Not Ready
            now = min(end, max(start, self._clock()))
            changes = await self._store.state_changes(start, now)
            agents = await asyncio.to_thread(agent_intervals, changes, start, minutes, now)
        return {
            "date": day.isoformat(),
            "timezone": str(self.zone),
            "minutes": minutes,
            "rows": rows,
            "agents": agents,
        }

    async def queues(self, first: date | None, last: date | None) -> dict[str, Any]:
        first, last = self.period(first, last)
        calls = await self._calls(*self._bounds(first, last))
        # Folding many days of calls is CPU work: off the loop that carries the calls.
        rows = await asyncio.to_thread(
            queue_report, calls, self.zone, first, last, self._target_s, self._short_abandon_s
        )
        return {**self._head(first, last), "rows": rows}

    async def agents(self, first: date | None, last: date | None) -> dict[str, Any]:
        first, last = self.period(first, last)
        start, end = self._bounds(first, last)
        # Today's report stops at the present: the time to come is nobody's yet.
        rows = agent_rows(await self.store.agent_times(start, min(end, max(start, self._clock()))))
        return {**self._head(first, last), "rows": rows}

    async def ivr(self, first: date | None, last: date | None) -> dict[str, Any]:
        first, last = self.period(first, last)
        report = ivr_report(await self.store.ivr_events(*self._bounds(first, last)))
        return {**self._head(first, last), "rows": report["exits"], "choices": report["choices"]}

    async def work(self, first: date | None, last: date | None) -> dict[str, Any]:
        first, last = self.period(first, last)
        start, end = self._bounds(first, last)
        callbacks = await self.store.callbacks(start, end)
        voicemails = await self.store.voicemails(start, end)
        return {**self._head(first, last), "rows": work_report(callbacks, voicemails, self.zone, first, last)}

    async def campaigns(self, first: date | None, last: date | None) -> dict[str, Any]:
        first, last = self.period(first, last)
        start, end = self._bounds(first, last)
        dials = await self.store.dials(start - timedelta(days=ROLLING_DAYS - 1), end)
        return {**self._head(first, last), "rows": campaign_report(dials, self.zone, first, last)}

    async def _histories(self, day: date, minutes: int) -> dict[str, Any]:
        start, end = self._bounds(day, day)
        calls = await self._calls(start, end)
        changes = await self.store.state_changes(start, min(end, max(start, self._clock())))
        return interval_histories(calls, changes, self._serves, sorted(self._targets()), start, minutes * 60)

    def _staffing_rows(
        self, histories: Mapping[str, Any], minutes: int, staffed: bool
    ) -> list[dict[str, Any]]:
        targets = self._targets()
        rows = []
        for queue in sorted(histories):
            target_s, level = targets[queue]
            for h in histories[queue]:
                if h.offered or h.staffed_s:
                    rows.append(staffing_row(queue, h, minutes * 60, target_s, level, staffed))
        return sorted(rows, key=lambda r: (r["start"], r["queue"]))

    async def staffing(self, day: date | None, minutes: int) -> dict[str, Any]:
        """Per queue and interval of a past day (or today so far): the agents needed by Erlang C
        and Erlang A beside those who were there."""
        day = self.check_day(day or self.today())
        histories = await self._histories(day, minutes)
        return {
            "date": day.isoformat(),
            "timezone": str(self.zone),
            "minutes": minutes,
            "rows": self._staffing_rows(histories, minutes, staffed=True),
        }

    async def forecast(
        self,
        day: date | None,
        minutes: int,
        weeks: int = 4,
        volume_percent: float = 100,
        aht_percent: float = 100,
    ) -> dict[str, Any]:
        """A day to come from the same weekday of the last `weeks` weeks, averaged, with the
        volume and the handle time adjusted; `agents_staffed` is those days' average."""
        day = self.check_day(day or self.today() + timedelta(days=1))
        if not FORECAST_WEEKS[0] <= weeks <= FORECAST_WEEKS[1]:
            raise PeriodError(f"a forecast averages {FORECAST_WEEKS[0]} to {FORECAST_WEEKS[1]} weeks")
        if not (0 <= volume_percent <= 1000 and 0 < aht_percent <= 1000):
            raise PeriodError(
                "volume and handle time are percentages: volume 0 to 1000, handle time 1 to 1000"
            )
        past = [day - timedelta(weeks=n) for n in range(1, weeks + 1)]
        by_queue: dict[str, list[Any]] = {}
        for d in past:
            for queue, intervals in (await self._histories(d, minutes)).items():
                by_queue.setdefault(queue, []).append(intervals)
        start = self._start(day)
        histories = {
            q: forecast(days, start, minutes * 60, volume_percent, aht_percent)
            for q, days in by_queue.items()
        }
        return {
            "date": day.isoformat(),
            "timezone": str(self.zone),
            "minutes": minutes,
            "weeks": weeks,
            "from_days": [d.isoformat() for d in past],
            "volume_percent": volume_percent,
            "aht_percent": aht_percent,
            "rows": self._staffing_rows(histories, minutes, staffed=True),
        }
