"""Callbacks: the caller keeps their place in line without staying on the phone.

A callback waits in its queue like a caller (same routing rules, arrival time = the
caller's original place), but silently. When the router picks an agent, the agent's
phone rings first; once they answer they hear a short whisper and ringing while the
customer is dialled through the carrier trunk; when the customer answers, both are
bridged. A customer who does not pick up is tried again later, up to the queue's limit.

The rules (what counts as an attempt, when to retry) live in app/domain/callback.py;
this module drives Asterisk and keeps the `callbacks` table in step. Waiting callbacks
survive a restart: they are read back and put in line again at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from datetime import datetime
from typing import Any

from app.adapters.db import Store
from app.callbacks.attempt import CallbackAttempt
from app.calls.line import Line, WaitingRoom, waiting_of
from app.calls.ports import Desk
from app.calls.recovery import Found, restore_conversation, talking
from app.calls.runtime import Runtime
from app.calls.voice import Voice
from app.config import CallbackSettings, Settings
from app.domain.callback import (
    AttemptResult,
    Callback,
    CallbackError,
    CallbackSource,
    CallbackStatus,
    RetryPolicy,
)
from app.domain.interaction import Interaction, Outcome, Phase
from app.domain.outbound import Purpose, Refusal, Refused
from app.domain.routing import customer_tier
from app.errors import AppError

log = logging.getLogger(__name__)


class CallbackRequestError(AppError):
    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__("callback-error", message, {}, http_status)


class CallbackService:
    def __init__(
        self,
        *,
        runtime: Runtime,
        desk: Desk,
        line: Line,
        room: WaitingRoom,
        voice: Voice,
        store: Store,
        settings: Settings,
    ) -> None:
        self.runtime = runtime
        self.board = runtime.board
        self.desk = desk
        self.line = line
        self.room = room  # where a transferred callback waits (the inbound callers' room)
        self.voice = voice
        self.store = store
        self.settings = settings
        self.clock = runtime.clock
        self.queue_settings = {q.name: q for q in settings.queues}
        self.default_queue = settings.queues[0].name
        self.open: dict[str, Callback] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._attempts: dict[str, CallbackAttempt] = {}
        self._stopping = False

    def policy(self, queue: str) -> RetryPolicy:
        cfg = self.queue_callbacks(queue)
        return RetryPolicy(cfg.max_attempts, cfg.retry_after_s)

    def queue_callbacks(self, queue: str) -> CallbackSettings:
        q = self.queue_settings.get(queue)
        return q.callback if q is not None else CallbackSettings()

    def refusal(self, phone: str) -> Refusal | None:
        """Why this number can never be called back (the outbound policy), or None. Limits are
        not asked here: they are met at dialling time, and a later try may pass them."""
        refusal = self.runtime.outbound.check(
            phone, Purpose.CALLBACK, self.settings.carrier.name, self.clock()
        )
        return refusal if refusal is not None and refusal.reason.lasting else None

    def key(self, queue: str) -> str | None:
        """The key that asks for a callback while waiting in this queue, if it offers them."""
        q = self.queue_settings.get(queue)
        if q is None or not q.callback.offer or self.settings.carrier.outbound_contact is None:
            return None
        return q.callback.key

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Put every open callback back in line; a try cut short by a stop counts as unanswered.
        A try whose customer and agent were talking is followed by its call (recovery), not
        retried."""
        now = self.clock()
        waiting = await self.store.callbacks(open_only=True)
        if waiting and self.settings.carrier.outbound_contact is None:
            log.warning(
                "%d callback(s) wait, but this configuration cannot dial out (no carrier.outbound_contact);"
                " they stay in the database until it can",
                len(waiting),
            )
            return
        followed = {c.it.callback_id for c in self.board.live_calls() if c.it.callback_id}
        for cb in sorted(waiting, key=lambda c: c.place_at):
            if cb.id in followed:
                continue
            if cb.queue not in self.queue_settings:
                log.warning(
                    "callback %s: queue %s no longer exists; it goes to %s",
                    cb.id,
                    cb.queue,
                    self.default_queue,
                )
                cb.queue = self.default_queue
            if cb.status is CallbackStatus.DIALING:
                cb.interrupted(now, self.policy(cb.queue))
                await self.store.save_callback(cb)
            if cb.open:
                log.info("callback %s to %s restored (place in line %s)", cb.id, cb.phone, cb.place_at)
                self.release(cb)

    async def stop(self) -> None:
        """Stop trying (the app is stopping): tries cut short wait for the next start."""
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [a.call.task for a in self._attempts.values() if a.call.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- requests -------------------------------------------------------------

    async def request(
        self,
        *,
        phone: str,
        queue: str,
        source: CallbackSource,
        place_at: datetime | None = None,
        tier: str | None = None,
        customer_id: int | None = None,
        origin_interaction_id: str | None = None,
        data: dict[str, Any] | None = None,
        hold: bool = False,
        require_offer: bool = True,
        language: str | None = None,
    ) -> Callback:
        """Record a callback. It joins the line now, or with `hold` when `release` is called.

        `require_offer`: only where the queue offers callbacks (a voicemail's callback is
        made wherever the center can dial out).
        """
        if queue not in self.queue_settings:
            raise CallbackRequestError(f"no queue named {queue!r}", 404)
        if self.settings.carrier.outbound_contact is None:
            raise CallbackRequestError("the center cannot dial out (no carrier.outbound_contact)", 409)
        refusal = self.refusal(phone)
        if refusal is not None:
            log.warning("callback to %r refused: %s", phone, refusal.detail)
            malformed = refusal.reason is Refused.MALFORMED  # bad input, not a forbidden number
            raise CallbackRequestError(refusal.detail, 400 if malformed else 403)
        if require_offer and not self.queue_callbacks(queue).offer:
            raise CallbackRequestError(f"queue {queue} does not offer callbacks", 409)
        if language is not None and language not in self.settings.languages:
            offered = ", ".join(self.settings.languages)
            raise CallbackRequestError(f"language {language!r} is not one the center offers ({offered})")
        now = self.clock()
        customer = await self.store.customer_by_phone(phone)
        if customer_id is None and customer is not None:
            customer_id = customer.id
        if tier is None:
            tier = customer_tier(customer.vip, customer.tier).value if customer else "medium"
        try:
            cb = Callback(
                id=str(uuid.uuid4()),
                phone=phone,
                queue=queue,
                place_at=place_at or now,
                requested_at=now,
                source=source,
                tier=tier,
                customer_id=customer_id,
                origin_interaction_id=origin_interaction_id,
                data=data or {},
                language=language,
            )
        except CallbackError as exc:
            raise CallbackRequestError(str(exc)) from exc
        if self._stopping:
            raise CallbackRequestError("the service is stopping; try again shortly", 503)
        await self.store.create_callback(cb)
        log.info("callback %s requested for %s in %s (%s)", cb.id, phone, queue, source.value)
        if not hold:
            self.release(cb)
        return cb

    def release(self, cb: Callback) -> None:
        """Put the callback in line now, or when its retry pause is over."""
        if self._stopping:
            return  # it is in the database, waiting: the next start puts it in line
        self.open[cb.id] = cb
        delay = 0.0 if cb.not_before is None else (cb.not_before - self.clock()).total_seconds()
        if delay > 0:
            self._timers[cb.id] = asyncio.get_running_loop().call_later(delay, self._join_line, cb)
        else:
            self._join_line(cb)

    def _join_line(self, cb: Callback) -> None:
        self._timers.pop(cb.id, None)
        if cb.id in self._attempts or not cb.due(self.clock()):
            return
        now = self.clock()
        carrier = self.settings.carrier
        it = Interaction(
            id=str(uuid.uuid4()),
            caller_channel_id=f"callback-{uuid.uuid4()}",
            ani=cb.phone,
            dnis=carrier.presented_number,
            arrived_at=now,
            customer_id=cb.customer_id,
            direction="outbound",
            callback_id=cb.id,
        )
        it.legs["kind"] = "callback"
        call = self.runtime.call(it, "callback")
        attempt = CallbackAttempt(
            call,
            cb,
            desk=self.desk,
            line=self.line,
            room=self.room,
            voice=self.voice,
            carrier=carrier,
            center_name=self.settings.center_name,
            rules=self.queue_callbacks(cb.queue),
            policy=self.policy(cb.queue),
            save_callback=self.store.save_callback,
            find_customer=self.store.customer_by_phone,
            languages=self.settings.languages,
            greeting=self.settings.ivr.callback_greeting,
        )
        self._attempts[cb.id] = attempt

        async def main() -> None:
            try:
                await attempt.run()
            finally:
                await self.attempt_over(attempt)

        self.board.launch(call, main)

    async def attempt_over(self, attempt: CallbackAttempt) -> None:
        """An attempt's call is over: record the outcome, and schedule a retry if one is due."""
        cb = attempt.cb
        self._attempts.pop(cb.id, None)
        if not attempt.call.ended:
            return  # stopped for a restart: the next start takes it over or retries it
        if cb.status is CallbackStatus.DIALING:
            result = attempt.result or AttemptResult.FAILED
            cb.finish_attempt(result, self.clock(), self.policy(cb.queue))
        try:
            await self.store.save_callback(cb)
        except Exception:
            log.exception("could not save callback %s", cb.id)
        if cb.status is CallbackStatus.WAITING and self._stopping:
            return
        if cb.status is CallbackStatus.WAITING:
            log.info("callback %s: %s; next try from %s", cb.id, cb.last_result, cb.not_before)
            self.release(cb)
        else:
            self.open.pop(cb.id, None)
            log.info("callback %s %s after %d attempt(s)", cb.id, cb.status.value, cb.attempts)

    # -- after a restart ------------------------------------------------------

    def resume(self, it: Interaction, found: Found) -> bool:
        """A try whose customer and agent were talking is followed to its end; one cut short
        before that is closed (see `gone`) and its callback retried by `start`."""
        if not talking(it, found):
            return False
        call = self.runtime.call(it, "callback", recorded=True)
        conv = restore_conversation(call, self.line, found)
        waiting = waiting_of(call, it.queue or self.default_queue)

        async def main() -> None:
            if conv is None:
                return
            if conv.external is not None:
                await conv.follow_external()
            else:
                await self.line.follow(call, waiting, self.room)

        self.board.launch(
            call,
            lambda: call.run(main, when_caller_leaves=lambda _: Outcome.COMPLETED, caller_is="customer"),
        )
        return True

    @staticmethod
    def gone(it: Interaction, found: Found) -> tuple[Outcome, str]:
        if it.phase is Phase.CONNECTED:
            return (
                (Outcome.DROPPED, "Asterisk restarted")
                if found.restarted_since(it.arrived_at)
                else (Outcome.COMPLETED, "the customer left while the app was down")
            )
        return Outcome.FAILED, "interrupted by a restart before the customer talked; the callback is retried"

    async def cancel(self, callback_id: str) -> Callback:
        cb = self.open.get(callback_id)
        if cb is None:
            raise CallbackRequestError(f"no open callback {callback_id}", 404)
        attempt = self._attempts.get(cb.id)
        if attempt is not None and cb.status is CallbackStatus.DIALING:
            raise CallbackRequestError("the customer is being called right now", 409)
        cb.cancel()
        timer = self._timers.pop(cb.id, None)
        if timer is not None:
            timer.cancel()
        if attempt is not None:
            attempt.withdraw()
        self.open.pop(cb.id, None)
        await self.store.save_callback(cb)
        return cb


def callback_view(cb: Callback) -> dict[str, Any]:
    out = dataclasses.asdict(cb)
    for key in ("place_at", "requested_at", "not_before"):
        value = out[key]
        out[key] = value.isoformat() if value is not None else None
    out["status"] = cb.status.value
    out["source"] = cb.source.value
    return out
