"""The inbound caller's wait: what they hear and may press while in line.

The consent notice where the queue records (playing while a free agent's phone already rings),
"please hold" once (unless an agent is free at once: then their phone simply rings), then
music; where the queue says so, their place in line and expected wait on entry and every
`announce_every_s` after, with the keys this queue offers to leave the line for a callback or a
message. An announcement stops the moment an agent is found. When nobody could ever answer,
the caller hears so (or leaves a message, where the queue takes them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from app.adapters.ari import ChannelDtmfReceived
from app.callbacks.service import CallbackService
from app.calls.events import Overflowed
from app.calls.line import Leave
from app.calls.ports import Desk, Ticket
from app.calls.session import Call
from app.calls.voice import Voice, filled
from app.config import IvrSettings
from app.domain.callback import CallbackSource
from app.domain.ewt import next_announcement_in
from app.domain.interaction import Outcome
from app.domain.routing import Decision
from app.voicemail.service import VoicemailService

# With a free agent the decision comes within a loop turn or two: music and announcements are
# only for callers who really wait (50 ms is not heard).
SETTLE_S = 0.05


class InboundRoom:
    def __init__(
        self,
        desk: Desk,
        voice: Voice,
        ivr: IvrSettings,
        callbacks: CallbackService | None,
        voicemail: VoicemailService | None,
        consent: Callable[[str, str | None], list[str]] | None = None,
    ) -> None:
        self.desk = desk
        self.voice = voice
        self.ivr = ivr
        self.callbacks = callbacks
        self.voicemail = voicemail
        # "This call may be recorded", per queue (app/recording/): sounds, or none.
        self.consent = consent

    def callback_key(self, queue: str) -> str | None:
        return self.callbacks.key(queue) if self.callbacks is not None else None

    def voicemail_key(self, queue: str) -> str | None:
        return self.voicemail.key(queue) if self.voicemail is not None else None

    async def greet(self, call: Call, ticket: Ticket) -> None:
        # "This call may be recorded", where the queue records: a notice before anyone answers
        # (app/recording/). It plays while the rest goes on: a free agent's phone rings at once
        # (waiting for its end cost every answered demo call 9 s) and the bridge waits for its
        # end, so the caller hears it whole before the agent speaks.
        if self.consent is not None:
            await call.play_behind(self.consent(ticket.waiting.queue, call.it.language))
        # The place in line is taken first. A free agent is found within a loop turn or two:
        # their phone rings at once and the caller hears it ring, not "please hold" (which
        # cost every answered call about 3 s). A caller who does wait hears why, after the
        # notice, cut short the moment an agent is found.
        if not ticket.decided.done():
            await asyncio.wait([ticket.decided], timeout=SETTLE_S)
        if ticket.decided.done():
            return
        await call.prompt_over(until=ticket.decided)
        if ticket.decided.done():
            return
        # A key stops it and stays for the wait, which handles it (the queue's callback or
        # message key), as during the music.
        await call.play(
            self.voice.fixed_in("connecting", call.it.language),
            interruptible=True,
            until=ticket.decided,
            keep_key=True,
        )

    async def wait(self, call: Call, ticket: Ticket) -> Decision | Leave | None:
        loop = asyncio.get_running_loop()
        queue = ticket.waiting.queue
        rules = self.desk.queue_rules(queue)
        every = rules.announce_every_s if rules is not None else 0.0
        if not ticket.decided.done():
            if every:
                leave = await self.announce(call, ticket)
                if leave is not None:
                    return leave
            else:
                await call.music(True)
        next_at = self.next_announcement(call, ticket, every)
        while not ticket.decided.done():
            ev = await call.next_event(timeout=max(0.01, min(1.0, next_at - loop.time())))
            if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == call.caller:
                leave = self.key(call, ev.digit, ticket)
                if leave is not None:
                    return leave
            if isinstance(ev, Overflowed):
                call.it.enqueue(call.now(), ev.queue, ticket.waiting.tier.value, "overflow")
                call.save_soon()
            if not ticket.decided.done() and not self.desk.anyone_logged_in(ticket.waiting.queue):
                return None
            if not ticket.decided.done() and loop.time() >= next_at:
                leave = await self.announce(call, ticket)
                if leave is not None:
                    return leave
                next_at = self.next_announcement(call, ticket, every)
        return ticket.decided.result()

    @staticmethod
    def next_announcement(call: Call, ticket: Ticket, every: float) -> float:
        """When the next announcement is due, in loop time (`next_announcement_in`)."""
        waited = (call.now() - ticket.waiting.queued_at).total_seconds()
        return asyncio.get_running_loop().time() + next_announcement_in(waited, every)

    async def announce(self, call: Call, ticket: Ticket) -> Leave | None:
        """Tell the caller their place in line and expected wait, then back to the music."""
        place = self.desk.place_in_line(call.it.id)
        if place is None:
            return None
        position, ewt = place
        ivr = self.ivr
        texts = filled(ivr.position, position=position)
        if ewt is not None:
            if ewt < 60:
                texts += ivr.expected_wait_short
            else:
                texts += filled(ivr.expected_wait, minutes=math.ceil(ewt / 60))
        queue = ticket.waiting.queue
        callback_key, voicemail_key = self.callback_key(queue), self.voicemail_key(queue)
        if callback_key is not None:
            texts += filled(ivr.callback_offer, key=callback_key)
        if voicemail_key is not None:
            texts += filled(ivr.voicemail_offer, key=voicemail_key)
        # A position or wait not said before is synthesised first (a few hundred ms): the
        # offer does not wait for it. An agent found meanwhile rings at once, unannounced.
        say = asyncio.ensure_future(self.voice.say(texts, call.it.language))
        first: list[asyncio.Future[Any]] = [say, ticket.decided]
        try:
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not say.done():
                say.cancel()
        if ticket.decided.done():
            return None
        uris = say.result()
        call.it.record(
            call.now(), "announced", position=position, expected_wait_s=None if ewt is None else round(ewt)
        )
        call.save_soon()
        await call.music(False)
        # Any key stops it (the caller has heard enough); the queue's keys also act.
        digit = await call.play(uris, interruptible=True, until=ticket.decided)
        if digit is not None:
            leave = self.key(call, digit, ticket)
            if leave is not None:
                return leave
        if not ticket.decided.done():
            await call.music(True)
        return None

    def key(self, call: Call, digit: str, ticket: Ticket) -> Leave | None:
        """A key pressed while waiting: callback or voicemail, unless an agent was just found."""
        if ticket.decided.done():
            return None
        queue = ticket.waiting.queue
        if digit == self.callback_key(queue):
            return Leave(lambda: self.leave_for_callback(call, ticket))
        if digit == self.voicemail_key(queue) and self.voicemail is not None:
            voicemail = self.voicemail

            async def message() -> bool:
                await voicemail.leave(call, queue)
                return True

            return Leave(message)
        return None

    async def leave_for_callback(self, call: Call, ticket: Ticket) -> bool:
        """Take the caller out of the line with a callback that keeps their place. False when we
        cannot call them back (no dialable number): they stay in line."""
        it = call.it
        number = it.ani
        await call.music(False)
        refusal = None if self.callbacks is None else self.callbacks.refusal(number)
        if self.callbacks is None or refusal is not None:
            reason = "cannot dial out" if refusal is None else refusal.reason.value
            it.record(call.now(), "callback_refused", number=number, reason=reason)
            call.save_soon()
            await self.refused(call)
            return False
        waiting = ticket.waiting
        try:
            if not await call.save():  # the callback row refers to this interaction
                raise ConnectionError("the interaction is not in the database yet")
            cb = await self.callbacks.request(
                phone=number,
                queue=waiting.queue,
                source=CallbackSource.IVR,
                place_at=waiting.queued_at,
                tier=waiting.tier.value,
                customer_id=it.customer_id,
                origin_interaction_id=it.id,
                data={"ivr_digits": it.digits, "dnis": it.dnis},
                hold=True,
                language=it.language,
            )
        except Exception as exc:  # e.g. the database is away: the caller stays in line instead
            call.log.warning("callback for %s not recorded: %s", number, exc)
            it.record(call.now(), "callback_refused", number=number, reason=str(exc)[:200])
            call.save_soon()
            await self.refused(call)
            return False
        # It joins the line when this call is over, so the agent never rings a busy customer.
        call.cleanup.callback(self.callbacks.release, cb)
        it.record(call.now(), "callback_requested", callback_id=cb.id, number=number)
        it.end(call.now(), Outcome.CALLBACK_REQUESTED, ended_by="caller")
        call.save_soon()
        spoken = " ".join(number.lstrip("+"))
        await call.play(
            await self.voice.say(filled(self.ivr.callback_confirmed, number=spoken), call.it.language), False
        )
        await call.hang_up()
        return True

    async def refused(self, call: Call) -> None:
        """ "We cannot call you back": back in line; a key over it stops it and is the wait's."""
        await call.play(
            self.voice.fixed_in("callback_refused", call.it.language), interruptible=True, keep_key=True
        )

    async def nobody(self, call: Call, queue: str) -> None:
        call.it.record(call.now(), "no_agent_available", queue=call.it.queue)
        call.save_soon()
        if self.voicemail is not None and self.voicemail.when_no_agent(queue):
            # A message (a callback where the center can dial out), not "call again later".
            await call.music(False)
            await call.play(self.voice.fixed_in("no_agent_voicemail", call.it.language), interruptible=True)
            await self.voicemail.leave(call, queue)
            return
        await call.music(False)
        await call.play(self.voice.fixed_in("no_agent", call.it.language), interruptible=True)
        call.it.end(call.now(), Outcome.NO_AGENT, ended_by="system")
        await call.hang_up()
