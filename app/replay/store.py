"""What a replay reads from PostgreSQL: the recorded calls to replay, their events and their
IVR recording, and the replayed call's events as they are written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from app.domain.replay import Event


@dataclass(frozen=True)
class Recorded:
    id: str
    ani: str
    dnis: str
    source: str  # the SIP peer's address the call came from
    arrived_at: datetime


@dataclass(frozen=True)
class IvrRecording:
    path: str  # relative to recording.directory
    started_at: datetime


class ReplayStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def calls(self, interaction: str | None, since: datetime | None, limit: int) -> list[Recorded]:
        """The inbound calls to replay: one by id, or those that entered a flow since a time
        (oldest first), never a replay itself."""
        where = "i.id = %s::uuid" if interaction else "i.arrived_at >= %s"
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT i.id::text, i.ani, i.dnis, coalesce(i.legs->>'source', ''), i.arrived_at"
                f" FROM interactions i WHERE {where} AND i.direction = 'inbound'"
                " AND i.ended_at IS NOT NULL"
                " AND EXISTS (SELECT 1 FROM interaction_events f"
                "  WHERE f.interaction_id = i.id AND f.kind = 'flow')"
                " AND NOT EXISTS (SELECT 1 FROM interaction_events r"
                "  WHERE r.interaction_id = i.id AND r.kind = 'replay')"
                " ORDER BY i.arrived_at LIMIT %s",
                (interaction or since, limit),
            )
            rows = await cur.fetchall()
        return [Recorded(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4]) for r in rows]

    async def exists(self, interaction: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM interactions WHERE id = %s::uuid", (interaction,))
            return await cur.fetchone() is not None

    async def events(self, interaction: str) -> list[Event]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT at, kind, data FROM interaction_events WHERE interaction_id = %s::uuid ORDER BY id",
                (interaction,),
            )
            rows = await cur.fetchall()
        return [Event(r[0], str(r[1]), dict(r[2] or {})) for r in rows]

    async def ivr_recording(self, interaction: str) -> IvrRecording | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT path, started_at FROM recordings WHERE interaction_id = %s::uuid AND part = 'ivr'"
                " AND deleted_at IS NULL",
                (interaction,),
            )
            row = await cur.fetchone()
        return IvrRecording(str(row[0]), row[1]) if row else None

    async def replayed(self, nonce: str) -> str | None:
        """The interaction the center made of a replay call, found by its marker's nonce."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT interaction_id::text FROM interaction_events WHERE kind = 'replay'"
                " AND data->>'nonce' = %s",
                (nonce,),
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None
