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

from app.adapters.ari import ChannelDestroyed, ChannelHangupRequest, PlaybackFinished, StasisEnd, StasisStart
from app.adapters.db import Store
from app.config import CallbackSettings, Settings
from app.domain.callback import (
    AttemptResult,
    Callback,
    CallbackError,
    CallbackSource,
    CallbackStatus,
    RetryPolicy,
    attempt_result,
)
from app.domain.interaction import Interaction, Outcome, Phase
from app.domain.routing import Decision, Tier, WaitingInteraction
from app.errors import AppError, PbxError
from app.flows.inbound import CallerGone, CallSession, Clock, InboundService
from app.flows.routing import RoutingService, Ticket

log = logging.getLogger(__name__)


class CallbackRequestError(AppError):
    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__("callback-error", message, {}, http_status)


class CallbackService:
    def __init__(
        self, inbound: InboundService, routing: RoutingService, store: Store, settings: Settings, clock: Clock
    ) -> None:
        self.inbound = inbound
        self.routing = routing
        self.store = store
        self.settings = settings
        self.clock = clock
        self.open: dict[str, Callback] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._attempts: dict[str, CallbackAttempt] = {}
        self._stopping = False

    def policy(self, queue: str) -> RetryPolicy:
        cfg = self.queue_callbacks(queue)
        return RetryPolicy(cfg.max_attempts, cfg.retry_after_s)

    def queue_callbacks(self, queue: str) -> CallbackSettings:
        q = self.routing.queue_settings.get(queue)
        return q.callback if q is not None else CallbackSettings()

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Put every open callback back in line; one cut short by a stop counts as unanswered."""
        now = self.clock()
        waiting = await self.store.callbacks(open_only=True)
        if waiting and self.settings.carrier.outbound_contact is None:
            log.warning(
                "%d callback(s) wait, but this configuration cannot dial out (no carrier.outbound_contact);"
                " they stay in the database until it can",
                len(waiting),
            )
            return
        for cb in sorted(waiting, key=lambda c: c.place_at):
            if cb.queue not in self.routing.queue_settings:
                log.warning(
                    "callback %s: queue %s no longer exists; it goes to %s",
                    cb.id,
                    cb.queue,
                    self.inbound.default_queue,
                )
                cb.queue = self.inbound.default_queue
            if cb.status is CallbackStatus.DIALING:
                cb.interrupted(now, self.policy(cb.queue))
                await self.store.save_callback(cb)
            if cb.open:
                log.info("callback %s to %s restored (place in line %s)", cb.id, cb.phone, cb.place_at)
                self.release(cb)

    async def stop(self) -> None:
        self._stopping = True  # attempts cut short now wait for the next start
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        attempts = list(self._attempts.values())
        for attempt in attempts:
            if attempt.task is not None:
                attempt.task.cancel()
        for attempt in attempts:
            if attempt.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await attempt.task

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
    ) -> Callback:
        """Record a callback. It joins the line now, or with `hold` when `release` is called.

        `require_offer`: only where the queue offers callbacks (a voicemail's callback is
        made wherever the center can dial out).
        """
        if queue not in self.routing.queue_settings:
            raise CallbackRequestError(f"no queue named {queue!r}", 404)
        if self.settings.carrier.outbound_contact is None:
            raise CallbackRequestError("the center cannot dial out (no carrier.outbound_contact)", 409)
        if require_offer and not self.queue_callbacks(queue).offer:
            raise CallbackRequestError(f"queue {queue} does not offer callbacks", 409)
        now = self.clock()
        customer = await self.store.customer_by_phone(phone)
        if customer_id is None and customer is not None:
            customer_id = customer.id
        if tier is None:
            tier = self.inbound.tier_of(customer)[0].value
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
        attempt = CallbackAttempt(self, cb)
        self._attempts[cb.id] = attempt
        attempt.start()

    async def attempt_over(self, attempt: CallbackAttempt) -> None:
        """An attempt's call is over: record the outcome, and schedule a retry if one is due."""
        cb = attempt.cb
        self._attempts.pop(cb.id, None)
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


