"""PostgreSQL for faxes: one row per fax session, sent or received (migration 014)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.domain.fax import Fax, FaxJob, UploadedDocument

_COLUMNS = (
    "id",
    "interaction_id",
    "direction",
    "mode",
    "number",
    "station_id",
    "documents",
    "pages_expected",
    "pages",
    "rate",
    "ecm",
    "status",
    "error",
    "tiff_path",
    "pdf_path",
    "started_at",
    "finished_at",
    "job_id",
)
_JOB_COLUMNS = (
    "id",
    "number",
    "documents",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "finished_at",
    "created_by",
    "interaction_id",
    "agent_id",
    "uploads",
    "pages_sent",
    "pages_expected",
)


class FaxStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def save(self, fax: Fax) -> None:
        """Insert or update the fax's row."""
        values = [getattr(fax, c) for c in _COLUMNS]
        values[_COLUMNS.index("documents")] = list(fax.documents)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO faxes ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
                f" ON CONFLICT (id) DO UPDATE SET {updates}",
                values,
            )

    async def close_unfinished(self, before: datetime, at: datetime) -> int:
        """Faxes an earlier run (started before `before`) left sending or receiving: the app
        stopped during the session and cannot know how it ended. Kept and said so, never left
        looking as if still going."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE faxes SET status = CASE WHEN pages > 0 THEN 'partial' ELSE 'failed' END,"
                " error = 'result unknown: the app stopped during the fax', finished_at = %s"
                " WHERE status IN ('sending', 'receiving') AND started_at < %s",
                (at, before),
            )
            return cur.rowcount

    async def emailed(self, fax_id: str, at: datetime | None, error: str | None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE faxes SET emailed_at = %s, email_error = %s WHERE id = %s", (at, error, fax_id)
            )

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {', '.join(_COLUMNS)}, emailed_at, email_error FROM faxes"
                " ORDER BY started_at DESC LIMIT %s",
                (limit,),
            )
            rows = await cur.fetchall()
        return [_ids_as_text(r) for r in rows]

    async def one(self, fax_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {', '.join(_COLUMNS)}, emailed_at, email_error FROM faxes WHERE id = %s", (fax_id,)
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return {
            k: (str(v) if k in ("id", "interaction_id", "job_id") and v is not None else v)
            for k, v in row.items()
        }

    # -- jobs -------------------------------------------------------------------

    async def save_job(self, job: FaxJob) -> None:
        values = [getattr(job, c) for c in _JOB_COLUMNS]
        values[_JOB_COLUMNS.index("documents")] = list(job.documents)
        values[_JOB_COLUMNS.index("uploads")] = Jsonb([dataclasses.asdict(u) for u in job.uploads])
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _JOB_COLUMNS[1:])
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO fax_jobs ({', '.join(_JOB_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(_JOB_COLUMNS))})"
                f" ON CONFLICT (id) DO UPDATE SET {updates}",
                values,
            )

    async def jobs_since(self, number: str, since: datetime) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM fax_jobs WHERE number = %s AND created_at >= %s", (number, since)
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def due_jobs(self, now: datetime, limit: int) -> list[FaxJob]:
        """Queued jobs whose next attempt is due, oldest first."""
        return await self._jobs(
            "WHERE status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= %s)"
            " ORDER BY created_at LIMIT %s",
            (now, limit),
        )

    async def requeue_sending(self) -> int:
        """Jobs left `sending` by an app that stopped mid-attempt go back in line."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("UPDATE fax_jobs SET status = 'queued' WHERE status = 'sending'")
            return cur.rowcount

    async def jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recent jobs, each with its attempts (the `faxes` rows of its tries)."""
        jobs = await self._jobs("ORDER BY created_at DESC LIMIT %s", (limit,))
        tries = [r for r in await self.recent(1000) if r.get("job_id")]
        out = []
        for job in jobs:
            view = job_view(job)
            view["attempt_results"] = [r for r in reversed(tries) if r["job_id"] == job.id]
            out.append(view)
        return out

    async def jobs_of(self, interaction_id: str) -> list[FaxJob]:
        """The jobs sent from one call's box, oldest first."""
        return await self._jobs("WHERE interaction_id = %s ORDER BY created_at", (interaction_id,))

    async def journey_event(self, interaction_id: str, at: datetime, kind: str, data: dict[str, Any]) -> None:
        """An event in a call's journey written from outside the call (it may be over): the
        events are appended, so this never races the call's own writer."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO interaction_events (interaction_id, at, kind, data) VALUES (%s, %s, %s, %s)",
                (interaction_id, at, kind, Jsonb(data)),
            )

    async def job(self, job_id: str) -> FaxJob | None:
        found = await self._jobs("WHERE id = %s", (job_id,))
        return found[0] if found else None

    async def _jobs(self, tail: str, params: tuple[Any, ...]) -> list[FaxJob]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM fax_jobs {tail}", params)
            rows = await cur.fetchall()
        return [_job(r) for r in rows]


def _job(row: dict[str, Any]) -> FaxJob:
    return FaxJob(
        **{
            **row,
            "id": str(row["id"]),
            "documents": tuple(row["documents"] or ()),
            "interaction_id": str(row["interaction_id"]) if row["interaction_id"] else None,
            "uploads": tuple(UploadedDocument(**u) for u in row["uploads"] or ()),
        }
    )


def job_view(job: FaxJob) -> dict[str, Any]:
    """A job as the API and the panels show it: its fields, the uploads by name only (where
    they are on disk is nobody's business), and what it sends as people read it."""
    view: dict[str, Any] = {c: getattr(job, c) for c in _JOB_COLUMNS}
    view["documents"] = list(job.documents)
    view["uploads"] = [{"name": u.name, "pages": u.pages} for u in job.uploads]
    view["contents"] = job.contents
    return view


def _ids_as_text(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (str(v) if k in ("id", "interaction_id", "job_id") and v is not None else v)
        for k, v in row.items()
    }
