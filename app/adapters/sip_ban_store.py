"""PostgreSQL for SIP bans (migration 010): the bans in force, and one event row per ban and end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.domain.sip_bans import Ban


class SipBanStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def bans(self) -> list[Ban]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT address, since, until, failures FROM sip_bans")
            return [Ban(str(a), s, u, int(f)) for a, s, u, f in await cur.fetchall()]

    async def banned_since(self, since: datetime) -> list[Ban]:
        """Every ban that started since then, ended or not (repeat offenders are banned longer)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT address, at, (data->>'until')::timestamptz, coalesce((data->>'failures')::int, 0)"
                " FROM sip_ban_events WHERE kind = 'banned' AND at >= %s ORDER BY at",
                (since,),
            )
            return [Ban(str(a), at, u or at, int(f)) for a, at, u, f in await cur.fetchall()]

    async def banned(self, ban: Ban, data: dict[str, Any]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO sip_bans (address, since, until, failures) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (address) DO UPDATE SET since = EXCLUDED.since, until = EXCLUDED.until,"
                " failures = EXCLUDED.failures",
                (ban.address, ban.since, ban.until, ban.failures),
            )
            await conn.execute(
                "INSERT INTO sip_ban_events (at, kind, address, data) VALUES (%s, 'banned', %s, %s)",
                (ban.since, ban.address, Jsonb(data)),
            )

    async def ended(self, ban: Ban, kind: str, at: datetime, data: dict[str, Any]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("DELETE FROM sip_bans WHERE address = %s", (ban.address,))
            await conn.execute(
                "INSERT INTO sip_ban_events (at, kind, address, data) VALUES (%s, %s, %s, %s)",
                (at, kind, ban.address, Jsonb(data)),
            )
