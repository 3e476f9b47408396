"""PostgreSQL for faxes: one row per fax session, sent or received (migration 014)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.domain.fax import Fax

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
        return [
            {k: (str(v) if k in ("id", "interaction_id") and v is not None else v) for k, v in r.items()}
            for r in rows
        ]
