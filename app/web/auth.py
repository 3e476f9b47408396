"""Who is asking: panel sign-in (users from the configuration, sessions in PostgreSQL, CSRF,
throttling) and the bearer token of the API for scripts and other machines.

- **Users.** Every configured agent is a user (username = agent id, role agent or expert);
  `web.users` adds supervisors and admins. Passwords are generated once into
  var/secrets.yaml (`panel_passwords`, mode 0600); PostgreSQL holds only argon2id hashes.
  That file is the source of truth for now: editing a password there and restarting
  changes it (and ends that user's sessions).
- **Sessions.** The cookie carries 32 random bytes; the table keeps their SHA-256. Each
  session has its own CSRF token (synchronizer pattern): a state-changing request must echo
  it in the `X-CSRF-Token` header (scripts) or a `csrf_token` form field (plain forms).
- **Throttling.** See app/domain/access.py: failures per (username, address), per username
  from any address and per address for any username, charged before the hash is checked.
- **The token.** Scripts and other machines send `Authorization: Bearer <api_token>` (one
  generated token in var/secrets.yaml); it stands for the supervisor/admin role. Every route
  that changes something takes either way of asking, with the same rules (`principal`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets as pysecrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from aiohttp import web

from app.adapters.passwords import Passwords
from app.adapters.web_users import UserRecord, WebUserStore
from app.config import Settings, WebSettings
from app.domain.access import Principal, Role, SessionVerdict, retry_after_s, session_verdict
from app.errors import AppError
from app.web.http import SECRETS

log = logging.getLogger(__name__)

SESSION_COOKIE = "lianluo_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# A session's last-seen time is written at most this often (not on every request).
TOUCH_EVERY_S = 30.0
MAX_USERNAME = 64
MAX_PASSWORD = 256


# -- errors: one model, JSON for API calls (app/bootstrap.py error_middleware) ----------------


class Unauthorized(AppError):
    def __init__(self) -> None:
        super().__init__(
            "unauthorized", "a valid 'Authorization: Bearer <api_token>' header is required", {}, 401
        )


class NotSignedIn(AppError):
    def __init__(self) -> None:
        super().__init__("not-signed-in", "sign in first (POST /login)", {}, 401)


class SessionExpired(AppError):
    def __init__(self, why: SessionVerdict) -> None:
        message = (
            "your session ended after a period without activity; sign in again"
            if why is SessionVerdict.IDLE
            else "your session reached its maximum length; sign in again"
        )
        super().__init__("session-expired", message, {"reason": why.value}, 401)


class Forbidden(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message, {}, 403)


class CsrfFailed(AppError):
    def __init__(self) -> None:
        super().__init__(
            "csrf-failed",
            f"missing or wrong CSRF token: send the session's token in the {CSRF_HEADER} header"
            f" or the {CSRF_FIELD} form field",
            {},
            403,
        )


class WrongCredentials(AppError):
    def __init__(self) -> None:
        super().__init__("wrong-credentials", "wrong username or password", {}, 401)


class TooManyAttempts(AppError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too-many-attempts",
            f"too many failed sign-ins; try again in {retry_after} s",
            {"retry_after_s": retry_after},
            429,
            {"Retry-After": str(retry_after)},
        )


# -- users from the configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class PanelUser:
    username: str
    name: str
    role: Role
    agent_id: str | None


def panel_users(settings: Settings) -> list[PanelUser]:
    users = [PanelUser(a.id, a.name, Role(a.role), a.id) for a in settings.agents]
    users += [PanelUser(u.username, u.name, Role(u.role), None) for u in settings.web.users]
    return users


def load_or_create_panel_passwords(var_dir: Path, usernames: Sequence[str]) -> dict[str, str]:
    """`panel_passwords` in var/secrets.yaml: one generated per user that lacks one. Other
    keys of the file (Asterisk's secrets) are kept as they are."""
    path = var_dir / "secrets.yaml"
    data: dict[str, object] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text())
        if isinstance(loaded, dict):
            data = loaded
    raw = data.get("panel_passwords")
    passwords: dict[str, str] = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    missing = [u for u in usernames if not passwords.get(u)]
    for username in missing:
        passwords[username] = pysecrets.token_urlsafe(12)
    if missing:
        data["panel_passwords"] = passwords
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".panel.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, sort_keys=True)
        os.replace(tmp, path)
    return {u: passwords[u] for u in usernames}


# -- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelSession:
    token_hash: bytes
    csrf_token: str
    user: UserRecord

    @property
    def principal(self) -> Principal:
        return Principal(self.user.username, self.user.role, self.user.agent_id)


