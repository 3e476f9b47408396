"""What the app writes behind the calls, against a real PostgreSQL: one record PostgreSQL will
never take does not hold back or lose the others written with it, and the outbound policy's
counts come back after a restart.

Inputs are cleaned at the edge (caller ID, bodies, forms), so a NUL byte should never reach a
row; this is the second line: if one does (a future input path, a bug), the interaction writer
and the agent-state history write every other row of the batch and drop only that one, loudly.
Before, one NUL in a reason code made the app retry, then drop, a whole batch of state changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import Store, migrate
from app.adapters.outbound_ledger import OutboundLedger
from app.adapters.report_store import ReportStore
from app.bus import Bus
from app.calls.writer import InteractionWriter
from app.config import AgentSettings, QueueSettings, Settings
from app.domain.agent_state import AgentState, AgentStateEvent
from app.domain.interaction import Interaction
from app.domain.outbound import DialPlan, OutboundPolicy, Purpose, Refused
from app.routing.desk import RoutingService
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_bad_records") as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def store(db_url: str) -> AsyncIterator[Store]:
    pool = AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False)
    await pool.open()
    await migrate(pool)
    s = Store(pool)
    await s.sync_agents([AgentSettings("1001", "Alice Wang"), AgentSettings("1002", "Bob Li")])
    try:
        yield s
    finally:
        await pool.close()


def interaction(n: int, ani: str = "13800000001") -> Interaction:
    it = Interaction(f"00000000-0000-4000-8000-{n:012d}", f"chan-{n}", ani=ani, dnis="7000", arrived_at=now())
    it.record(now(), "arrived")
    return it


def now() -> datetime:
    return datetime.now(UTC)


async def test_the_interaction_writer_writes_the_rest_of_a_batch_around_a_record_the_database_refuses(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    writer = InteractionWriter(store, Bus(), batch_window_s=0.05)
    writer.start()
    good = [interaction(i) for i in range(1, 6)]
    bad = interaction(99)
    bad.collected["account"] = "12\x0034"  # PostgreSQL text cannot hold NUL
    for it in [*good[:2], bad, *good[2:]]:
        writer.create(it)
    with caplog.at_level(logging.ERROR):
        assert await writer.flush(timeout=10), "a refused record does not hold the writer up"
    await writer.stop(timeout=5)

    async with store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT id::text FROM interactions ORDER BY id")).fetchall()
        events = await (await conn.execute("SELECT count(*) FROM interaction_events")).fetchone()
    assert [r[0] for r in rows] == [it.id for it in good]
    assert events == (5,)
    assert writer.dropped == 1
    assert any(bad.id in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)


async def test_agent_state_history_keeps_every_other_change_when_one_is_refused(store: Store) -> None:
    settings = Settings(
        agents=(AgentSettings("1001", "Alice Wang"), AgentSettings("1002", "Bob Li")),
        queues=(QueueSettings("general"),),
    )
    desk = RoutingService(settings, store, now, Bus())
    await desk.start()
    try:
        t = now()
        desk._unsaved.extend(
            [
                AgentStateEvent("1001", t, AgentState.LOGGED_OUT, AgentState.READY),
                AgentStateEvent("1002", t, AgentState.LOGGED_OUT, AgentState.NOT_READY, "lunch\x00"),
                AgentStateEvent("1002", t, AgentState.NOT_READY, AgentState.READY),
            ]
        )
        await desk._save_agent_events()
        assert desk._unsaved == []
    finally:
        await desk.stop()
    async with store.pool.connection() as conn:
        rows = await (
            await conn.execute("SELECT agent_id, to_state FROM agent_state_events ORDER BY id")
        ).fetchall()
    assert rows == [("1001", "ready"), ("1002", "ready")]


async def test_outbound_dial_counts_survive_a_restart_through_postgresql(store: Store) -> None:
    """The per-number limit still holds after a restart: the counts come back from the ledger."""
    plan = DialPlan(per_number_hour=2, per_number_day=10)
    ledger = OutboundLedger(store.pool)
    ledger.start()
    policy = OutboundPolicy(plan, on_admit=ledger.record)
    t = now()
    assert policy.admit("13800138000", Purpose.CALLBACK, "carrier", t) is None
    assert policy.admit("13800138000", Purpose.CALLBACK, "carrier", t) is None
    await ledger.stop()  # the app stops: what was queued is written first

    restarted = OutboundPolicy(plan)
    assert restarted.restore(await OutboundLedger(store.pool).since(t - timedelta(days=1)), now()) == 2
    refusal = restarted.check("13800138000", Purpose.CALLBACK, "carrier", now())
    assert refusal is not None and refusal.reason is Refused.NUMBER_HOURLY_LIMIT


async def test_the_wallboards_queries_run_on_the_real_schema(store: Store) -> None:
    """What the wallboard and the interval report read (their figures are checked end to end in
    tests/e2e/test_wallboard.py; here, that each query runs on an empty and a written day)."""
    assert await store.work_waiting() == {}
    events = await store.queue_events_since(now() - timedelta(days=1))
    assert all(kind in ("queued", "connected", "ended") for _, kind, _, _ in events)
    assert await ReportStore(store.pool).raw_calls(now() - timedelta(days=1), now() + timedelta(days=1)) == []
