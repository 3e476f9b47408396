"""One try at a callback: a silent wait in line, the agent first, then the customer.

It is a call whose "caller" (the customer's channel) does not exist until the agent has
answered: it waits in line like a caller (the desk's rules, its original place), the chosen
agent's phone rings, the agent hears a short whisper and ringing while the customer is dialled
through the carrier trunk, and when the customer answers both talk, with the same controls as
any call (app/calls/conversation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence

from app.adapters.ari import ChannelDestroyed, ChannelHangupRequest, PlaybackFinished, StasisEnd, StasisStart
from app.adapters.db import Customer
from app.calls.events import DialFailed, PbxLost
from app.calls.legs import OutboundRefused, call_data, dial_out, ring_agents
from app.calls.line import Line, WaitingRoom
from app.calls.ports import Desk, Ticket
from app.calls.session import Call
from app.calls.voice import Voice, filled
from app.config import CallbackSettings, CarrierSettings, PromptText
from app.domain.callback import AttemptResult, Callback, RetryPolicy, attempt_result
from app.domain.interaction import Outcome, Phase
from app.domain.outbound import Purpose
from app.domain.prompt import language_on_our_call
from app.domain.routing import Decision, Tier, WaitingInteraction
from app.errors import PbxError


class CallbackAttempt:
    def __init__(
        self,
        call: Call,
        cb: Callback,
        *,
        desk: Desk,
        line: Line,
        room: WaitingRoom,
        voice: Voice,
        carrier: CarrierSettings,
        center_name: str,
        rules: CallbackSettings,
        policy: RetryPolicy,
        save_callback: Callable[[Callback], Awaitable[None]],
        find_customer: Callable[[str], Awaitable[Customer | None]] | None = None,
        languages: Sequence[str] = ("en",),
        greeting: Sequence[PromptText] = (),
    ) -> None:
        self.call = call
        self.cb = cb
        self.desk = desk
        self.line = line
        self.room = room
        self.voice = voice
        self.carrier = carrier
        self.center_name = center_name
        self.rules = rules
        self.policy = policy
        self.save_callback = save_callback
        self.find_customer = find_customer
        self.languages = tuple(languages)
        self.greeting = filled(greeting, center=center_name)
        self.result: AttemptResult | None = None
        self.ticket: Ticket | None = None
        # Cancelled before the customer was dialled. Kept as a flag, not only as the ticket's
        # withdrawal: a cancel can come while the try is still getting ready (no ticket yet) or
        # while the chosen agent's phone rings (the ticket already decided).
        self.withdrawn = False
        call.agent_variables.update(self._call_data())
        call.caller_placed = False  # the customer's leg exists only once the agent has answered

    def _call_data(self) -> dict[str, str]:
        out = {"LIANLUO_CALLBACK": self.cb.id, "PJSIP_HEADER(add,X-Lianluo-Callback)": self.cb.id}
        voicemail_id = self.cb.data.get("voicemail_id")
        if isinstance(voicemail_id, str):  # the agent can play the message before the call
            out["LIANLUO_VOICEMAIL"] = voicemail_id
            out["PJSIP_HEADER(add,X-Lianluo-Voicemail)"] = voicemail_id
        return out

    def withdraw(self) -> None:
        """Cancelled before the customer is dialled: out of line, or never put in it."""
        self.withdrawn = True
        if self.ticket is not None and not self.ticket.decided.done():
            self.desk.withdraw(self.call.it.id)

    async def run(self) -> None:
        """The try, start to end; `self.result` says how it went for the customer."""
        try:
            await self.call.run(
                self.attempt,
                when_caller_leaves=lambda _: Outcome.COMPLETED,  # the customer hung up after talking
                caller_is="customer",
            )
        except asyncio.CancelledError:
            self.withdraw()
            raise
        finally:
            if self.call.ended:
                await self.call.hang_up()

    async def attempt(self) -> None:
        call, cb = self.call, self.cb
        it = call.it
        it.queued_at = cb.place_at  # the place in line kept from the original call
        it.record(call.now(), "callback_attempt", callback_id=cb.id, attempt=cb.attempts + 1, number=cb.phone)
        it.enqueue(call.now(), cb.queue, cb.tier, f"callback:{cb.source.value}")
        call.create()
        await self.know_customer()
        refusal = call.outbound.check(cb.phone, Purpose.CALLBACK, self.carrier.name, call.now())
        if refusal is not None and refusal.reason.lasting:
            # Made before the policy said no (an older release, a changed dial plan): nobody rings.
            it.record(
                call.now(),
                "outbound_refused",
                number=cb.phone,
                purpose="callback",
                reason=refusal.reason.value,
            )
            cb.refuse()
            await self.save_callback(cb)
            self.result = AttemptResult.REFUSED
            it.end(call.now(), Outcome.FAILED, ended_by="system", reason=refusal.detail)
            return
        waiting = WaitingInteraction(
            id=it.id,
            queue=cb.queue,
            queued_at=cb.place_at,
            tier=Tier(cb.tier),
            customer_value=0.0,
            last_agent_id=await self.desk.last_agent(cb.customer_id, cb.phone, cb.queue),
            data={"ani": cb.phone, "callback_id": cb.id, **{k: str(v) for k, v in cb.data.items()}},
        )
        while True:
            decision = await self.wait_in_line(waiting)
            if decision is None:
                return  # withdrawn (cancelled)
            leg = await ring_agents(
                call,
                self.desk,
                decision,
                waiting.queue,
                ring_timeout_s=self.line.ring_timeout(waiting.queue),
                hold_caller=False,
            )
            if leg is not None:
                break
            waiting.excluded_agents = waiting.excluded_agents | frozenset(decision.agent_ids)
        agent_leg = leg

        async def release_agent() -> None:
            """The customer never came on: the agent's part ends with the try (once a
            conversation exists, it ends the agent's part itself)."""
            if call.conversation is None:
                await call.hang_up(agent_leg.channel_id)
                talk_s = (call.now() - (agent_leg.answered_at or call.now())).total_seconds()
                self.desk.hung_up(agent_leg.agent_id or "", it.queue, talk_s)

        call.when_over(release_agent)
        if self.withdrawn:  # cancelled while the agent's phone rang: the agent is let go
            it.end(call.now(), Outcome.FAILED, ended_by="system", reason="callback cancelled")
            return
        cb.start_attempt(leg.agent_id or "?")
        await self.save_callback(cb)
        await call.play(self.voice["callback_whisper"], interruptible=False, channel=leg.channel_id)
        self.result = None if leg.channel_id in call.gone else await self.dial_customer(leg.channel_id)
        if self.result is AttemptResult.ANSWERED:
            cb.finish_attempt(AttemptResult.ANSWERED, call.now(), self.policy)
            await self.save_callback(cb)
            # Who is calling, in the customer's language; the bridge waits for its end. Then,
            # where the call is recorded, the recording notice, with the agent on the line.
            await call.play_behind(await self.voice.say(self.greeting, call.it.language))
            await self.line.conversation(call).join(leg, announce=True)
            call.log.info("callback %s: customer %s connected to agent %s", cb.id, cb.phone, leg.agent_id)
            await self.line.follow(call, waiting, self.room)
            return
        if self.result is None:  # the agent hung up before the customer answered
            cb.agent_missed()
            it.end(call.now(), Outcome.FAILED, ended_by="agent", reason="agent left before answer")
            return
        it.record(call.now(), "customer_unreached", result=self.result.value)
        await call.play(self.voice["callback_unreached"], interruptible=False, channel=leg.channel_id)
        it.end(call.now(), Outcome.CUSTOMER_UNREACHED, ended_by="system", result=self.result.value)

    async def know_customer(self) -> None:
        """The customer's language for this try, and its greeting made ready in it while the
        try waits in line (synthesis takes a moment the customer should not hear)."""
        call, cb = self.call, self.cb
        customer = await self.find_customer(cb.phone) if self.find_customer is not None else None
        call.customer = customer
        preference = customer.language if customer is not None else None
        call.serve_in(language_on_our_call("callback", self.languages, cb.language, preference))
        await self.voice.say(self.greeting, call.it.language)

    async def wait_in_line(self, waiting: WaitingInteraction) -> Decision | None:
        call = self.call

        def overflowed(queue: str) -> None:
            self.cb.queue = queue
            call.it.enqueue(call.now(), queue, waiting.tier.value, "overflow")
            call.save_soon()

        if self.withdrawn:  # cancelled while this try got ready
            call.it.end(call.now(), Outcome.FAILED, ended_by="system", reason="callback cancelled")
            return None
        self.ticket = self.desk.enqueue(waiting, on_overflow=overflowed)
        await asyncio.wait([self.ticket.decided])
        if self.ticket.decided.cancelled():
            call.it.end(call.now(), Outcome.FAILED, ended_by="system", reason="callback cancelled")
            return None
        return self.ticket.decided.result()

    async def dial_customer(self, agent_channel: str) -> AttemptResult | None:
        """Ring the customer while the agent hears ringing. None if the agent left meanwhile."""
        call = self.call
        tone_id = f"pb-{uuid.uuid4()}"
        call.route(tone_id, channel=False)
        with contextlib.suppress(PbxError):
            await call.pbx.play(agent_channel, "tone:ring;tonezone=us", tone_id)
        call.it.record(call.now(), "dialing_customer", number=self.cb.phone)
        call.save_soon()
        call.caller_placed = True
        try:
            try:
                placed = await dial_out(
                    call,
                    number=self.cb.phone,
                    trunk=self.carrier.name,
                    purpose=Purpose.CALLBACK,
                    kind="callback",
                    channel_id=call.caller,
                    caller_id=f'"{self.center_name}" <{call.it.dnis}>',
                    timeout_s=self.rules.customer_ring_s,
                    variables={**call_data(call), "LIANLUO_CALLBACK": self.cb.id},
                )
            except OutboundRefused as refused:
                # A limit may pass by the next try; a number outside the dial plan never will.
                return AttemptResult.REFUSED if refused.refusal.reason.lasting else AttemptResult.FAILED
            if placed is None:
                return AttemptResult.FAILED
            # Not next_event: the customer's leg is this call's "caller", and it ending unanswered
            # is a result here, not the end of the script.
            while True:
                ev = await call.events.get()
                if isinstance(ev, StasisStart) and ev.channel.id == call.caller:
                    return AttemptResult.ANSWERED
                if isinstance(ev, ChannelDestroyed) and ev.channel.id == call.caller:
                    return attempt_result(ev.cause)
                if isinstance(ev, DialFailed) and ev.channel_id == call.caller:
                    return AttemptResult.FAILED
                if isinstance(ev, PbxLost) and ev.channel_ids & {agent_channel, call.caller}:
                    await call.hang_up()
                    return None
                if (
                    isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd)
                    and ev.channel.id == agent_channel
                ):
                    call.gone.add(agent_channel)
                    await call.hang_up()
                    return None
                if isinstance(ev, PlaybackFinished) and ev.playback_id == tone_id:
                    continue
        finally:
            call.unroute(tone_id)
            with contextlib.suppress(PbxError):
                await call.pbx.stop_playback(tone_id)

    @property
    def dialling(self) -> bool:
        return self.call.it.phase is not Phase.ENDED and self.result is None
