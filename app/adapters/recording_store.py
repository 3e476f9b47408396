"""PostgreSQL for call recordings (migration 013): one row per recording, the QA desk's search,
the retention job's deletions, and the audit log of every listen and download."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.domain.recording import Kept


@dataclass(frozen=True)
class RecordingRow:
    id: str
    interaction_id: str
    direction: str
    queue: str | None
    campaign: str | None
    ani: str
    agents: tuple[str, ...]
    started_at: datetime
    duration_ms: int
    channels: int
    sample_rate: int
    size_bytes: int
    sha256: str
    path: str
    spans: list[dict[str, Any]]
    rule: str
    retention_days: int
    levels: dict[str, Any] = field(default_factory=dict)  # the waveform: RMS per frame, each side
    part: str = "conversation"  # or "ivr": the caller's time in the IVR, before any queue


@dataclass(frozen=True)
class Search:
    """The QA desk's filters; None: any."""

    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    queue: str | None = None
    campaign: str | None = None  # the dialer's campaign that placed the call
    ani: str | None = None  # a part of the caller's number
    disposition: str | None = None
    min_s: float | None = None
    max_s: float | None = None
    min_score: float | None = None  # the mean of the call's evaluations (amended scores count)
    max_score: float | None = None
    only_agent: str | None = None  # an agent who may hear only their own calls
    words: tuple[str, ...] = ()  # every one in the call's transcript (migration 028)
    limit: int = 100


# The mean score of a recording's evaluations, each at its latest amendment.
_SCORE = (
    "(SELECT round(avg(COALESCE((SELECT x.score FROM evaluation_amendments x WHERE x.evaluation_id = e.id"
    " ORDER BY x.id DESC LIMIT 1), e.score)), 1)::float FROM evaluations e WHERE e.recording_id = r.id)"
)
_COLUMNS = (
    "r.id::text AS id, r.interaction_id::text AS interaction_id, r.direction, r.queue, r.campaign,"
    " r.ani, r.agents, r.started_at, r.duration_ms, r.channels, r.sample_rate, r.size_bytes, r.sha256,"
    f" r.path, r.spans, r.rule, r.retention_days, i.disposition, i.outcome, {_SCORE} AS score, r.part"
)

# A voicemail as the QA desk shows it: its call's recordings (not deleted) and every agent who
# talked on that call (who may hear it, as for a recording).
_VOICEMAIL = (
    "v.id::text AS id, v.interaction_id::text AS interaction_id, v.phone AS ani, v.queue,"
    " v.recorded_at, v.duration_s::float AS duration_s, v.file_path, v.size_bytes, i.disposition,"
    " i.outcome,"
    " ARRAY(SELECT r.id::text FROM recordings r WHERE r.interaction_id = v.interaction_id"
    " AND r.deleted_at IS NULL ORDER BY r.started_at) AS recordings,"
    " ARRAY(SELECT DISTINCT a FROM recordings r, unnest(r.agents) a"
    " WHERE r.interaction_id = v.interaction_id ORDER BY a) AS agents"
)


class RecordingStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add(self, row: RecordingRow) -> bool:
        """Insert the row (once per interaction and part); False if it was there already."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO recordings (id, interaction_id, direction, queue, campaign, ani, agents,"
                " started_at, duration_ms, channels, sample_rate, size_bytes, sha256, path, spans, rule,"
                " retention_days, levels, part)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (interaction_id, part) DO NOTHING",
                (
                    row.id,
                    row.interaction_id,
                    row.direction,
                    row.queue,
                    row.campaign,
                    row.ani,
                    list(row.agents),
                    row.started_at,
                    row.duration_ms,
                    row.channels,
                    row.sample_rate,
                    row.size_bytes,
                    row.sha256,
                    row.path,
                    Jsonb(row.spans),
                    row.rule,
                    row.retention_days,
                    Jsonb(row.levels),
                    row.part,
                ),
            )
            return cur.rowcount == 1

    async def waveform(self, recording_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT levels FROM recordings WHERE id = %s", (recording_id,))
            row = await cur.fetchone()
            return dict(row[0]) if row else None

    async def search(self, s: Search) -> list[dict[str, Any]]:
        where = ["r.deleted_at IS NULL"]
        args: list[Any] = []
        if s.since is not None:
            where.append("r.started_at >= %s")
            args.append(s.since)
        if s.until is not None:
            where.append("r.started_at < %s")
            args.append(s.until)
        for agent in (s.agent, s.only_agent):
            if agent is not None:
                where.append("%s = ANY (r.agents)")
                args.append(agent)
        if s.queue is not None:
            where.append("r.queue = %s")
            args.append(s.queue)
        if s.campaign is not None:
            # The row keeps the campaign the dialer's call carried (LIANLUO_CAMPAIGN, app/dialer).
            where.append("r.campaign = %s")
            args.append(s.campaign)
        if s.ani is not None:
            where.append("strpos(r.ani, %s) > 0")
            args.append(s.ani)
        if s.disposition is not None:
            where.append("i.disposition = %s")
            args.append(s.disposition)
        if s.min_s is not None:
            where.append("r.duration_ms >= %s")
            args.append(int(s.min_s * 1000))
        if s.max_s is not None:
            where.append("r.duration_ms <= %s")
            args.append(int(s.max_s * 1000))
        if s.min_score is not None:
            where.append(f"{_SCORE} >= %s")
            args.append(s.min_score)
        if s.max_score is not None:
            where.append(f"{_SCORE} <= %s")
            args.append(s.max_score)
        for word in s.words:
            where.append(
                "EXISTS (SELECT 1 FROM transcript_lines t WHERE t.recording_id = r.id"
                " AND t.words @@ plainto_tsquery('simple', %s))"
            )
            args.append(word)
        args.append(max(1, min(s.limit, 500)))
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM recordings r JOIN interactions i ON i.id = r.interaction_id"
                f" WHERE {' AND '.join(where)} ORDER BY r.started_at DESC LIMIT %s",
                args,
            )
            return list(await cur.fetchall())

    async def events_of(self, interaction_id: str) -> list[tuple[datetime, str, dict[str, Any]]]:
        """The call's journey (at, kind, data), in the order it happened: the player's transfer
        marks and the IVR path beside it."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT at, kind, data FROM interaction_events WHERE interaction_id = %s ORDER BY id",
                (interaction_id,),
            )
            return [(at, str(kind), dict(data or {})) for at, kind, data in await cur.fetchall()]

    async def get(self, recording_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM recordings r JOIN interactions i ON i.id = r.interaction_id"
                " WHERE r.id = %s AND r.deleted_at IS NULL",
                (recording_id,),
            )
            return await cur.fetchone()

    async def kept(self) -> list[tuple[Kept, str]]:
        """Every recording not yet deleted, with its file's path."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id::text, started_at, retention_days, path FROM recordings WHERE deleted_at IS NULL"
            )
            return [(Kept(i, s, int(d)), str(p)) for i, s, d, p in await cur.fetchall()]

    async def deleted(self, recording_id: str, at: datetime, reason: str) -> None:
        """The file is gone: so is what was said in it (its transcript, migration 028)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM transcript_lines WHERE recording_id = %s", (recording_id,))
            await conn.execute(
                "UPDATE recordings SET deleted_at = %s, deleted_reason = %s WHERE id = %s",
                (at, reason, recording_id),
            )

    async def audit(
        self,
        recording_id: str,
        username: str,
        role: str,
        action: str,
        allowed: bool,
        remote: str,
        kind: str = "recording",
    ) -> None:
        """`kind`: "recording", or "voicemail" (then `recording_id` is the message's id)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO recording_access (recording_id, username, role, action, allowed, remote, kind)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (recording_id, username, role, action, allowed, remote, kind),
            )

    async def access_log(self, recording_id: str, kind: str = "recording") -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT username, role, action, allowed, remote, at FROM recording_access"
                " WHERE recording_id = %s AND kind = %s ORDER BY id",
                (recording_id, kind),
            )
            return list(await cur.fetchall())

    # -- voicemail in the QA desk: a message is linked to its call's recordings by the interaction

    async def voicemails_of(self, interaction_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The messages left on these interactions, per interaction."""
        if not interaction_ids:
            return {}
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_VOICEMAIL} FROM voicemails v JOIN interactions i ON i.id = v.interaction_id"
                " WHERE v.interaction_id = ANY (%s::uuid[]) ORDER BY v.recorded_at",
                (interaction_ids,),
            )
            out: dict[str, list[dict[str, Any]]] = {}
            for row in await cur.fetchall():
                out.setdefault(row["interaction_id"], []).append(row)
            return out

    async def voicemail(self, voicemail_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_VOICEMAIL} FROM voicemails v JOIN interactions i ON i.id = v.interaction_id"
                " WHERE v.id = %s",
                (voicemail_id,),
            )
            return await cur.fetchone()

    async def search_voicemails(self, s: Search) -> list[dict[str, Any]]:
        """Messages matching the desk's filters. A filter a message cannot meet (a score, an
        agent: nobody talked on a call that only left a message; a campaign: the dialer's calls
        leave none) matches none; `only_agent` (an agent hearing their own calls) sees a
        message only on a call they talked on."""
        if s.min_score is not None or s.max_score is not None or s.campaign is not None:
            return []
        where = ["true"]
        args: list[Any] = []
        if s.since is not None:
            where.append("v.recorded_at >= %s")
            args.append(s.since)
        if s.until is not None:
            where.append("v.recorded_at < %s")
            args.append(s.until)
        for agent in (s.agent, s.only_agent):
            if agent is not None:
                where.append(
                    "EXISTS (SELECT 1 FROM recordings r WHERE r.interaction_id = v.interaction_id"
                    " AND %s = ANY (r.agents))"
                )
                args.append(agent)
        if s.queue is not None:
            where.append("v.queue = %s")
            args.append(s.queue)
        if s.ani is not None:
            where.append("strpos(v.phone, %s) > 0")
            args.append(s.ani)
        if s.disposition is not None:
            where.append("i.disposition = %s")
            args.append(s.disposition)
        if s.min_s is not None:
            where.append("COALESCE(v.duration_s, 0) >= %s")
            args.append(s.min_s)
        if s.max_s is not None:
            where.append("COALESCE(v.duration_s, 0) <= %s")
            args.append(s.max_s)
        args.append(max(1, min(s.limit, 500)))
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_VOICEMAIL} FROM voicemails v JOIN interactions i ON i.id = v.interaction_id"
                f" WHERE {' AND '.join(where)} ORDER BY v.recorded_at DESC LIMIT %s",
                args,
            )
            return list(await cur.fetchall())


