"""The nightly job that sums up each finished day of the center for the reports, against a real
PostgreSQL: days are the center's (Shanghai's midnight, not UTC's), a day is written only once
its summary is due and none of its calls is still going on, the job logs what it summed up, and
a day read before its summary exists gives the same figures as after."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import migrate
from app.adapters.report_store import ReportStore
from app.domain.summaries import day_bounds
from app.supervision.summaries import SummaryJob
from tests.support.report_day import ZONE
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

SUNDAY, MONDAY = date(2026, 11, 29), date(2026, 11, 30)


def local(day: date, hms: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=ZONE)


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_day_summaries") as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False)
    await p.open()
    await migrate(p)
    try:
        yield p
    finally:
        await p.close()


async def call(
    pool: AsyncConnectionPool, queued: datetime, answered: datetime | None, ended: datetime | None
) -> str:
    """A caller who joined the general line at `queued` (answered or not; still on when `ended`
    is None), as the center writes it."""
    it = str(uuid.uuid4())
    outcome = None if ended is None else ("completed" if answered else "abandoned")
    events: list[tuple[datetime, str, dict[str, Any]]] = [
        (queued, "queued", {"queue": "general", "tier": "medium"})
    ]
    if answered:
        events.append((answered, "connected", {"agent_id": "1001"}))
    if ended:
        events.append((ended, "ended", {"outcome": outcome}))
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO interactions (id, ani, dnis, phase, arrived_at, queued_at, ended_at, outcome, queue)"
            " VALUES (%s, '13800000001', '7000', %s, %s, %s, %s, %s, 'general')",
            (it, "ended" if ended else "queued", queued, queued, ended, outcome),
        )
        await conn.cursor().executemany(
            "INSERT INTO interaction_events (interaction_id, at, kind, data) VALUES (%s, %s, %s, %s)",
            [(it, at, kind, Jsonb(data)) for at, kind, data in events],
        )
    return it


async def end(pool: AsyncConnectionPool, it: str, at: datetime) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE interactions SET ended_at = %s, outcome = 'abandoned', phase = 'ended' WHERE id = %s",
            (at, it),
        )
        await conn.execute(
            "INSERT INTO interaction_events (interaction_id, at, kind, data) VALUES (%s, %s, 'ended', %s)",
            (it, at, Jsonb({"outcome": "abandoned"})),
        )


async def rows(pool: AsyncConnectionPool, sql: str) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        return await (await conn.execute(sql)).fetchall()


async def test_the_nightly_job_sums_up_each_finished_day_of_the_center_once_its_calls_are_over(
    pool: AsyncConnectionPool, caplog: pytest.LogCaptureFixture
) -> None:
    store = ReportStore(pool, ZONE)
    # Sunday 23:50 in Shanghai (15:50 UTC), answered; Monday 00:10 in Shanghai is still Sunday
    # in UTC (16:10): it belongs to Monday's summary, and is still waiting.
    await call(pool, local(SUNDAY, "23:50:00"), local(SUNDAY, "23:50:20"), local(SUNDAY, "23:58:00"))
    waiting = await call(pool, local(MONDAY, "00:10:00"), None, None)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO agents (id, name) VALUES ('1001', 'Alice Wang') ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO agent_state_events (agent_id, at, from_state, to_state, reason) VALUES"
            " ('1001', %s, 'logged_out', 'ready', NULL), ('1001', %s, 'ready', 'logged_out', NULL)",
            (local(SUNDAY, "23:00:00"), local(MONDAY, "01:00:00")),
        )
    monday = day_bounds(MONDAY, ZONE)
    from_events = await store.calls(*monday)  # no summary yet: read from the events (the fallback)
    assert len(from_events) == 1 and from_events[0].ended_at is None

    clock = [local(date(2026, 12, 1), "00:04:00")]
    job = SummaryJob(store, ZONE, timedelta(minutes=5), lambda: clock[0])
    caplog.set_level(logging.INFO, logger="app.supervision.summaries")

    # Monday's summary is due at 00:05 on Tuesday; Sunday's long since.
    assert await job.run_once() == ([SUNDAY], [])
    assert await rows(pool, "SELECT day::text FROM report_days_kept") == [("2026-11-29",)]
    assert await rows(pool, "SELECT queued_at FROM report_calls") == [(local(SUNDAY, "23:50:00"),)]
    # Alice's hour is cut at the center's midnight: 60 minutes on Sunday as kept, 60 on Monday.
    sunday_time = await rows(pool, "SELECT sum(seconds) FROM report_agent_time")
    assert sunday_time == [(3600.0,)]
    assert "day summary of 2026-11-29 (Asia/Shanghai) written: 1 call(s)" in caplog.text

    clock[0] = local(date(2026, 12, 1), "00:06:00")
    assert await job.run_once() == ([], [MONDAY])  # the Monday caller is still on the line
    assert "day summary of 2026-11-30: a call of that day is still going on" in caplog.text

    held = SummaryJob(store, ZONE, timedelta(minutes=5), lambda: clock[0], writes_waiting=lambda: 3)
    await end(pool, waiting, local(MONDAY, "00:11:00"))
    assert await held.run_once() == ([], [MONDAY])  # events still on their way: not yet
    assert "3 event write(s) still waiting" in caplog.text

    assert await job.run_once() == ([MONDAY], [])
    assert await job.run_once() == ([], [])  # nothing left: each day once
    assert await rows(pool, "SELECT day::text FROM report_days_kept ORDER BY day") == [
        ("2026-11-29",),
        ("2026-11-30",),
    ]
    # The kept day reads as the events do.
    kept = await store.calls(*monday)
    assert kept == await ReportStore(pool, ZONE, keep=False).calls(*monday)
    assert [c.outcome for c in kept] == ["abandoned"]
    assert (await store.agent_times(*day_bounds(SUNDAY, ZONE)))["1001"] == (
        await ReportStore(pool, ZONE, keep=False).agent_times(*day_bounds(SUNDAY, ZONE))
    )["1001"]

    # The center moves to UTC: days cut at Shanghai's midnight no longer line up, so the job
    # drops them all and sums up again, in UTC days: both calls were on 29 November there.
    utc = ZoneInfo("UTC")
    moved = SummaryJob(ReportStore(pool, utc), utc, timedelta(minutes=5), lambda: clock[0])
    assert await moved.run_once() == ([SUNDAY], [])
    assert "cut in Asia/Shanghai, the center's time zone is now UTC: dropped" in caplog.text
    assert await rows(pool, "SELECT day::text, zone FROM report_days_kept") == [("2026-11-29", "UTC")]
    assert await rows(pool, "SELECT count(*) FROM report_calls") == [(2,)]
