"""What the experts feature reads from PostgreSQL: a customer's own expert, and the journeys
of the calls experts were offered (for the reports)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.domain.experts import REPORT_KINDS, JourneyEvent


class ExpertStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def own_expert(self, customer_id: int) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT own_expert FROM customers WHERE id = %s", (customer_id,))
            row = await cur.fetchone()
        return str(row[0]) if row and row[0] is not None else None

    async def journeys(self, since: datetime) -> list[JourneyEvent]:
        """The report's events of every interaction an expert was offered since `since`."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT interaction_id, at, kind, data FROM interaction_events"
                " WHERE kind = ANY(%s) AND interaction_id IN"
                " (SELECT interaction_id FROM interaction_events WHERE kind = 'expert_offered' AND at >= %s)"
                " ORDER BY interaction_id, id",
                (list(REPORT_KINDS), since),
            )
            rows = await cur.fetchall()
        return [JourneyEvent(str(r[0]), r[1], str(r[2]), dict(r[3] or {})) for r in rows]

    async def expert_changes(self) -> dict[str, dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT expert_id, changes FROM expert_changes")
            rows = await cur.fetchall()
        return {str(r[0]): dict(r[1]) for r in rows}

    async def roster(self) -> list[tuple[str, dict[str, Any] | None, bool]]:
        """(expert id, the added entry or None, removed), oldest first."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT expert_id, entry, removed FROM expert_roster ORDER BY changed_at"
            )
            rows = await cur.fetchall()
        return [(str(r[0]), dict(r[1]) if r[1] is not None else None, bool(r[2])) for r in rows]

    async def save_roster(
        self, expert_id: str, entry: dict[str, Any] | None, removed: bool, by: str, at: datetime
    ) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO expert_roster (expert_id, entry, removed, changed_by, changed_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (expert_id) DO UPDATE SET"
                " entry = EXCLUDED.entry, removed = EXCLUDED.removed,"
                " changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at",
                (expert_id, Jsonb(entry) if entry is not None else None, removed, by, at),
            )
            if removed or entry is not None:
                # Earlier changes were to the expert that is gone or replaced: they must not
                # come back with a new expert of the same id.
                await conn.execute("DELETE FROM expert_changes WHERE expert_id = %s", (expert_id,))

    async def save_expert_changes(
        self, expert_id: str, changes: dict[str, Any], by: str, at: datetime
    ) -> None:
        """Merged into what was changed before: each field keeps its latest value."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO expert_changes (expert_id, changes, changed_by, changed_at)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (expert_id) DO UPDATE SET changes = expert_changes.changes || EXCLUDED.changes,"
                " changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at",
                (expert_id, Jsonb(changes), by, at),
            )

    async def create_link(
        self,
        token_hash: bytes,
        interaction_id: str,
        expert_id: str,
        preview: dict[str, Any],
        created_at: datetime,
        expires_at: datetime,
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO expert_links"
                " (token_hash, interaction_id, expert_id, preview, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (token_hash, interaction_id, expert_id, Jsonb(preview), created_at, expires_at),
            )

    async def open_link(self, token_hash: bytes, now: datetime) -> dict[str, Any] | None:
        """The preview behind a link, once: None when unknown, expired or opened before."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE expert_links SET opened_at = %s"
                " WHERE token_hash = %s AND opened_at IS NULL AND expires_at > %s RETURNING preview",
                (now, token_hash, now),
            )
            row = await cur.fetchone()
        return dict(row[0]) if row else None
