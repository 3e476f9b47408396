"""Transcripts in a real PostgreSQL (migration 028): the job queue (queued once, claimed once
even by two workers at the same moment, retried, taken up again after a lease, caught up after a
restart), the lines in time order, and the QA desk's search by words in the transcript."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import Store, migrate
from app.adapters.recording_store import RecordingRow, RecordingStore, Search
from app.adapters.transcript_store import TranscriptStore
from app.config import AgentSettings
from app.domain.interaction import Interaction, Outcome
from app.domain.transcript import Backlog, Line, search_terms
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_transcripts") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
    await p.open(wait=True)
    try:
        await migrate(p)
        await Store(p).sync_agents([AgentSettings("1001", "Alice")])
        yield p
    finally:
        await p.close()


async def recording(pool: AsyncConnectionPool, ani: str) -> RecordingRow:
    it = Interaction(str(uuid.uuid4()), "ch", ani, "7000", T0)
    it.queue, it.agent_id = "general", "1001"
    it.end(T0 + timedelta(seconds=30), Outcome.COMPLETED)
    await Store(pool).write_interactions([(it, True, [])])
    row = RecordingRow(
        str(uuid.uuid4()), it.id, "inbound", "general", None, ani, ("1001",), T0, 30000,
        2, 8000, 480044, "0" * 64, f"x/{it.id}.wav", [], "default", 30,
    )  # fmt: skip
    assert await RecordingStore(pool).add(row)
    return row


async def clear(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM transcript_lines")
        await conn.execute("DELETE FROM transcript_jobs")


async def test_a_job_is_queued_once_and_claimed_by_one_worker_only(pool: AsyncConnectionPool) -> None:
    await clear(pool)
    store = TranscriptStore(pool)
    a = await recording(pool, "13800000101")
    assert await store.queue(a.id, T0)
    assert not await store.queue(a.id, T0 + timedelta(seconds=1))
    assert await store.backlog(T0 + timedelta(seconds=30)) == Backlog(1, 30.0)
    now = T0 + timedelta(seconds=1)
    claims = await asyncio.gather(*(store.claim(now, 600) for _ in range(4)))
    got = [c for c in claims if c is not None]
    assert len(got) == 1 and got[0].recording_id == a.id and got[0].path == a.path and got[0].attempts == 1
    assert await store.backlog(now) == Backlog(1, 1.0), "a running job is still behind"
    # Its worker renews the lease while it works; then it dies with its app: after the lease it
    # is taken up again.
    await store.renew(a.id, now + timedelta(seconds=500))
    assert await store.claim(now + timedelta(seconds=601), 600) is None
    assert await store.claim(now + timedelta(seconds=1099), 600) is None
    again = await store.claim(now + timedelta(seconds=1101), 600)
    assert again is not None and again.attempts == 2


async def test_a_failed_attempt_waits_and_a_given_up_job_stays_failed(pool: AsyncConnectionPool) -> None:
    await clear(pool)
    store = TranscriptStore(pool)
    a = await recording(pool, "13800000102")
    await store.queue(a.id, T0)
    assert await store.claim(T0, 600) is not None
    await store.failed(a.id, "RuntimeError: boom", T0 + timedelta(seconds=30), T0)
    assert await store.claim(T0 + timedelta(seconds=29), 600) is None
    assert await store.claim(T0 + timedelta(seconds=31), 600) is not None
    await store.failed(a.id, "RuntimeError: boom", None, T0 + timedelta(seconds=32))
    assert await store.claim(T0 + timedelta(days=1), 600) is None
    job = await store.job(a.id)
    assert job is not None and (job["state"], job["attempts"], job["error"]) == (
        "failed",
        2,
        "RuntimeError: boom",
    )
    assert await store.backlog(T0 + timedelta(days=1)) == Backlog(0, 0.0)


async def test_lines_are_stored_in_time_order_and_found_by_their_words(pool: AsyncConnectionPool) -> None:
    await clear(pool)
    store, rows = TranscriptStore(pool), RecordingStore(pool)
    a = await recording(pool, "13800000103")
    b = await recording(pool, "13800000104")
    for row in (a, b):
        await store.queue(row.id, T0)
        assert await store.claim(T0, 600) is not None
    await store.save(
        a.id,
        [
            Line("caller", 0.5, 3.0, "i would like to check the balance of my account"),
            Line("center", 3.5, 5.0, "certainly may i have your account number"),
            Line("caller", 0.5, 0.9, "hello"),
        ],
        "pocketsphinx",
        30.0,
        2.5,
        T0,
    )
    await store.save(b.id, [Line("caller", 1.0, 2.0, "my card was stolen")], "pocketsphinx", 30.0, 2.0, T0)
    lines = await store.lines(a.id)
    assert [(ln["side"], ln["start_s"], ln["text"]) for ln in lines] == [
        ("caller", 0.5, "hello"),
        ("caller", 0.5, "i would like to check the balance of my account"),
        ("center", 3.5, "certainly may i have your account number"),
    ]
    job = await store.job(a.id)
    assert job is not None and (job["state"], job["engine"], job["cpu_s"]) == ("done", "pocketsphinx", 2.5)

    async def found(words: str) -> list[str]:
        return [r["id"] for r in await rows.search(Search(words=tuple(search_terms(words))))]

    assert await found("Balance") == [a.id]
    assert await found("account stolen") == [], "every word must be in the call's transcript"
    assert await found("hello certainly") == [a.id], "the words may be on different lines and sides"
    assert set(await found("my")) == {a.id, b.id}
    assert await found("balance") == [a.id] and await found("refund") == []
    # Saved again (a retried job): the lines are replaced, not doubled.
    await store.save(b.id, [Line("caller", 1.0, 2.0, "my card was lost")], "pocketsphinx", 30.0, 2.0, T0)
    assert [ln["text"] for ln in await store.lines(b.id)] == ["my card was lost"]
    # Retention deletes the file and, with it, what was said in it.
    await rows.deleted(a.id, T0 + timedelta(days=31), "retention: 30 days")
    assert await store.lines(a.id) == [] and await found("balance") == []


async def test_recordings_without_a_job_are_caught_up_at_start(pool: AsyncConnectionPool) -> None:
    await clear(pool)
    store = TranscriptStore(pool)
    a = await recording(pool, "13800000105")
    now = datetime.now(UTC)
    queued = await store.queue_missing(now - timedelta(days=1), now)
    assert queued >= 1 and (await store.job(a.id) or {}).get("state") == "queued"
    assert await store.queue_missing(now - timedelta(days=1), now) == 0
    # A deleted recording's job, once claimed, is given up rather than transcribed.
    await RecordingStore(pool).deleted(a.id, now, "retention: 30 days")
    async with pool.connection() as conn:
        await conn.execute("UPDATE transcript_jobs SET state = 'done' WHERE recording_id <> %s", (a.id,))
    assert await store.claim(now, 600) is None
    assert (await store.job(a.id) or {}).get("state") == "failed"
