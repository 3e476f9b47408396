"""The outbound policy's counts in PostgreSQL (migration 011): every number dialled through a
trunk, written behind the calls, and read back at start so that a restart does not reset the
per-number and per-trunk hourly and daily limits.

The call never waits: `record` queues the row and one task writes what has piled up, in order.
While the database is down the rows wait in memory (at most MAX_WAITING; beyond that the oldest
are dropped with a warning, since the policy in memory still counts them until a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from app.domain.outbound import Dialled, Purpose

log = logging.getLogger(__name__)

MAX_WAITING = 100_000
RETRY_S = 2.0


class OutboundLedger:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._waiting: list[Dialled] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def since(self, since: datetime) -> list[Dialled]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT at, number, trunk, purpose FROM outbound_dials WHERE at > %s ORDER BY at", (since,)
            )
            rows = await cur.fetchall()
        out = []
        for at, number, trunk, purpose in rows:
            with contextlib.suppress(ValueError):  # a purpose this version no longer has
                out.append(Dialled(at, number, trunk, Purpose(purpose)))
        return out

    def record(self, dialled: Dialled) -> None:
        self._waiting.append(dialled)
        if len(self._waiting) > MAX_WAITING:
            del self._waiting[0]
            log.warning("outbound dial counts wait for the database; the oldest was dropped")
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbound-ledger")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=5.0)
            if not done:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write(self) -> None:
        batch = list(self._waiting)
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO outbound_dials (at, number, trunk, purpose) VALUES (%s, %s, %s, %s)",
                [(d.at, d.number, d.trunk, d.purpose.value) for d in batch],
            )
        del self._waiting[: len(batch)]

    async def _run(self) -> None:
        while True:
            if not self._waiting:
                if self._stopping:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(60):
                        await self._wake.wait()
                continue
            try:
                await self._write()
            except Exception as exc:
                log.warning("could not record %d outbound dial(s) (%s); retrying", len(self._waiting), exc)
                if self._stopping:
                    return
                await asyncio.sleep(RETRY_S)
