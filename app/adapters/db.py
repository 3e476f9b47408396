"""PostgreSQL: finding the server, numbered migrations, and the interaction store."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.config import AgentSettings, SampleData
from app.domain.agent_state import AgentSnapshot, AgentState, AgentStateEvent
from app.domain.callback import Callback, CallbackSource, CallbackStatus
from app.domain.campaign import CallResult, DialAttempt, Lead, LeadStatus
from app.domain.interaction import Interaction, InteractionEvent, Phase
from app.domain.voicemail import Voicemail
from app.errors import AppError, BadRecord

log = logging.getLogger(__name__)

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/lianluo"
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# Any constant will do; it only has to be the same for every Lianluo process.
_MIGRATION_LOCK = 0x4C69616E


class DatabaseError(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("database-error", message, {}, 503)


def resolve_url(configured: str | None) -> str:
    """Configured URL, else DATABASE_URL, else the local server on 127.0.0.1:5432."""
    return configured or os.environ.get("DATABASE_URL") or LOCAL_SERVER


async def ensure_database(url: str) -> None:
    """Create the database named in the URL if the server lacks it."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    dbname = info.get("dbname")
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
        await conn.close()
        return
    except psycopg.OperationalError as exc:
        if not dbname or "does not exist" not in str(exc):
            raise DatabaseError(f"cannot connect to PostgreSQL at {safe_url(url)}: {exc}") from exc
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True, connect_timeout=5) as conn:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))
    except psycopg.errors.DuplicateDatabase:
        pass
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot create database {dbname}: {exc}") from exc
    log.info("created database %s", dbname)


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for logs and banners."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def migration_files() -> list[tuple[int, str, str]]:
    out = []
    for entry in resources.files("app.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"two migrations share a number: {[n for _, n, _ in out]}")
    return out


async def migrate(pool: AsyncConnectionPool) -> list[str]:
    """Apply pending migrations in order, each in its own transaction, under a lock."""
    applied: list[str] = []
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.commit()
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, name, text in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(text.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                log.info("applied migration %s", name)
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
            await conn.commit()
    return applied


@dataclass(frozen=True)
class PastInteraction:
    id: str
    queue: str
    tier: str | None
    queued_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    agent_id: str | None


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    vip: bool
    tier: str
    value: float
    language: str | None = None  # their stored preference (en, zh); None: asked, or by number


_UPSERT_INTERACTION = (
    "INSERT INTO interactions (id, caller_channel_id, ani, dnis, customer_id, phase, arrived_at, direction,"
    " callback_id, ivr_digits, queued_at, answered_at, ended_at, queue_wait_ms, agent_id, outcome, queue,"
    " tier, collected, skills, legs, language)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET phase = EXCLUDED.phase, ivr_digits = EXCLUDED.ivr_digits,"
    " queued_at = EXCLUDED.queued_at, answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,"
    " queue_wait_ms = EXCLUDED.queue_wait_ms, agent_id = EXCLUDED.agent_id, outcome = EXCLUDED.outcome,"
    # A profile an agent created during the call (the panel) is kept.
    " customer_id = COALESCE(EXCLUDED.customer_id, interactions.customer_id),"
    " queue = EXCLUDED.queue, tier = EXCLUDED.tier, collected = EXCLUDED.collected,"
    " skills = EXCLUDED.skills, legs = EXCLUDED.legs, language = EXCLUDED.language"
)


@contextlib.contextmanager
def _bad_record() -> Iterator[None]:
    """A value PostgreSQL cannot store or a broken reference: not worth retrying as it is."""
    try:
        yield
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        raise BadRecord(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def _interaction_row(it: Interaction) -> tuple[Any, ...]:
    return (
        it.id,
        it.caller_channel_id,
        it.ani,
        it.dnis,
        it.customer_id,
        it.phase.value,
        it.arrived_at,
        it.direction,
        it.callback_id,
        it.digits,
        it.queued_at,
        it.answered_at,
        it.ended_at,
        it.queue_wait_ms,
        it.agent_id,
        it.outcome.value if it.outcome else None,
        it.queue,
        it.tier,
        Jsonb(it.collected),
        Jsonb(it.skills),
        Jsonb(it.legs),
        it.language,
    )


class Store:
    """Everything the call flows read and write in PostgreSQL."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def ping(self) -> bool:
        try:
            async with self.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:
            return False

    async def add_sample_data(self, data: SampleData) -> int:
        """The configuration's sample rows, where missing: a row someone has since changed (a
        balance, an order's status) stays as they left it. Returns how many rows were added."""
        added = 0
        async with self.pool.connection() as conn, conn.transaction():
            for c in data.customers:
                cur = await conn.execute(
                    "INSERT INTO customers (name, phone, tier, vip, language) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (phone) DO NOTHING",
                    (c.name, c.phone, c.tier, c.vip, c.language),
                )
                added += cur.rowcount
            for a in data.accounts:
                cur = await conn.execute(
                    "INSERT INTO accounts (account_number, balance, customer_id)"
                    " VALUES (%s, %s, (SELECT id FROM customers WHERE phone = %s))"
                    " ON CONFLICT (account_number) DO NOTHING",
                    (a.account_number, Decimal(str(a.balance)), a.customer_phone),
                )
                added += cur.rowcount
            for o in data.orders:
                cur = await conn.execute(
                    "INSERT INTO orders (order_number, status) VALUES (%s, %s)"
                    " ON CONFLICT (order_number) DO NOTHING",
                    (o.order_number, o.status),
                )
                added += cur.rowcount
        return added

    async def sync_agents(self, agents: Sequence[AgentSettings]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            for a in agents:
                await conn.execute(
                    "INSERT INTO agents (id, name) VALUES (%s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, active = true, updated_at = now()",
                    (a.id, a.name),
                )
            await conn.execute(
                "UPDATE agents SET active = false, updated_at = now() WHERE NOT (id = ANY(%s))",
                ([a.id for a in agents],),
            )

    async def customer_by_phone(self, phone: str) -> Customer | None:
        if not phone:
            return None
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, name, vip, tier, value, language FROM customers WHERE phone = %s", (phone,)
            )
            row = await cur.fetchone()
        return Customer(row[0], row[1], row[2], row[3], float(row[4]), row[5]) if row else None

    async def last_agent_for(self, customer_id: int | None, ani: str, since: datetime) -> str | None:
        """The agent who last talked with this customer (or this number), if recent enough."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT agent_id FROM interactions"
                " WHERE agent_id IS NOT NULL AND answered_at >= %s"
                " AND (customer_id = %s OR (%s::bigint IS NULL AND ani = %s))"
                " ORDER BY answered_at DESC LIMIT 1",
                (since, customer_id, customer_id, ani),
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def save_agent_events(
        self, events: Sequence[AgentStateEvent], now: Mapping[str, AgentSnapshot]
    ) -> None:
        """State changes into the history, and each agent's state as it stands now."""
        if not events:
            return
        with _bad_record():
            async with self.pool.connection() as conn, conn.transaction():
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO agent_state_events"
                        " (agent_id, at, from_state, to_state, reason, interaction_id)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        [
                            (
                                e.agent_id,
                                e.at,
                                e.from_state.value,
                                e.to_state.value,
                                e.reason,
                                e.interaction_id,
                            )
                            for e in events
                        ],
                    )
                    await cur.executemany(
                        "UPDATE agents SET state = %s, state_since = %s, not_ready_reason = %s,"
                        " interaction_id = %s, wrap_up_until = %s, logged_in_at = %s, updated_at = now()"
                        " WHERE id = %s",
                        [
                            (
                                s.state.value,
                                s.since,
                                s.reason,
                                s.interaction_id,
                                s.wrap_up_until,
                                s.logged_in_at,
                                agent_id,
                            )
                            for agent_id, s in now.items()
                        ],
                    )

    async def agent_snapshots(self) -> dict[str, AgentSnapshot]:
        """Every active agent's state as last stored."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT id, state, state_since, not_ready_reason, interaction_id, wrap_up_until, logged_in_at"
                " FROM agents WHERE active"
            )
            rows = await cur.fetchall()
        return {
            r["id"]: AgentSnapshot(
                AgentState(r["state"]),
                r["state_since"],
                r["not_ready_reason"],
                str(r["interaction_id"]) if r["interaction_id"] else None,
                r["wrap_up_until"],
                r["logged_in_at"],
            )
            for r in rows
        }

    async def routing_history(self, since: datetime) -> list[PastInteraction]:
        """Interactions that waited in a queue since a time, oldest answer or end first: what the
        desk's statistics (speed of answer, handle times, rotations) are rebuilt from at start."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, queue, tier, queued_at, answered_at, ended_at, outcome, agent_id"
                " FROM interactions WHERE queue IS NOT NULL AND queued_at >= %s"
                " ORDER BY coalesce(answered_at, ended_at, queued_at)",
                (since,),
            )
            rows = await cur.fetchall()
        return [PastInteraction(str(r[0]), *r[1:]) for r in rows]

    async def skill_overrides(self) -> dict[str, dict[str, int | None]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT agent_id, skill, level FROM agent_skill_overrides")
            rows = await cur.fetchall()
        out: dict[str, dict[str, int | None]] = {}
        for agent_id, skill, level in rows:
            out.setdefault(agent_id, {})[skill] = level
        return out

    async def set_skill_override(self, agent_id: str, skill: str, level: int | None, changed_by: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO agent_skill_overrides (agent_id, skill, level, changed_by)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (agent_id, skill) DO UPDATE"
                " SET level = EXCLUDED.level, changed_by = EXCLUDED.changed_by, changed_at = now()",
                (agent_id, skill, level, changed_by),
            )

    async def write_interactions(
        self, batch: Sequence[tuple[Interaction, bool, Sequence[InteractionEvent]]]
    ) -> None:
        """Interactions' current state and their new events, many in one transaction (the
        interaction writer's batch). A row is inserted the first time, updated after."""
        if not batch:
            return
        with _bad_record():
            async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.executemany(_UPSERT_INTERACTION, [_interaction_row(it) for it, _, _ in batch])
                events = [(it.id, e.at, e.kind, Jsonb(e.data)) for it, _, evs in batch for e in evs]
                if events:
                    await cur.executemany(
                        "INSERT INTO interaction_events (interaction_id, at, kind, data)"
                        " VALUES (%s, %s, %s, %s)",
                        events,
                    )

    async def work_waiting(self) -> dict[str, tuple[int, int]]:
        """Per queue: callbacks not yet done (waiting or being dialled) and voicemails not yet
        handled, for the wallboard."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT queue, sum(callbacks)::int, sum(voicemails)::int FROM ("
                " SELECT queue, count(*) AS callbacks, 0 AS voicemails FROM callbacks"
                "  WHERE status IN ('waiting', 'dialing') GROUP BY queue"
                " UNION ALL SELECT coalesce(queue, ''), 0, count(*) FROM voicemails"
                "  WHERE status = 'new' GROUP BY queue) t GROUP BY queue"
            )
            return {str(q): (int(c), int(v)) for q, c, v in await cur.fetchall()}

    async def queue_events_since(self, since: datetime) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        """The events the wallboard folds (joining a queue, answered, ended) since a time, in order."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT interaction_id::text, kind, at, data FROM interaction_events"
                " WHERE at >= %s AND kind IN ('queued', 'connected', 'ended') ORDER BY at, id",
                (since,),
            )
            return [(str(i), str(k), at, dict(d or {})) for i, k, at, d in await cur.fetchall()]

    async def open_interactions(self) -> list[Interaction]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM interactions WHERE ended_at IS NULL ORDER BY arrived_at")
            rows = await cur.fetchall()
        return [
            Interaction(
                id=str(r["id"]),
                caller_channel_id=r["caller_channel_id"] or "",
                ani=r["ani"],
                dnis=r["dnis"],
                arrived_at=r["arrived_at"],
                customer_id=r["customer_id"],
                phase=Phase(r["phase"]),
                digits=r["ivr_digits"],
                queued_at=r["queued_at"],
                answered_at=r["answered_at"],
                agent_id=r["agent_id"],
                queue=r["queue"],
                tier=r["tier"],
                direction=r["direction"],
                callback_id=str(r["callback_id"]) if r["callback_id"] else None,
                collected={str(k): str(v) for k, v in (r["collected"] or {}).items()},
                skills={str(k): int(v) for k, v in (r["skills"] or {}).items()},
                legs=dict(r["legs"] or {}),
                language=r["language"],
            )
            for r in rows
        ]

    # -- callbacks ------------------------------------------------------------

    async def create_callback(self, cb: Callback) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO callbacks (id, phone, queue, tier, customer_id, origin_interaction_id, source,"
                " place_at, requested_at, status, attempts, not_before, last_result, agent_id, data,"
                " language)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    cb.id,
                    cb.phone,
                    cb.queue,
                    cb.tier,
                    cb.customer_id,
                    cb.origin_interaction_id,
                    cb.source.value,
                    cb.place_at,
                    cb.requested_at,
                    cb.status.value,
                    cb.attempts,
                    cb.not_before,
                    cb.last_result,
                    cb.agent_id,
                    Jsonb(cb.data),
                    cb.language,
                ),
            )

    async def save_callback(self, cb: Callback) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE callbacks SET queue = %s, status = %s, attempts = %s, not_before = %s,"
                " last_result = %s, agent_id = %s, updated_at = now() WHERE id = %s",
                (cb.queue, cb.status.value, cb.attempts, cb.not_before, cb.last_result, cb.agent_id, cb.id),
            )

    async def callbacks(self, open_only: bool = False, limit: int = 200) -> list[Callback]:
        where = "WHERE status IN ('waiting', 'dialing')" if open_only else ""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT * FROM callbacks {where} ORDER BY place_at DESC LIMIT %s",
                (limit,),
            )
            rows = await cur.fetchall()
        return [
            Callback(
                id=str(r["id"]),
                phone=r["phone"],
                queue=r["queue"],
                place_at=r["place_at"],
                requested_at=r["requested_at"],
                source=CallbackSource(r["source"]),
                tier=r["tier"],
                customer_id=r["customer_id"],
                origin_interaction_id=str(r["origin_interaction_id"]) if r["origin_interaction_id"] else None,
                status=CallbackStatus(r["status"]),
                attempts=r["attempts"],
                not_before=r["not_before"],
                last_result=r["last_result"],
                agent_id=r["agent_id"],
                data=r["data"],
                language=r["language"],
            )
            for r in rows
        ]

    # -- voicemail ------------------------------------------------------------

    async def create_voicemail(self, vm: Voicemail) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO voicemails (id, interaction_id, phone, queue, customer_id, recorded_at,"
                " duration_s, file_path, size_bytes, status, callback_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    vm.id,
                    vm.interaction_id,
                    vm.phone,
                    vm.queue,
                    vm.customer_id,
                    vm.recorded_at,
                    vm.duration_s,
                    vm.file_path,
                    vm.size_bytes,
                    vm.status,
                    vm.callback_id,
                ),
            )

    async def voicemail_emailed(self, voicemail_id: str, at: datetime | None, error: str | None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE voicemails SET emailed_at = %s, email_error = %s WHERE id = %s",
                (at, error, voicemail_id),
            )

    async def voicemails(self, new_only: bool = False, limit: int = 200) -> list[Voicemail]:
        where = "WHERE status = 'new'" if new_only else ""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT * FROM voicemails {where} ORDER BY recorded_at DESC LIMIT %s", (limit,)
            )
            rows = await cur.fetchall()
        return [
            Voicemail(
                id=str(r["id"]),
                interaction_id=str(r["interaction_id"]),
                phone=r["phone"],
                queue=r["queue"],
                customer_id=r["customer_id"],
                recorded_at=r["recorded_at"],
                duration_s=float(r["duration_s"]) if r["duration_s"] is not None else None,
                file_path=r["file_path"],
                size_bytes=r["size_bytes"],
                status=r["status"],
                callback_id=str(r["callback_id"]) if r["callback_id"] else None,
                emailed_at=r["emailed_at"],
                email_error=r["email_error"],
            )
            for r in rows
        ]

    # -- self-service ---------------------------------------------------------

    async def self_service(self, lookup: str, key: str) -> dict[str, str] | None:
        """A named lookup the IVR reads back; the fields fill the flow's prompt. Fixed SQL only:
        flow files name a lookup, they never carry SQL."""
        queries = {
            "account_balance": "SELECT a.account_number, a.balance, a.currency, coalesce(c.name, '') AS name"
            " FROM accounts a LEFT JOIN customers c ON c.id = a.customer_id WHERE a.account_number = %s",
            "order_status": "SELECT o.order_number, o.status, coalesce(c.name, '') AS name"
            " FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE o.order_number = %s",
        }
        query = queries.get(lookup)
        if query is None:
            raise DatabaseError(f"unknown self-service lookup {lookup!r}")
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, (key,))
            row = await cur.fetchone()
        if row is None:
            return None
        return {k: _spoken(v) for k, v in row.items()}

    # -- campaigns ------------------------------------------------------------

    async def import_leads(
        self, campaign: str, rows: Sequence[tuple[str, str, str | None, dict[str, str], str | None]]
    ) -> tuple[int, int, int]:
        """(new, updated, on the do-not-call list). A known lead keeps its attempts and results."""
        inserted = updated = 0
        async with self.pool.connection() as conn, conn.transaction():
            for phone, name, tz, attributes, language in rows:
                cur = await conn.execute(
                    "INSERT INTO campaign_leads (campaign, phone, name, timezone, attributes, language)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (campaign, phone) DO UPDATE"
                    " SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,"
                    " attributes = EXCLUDED.attributes, language = EXCLUDED.language"
                    " RETURNING (xmax = 0)",
                    (campaign, phone, name, tz, Jsonb(attributes), language),
                )
                row = await cur.fetchone()
                if row is not None and row[0]:
                    inserted += 1
                else:
                    updated += 1
            cur = await conn.execute(
                "SELECT count(*) FROM campaign_leads l JOIN dnc_numbers d ON d.phone = l.phone"
                " WHERE l.campaign = %s AND l.phone = ANY(%s)",
                (campaign, [r[0] for r in rows]),
            )
            dnc = await cur.fetchone()
        return inserted, updated, int(dnc[0]) if dnc else 0

    async def add_dnc(self, phones: Sequence[str], source: str) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            added = 0
            for phone in phones:
                cur = await conn.execute(
                    "INSERT INTO dnc_numbers (phone, source) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (phone, source),
                )
                added += cur.rowcount
        return added

    async def reset_dialing(self, keep: Sequence[int] = ()) -> int:
        """Leads left mid-dial by a stop go back to pending (the call, if any, is over), but for
        `keep`: leads whose call is still being followed."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE campaign_leads SET status = 'pending' WHERE status = 'dialing' AND id <> ALL(%s)",
                (list(keep),),
            )
            return cur.rowcount

    async def open_dial_attempts(self) -> list[tuple[DialAttempt, Lead]]:
        """Calls placed that have no end yet (the app stopped while they went on), with their lead."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT a.*, l.phone AS lead_phone, l.timezone, l.attributes, l.language, l.status,"
                " l.attempts, l.results, l.next_attempt_at, l.locked_until, l.last_result"
                " FROM dial_attempts a JOIN campaign_leads l ON l.id = a.lead_id WHERE a.ended_at IS NULL"
            )
            rows = await cur.fetchall()
        return [
            (
                DialAttempt(
                    id=str(r["id"]),
                    campaign=r["campaign"],
                    lead_id=r["lead_id"],
                    phone=r["phone"],
                    trunk=r["trunk"],
                    started_at=r["started_at"],
                    answered_at=r["answered_at"],
                    result=CallResult(r["result"]) if r["result"] else None,
                    amd_status=r["amd_status"],
                    live_answer=r["live_answer"],
                    abandoned=r["abandoned"],
                    message_started_at=r["message_started_at"],
                    agent_id=r["agent_id"],
                    interaction_id=str(r["interaction_id"]) if r["interaction_id"] else None,
                ),
                _lead({**r, "id": r["lead_id"], "phone": r["lead_phone"]}),
            )
            for r in rows
        ]

    async def candidate_leads(self, campaign: str, now: datetime, limit: int) -> list[Lead]:
        """Pending leads whose pause and lockout are over, not on the do-not-call list, oldest first.
        The campaign's own rules (window, exclusions) are applied by the caller."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM campaign_leads l WHERE l.campaign = %s AND l.status = 'pending'"
                " AND (l.next_attempt_at IS NULL OR l.next_attempt_at <= %s)"
                " AND (l.locked_until IS NULL OR l.locked_until <= %s)"
                " AND NOT EXISTS (SELECT 1 FROM dnc_numbers d WHERE d.phone = l.phone)"
                " ORDER BY coalesce(l.next_attempt_at, l.imported_at), l.id LIMIT %s",
                (campaign, now, now, limit),
            )
            rows = await cur.fetchall()
        return [_lead(r) for r in rows]

    async def save_lead(self, lead: Lead) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE campaign_leads SET status = %s, attempts = %s, results = %s, next_attempt_at = %s,"
                " locked_until = %s, last_result = %s WHERE id = %s",
                (
                    lead.status.value,
                    lead.attempts,
                    Jsonb(lead.results),
                    lead.next_attempt_at,
                    lead.locked_until,
                    lead.last_result.value if lead.last_result else None,
                    lead.id,
                ),
            )

    async def save_dial_attempt(self, a: DialAttempt) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO dial_attempts (id, campaign, lead_id, phone, trunk, started_at, answered_at,"
                " ended_at, result, amd_status, live_answer, abandoned, message_started_at, agent_id,"
                " interaction_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET answered_at = EXCLUDED.answered_at,"
                " ended_at = EXCLUDED.ended_at, result = EXCLUDED.result, amd_status = EXCLUDED.amd_status,"
                " live_answer = EXCLUDED.live_answer, abandoned = EXCLUDED.abandoned,"
                " message_started_at = EXCLUDED.message_started_at, agent_id = EXCLUDED.agent_id,"
                " interaction_id = EXCLUDED.interaction_id",
                (
                    a.id,
                    a.campaign,
                    a.lead_id,
                    a.phone,
                    a.trunk,
                    a.started_at,
                    a.answered_at,
                    a.ended_at,
                    a.result.value if a.result else None,
                    a.amd_status,
                    a.live_answer,
                    a.abandoned,
                    a.message_started_at,
                    a.agent_id,
                    a.interaction_id,
                ),
            )

    async def live_answers(self, campaign: str, since: datetime) -> list[tuple[datetime, int, int]]:
        """A campaign's live answers since a time, by minute: (minute, answers, abandoned)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT date_trunc('minute', started_at), count(*), count(*) FILTER (WHERE abandoned)"
                " FROM dial_attempts WHERE campaign = %s AND live_answer AND started_at >= %s"
                " GROUP BY 1 ORDER BY 1",
                (campaign, since),
            )
            rows = await cur.fetchall()
        return [(r[0], int(r[1]), int(r[2])) for r in rows]

    async def abandon_counts(self, campaign: str, since: datetime) -> tuple[int, int]:
        """(abandoned, live answers) since a time: the abandon rate's own numerator and denominator."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FILTER (WHERE abandoned), count(*) FROM dial_attempts"
                " WHERE campaign = %s AND live_answer AND started_at >= %s",
                (campaign, since),
            )
            row = await cur.fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


def _lead(r: Mapping[str, Any]) -> Lead:
    return Lead(
        id=r["id"],
        phone=r["phone"],
        timezone=r["timezone"],
        attributes=dict(r["attributes"]),
        language=r.get("language"),
        status=LeadStatus(r["status"]),
        attempts=r["attempts"],
        results=dict(r["results"]),
        next_attempt_at=r["next_attempt_at"],
        locked_until=r["locked_until"],
        last_result=CallResult(r["last_result"]) if r["last_result"] else None,
    )


def _spoken(value: object) -> str:
    """Numbers as a voice reads them: 1234.50 -> "1234.50", no exponent, no thousands separators."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