@dataclass(frozen=True)
class SignedIn:
    token: str  # for the cookie; never stored
    session: PanelSession


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AuthService:
    def __init__(
        self,
        store: WebUserStore,
        passwords: Passwords,
        web: WebSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.web = web
        self.clock = clock

    async def sync_users(self, users: Sequence[PanelUser], passwords: Mapping[str, str]) -> None:
        """Make PostgreSQL match the configuration and var/secrets.yaml. A hash is (re)computed
        only for a new user or a changed password, so a normal start verifies, never rehashes."""
        stored = await self.store.users()
        for user in users:
            password = passwords[user.username]
            old = stored.get(user.username)
            new_hash: str | None = None
            if (
                old is None
                or self.passwords.needs_rehash(old.password_hash)
                or not await self.passwords.verify(old.password_hash, password)
            ):
                new_hash = await self.passwords.hash(password)
                if old is not None:
                    log.info("panel user %s: password changed in secrets.yaml; sessions ended", user.username)
            await self.store.save_user(user.username, user.name, user.role, user.agent_id, new_hash)
        await self.store.deactivate_others([u.username for u in users])

    async def knows(self, usernames: Iterable[str]) -> bool:
        """Are all these users in the database already?"""
        stored = await self.store.users()
        return all(u in stored for u in usernames)

    async def sign_in(self, username: str, password: str, remote: str, user_agent: str) -> SignedIn:
        username = username.strip().lower()[:MAX_USERNAME]
        if not username or not password or len(password) > MAX_PASSWORD:
            raise WrongCredentials()
        now = self.clock()
        window_start = now - timedelta(seconds=self.web.login_window_s)
        attempt, others = await self.store.charge_attempt(username, remote, now, window_start)
        web, window = self.web, self.web.login_window_s
        wait = max(
            retry_after_s(
                [at for u, r, at in others if u == username and r == remote],
                now,
                web.login_max_failures,
                window,
            ),
            retry_after_s(
                [at for u, _, at in others if u == username], now, web.login_max_failures_per_user, window
            ),
            retry_after_s(
                [at for _, r, at in others if r == remote], now, web.login_max_failures_per_address, window
            ),
        )
        if wait:
            await self.store.refund_attempt(attempt)  # a refused attempt does not extend the lock
            log.warning("panel sign-in throttled for %r from %s (%d s)", username, remote, wait)
            raise TooManyAttempts(wait)
        user = await self.store.active_user(username)
        matches = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not matches:
            log.info("panel sign-in failed for %r from %s", username, remote)
            raise WrongCredentials()
        await self.store.clear_failures(username, remote)
        token = pysecrets.token_urlsafe(32)
        session = PanelSession(token_hash(token), pysecrets.token_urlsafe(32), user)
        await self.store.create_session(
            session.token_hash,
            user.username,
            session.csrf_token,
            now,
            remote,
            user_agent,
            stale_before=now - timedelta(seconds=self.web.session_idle_s),
            started_before=now - timedelta(seconds=self.web.session_max_s),
        )
        log.info("panel user %s (%s) signed in from %s", user.username, user.role.value, remote)
        return SignedIn(token, session)

    async def session_for(self, token: str | None) -> PanelSession:
        """The live session for a cookie value, or NotSignedIn / SessionExpired."""
        if not token or len(token) > 200:
            raise NotSignedIn()
        record = await self.store.session(token_hash(token))
        if record is None:
            raise NotSignedIn()
        now = self.clock()
        verdict = session_verdict(
            record.created_at, record.last_seen_at, now, self.web.session_idle_s, self.web.session_max_s
        )
        if verdict is not SessionVerdict.VALID:
            await self.store.delete_session(record.token_hash)
            raise SessionExpired(verdict)
        if now - record.last_seen_at >= timedelta(seconds=TOUCH_EVERY_S):
            await self.store.touch_session(record.token_hash, now)
        return PanelSession(record.token_hash, record.csrf_token, record.user)

    async def sign_out(self, session: PanelSession) -> None:
        await self.store.delete_session(session.token_hash)
        log.info("panel user %s signed out", session.user.username)

    @staticmethod
    def check_csrf(session: PanelSession, presented: str | None) -> None:
        if not presented or not hmac.compare_digest(presented.encode(), session.csrf_token.encode()):
            raise CsrfFailed()


# -- requests ---------------------------------------------------------------------------------

AUTH = web.AppKey("auth", AuthService)
# What the bearer token stands for in the access rules.
TOKEN_PRINCIPAL = Principal("supervisor-api", Role.ADMIN, None)


def origin_host(origin: str) -> str | None:
    """The host (and port) an Origin header names; None when it cannot be read (`http://[`),
    which is no site of ours."""
    try:
        return urlsplit(origin).netloc
    except ValueError:
        return None


def same_origin(request: web.Request) -> None:
    """Browsers name the page that sent a request in Origin; refuse writes from other sites."""
    origin = request.headers.get("Origin")
    if origin is not None and origin_host(origin) != request.host:
        raise Forbidden(f"cross-site request refused (Origin {origin})")


async def session_of(request: web.Request) -> PanelSession:
    return await request.app[AUTH].session_for(request.cookies.get(SESSION_COOKIE))


async def writing_session(request: web.Request, form: Mapping[str, object] | None = None) -> PanelSession:
    """The session of a state-changing request, with its origin and CSRF token checked."""
    session = await session_of(request)
    same_origin(request)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and form is not None:
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    request.app[AUTH].check_csrf(session, presented)
    return session


def bearer(request: web.Request) -> Principal:
    """The API token's principal, or Unauthorized."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[SECRETS].api_token
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthorized()
    return TOKEN_PRINCIPAL


async def principal(request: web.Request, write: bool) -> Principal:
    """Who is asking: the bearer token (scripts; no cookie, so no CSRF to check) or a panel
    session (checked for origin and CSRF token when it changes something)."""
    if "Authorization" in request.headers:
        return bearer(request)
    session = await writing_session(request) if write else await session_of(request)
    return session.principal
