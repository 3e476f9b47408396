"""What the experts feature reads from PostgreSQL: a customer's own expert."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


class ExpertStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def own_expert(self, customer_id: int) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT own_expert FROM customers WHERE id = %s", (customer_id,))
            row = await cur.fetchone()
        return str(row[0]) if row and row[0] is not None else None
