"""PostgreSQL reads for the reports and staffing (app/supervision/reports.py): agent state
changes, the IVR's events, callbacks and voicemails, and the dialer's attempts, each over a
period. The calls' facts come from Store.queued_calls, as for the interval report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.domain.reports import IVR_EVENTS, CallbackFacts, DialFacts, StateChange, VoicemailFacts


class ReportStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def state_changes(self, since: datetime, until: datetime) -> list[StateChange]:
        """Every agent state change in [since, until), with each agent's last change before
        `since` (where they stood when the period began)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT agent_id, at, from_state, to_state, reason FROM agent_state_events"
                " WHERE at >= %s AND at < %s"
                " UNION ALL SELECT b.agent_id, b.at, b.from_state, b.to_state, b.reason FROM agents a"
                " CROSS JOIN LATERAL (SELECT * FROM agent_state_events e WHERE e.agent_id = a.id"
                "  AND e.at < %s ORDER BY e.at DESC, e.id DESC LIMIT 1) b"
                " ORDER BY 1, 2",
                (since, until, since),
            )
            return [StateChange(str(a), at, str(f), str(t), r) for a, at, f, t, r in await cur.fetchall()]

    async def ivr_events(
        self, since: datetime, until: datetime
    ) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        """The IVR report's events of the calls that entered a flow in [since, until), in order."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT e.interaction_id::text, e.kind, e.at, e.data FROM interaction_events e"
                " WHERE e.interaction_id IN (SELECT interaction_id FROM interaction_events"
                "  WHERE kind = 'flow' AND at >= %s AND at < %s)"
                " AND e.kind = ANY(%s) ORDER BY e.interaction_id, e.at, e.id",
                (since, until, list(IVR_EVENTS)),
            )
            return [(str(i), str(k), at, dict(d or {})) for i, k, at, d in await cur.fetchall()]

    async def callbacks(self, since: datetime, until: datetime) -> list[CallbackFacts]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT queue, source, requested_at, status, attempts,"
                " CASE WHEN status IN ('completed', 'failed', 'cancelled') THEN updated_at END"
                " FROM callbacks WHERE requested_at >= %s AND requested_at < %s",
                (since, until),
            )
            return [
                CallbackFacts(str(q), str(s), r, str(st), int(n), d)
                for q, s, r, st, n, d in await cur.fetchall()
            ]

    async def voicemails(self, since: datetime, until: datetime) -> list[VoicemailFacts]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT coalesce(queue, ''), recorded_at, duration_s, status = 'handled' FROM voicemails"
                " WHERE recorded_at >= %s AND recorded_at < %s",
                (since, until),
            )
            return [
                VoicemailFacts(str(q), r, None if d is None else float(d), bool(h))
                for q, r, d, h in await cur.fetchall()
            ]

    async def dials(self, since: datetime, until: datetime) -> list[DialFacts]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT campaign, started_at, result, live_answer, abandoned FROM dial_attempts"
                " WHERE started_at >= %s AND started_at < %s",
                (since, until),
            )
            return [DialFacts(str(c), s, r, bool(la), bool(ab)) for c, s, r, la, ab in await cur.fetchall()]
