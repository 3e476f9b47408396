"""PostgreSQL for the agent panel's screen pop and after-call work.

Reads everything a pop shows about one interaction in one connection (the interaction, its
events, the customer, a callback and its voicemail, the customer's recent history), and
writes dispositions, notes and customer profiles created from the panel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.domain.screen_pop import HISTORY_SIZE, TOUCHED_KINDS, EventRecord, NewCustomer
from app.errors import AppError

log = logging.getLogger(__name__)


class CustomerExists(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("customer-exists", message, {}, 409)


@dataclass(frozen=True)
class CustomerProfile:
    id: int
    name: str
    phone: str | None
    account_number: str | None
    email: str | None
    tier: str
    vip: bool
    notes: str


@dataclass(frozen=True)
class VoicemailFacts:
    id: str
    recorded_at: datetime
    duration_s: float | None


@dataclass(frozen=True)
class CallbackFacts:
    id: str
    source: str
    requested_at: datetime
    attempts: int
    origin_interaction_id: str | None
    voicemail: VoicemailFacts | None


@dataclass(frozen=True)
class PastInteraction:
    id: str
    arrived_at: datetime
    direction: str
    queue: str | None
    outcome: str | None
    agent_id: str | None
    agent_name: str | None
    disposition: str | None
    notes: str


@dataclass(frozen=True)
class InteractionOwner:
    agent_id: str | None  # who has the call now (or had it last), once connected
    ani: str
    customer_id: int | None
    callback_id: str | None
    # Every agent who talked with the caller: the first one, those a transfer reached, and
    # those who joined a consultation or conference. Each may write the call's notes.
    handled_by: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PopContext:
    id: str
    direction: str
    ani: str
    dnis: str
    arrived_at: datetime
    queue: str | None
    tier: str | None
    ivr_digits: str
    agent_id: str | None  # who took the call, once connected
    disposition: str | None
    notes: str
    disposition_at: datetime | None
    customer: CustomerProfile | None
    callback: CallbackFacts | None
    events: list[EventRecord]  # the callback's original call first, then this interaction's
    history: list[PastInteraction]


# Events naming an agent who touched the interaction (app/domain/screen_pop.py), in SQL.
_HANDLED_KINDS = ", ".join(f"'{kind}'" for kind in sorted(TOUCHED_KINDS))
_CUSTOMER = "SELECT id, name, phone, account_number, email, tier, vip, notes FROM customers"


def _customer(row: dict[str, Any] | None) -> CustomerProfile | None:
    if row is None:
        return None
    return CustomerProfile(
        int(row["id"]),
        row["name"],
        row["phone"],
        row["account_number"],
        row["email"],
        row["tier"],
        bool(row["vip"]),
        row["notes"] or "",
    )


class PopStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def context(self, interaction_id: str) -> PopContext | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM interactions WHERE id = %s", (interaction_id,))
            it = await cur.fetchone()
            if it is None:
                return None
            if it["customer_id"] is not None:
                await cur.execute(_CUSTOMER + " WHERE id = %s", (it["customer_id"],))
            else:
                await cur.execute(_CUSTOMER + " WHERE phone = %s", (it["ani"],))
            customer = _customer(await cur.fetchone())
            callback = await self._callback(cur, it["callback_id"])
            events: list[EventRecord] = []
            if callback is not None and callback.origin_interaction_id:
                events += await self._events(cur, callback.origin_interaction_id)
            events += await self._events(cur, interaction_id)
            await cur.execute(
                "SELECT i.id, i.arrived_at, i.direction, i.queue, i.outcome, i.agent_id,"
                " a.name AS agent_name, i.disposition, i.notes"
                " FROM interactions i LEFT JOIN agents a ON a.id = i.agent_id"
                " WHERE i.id <> %s AND (i.customer_id = %s OR (i.customer_id IS NULL AND i.ani = %s))"
                " AND NOT i.legs ? 'replay'"  # a replay of a recorded call (app/replay/) is no contact
                " ORDER BY i.arrived_at DESC LIMIT %s",
                (interaction_id, customer.id if customer else None, it["ani"], HISTORY_SIZE),
            )
            history = [
                PastInteraction(
                    str(r["id"]),
                    r["arrived_at"],
                    r["direction"],
                    r["queue"],
                    r["outcome"],
                    r["agent_id"],
                    r["agent_name"],
                    r["disposition"],
                    r["notes"] or "",
                )
                for r in await cur.fetchall()
            ]
        return PopContext(
            id=str(it["id"]),
            direction=it["direction"],
            ani=it["ani"],
            dnis=it["dnis"],
            arrived_at=it["arrived_at"],
            queue=it["queue"],
            tier=it["tier"],
            ivr_digits=it["ivr_digits"] or "",
            agent_id=it["agent_id"],
            disposition=it["disposition"],
            notes=it["notes"] or "",
            disposition_at=it["disposition_at"],
            customer=customer,
            callback=callback,
            events=events,
            history=history,
        )

    @staticmethod
    async def _events(cur: psycopg.AsyncCursor[dict[str, Any]], interaction_id: str) -> list[EventRecord]:
        await cur.execute(
            "SELECT at, kind, data FROM interaction_events WHERE interaction_id = %s ORDER BY id",
            (interaction_id,),
        )
        return [EventRecord(r["at"], r["kind"], r["data"] or {}) for r in await cur.fetchall()]

    @staticmethod
    async def _callback(cur: psycopg.AsyncCursor[dict[str, Any]], callback_id: Any) -> CallbackFacts | None:
        if callback_id is None:
            return None
        await cur.execute(
            "SELECT id, source, requested_at, attempts, origin_interaction_id FROM callbacks WHERE id = %s",
            (callback_id,),
        )
        cb = await cur.fetchone()
        if cb is None:
            return None
        await cur.execute(
            "SELECT id, recorded_at, duration_s FROM voicemails WHERE callback_id = %s"
            " ORDER BY recorded_at DESC LIMIT 1",
            (callback_id,),
        )
        vm = await cur.fetchone()
        return CallbackFacts(
            str(cb["id"]),
            cb["source"],
            cb["requested_at"],
            int(cb["attempts"]),
            str(cb["origin_interaction_id"]) if cb["origin_interaction_id"] else None,
            VoicemailFacts(
                str(vm["id"]),
                vm["recorded_at"],
                float(vm["duration_s"]) if vm["duration_s"] is not None else None,
            )
            if vm
            else None,
        )

    async def owner(self, interaction_id: str) -> InteractionOwner | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT agent_id, ani, customer_id, callback_id, ARRAY("
                " SELECT DISTINCT e.data->>'agent_id' FROM interaction_events e"
                f" WHERE e.interaction_id = i.id AND e.kind IN ({_HANDLED_KINDS})"
                " AND e.data->>'agent_id' IS NOT NULL)"
                " FROM interactions i WHERE id = %s",
                (interaction_id,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        handled = frozenset(row[4]) | ({row[0]} if row[0] else frozenset())
        return InteractionOwner(row[0], row[1], row[2], str(row[3]) if row[3] else None, handled)

    async def save_disposition(
        self, interaction_id: str, agent_id: str, code: str, notes: str, at: datetime
    ) -> bool:
        """Store the code and notes, and a `disposition` event, in one transaction. Only an agent
        who talked with the caller can (see `InteractionOwner.handled_by`): False (and nothing
        written) for anyone else. The row keeps the latest code; the events keep every one."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE interactions i SET disposition = %s, notes = %s, disposition_by = %s,"
                " disposition_at = %s WHERE id = %s AND (agent_id = %s OR EXISTS ("
                " SELECT 1 FROM interaction_events e WHERE e.interaction_id = i.id"
                f" AND e.kind IN ({_HANDLED_KINDS}) AND e.data->>'agent_id' = %s)) RETURNING id",
                (code, notes, agent_id, at, interaction_id, agent_id, agent_id),
            )
            if await cur.fetchone() is None:
                return False
            await conn.execute(
                "INSERT INTO interaction_events (interaction_id, at, kind, data)"
                " VALUES (%s, %s, 'disposition', %s)",
                (interaction_id, at, Jsonb({"code": code, "notes": notes, "agent_id": agent_id})),
            )
        return True

    async def create_customer(self, new: NewCustomer, interaction_id: str | None) -> CustomerProfile:
        """A new customer profile, linked to the interaction if it has no customer yet."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(
                    "INSERT INTO customers (name, phone, account_number, email, notes)"
                    " VALUES (%s, %s, %s, %s, %s)"
                    " RETURNING id, name, phone, account_number, email, tier, vip, notes",
                    (new.name, new.phone, new.account_number, new.email, new.notes),
                )
                customer = _customer(await cur.fetchone())
                assert customer is not None
                if interaction_id is not None:
                    await cur.execute(
                        "UPDATE interactions SET customer_id = %s WHERE id = %s AND customer_id IS NULL",
                        (customer.id, interaction_id),
                    )
        except psycopg.errors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name or ""
            which = "account number" if "account_number" in constraint else "phone number"
            raise CustomerExists(f"a customer with this {which} already exists") from exc
        return customer

    async def voicemail_callback(self, voicemail_id: str) -> tuple[bool, str | None]:
        """(whether the voicemail exists, the callback it became)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT callback_id FROM voicemails WHERE id = %s", (voicemail_id,))
            row = await cur.fetchone()
        return (row is not None, str(row[0]) if row and row[0] else None)

    async def agent_took_callback(self, agent_id: str, callback_id: str) -> bool:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM interactions WHERE callback_id = %s AND agent_id = %s LIMIT 1",
                (callback_id, agent_id),
            )
            return await cur.fetchone() is not None
