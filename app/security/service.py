"""SIP bans: Asterisk's failed authentications in, a PJSIP ACL out (fail2ban inside the product).

The rule is `app/domain/sip_bans.py`. This service feeds it AMI security events, enforces its
bans with a PJSIP ACL (`app/adapters/sip_acl.py`), ends them when their time is up, and keeps
them in PostgreSQL so a restart keeps them. One task does all the waiting and writing: a
failure is counted synchronously, the moment AMI reports it; a ban wakes the task, which
rewrites the ACL first (the guesser is stopped) and writes the rows after.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.domain.sip_bans import AuthFailure, Ban, BanRules, Bans

log = logging.getLogger(__name__)

RETRY_S = 2.0


class BanStore(Protocol):
    async def bans(self) -> list[Ban]: ...
    async def banned_since(self, since: datetime) -> list[Ban]: ...
    async def banned(self, ban: Ban, data: dict[str, Any]) -> None: ...
    async def ended(self, ban: Ban, kind: str, at: datetime, data: dict[str, Any]) -> None: ...


class Acl(Protocol):
    async def apply(self, addresses: Iterable[str]) -> None: ...


class SipBanService:
    def __init__(
        self,
        rules: BanRules,
        store: BanStore,
        acl: Acl,
        clock: Callable[[], datetime],
        on_change: Callable[[list[Ban]], None] = lambda bans: None,
    ) -> None:
        self.rules = rules
        self._on_change = on_change  # told the bans in force after each change (supervisors' screens)
        self._store = store
        self._acl = acl
        self._clock = clock
        self._bans = Bans(rules)
        self._writes: list[Callable[[], Awaitable[None]]] = []
        self._acl_stale = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def now(self) -> datetime:
        return self._clock()

    @property
    def active(self) -> list[Ban]:
        return self._bans.active

    async def start(self) -> None:
        """Bans kept from before a restart are enforced again (or ended, if their time is up)
        before the first failure is counted."""
        found = await self._store.bans()
        window = timedelta(seconds=self.rules.repeat_window_s)
        history = await self._store.banned_since(self._clock() - window)
        self._bans = Bans(self.rules, found, history)
        for ban in found:
            log.info(
                "SIP ban on %s kept from before the restart, until %s", ban.address, ban.until.isoformat()
            )
        self._end_expired()
        await self._apply_acl()
        self._task = asyncio.create_task(self._run(), name="sip-bans")

    async def stop(self) -> None:
        # Asked, not cancelled: a cancellation landing as the wait's own timeout fires can be
        # swallowed on Python 3.11 (seen here: the app then never stopped on Ctrl-C).
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=5.0)
            if not done:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._flush()

    def auth_failure(self, failure: AuthFailure) -> None:
        now = self._clock()
        ban = self._bans.failure(failure.address, now)
        log.debug(
            "SIP auth failure from %s (%s, account %r)", failure.address, failure.event, failure.account
        )
        if ban is None:
            return
        log.warning(
            "SIP source %s banned until %s: %d failed authentications within %.0f s (last: %s, account %r)",
            ban.address,
            ban.until.isoformat(),
            ban.failures,
            self.rules.find_time_s,
            failure.event,
            failure.account,
        )
        data = {"failures": ban.failures, "until": ban.until.isoformat(), "last_event": failure.event}
        self._writes.append(lambda: self._store.banned(ban, data))
        self._changed()

    def lift(self, address: str, by: str) -> Ban | None:
        """A supervisor ends a ban now; None when the address is not banned."""
        ban = self._bans.lift(address)
        if ban is None:
            return None
        now = self._clock()
        log.warning("SIP ban on %s lifted by %s", ban.address, by)
        self._writes.append(lambda: self._store.ended(ban, "lifted", now, {"by": by}))
        self._changed()
        return ban

    def _changed(self) -> None:
        self._acl_stale = True
        self._wake.set()
        self._on_change(self._bans.active)

    def _end_expired(self) -> None:
        now = self._clock()
        expired = self._bans.expired(now)
        for ban in expired:
            log.warning("SIP ban on %s expired (banned since %s)", ban.address, ban.since.isoformat())
            self._writes.append(functools.partial(self._store.ended, ban, "expired", now, {}))
            self._acl_stale = True
        if expired:
            self._on_change(self._bans.active)

    async def _apply_acl(self) -> bool:
        if not self._acl_stale:
            return True
        self._acl_stale = False
        addresses = [b.address for b in self._bans.active]
        started = time.monotonic()
        try:
            await self._acl.apply(addresses)
        except Exception:
            log.exception("could not apply the SIP ban list (%d address(es)); retrying", len(addresses))
            self._acl_stale = True
            return False
        log.info(
            "SIP ban list applied in %.0f ms: %d address(es) denied",
            (time.monotonic() - started) * 1000,
            len(addresses),
        )
        return True

    async def _flush(self) -> None:
        while self._writes:
            write = self._writes.pop(0)
            try:
                await write()
            except Exception:
                log.exception("could not record a SIP ban change in the database")

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._end_expired()
            applied = await self._apply_acl()
            await self._flush()
            timeout = RETRY_S if not applied else 60.0
            expiry = self._bans.next_expiry()
            if expiry is not None:
                timeout = min(timeout, max(0.01, (expiry - self._clock()).total_seconds()))
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
