"""PostgreSQL for transcripts (migration 028): the job queue (claimed with SKIP LOCKED, so
several workers, even in several app processes, never take the same job) and the lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.domain.transcript import Backlog, Line, backlog


@dataclass(frozen=True)
class Job:
    recording_id: str
    path: str  # relative to recording.directory
    attempts: int  # including this one


class TranscriptStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def queue(self, recording_id: str, at: datetime) -> bool:
        """Queue a recording's transcript (once); False if it was queued before."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO transcript_jobs (recording_id, queued_at, not_before) VALUES (%s, %s, %s)"
                " ON CONFLICT (recording_id) DO NOTHING",
                (recording_id, at, at),
            )
            return cur.rowcount == 1

    async def queue_missing(self, since: datetime, at: datetime) -> int:
        """Queue recordings written since ``since`` that have no job (the app stopped between the
        row and its job); how many."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO transcript_jobs (recording_id, queued_at, not_before)"
                " SELECT r.id, %s, %s FROM recordings r WHERE r.deleted_at IS NULL AND r.created_at >= %s"
                " AND NOT EXISTS (SELECT 1 FROM transcript_jobs j WHERE j.recording_id = r.id)"
                " ON CONFLICT (recording_id) DO NOTHING",
                (at, at, since),
            )
            return cur.rowcount

    async def claim(self, now: datetime, lease_s: float) -> Job | None:
        """The oldest job due (queued and past its retry time, or running past its lease: its
        worker died with an app), marked running; None if none is due."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE transcript_jobs j SET state = 'running', started_at = %s, attempts = j.attempts + 1"
                " FROM recordings r WHERE r.id = j.recording_id AND j.recording_id = ("
                "  SELECT recording_id FROM transcript_jobs"
                "  WHERE (state = 'queued' AND not_before <= %s) OR (state = 'running' AND started_at < %s)"
                "  ORDER BY queued_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING j.recording_id::text, r.path, j.attempts, r.deleted_at",
                (now, now, now - timedelta(seconds=lease_s)),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Job(row[0], row[1], row[2]) if row[3] is None else await self._gone(row[0], now)

    async def renew(self, recording_id: str, now: datetime) -> None:
        """The worker still works on it: its lease starts again."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE transcript_jobs SET started_at = %s WHERE recording_id = %s AND state = 'running'",
                (now, recording_id),
            )

    async def _gone(self, recording_id: str, now: datetime) -> Job | None:
        await self.failed(recording_id, "the recording was deleted", None, now)
        return None

    async def save(
        self,
        recording_id: str,
        lines: Sequence[Line],
        engine: str,
        audio_s: float,
        cpu_s: float,
        now: datetime,
    ) -> None:
        """The lines (replacing any earlier ones) and the job done, in one transaction."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM transcript_lines WHERE recording_id = %s", (recording_id,))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO transcript_lines (recording_id, side, start_s, end_s, text)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(recording_id, ln.side, ln.start_s, ln.end_s, ln.text) for ln in lines],
                )
            await conn.execute(
                "UPDATE transcript_jobs SET state = 'done', finished_at = %s, error = '', engine = %s,"
                " audio_s = %s, cpu_s = %s WHERE recording_id = %s",
                (now, engine, audio_s, cpu_s, recording_id),
            )

    async def failed(self, recording_id: str, error: str, retry_at: datetime | None, now: datetime) -> None:
        """The attempt failed: queued again for ``retry_at``, or failed for good (None)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE transcript_jobs SET state = %s, not_before = COALESCE(%s, not_before),"
                " finished_at = CASE WHEN %s::timestamptz IS NULL THEN %s ELSE NULL END, error = %s"
                " WHERE recording_id = %s",
                ("queued" if retry_at else "failed", retry_at, retry_at, now, error[:500], recording_id),
            )

    async def backlog(self, now: datetime) -> Backlog:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT queued_at FROM transcript_jobs WHERE state IN ('queued', 'running')"
            )
            return backlog([r[0] for r in await cur.fetchall()], now)

    async def lines(self, recording_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT side, round(start_s::numeric, 2)::float AS start_s,"
                " round(end_s::numeric, 2)::float AS end_s, text FROM transcript_lines"
                " WHERE recording_id = %s ORDER BY start_s, side, end_s, id",
                (recording_id,),
            )
            return list(await cur.fetchall())

    async def job(self, recording_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT state, attempts, queued_at, finished_at, error, engine, audio_s::float AS audio_s,"
                " cpu_s::float AS cpu_s FROM transcript_jobs WHERE recording_id = %s",
                (recording_id,),
            )
            return await cur.fetchone()
