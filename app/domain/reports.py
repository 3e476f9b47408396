"""The interval report: per queue and per 15, 30 or 60 minutes of a day in the center's time
zone, what the wallboard shows for today, from the same records and by the same rules (a call
counts where and when it first joined a line; short abandons apart and out of the service
level), plus the average handle time (answer to end).

Pure: the caller gives each call's facts as read from the event log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

INTERVALS_MIN = (15, 30, 60)


@dataclass(frozen=True)
class CallFacts:
    queue: str
    tier: str
    queued_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None


@dataclass
class Row:
    start: datetime
    queue: str
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    wait_answered_s: float = 0.0
    handled: int = 0
    handle_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        counted = self.answered + self.abandoned - self.short_abandoned
        return {
            "start": self.start.isoformat(),
            "queue": self.queue,
            "offered": self.offered,
            "answered": self.answered,
            "answered_in_target": self.answered_in_target,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "service_level_percent": round(100 * self.answered_in_target / counted, 1) if counted else None,
            "asa_s": round(self.wait_answered_s / self.answered, 1) if self.answered else None,
            "aht_s": round(self.handle_s / self.handled, 1) if self.handled else None,
        }


COLUMNS = (
    "start", "queue", "offered", "answered", "answered_in_target", "abandoned", "short_abandoned",
    "service_level_percent", "asa_s", "aht_s",
)  # fmt: skip


def interval_report(
    calls: Iterable[CallFacts],
    day_start: datetime,
    minutes: int,
    target_s: Callable[[str, str], float],
    short_abandon_s: float,
) -> list[dict[str, Any]]:
    """Rows for every interval of the day that had a call, by start then queue."""
    if minutes not in INTERVALS_MIN:
        raise ValueError(f"an interval is 15, 30 or 60 minutes, not {minutes}")
    step = timedelta(minutes=minutes)
    rows: dict[tuple[int, str], Row] = {}
    for c in calls:
        k = int((c.queued_at - day_start) / step)
        if not 0 <= k < int(timedelta(days=1) / step):
            continue
        row = rows.setdefault((k, c.queue), Row(day_start + k * step, c.queue))
        row.offered += 1
        if c.answered_at is not None:
            wait = max(0.0, (c.answered_at - c.queued_at).total_seconds())
            row.answered += 1
            row.wait_answered_s += wait
            row.answered_in_target += int(wait <= target_s(c.queue, c.tier))
            if c.ended_at is not None:
                row.handled += 1
                row.handle_s += max(0.0, (c.ended_at - c.answered_at).total_seconds())
        elif c.outcome == "abandoned" and c.ended_at is not None:
            wait = max(0.0, (c.ended_at - c.queued_at).total_seconds())
            row.abandoned += 1
            row.short_abandoned += int(wait < short_abandon_s)
    return [rows[k].view() for k in sorted(rows)]
