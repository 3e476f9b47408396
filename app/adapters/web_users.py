"""PostgreSQL for the agent panel: users, sessions and failed sign-ins (migration 004).

Every timestamp is passed in by the caller (the panel's clock), never taken from the
server's now(), so expiry rules see one clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from app.domain.access import Role


@dataclass(frozen=True)
class UserRecord:
    username: str
    display_name: str
    role: Role
    agent_id: str | None
    password_hash: str
    active: bool


@dataclass(frozen=True)
class SessionRecord:
    token_hash: bytes
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    user: UserRecord


_USER_COLUMNS = "u.username, u.display_name, u.role, u.agent_id, u.password_hash, u.active"


def _user(row: Sequence[object]) -> UserRecord:
    username, name, role, agent_id, password_hash, active = row
    return UserRecord(
        str(username),
        str(name),
        Role(str(role)),
        None if agent_id is None else str(agent_id),
        str(password_hash),
        bool(active),
    )


class WebUserStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- users ------------------------------------------------------------------

    async def users(self) -> dict[str, UserRecord]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT {_USER_COLUMNS} FROM web_users u")
            return {r.username: r for r in map(_user, await cur.fetchall())}

    async def active_user(self, username: str) -> UserRecord | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_USER_COLUMNS} FROM web_users u WHERE u.username = %s AND u.active", (username,)
            )
            row = await cur.fetchone()
        return _user(row) if row else None

    async def save_user(
        self, username: str, display_name: str, role: Role, agent_id: str | None, password_hash: str | None
    ) -> None:
        """Create or update a user; a new `password_hash` also ends the user's sessions."""
        async with self.pool.connection() as conn, conn.transaction():
            if password_hash is None:
                await conn.execute(
                    "UPDATE web_users SET display_name = %s, role = %s, agent_id = %s, active = true,"
                    " updated_at = now() WHERE username = %s",
                    (display_name, role.value, agent_id, username),
                )
                return
            await conn.execute(
                "INSERT INTO web_users (username, display_name, role, agent_id, password_hash)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO UPDATE SET"
                " display_name = EXCLUDED.display_name, role = EXCLUDED.role, agent_id = EXCLUDED.agent_id,"
                " password_hash = EXCLUDED.password_hash, active = true, updated_at = now()",
                (username, display_name, role.value, agent_id, password_hash),
            )
            await conn.execute("DELETE FROM web_sessions WHERE username = %s", (username,))

    async def deactivate_others(self, keep: Sequence[str]) -> None:
        """Users no longer in the configuration cannot sign in, and their sessions end."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE web_users SET active = false, updated_at = now()"
                " WHERE active AND NOT (username = ANY(%s))",
                (list(keep),),
            )
            await conn.execute(
                "DELETE FROM web_sessions s USING web_users u WHERE s.username = u.username AND NOT u.active"
            )

    # -- sessions ---------------------------------------------------------------

    async def create_session(
        self,
        token_hash: bytes,
        username: str,
        csrf_token: str,
        now: datetime,
        remote: str,
        user_agent: str,
        stale_before: datetime,
        started_before: datetime,
    ) -> None:
        """Store a new session, and drop sessions that are over by either rule."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM web_sessions WHERE last_seen_at < %s OR created_at < %s",
                (stale_before, started_before),
            )
            await conn.execute(
                "INSERT INTO web_sessions"
                " (token_hash, username, csrf_token, created_at, last_seen_at, remote, user_agent)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (token_hash, username, csrf_token, now, now, remote, user_agent[:300]),
            )

    async def session(self, token_hash: bytes) -> SessionRecord | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT s.csrf_token, s.created_at, s.last_seen_at, {_USER_COLUMNS}"
                " FROM web_sessions s JOIN web_users u ON u.username = s.username"
                " WHERE s.token_hash = %s AND u.active",
                (token_hash,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return SessionRecord(token_hash, str(row[0]), row[1], row[2], _user(row[3:]))

    async def touch_session(self, token_hash: bytes, at: datetime) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE web_sessions SET last_seen_at = %s WHERE token_hash = %s AND last_seen_at < %s",
                (at, token_hash, at),
            )

    async def delete_session(self, token_hash: bytes) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM web_sessions WHERE token_hash = %s", (token_hash,))

    # -- failed sign-ins --------------------------------------------------------

    async def charge_attempt(
        self, username: str, remote: str, at: datetime, window_start: datetime
    ) -> tuple[int, list[tuple[str, str, datetime]]]:
        """Record this attempt as a failure up front. Returns its id and the other failures
        inside the window for this username or this address, as (username, address, time).

        The insert is committed before the count is read: of two concurrent attempts, the
        one that counts last always sees the other, so the limit holds exactly."""
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("DELETE FROM web_login_failures WHERE at < %s", (window_start,))
                cur = await conn.execute(
                    "INSERT INTO web_login_failures (username, remote, at) VALUES (%s, %s, %s) RETURNING id",
                    (username, remote, at),
                )
                row = await cur.fetchone()
            assert row is not None
            attempt_id = int(row[0])
            cur = await conn.execute(
                "SELECT username, remote, at FROM web_login_failures"
                " WHERE (username = %s OR remote = %s) AND at >= %s AND id <> %s",
                (username, remote, window_start, attempt_id),
            )
            others = [(r[0], r[1], r[2]) for r in await cur.fetchall()]
        return attempt_id, others

    async def refund_attempt(self, attempt_id: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM web_login_failures WHERE id = %s", (attempt_id,))

    async def clear_failures(self, username: str, remote: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM web_login_failures WHERE username = %s AND remote = %s", (username, remote)
            )
