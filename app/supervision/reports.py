"""Reports from the event log (`interaction_events`, the wallboard's records): the interval
report of a day in the center's time zone (app/domain/reports.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.domain.reports import CallFacts, interval_report


class Reports:
    def __init__(
        self,
        calls: Callable[[datetime, datetime], Awaitable[list[CallFacts]]],
        zone: ZoneInfo,
        target_s: Callable[[str, str], float],
        short_abandon_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._calls = calls
        self.zone = zone
        self._target_s = target_s
        self._short_abandon_s = short_abandon_s
        self._clock = clock

    async def interval(self, day: date | None, minutes: int) -> dict[str, Any]:
        day = day or self._clock().astimezone(self.zone).date()
        start = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        end = start + timedelta(days=1)
        calls = await self._calls(start, end)
        rows = interval_report(calls, start, minutes, self._target_s, self._short_abandon_s)
        return {"date": day.isoformat(), "timezone": str(self.zone), "minutes": minutes, "rows": rows}
