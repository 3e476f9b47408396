"""What the experts feature reads from PostgreSQL: a customer's own expert, and the journeys
of the calls experts were offered (for the reports)."""

from __future__ import annotations

from datetime import datetime

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
