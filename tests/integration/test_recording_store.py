"""The recordings' rows in a real PostgreSQL (migration 013): the QA desk's search by date,
agent, queue, caller number, length and disposition; an agent limited to their own calls; what
the retention job sees and marks; the audit log; the QA role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import Store, migrate
from app.adapters.recording_store import (
    EvaluationRow,
    EvaluationStore,
    RecordingRow,
    RecordingStore,
    Search,
    qa_trend_rows,
)
from app.config import AgentSettings
from app.domain.evaluation import qa_trend
from app.domain.interaction import Interaction, Outcome
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_recordings") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rows(db_url: str) -> AsyncIterator[tuple[RecordingStore, list[RecordingRow]]]:
    pool = AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    try:
        await migrate(pool)
        store = Store(pool)
        await store.sync_agents([AgentSettings("1001", "Alice"), AgentSettings("1002", "Bob")])
        made = []
        # (ani, queue, agents, started, seconds, disposition)
        for ani, queue, agents, started, seconds, disposition in [
            ("13800000001", "general", ("1001",), T0, 40, "resolved"),
            ("13800000002", "billing", ("1002",), T0 + timedelta(days=1), 300, "complaint"),
            ("13900000003", "general", ("1001", "1002"), T0 + timedelta(days=2), 90, None),
        ]:
            it = Interaction(str(uuid.uuid4()), "ch", ani, "7000", started)
            it.queue, it.agent_id = queue, agents[-1]
            it.end(started + timedelta(seconds=seconds), Outcome.COMPLETED)
            await store.write_interactions([(it, True, [])])
            if disposition:
                async with pool.connection() as conn:
                    await conn.execute(
                        "UPDATE interactions SET disposition = %s WHERE id = %s", (disposition, it.id)
                    )
            row = RecordingRow(
                str(uuid.uuid4()), it.id, "inbound", queue, None, ani, agents, started, seconds * 1000,
                2, 8000, 44 + seconds * 32000, "0" * 64, f"x/{it.id}.wav", [], "default", 30,
            )  # fmt: skip
            assert await RecordingStore(pool).add(row)
            assert not await RecordingStore(pool).add(row), "one recording per interaction"
            made.append(row)
        yield RecordingStore(pool), made
    finally:
        await pool.close()


async def ids(store: RecordingStore, **filters: object) -> list[str]:
    return [r["id"] for r in await store.search(Search(**filters))]  # type: ignore[arg-type]


async def test_search_filters(rows: tuple[RecordingStore, list[RecordingRow]]) -> None:
    store, (a, b, c) = rows
    assert await ids(store) == [c.id, b.id, a.id], "newest first"
    assert await ids(store, since=T0 + timedelta(hours=12)) == [c.id, b.id]
    assert await ids(store, until=T0 + timedelta(hours=12)) == [a.id]
    assert await ids(store, agent="1002") == [c.id, b.id]
    assert await ids(store, queue="billing") == [b.id]
    assert await ids(store, ani="0003") == [c.id]
    assert await ids(store, min_s=60) == [c.id, b.id]
    assert await ids(store, max_s=60) == [a.id]
    assert await ids(store, disposition="complaint") == [b.id]
    assert await ids(store, only_agent="1001", queue="general") == [c.id, a.id]
    assert await ids(store, min_score=0) == [], "nothing scored yet"
    found = (await store.search(Search(ani="0001")))[0]
    assert (found["disposition"], found["outcome"], found["agents"]) == ("resolved", "completed", ["1001"])


async def test_retention_marks_and_the_audit_log(rows: tuple[RecordingStore, list[RecordingRow]]) -> None:
    store, (a, _, _) = rows
    kept = {k.id: (k, path) for k, path in await store.kept()}
    assert kept[a.id][0].retention_days == 30 and kept[a.id][1] == a.path
    await store.audit(a.id, "qa", "qa", "listen", True, "127.0.0.1")
    await store.audit(a.id, "1002", "agent", "download", False, "127.0.0.1")
    log = await store.access_log(a.id)
    assert [(e["username"], e["action"], e["allowed"]) for e in log] == [
        ("qa", "listen", True),
        ("1002", "download", False),
    ]
    await store.deleted(a.id, T0 + timedelta(days=40), "retention: 30 days")
    assert a.id not in {k.id for k, _ in await store.kept()}
    assert await store.get(a.id) is None and a.id not in await ids(store)
    assert len(await store.access_log(a.id)) == 2, "the audit log outlives the recording"


async def test_a_qa_user_can_be_stored(rows: tuple[RecordingStore, list[RecordingRow]]) -> None:
    store, _ = rows
    async with store.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO web_users (username, display_name, role, password_hash)"
            " VALUES ('qa', 'QA', 'qa', 'x')"
        )


async def test_search_by_score_counts_amendments(rows: tuple[RecordingStore, list[RecordingRow]]) -> None:
    store, (_, b, c) = rows
    evaluations = EvaluationStore(store.pool)
    for row, first in ((b, 40.0), (c, 90.0)):
        e = EvaluationRow(
            str(uuid.uuid4()), row.id, row.interaction_id, row.agents[-1], "service", {"name": "service"},
            "qa", {}, "", first, (), T0,
        )  # fmt: skip
        await evaluations.add(e)
        if row is b:
            await evaluations.amend(e.id, "lead", "replayed", {}, 70.0, (), T0 + timedelta(hours=1))
    assert await ids(store, min_score=60) == [c.id, b.id], "b's amended 70 counts, not its first 40"
    assert await ids(store, max_score=80) == [b.id]
    assert [r["score"] for r in await store.search(Search(queue="billing"))] == [70.0]


async def test_the_qa_report_per_agent_and_queue_with_its_weekly_trend(
    rows: tuple[RecordingStore, list[RecordingRow]],
) -> None:
    store, (_, b, _) = rows
    evaluations = EvaluationStore(store.pool)
    # A week later, another evaluation of Bob's billing call fails a critical question.
    e = EvaluationRow(
        str(uuid.uuid4()), b.id, b.interaction_id, "1002", "service", {"name": "service"},
        "qa", {}, "", 0.0, ("verified",), T0 + timedelta(days=8),
    )  # fmt: skip
    await evaluations.add(e)
    start, end = T0 - timedelta(days=30), T0 + timedelta(days=30)
    rows_by_agent = await qa_trend_rows(store.pool, "agent", "week", start, end, "UTC")
    by_agent = qa_trend([{**r, "period": r["period"].isoformat()} for r in rows_by_agent], "agent")
    assert [r["agent"] for r in by_agent["totals"]] == ["1002"], "both calls scored so far ended with Bob"
    bob = by_agent["totals"][0]
    # Week of T0: b (amended to 70) and c (90); the week after: 0 with a critical failure.
    assert (bob["evaluations"], bob["failed_critical"], bob["mean_score"]) == (3, 1, round(160 / 3, 1))
    trend = by_agent["rows"]
    assert [(w["period"], w["evaluations"], w["mean_score"]) for w in trend] == [
        ("2026-11-30", 2, 80.0),
        ("2026-12-07", 1, 0.0),
    ]
    assert bob["change"] == -80.0
    rows_by_queue = await qa_trend_rows(store.pool, "queue", "week", start, end, "UTC")
    by_queue = qa_trend([{**r, "period": r["period"].isoformat()} for r in rows_by_queue], "queue")
    assert {r["queue"]: r["mean_score"] for r in by_queue["totals"]} == {"billing": 35.0, "general": 90.0}


async def test_search_by_the_campaign_that_placed_the_call(
    rows: tuple[RecordingStore, list[RecordingRow]],
) -> None:
    """A dialer's call keeps its campaign on its recording's row; the desk finds the calls of one
    campaign, with the other filters, and no message (a campaign's call leaves none)."""
    store, _ = rows
    pool = store.pool
    later = T0 + timedelta(days=30)  # apart from the other tests' calls
    made: dict[str, str] = {}
    for name, campaign, agent, started in [
        ("renewal-1", "renewals", "1001", later),
        ("renewal-2", "renewals", "1002", later + timedelta(hours=1)),
        ("survey", "survey", "1001", later + timedelta(hours=2)),
        ("inbound", None, "1001", later + timedelta(hours=3)),
    ]:
        it = Interaction(str(uuid.uuid4()), "ch", "13700000055", "7000", started)
        it.direction, it.agent_id = ("outbound" if campaign else "inbound"), agent
        it.end(started + timedelta(seconds=30), Outcome.COMPLETED)
        await Store(pool).write_interactions([(it, True, [])])
        row = RecordingRow(
            str(uuid.uuid4()), it.id, it.direction, None, campaign, it.ani, (agent,), started, 30_000,
            2, 8000, 44 + 30 * 32000, "0" * 64, f"x/{it.id}.wav", [], "default", 30,
        )  # fmt: skip
        assert await store.add(row)
        made[name] = row.id
    assert await ids(store, since=later, campaign="renewals") == [made["renewal-2"], made["renewal-1"]]
    assert await ids(store, since=later, campaign="renewals", agent="1001") == [made["renewal-1"]]
    assert await ids(store, since=later, campaign="survey") == [made["survey"]]
    assert await ids(store, since=later, campaign="nonesuch") == []
    assert await ids(store, since=later) == [made[n] for n in ("inbound", "survey", "renewal-2", "renewal-1")]
    found = (await store.search(Search(since=later, campaign="survey")))[0]
    assert (found["campaign"], found["direction"]) == ("survey", "outbound")
    assert await store.search_voicemails(Search(campaign="renewals")) == []


async def test_a_calls_events_come_back_in_the_order_they_happened(
    rows: tuple[RecordingStore, list[RecordingRow]],
) -> None:
    """The player's transfer marks and IVR path are read from the call's journey."""
    store, (a, _, _) = rows
    it = Interaction(a.interaction_id, "ch", a.ani, "7000", T0)
    it.queue, it.agent_id = a.queue, a.agents[-1]
    it.record(T0 + timedelta(seconds=5), "control_consult", by="1001", to="agent:1002")
    it.record(T0 + timedelta(seconds=9), "transferred", to="agent:1002", from_agent="1001", how="consult")
    it.end(T0 + timedelta(seconds=40), Outcome.COMPLETED)
    await Store(store.pool).write_interactions([(it, False, it.drain())])
    events = await store.events_of(a.interaction_id)
    assert [(k, d.get("to")) for _, k, d in events if k in ("control_consult", "transferred")] == [
        ("control_consult", "agent:1002"),
        ("transferred", "agent:1002"),
    ]
    assert events[-1][1] == "ended"
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    assert await store.events_of(str(uuid.uuid4())) == []
