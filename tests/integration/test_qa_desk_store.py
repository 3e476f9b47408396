"""The QA desk's report and its voicemail on a real PostgreSQL: the report's numbers per agent and
queue, per week and day of the center's time zone (an evaluation on a Sunday evening in UTC is
Monday in Shanghai), amended scores, critical fails, disputes and the period's bounds; voicemail
linked to its call's recordings, a voicemail-only call found by the search, and the audit log
of a message's listens (migration 030)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import Store, migrate
from app.adapters.recording_store import EvaluationRow, EvaluationStore, RecordingRow, RecordingStore, Search
from app.config import AgentSettings
from app.domain.interaction import Interaction, Outcome
from app.recording.scoring import Scoring
from app.web.http import BadRequest
from tests.support.stack import scratch_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Tuesday 2026-12-01, 10:00 in Shanghai.
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)


@dataclass
class Desk:
    pool: AsyncConnectionPool
    recordings: RecordingStore
    scoring: Scoring
    calls: dict[str, RecordingRow]  # by name
    voicemails: dict[str, str]  # name -> voicemail id


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with scratch_database("lianluo_qa_desk") as url:
        yield url


async def _interaction(store: Store, ani: str, queue: str, agent: str | None, at: datetime) -> str:
    it = Interaction(str(uuid.uuid4()), "ch", ani, "7000", at)
    it.queue, it.agent_id = queue, agent
    it.end(at + timedelta(seconds=60), Outcome.COMPLETED if agent else Outcome.VOICEMAIL)
    await store.write_interactions([(it, True, [])])
    return it.id


async def _voicemail(
    pool: AsyncConnectionPool, interaction_id: str, ani: str, queue: str, at: datetime
) -> str:
    vm_id = str(uuid.uuid4())
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO voicemails (id, interaction_id, phone, queue, recorded_at, duration_s, file_path,"
            " size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (vm_id, interaction_id, ani, queue, at, 7.5, f"/tmp/{vm_id}.wav", 120044),
        )
    return vm_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def desk(db_url: str) -> AsyncIterator[Desk]:
    pool = AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    try:
        await migrate(pool)
        store = Store(pool)
        await store.sync_agents([AgentSettings("1001", "Alice"), AgentSettings("1002", "Bob")])
        recordings = RecordingStore(pool)
        calls: dict[str, RecordingRow] = {}
        for name, ani, queue, agents, part in [
            ("alice", "13800000001", "general", ("1001",), "conversation"),
            ("bob", "13800000002", "billing", ("1002",), "conversation"),
            ("waited", "13800000003", "general", (), "ivr"),  # an IVR part, then a message
        ]:
            iid = await _interaction(store, ani, queue, agents[-1] if agents else None, T0)
            row = RecordingRow(
                str(uuid.uuid4()), iid, "inbound", queue, None, ani, agents, T0, 60_000,
                2, 8000, 44 + 60 * 32000, "0" * 64, f"x/{iid}.wav", [], "default", 30, part=part,
            )  # fmt: skip
            assert await recordings.add(row)
            calls[name] = row
        voicemails = {
            "waited": await _voicemail(pool, calls["waited"].interaction_id, "13800000003", "general", T0),
        }
        alone = await _interaction(store, "13900000004", "billing", None, T0 + timedelta(hours=1))
        voicemails["alone"] = await _voicemail(pool, alone, "13900000004", "billing", T0 + timedelta(hours=1))
        scoring = Scoring({}, EvaluationStore(pool), lambda: NOW, SHANGHAI)
        yield Desk(pool, recordings, scoring, calls, voicemails)
    finally:
        await pool.close()


async def _evaluate(
    desk: Desk, call: str, score: float, at: datetime, failed: tuple[str, ...] = (), disputed: bool = False
) -> str:
    row = desk.calls[call]
    e = EvaluationRow(
        str(uuid.uuid4()), row.id, row.interaction_id, row.agents[-1], "service", {"name": "service"},
        "qa", {}, "", score, failed, at,
    )  # fmt: skip
    evaluations = desk.scoring.store
    await evaluations.add(e)
    if disputed:
        await evaluations.acknowledge(e.id, True, "I did verify them", at + timedelta(hours=1))
    return e.id


async def test_the_report_per_week_and_day_in_the_centers_time_zone(desk: Desk) -> None:
    # Alice: Tuesday 80, and Sunday 2026-12-06 20:00 UTC (Monday 04:00 in Shanghai) 60 amended to 90.
    await _evaluate(desk, "alice", 80.0, T0)
    late = await _evaluate(desk, "alice", 60.0, datetime(2026, 12, 6, 20, 0, tzinfo=UTC))
    await desk.scoring.store.amend(late, "lead", "replayed it", {}, 90.0, (), NOW)
    # Bob: Wednesday 0 with a critical fail, disputed; Thursday 100.
    await _evaluate(desk, "bob", 0.0, T0 + timedelta(days=1), failed=("verified",), disputed=True)
    await _evaluate(desk, "bob", 100.0, T0 + timedelta(days=2))

    weekly = await desk.scoring.trend("agent", "week", date(2026, 11, 30), date(2026, 12, 13))
    assert weekly["timezone"] == "Asia/Shanghai"
    assert [(r["period"], r["agent"], r["evaluations"], r["mean_score"]) for r in weekly["rows"]] == [
        ("2026-11-30", "1001", 1, 80.0),
        ("2026-11-30", "1002", 2, 50.0),
        ("2026-12-07", "1001", 1, 90.0),  # Monday in Shanghai, and its amended score
    ]
    alice, bob = weekly["totals"]
    assert (alice["evaluations"], alice["mean_score"], alice["change"]) == (2, 85.0, 10.0)
    assert (bob["failed_critical"], bob["disputed"], bob["mean_score"], bob["change"]) == (1, 1, 50.0, 0.0)

    daily = await desk.scoring.trend("queue", "day", date(2026, 11, 30), date(2026, 12, 13))
    assert [(r["period"], r["queue"], r["evaluations"], r["mean_score"]) for r in daily["rows"]] == [
        ("2026-12-01", "general", 1, 80.0),
        ("2026-12-02", "billing", 1, 0.0),
        ("2026-12-03", "billing", 1, 100.0),
        ("2026-12-07", "general", 1, 90.0),
    ]
    assert [(r["queue"], r["failed_critical"], r["disputed"]) for r in daily["totals"]] == [
        ("billing", 1, 1),
        ("general", 0, 0),
    ]
    # The period ends at the end of the last day in Shanghai: Sunday the 6th leaves Monday out.
    week_one = await desk.scoring.trend("agent", "day", date(2026, 12, 1), date(2026, 12, 6))
    assert [r["agent"] for r in week_one["totals"]] == ["1001", "1002"]
    assert week_one["totals"][0]["evaluations"] == 1
    # By default: the 8 weeks up to the center's today.
    default = await desk.scoring.trend("agent", "week", None, None)
    assert (default["from"], default["to"]) == ("2026-10-16", "2026-12-10")


async def test_voicemail_is_linked_to_its_call_and_a_message_alone_is_found(desk: Desk) -> None:
    recordings = desk.recordings
    waited, alone = desk.voicemails["waited"], desk.voicemails["alone"]
    calls = desk.calls
    linked = await recordings.voicemails_of([calls["waited"].interaction_id, calls["bob"].interaction_id])
    assert [v["id"] for v in linked[desk.calls["waited"].interaction_id]] == [waited]
    assert desk.calls["bob"].interaction_id not in linked
    found = await recordings.search_voicemails(Search(ani="0004"))
    assert [v["id"] for v in found] == [alone]
    assert found[0]["recordings"] == [] and found[0]["agents"] == [] and found[0]["outcome"] == "voicemail"
    one = await recordings.voicemail(waited)
    assert one is not None and one["recordings"] == [desk.calls["waited"].id]
    assert [v["id"] for v in await recordings.search_voicemails(Search(queue="billing"))] == [alone]
    assert await recordings.search_voicemails(Search(since=T0 + timedelta(minutes=30))) != []
    assert await recordings.search_voicemails(Search(min_score=0)) == [], "a message has no score"
    assert await recordings.search_voicemails(Search(agent="1001")) == [], "nobody talked on these calls"
    assert await recordings.search_voicemails(Search(only_agent="1002")) == []
    assert await recordings.search_voicemails(Search(min_s=8)) == []


async def test_a_message_listen_is_in_the_audit_log_apart_from_recordings(desk: Desk) -> None:
    recordings = desk.recordings
    alone = desk.voicemails["alone"]
    await recordings.audit(alone, "qa", "qa", "listen", True, "127.0.0.1", kind="voicemail")
    await recordings.audit(alone, "1001", "agent", "listen", False, "127.0.0.1", kind="voicemail")
    log = await recordings.access_log(alone, kind="voicemail")
    assert [(e["username"], e["allowed"]) for e in log] == [("qa", True), ("1001", False)]
    assert await recordings.access_log(alone) == [], "not a recording's log"


async def test_a_period_the_report_cannot_take_is_refused_with_why(desk: Desk) -> None:
    for first, last, words in [
        (date(2026, 12, 13), date(2026, 12, 1), "ends (2026-12-01) before it starts"),
        (date(2025, 1, 1), date(2026, 12, 31), "at most 366 days"),
        (None, date(1, 1, 5), "from 1970 to 9998"),  # no date arithmetic before the check
        (date(9999, 12, 31), None, "from 1970 to 9998"),
    ]:
        with pytest.raises(BadRequest, match=re.escape(words)):
            await desk.scoring.trend("agent", "week", first, last)