_EVALUATION = (
    "e.id::text AS id, e.recording_id::text AS recording_id, e.interaction_id::text AS interaction_id,"
    " e.agent_id, e.form_name, e.evaluator, e.answers, e.comment, e.score::float AS first_score,"
    " e.failed_critical, e.submitted_at, e.acknowledged_at, e.disputed, e.agent_comment,"
    " a.score::float AS amended_score, a.failed_critical AS amended_failed, a.by_user AS amended_by,"
    " a.why AS amended_why, a.at AS amended_at, a.answers AS amended_answers,"
    " COALESCE(a.score, e.score)::float AS score"
)
_LATEST = (
    " LEFT JOIN LATERAL (SELECT * FROM evaluation_amendments x WHERE x.evaluation_id = e.id"
    " ORDER BY x.id DESC LIMIT 1) a ON true"
)


@dataclass(frozen=True)
class EvaluationRow:
    id: str
    recording_id: str
    interaction_id: str
    agent_id: str | None
    form_name: str
    form: dict[str, Any]
    evaluator: str
    answers: dict[str, Any]
    comment: str
    score: float
    failed_critical: tuple[str, ...]
    submitted_at: datetime


class EvaluationStore:
    """QA evaluations (migration 013): inserted once, never updated but for the agent's
    acknowledgement; changes are amendments."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add(self, e: EvaluationRow) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO evaluations (id, recording_id, interaction_id, agent_id, form_name, form,"
                " evaluator, answers, comment, score, failed_critical, submitted_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    e.id,
                    e.recording_id,
                    e.interaction_id,
                    e.agent_id,
                    e.form_name,
                    Jsonb(e.form),
                    e.evaluator,
                    Jsonb(e.answers),
                    e.comment,
                    e.score,
                    list(e.failed_critical),
                    e.submitted_at,
                ),
            )

    async def _select(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_EVALUATION} FROM evaluations e{_LATEST} WHERE {where} ORDER BY e.submitted_at",
                args,
            )
            return list(await cur.fetchall())

    async def of_recording(self, recording_id: str) -> list[dict[str, Any]]:
        return await self._select("e.recording_id = %s", (recording_id,))

    async def of_agent(self, agent_id: str) -> list[dict[str, Any]]:
        return await self._select("e.agent_id = %s", (agent_id,))

    async def get(self, evaluation_id: str) -> dict[str, Any] | None:
        rows = await self._select("e.id = %s", (evaluation_id,))
        return rows[0] if rows else None

    async def form_of(self, evaluation_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT form FROM evaluations WHERE id = %s", (evaluation_id,))
            row = await cur.fetchone()
            return dict(row[0]) if row else None

    async def amend(
        self,
        evaluation_id: str,
        by: str,
        why: str,
        answers: dict[str, Any],
        score: float,
        failed: tuple[str, ...],
        at: datetime,
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO evaluation_amendments (evaluation_id, by_user, why, answers, score,"
                " failed_critical, at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (evaluation_id, by, why, Jsonb(answers), score, list(failed), at),
            )

    async def acknowledge(self, evaluation_id: str, disputed: bool, comment: str, at: datetime) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE evaluations SET acknowledged_at = %s, disputed = %s, agent_comment = %s"
                " WHERE id = %s",
                (at, disputed, comment, evaluation_id),
            )


async def qa_trend_rows(
    pool: AsyncConnectionPool, by: str, per: str, start: datetime, end: datetime, zone: str
) -> list[dict[str, Any]]:
    """Evaluations submitted in [start, end) per agent (or queue) and period (`per`: week,
    from Monday, or day, in the time zone `zone`): count, the sum of the scores (amended scores
    count), how many failed a critical question, how many the agent disputed."""
    key = {"agent": "e.agent_id", "queue": "r.queue"}[by]
    unit = {"week": "week", "day": "day"}[per]
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "WITH latest AS ("
            f" SELECT {key} AS key, e.submitted_at, COALESCE(a.score, e.score)::float AS score,"
            " cardinality(COALESCE(a.failed_critical, e.failed_critical)) > 0 AS failed,"
            " COALESCE(e.disputed, false) AS disputed"
            " FROM evaluations e JOIN recordings r ON r.id = e.recording_id"
            # Each evaluation's latest amendment, once for all (a lateral look-up per
            # evaluation was 2-3 times slower over a year).
            " LEFT JOIN (SELECT DISTINCT ON (evaluation_id) evaluation_id, score, failed_critical"
            " FROM evaluation_amendments ORDER BY evaluation_id, id DESC) a ON a.evaluation_id = e.id"
            " WHERE e.submitted_at >= %s AND e.submitted_at < %s)"
            f" SELECT key, date_trunc('{unit}', submitted_at AT TIME ZONE %s)::date AS period,"
            " count(*) AS count, sum(score)::float AS total, count(*) FILTER (WHERE failed) AS failed,"
            " count(*) FILTER (WHERE disputed) AS disputed"
            " FROM latest WHERE key IS NOT NULL GROUP BY key, period ORDER BY key, period",
            (start, end, zone),
        )
        return list(await cur.fetchall())