class CallbackAttempt(CallSession):
    """One try at a callback: silent wait in line, agent first, then the customer.

    It is a call session whose "caller" (the customer's channel) does not exist until
    the agent has answered: the routing, offer and bridge steps are the same as a live call's.
    """

    def __init__(self, callbacks: CallbackService, cb: Callback) -> None:
        now = callbacks.clock()
        carrier = callbacks.settings.carrier
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
        super().__init__(callbacks.inbound, it)
        self.callbacks = callbacks
        self.cb = cb
        self.result: AttemptResult | None = None
        self.ticket: Ticket | None = None

    def start(self) -> None:
        self.service.sessions[self.caller] = self
        self.service.watch(self.caller, self)
        self.task = asyncio.create_task(self.run(), name=f"callback-{self.cb.id}")

    def withdraw(self) -> None:
        """Cancelled while waiting in line."""
        if self.ticket is not None and not self.ticket.decided.done():
            self.routing.withdraw(self.it.id)

    def offer_variables(self, queue: str, decision: Decision) -> dict[str, str]:
        out = super().offer_variables(queue, decision)
        out["LIANLUO_CALLBACK"] = self.cb.id
        out["PJSIP_HEADER(add,X-Lianluo-Callback)"] = self.cb.id
        voicemail_id = self.cb.data.get("voicemail_id")
        if isinstance(voicemail_id, str):  # the agent can play the message before the call
            out["LIANLUO_VOICEMAIL"] = voicemail_id
            out["PJSIP_HEADER(add,X-Lianluo-Voicemail)"] = voicemail_id
        return out

    async def run(self, resume: bool = False) -> None:
        try:
            await self.attempt()
        except CallerGone:  # the customer hung up (after answering)
            self.it.end(self.now(), Outcome.COMPLETED, ended_by="customer")
        except asyncio.CancelledError:
            self.log.info("callback attempt cancelled in phase %s", self.it.phase.value)
            if self.ticket is not None and not self.ticket.decided.done():
                self.routing.withdraw(self.it.id)
            raise
        except Exception as exc:
            self.log.exception("callback attempt failed")
            self.it.end(self.now(), Outcome.FAILED, error=str(exc))
        finally:
            with contextlib.suppress(PbxError):
                if self.it.phase is Phase.ENDED:
                    await self.ari.hangup(self.caller)
            await self.cleanup()
            await self.callbacks.attempt_over(self)

    async def attempt(self) -> None:
        cb = self.cb
        self.it.queued_at = cb.place_at  # the place in line kept from the original call
        self.it.record(
            self.now(), "callback_attempt", callback_id=cb.id, attempt=cb.attempts + 1, number=cb.phone
        )
        await self.service.store.create_interaction(self.it)
        self.it.enqueue(self.now(), cb.queue, cb.tier, f"callback:{cb.source.value}")
        self.save_soon()
        waiting = WaitingInteraction(
            id=self.it.id,
            queue=cb.queue,
            queued_at=cb.place_at,
            tier=Tier(cb.tier),
            customer_value=0.0,
            last_agent_id=await self.service.last_agent(self.it, cb.queue),
            data={"ani": cb.phone, "callback_id": cb.id, **cb.data},
        )
        while True:
            decision = await self.wait_in_line(waiting)
            if decision is None:
                return  # withdrawn (cancelled)
            agent_channel = await self.ring_agents(decision, waiting.queue, hold_caller=False)
            if agent_channel is not None:
                break
            waiting.excluded_agents = waiting.excluded_agents | frozenset(decision.agent_ids)
        cb.start_attempt(self.agent_on_call or "?")
        await self.callbacks.store.save_callback(cb)
        await self.play(
            self.service.prompts["callback_whisper"],
            interruptible=False,
            channel=agent_channel,
        )
        self.result = (
            None if agent_channel in self.gone else await self.dial_customer(agent_channel, waiting.queue)
        )
        if self.result is AttemptResult.ANSWERED:
            cb.finish_attempt(AttemptResult.ANSWERED, self.now(), self.callbacks.policy(cb.queue))
            await self.callbacks.store.save_callback(cb)
            await self.bridge(agent_channel)
            self.log.info(
                "callback %s: customer %s connected to agent %s", cb.id, cb.phone, self.agent_on_call
            )
            await self.follow_transfer(await self.watch_connected())
            return
        if self.result is None:  # the agent hung up before the customer answered
            cb.agent_missed()
            self.it.end(self.now(), Outcome.FAILED, ended_by="agent", reason="agent left before answer")
            return
        self.it.record(self.now(), "customer_unreached", result=self.result.value)
        with contextlib.suppress(CallerGone, PbxError):
            await self.play(
                self.service.prompts["callback_unreached"],
                interruptible=False,
                channel=agent_channel,
            )
        self.it.end(self.now(), Outcome.CUSTOMER_UNREACHED, ended_by="system", result=self.result.value)

    async def wait_in_line(self, waiting: WaitingInteraction) -> Decision | None:
        def overflowed(queue: str) -> None:
            self.cb.queue = queue
            self.it.enqueue(self.now(), queue, waiting.tier.value, "overflow")
            self.save_soon()

        self.ticket = self.routing.enqueue(waiting, on_overflow=overflowed)
        await asyncio.wait([self.ticket.decided])
        if self.ticket.decided.cancelled():
            self.it.end(self.now(), Outcome.FAILED, ended_by="system", reason="callback cancelled")
            return None
        return self.ticket.decided.result()

    async def dial_customer(self, agent_channel: str, queue: str) -> AttemptResult | None:
        """Ring the customer while the agent hears ringing. None if the agent left meanwhile."""
        settings = self.service.settings
        carrier = settings.carrier
        cfg = self.callbacks.queue_callbacks(queue)
        tone_id = f"pb-{uuid.uuid4()}"
        self.service.watch(tone_id, self)
        with contextlib.suppress(PbxError):
            await self.ari.play(agent_channel, "tone:ring;tonezone=us", tone_id)
        self.it.record(self.now(), "dialing_customer", number=self.cb.phone)
        self.save_soon()
        number = self.it.dnis
        try:
            await self.ari.originate(
                endpoint=f"PJSIP/{self.cb.phone}@{carrier.name}",
                channel_id=self.caller,
                app_args=f"callback,{self.it.id}",
                caller_id=f'"{settings.center_name}" <{number}>',
                timeout_s=round(cfg.customer_ring_s),
                variables={"LIANLUO_INTERACTION": self.it.id, "LIANLUO_CALLBACK": self.cb.id},
            )
        except PbxError as exc:
            self.log.warning("callback %s: could not dial %s: %s", self.cb.id, self.cb.phone, exc)
            return AttemptResult.FAILED
        try:
            while True:
                ev = await self.events.get()
                if isinstance(ev, StasisStart) and ev.channel.id == self.caller:
                    return AttemptResult.ANSWERED
                if isinstance(ev, ChannelDestroyed) and ev.channel.id == self.caller:
                    return attempt_result(ev.cause)
                if (
                    isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd)
                    and ev.channel.id == agent_channel
                ):
                    with contextlib.suppress(PbxError):
                        await self.ari.hangup(self.caller)
                    return None
                if isinstance(ev, PlaybackFinished) and ev.playback_id == tone_id:
                    continue
        finally:
            self.service.unwatch(tone_id)
            with contextlib.suppress(PbxError):
                await self.ari.stop_playback(tone_id)


def callback_view(cb: Callback) -> dict[str, Any]:
    out = dataclasses.asdict(cb)
    for key in ("place_at", "requested_at", "not_before"):
        value = out[key]
        out[key] = value.isoformat() if value is not None else None
    out["status"] = cb.status.value
    out["source"] = cb.source.value
    return out
