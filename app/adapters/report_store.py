"""PostgreSQL reads for the reports and staffing (app/supervision/reports.py): the calls'
facts, agent state changes and time, the IVR's events, callbacks and voicemails, and the
dialer's attempts, each over a period.

The calls' facts and the agents' time are summed up once a day of the center (its time zone)
is over, by the nightly job (app/supervision/summaries.py, the rule in app/domain/summaries.py)
calling `summarise`: each call's facts (`report_calls`), each agent's time per quarter hour
(`report_agent_time`), the day noted in `report_days_kept`. Reports read those rows for the days
kept and the events for the rest of a period (today, a day not summed up yet). Both give the same
figures (tests/integration/test_reports.py)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from app.domain.reports import (
    IVR_EVENTS,
    CallbackFacts,
    CallFacts,
    DialFacts,
    StateChange,
    VoicemailFacts,
    add_agent_time,
    agent_buckets,
)
from app.domain.summaries import center_day, day_bounds

DAY = timedelta(days=1)
UTC_ZONE = ZoneInfo("UTC")

# Each call that first joined a line in [since, until): where, its tier, when it was answered
# (first), when it ended and how. A transfer's second line is not a second call.
_RAW_CALLS = (
    "WITH joined AS ("
    " SELECT DISTINCT ON (interaction_id) interaction_id, at, data->>'queue' AS queue,"
    " coalesce(data->>'tier', '') AS tier FROM interaction_events"
    " WHERE kind = 'queued' AND at >= %(since)s - interval '1 day' AND at < %(until)s"
    " ORDER BY interaction_id, id)"
    " SELECT j.interaction_id, j.queue, j.tier, j.at,"
    " (SELECT min(e.at) FROM interaction_events e"
    "   WHERE e.interaction_id = j.interaction_id AND e.kind = 'connected'),"
    " i.ended_at, i.outcome"
    " FROM joined j JOIN interactions i ON i.id = j.interaction_id"
    " WHERE j.at >= %(since)s"
)


class ReportStore:
    def __init__(self, pool: AsyncConnectionPool, zone: ZoneInfo = UTC_ZONE, keep: bool = True) -> None:
        """`zone`: the center's, whose days are summed up; `keep=False`: read no summary, every
        figure from the events (a baseline)."""
        self.pool = pool
        self.zone = zone
        self._keep = keep

    # -- the calls and the agents' time: kept days, the rest from the events ----------------

    async def raw_calls(self, since: datetime, until: datetime) -> list[CallFacts]:
        """The calls' facts from the events alone (nothing kept is read)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(_RAW_CALLS + " ORDER BY j.at", {"since": since, "until": until})
            return [
                CallFacts(str(q), str(t), at, ans, end, out)
                for _, q, t, at, ans, end, out in await cur.fetchall()
            ]

    async def calls(self, since: datetime, until: datetime) -> list[CallFacts]:
        kept, rest = await self._split(since, until)
        out: list[CallFacts] = []
        async with self.pool.connection() as conn:
            for start, end in kept:
                cur = await conn.execute(
                    "SELECT queue, tier, queued_at, answered_at, ended_at, outcome FROM report_calls"
                    " WHERE queued_at >= %s AND queued_at < %s",
                    (start, end),
                )
                out.extend(
                    CallFacts(str(q), str(t), at, a, e, o) for q, t, at, a, e, o in await cur.fetchall()
                )
        for start, end in rest:
            out.extend(await self.raw_calls(start, end))
        return sorted(out, key=lambda c: c.queued_at)

    async def agent_times(self, since: datetime, until: datetime) -> dict[str, dict[str, Any]]:
        """Per agent, time in each state within [since, until) (`agent_time`'s shape)."""
        kept, rest = await self._split(since, until)
        out: dict[str, dict[str, Any]] = {}
        async with self.pool.connection() as conn:
            for start, end in kept:
                cur = await conn.execute(
                    "SELECT agent_id, state, reason, sum(seconds), sum(calls)::int FROM report_agent_time"
                    " WHERE quarter >= %s AND quarter < %s GROUP BY 1, 2, 3",
                    (start, end),
                )
                for agent, state, reason, seconds, calls in await cur.fetchall():
                    add_agent_time(out, str(agent), str(state), reason, float(seconds), int(calls))
        for start, end in rest:
            while start < end:  # a day at a time: a month of changes need not be in memory at once
                edge = min(end, start + DAY)
                # A day's fold is CPU work (a second or so at a busy center's volume): off the loop.
                changes = await self.state_changes(start, edge)
                quarters = await asyncio.to_thread(agent_buckets, changes, start, edge)
                for agent, _, state, reason, seconds, calls in quarters:
                    add_agent_time(out, agent, state, reason, seconds, calls)
                start = edge
        return out

    async def _split(
        self, since: datetime, until: datetime
    ) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
        """[since, until) as kept stretches (whole days of the center that are summed up) and
        the rest, to read from the events."""
        day = center_day(since, self.zone)
        if day_bounds(day, self.zone)[0] < since:
            day += DAY
        kept_days = await self._kept_between(day, center_day(until, self.zone)) if self._keep else set()
        kept: list[tuple[datetime, datetime]] = []
        rest: list[tuple[datetime, datetime]] = []
        at = since
        while (bounds := day_bounds(day, self.zone))[1] <= until:
            start, end = bounds
            if day in kept_days:
                if at < start:
                    rest.append((at, start))
                if kept and kept[-1][1] == start:
                    kept[-1] = (kept[-1][0], end)
                else:
                    kept.append((start, end))
                at = end
            day += DAY
        if at < until:
            rest.append((at, until))
        return kept, rest

    async def _kept_between(self, first: date, last: date) -> set[date]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT day FROM report_days_kept WHERE day >= %s AND day <= %s AND zone = %s",
                (first, last, str(self.zone)),
            )
            return {d for (d,) in await cur.fetchall()}

    # -- summing a day up (the nightly job) ---------------------------------------------------

    async def kept_days(self, since: date) -> set[date]:
        """The days from `since` on that are summed up."""
        return await self._kept_between(since, date.max)

    async def forget_other_zone(self) -> str | None:
        """Drop every summary when they were cut in another time zone than the center's now
        (days no longer line up with them); the zone they had, or None when nothing changed."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('report_days_kept'))")
            cur = await conn.execute(
                "SELECT zone FROM report_days_kept WHERE zone <> %s LIMIT 1", (str(self.zone),)
            )
            row = await cur.fetchone()
            if row is None:
                return None
            for table in ("report_agent_time", "report_calls", "report_days_kept"):
                await conn.execute(f"DELETE FROM {table}")  # our own names
            return str(row[0])

    async def first_day(self) -> date | None:
        """The center's day of the oldest call or agent state change: where summaries begin."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT least((SELECT min(at) FROM interaction_events WHERE kind = 'queued'),"
                " (SELECT min(at) FROM agent_state_events))"
            )
            row = await cur.fetchone()
        return None if row is None or row[0] is None else center_day(row[0], self.zone)

    async def summarise(self, day: date) -> int | None:
        """Sum up the center's `day` (a day that is over): its calls' facts and its agents'
        quarter hours, in one transaction. The number of calls summed up; 0 when it was kept
        already; None when a call that joined a line that day is still going on (not yet)."""
        start, end = day_bounds(day, self.zone)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM interactions WHERE ended_at IS NULL AND arrived_at < %(end)s"
                " AND queued_at >= %(start)s AND queued_at < %(end)s LIMIT 1",
                {"start": start, "end": end},
            )
            if await cur.fetchone():
                return None
            changes = await self.state_changes(start, end)
            async with conn.transaction(), conn.cursor() as cursor:
                return await self._keep_day(cursor, day, start, end, changes)

    async def _keep_day(
        self, cur: AsyncCursor[Any], day: date, start: datetime, end: datetime, changes: list[StateChange]
    ) -> int:
        # Two processes summing up the same day at once: the second waits here, then finds it kept.
        await cur.execute("SELECT pg_advisory_xact_lock(hashtext('report_days_kept'))")
        await cur.execute("SELECT 1 FROM report_days_kept WHERE day = %s", (day,))
        if await cur.fetchone():
            return 0
        await cur.execute(
            "INSERT INTO report_calls"
            " (interaction_id, queue, tier, queued_at, answered_at, ended_at, outcome) " + _RAW_CALLS,
            {"since": start, "until": end},
        )
        calls = max(0, cur.rowcount)
        rows = await asyncio.to_thread(agent_buckets, changes, start, end)
        if rows:
            await cur.executemany(
                "INSERT INTO report_agent_time (agent_id, quarter, state, reason, seconds, calls)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )
        await cur.execute("INSERT INTO report_days_kept (day, zone) VALUES (%s, %s)", (day, str(self.zone)))
        return calls

    # -- the rest, read as it is ---------------------------------------------------------------

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
                # a replay of a recorded call (app/replay/) is not a caller
                " AND NOT EXISTS (SELECT 1 FROM interaction_events r"
                "  WHERE r.interaction_id = e.interaction_id AND r.kind = 'replay')"
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
