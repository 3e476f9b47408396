"""The dialer's calls: a placed call (progressive or predictive) and a preview call.

A placed call rings the customer through the campaign's trunk; its answered side runs the
dialplan's AMD first when the campaign asks for it. A machine hears the campaign's machine
message (or is hung up on). A person is offered at once to an agent, as a top-tier call in the
campaign's queue, and put straight through on the agent's nailed-up line (app/dialer/nailed.py)
or rings their phone (where the call is recorded, the recording notice plays as they are
joined, the agent hearing it with their microphone off: app/calls/conversation.py `join`): if
no agent has picked up within the connect window (counted from the end of the greeting, less
what AMD spent listening for it), the customer hears the identifying message,
the call counts as abandoned and the number is locked out. A preview call rings the agent who
looked at the customer first, then the customer (no AMD: a person is listening already).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from app.adapters.ari import ChannelDestroyed, StasisStart
from app.adapters.db import Store
from app.calls.events import CallerGone, DialFailed, PbxLost
from app.calls.legs import OutboundRefused, call_data, dial_out, ring_agents
from app.calls.line import Line, WaitingRoom, waiting_of
from app.calls.session import Call
from app.calls.voice import Voice
from app.config import CampaignSettings
from app.dialer.nailed import NailedLines
from app.domain.campaign import CallResult, DialAttempt, Lead, answered_result, unanswered_result
from app.domain.interaction import Outcome, Phase
from app.domain.outbound import Purpose
from app.domain.prompt import language_on_our_call
from app.domain.routing import Decision, Tier, WaitingInteraction
from app.errors import PbxError

# How long AMD listens after a greeting before it says "human": that part of the window is gone.
AMD_AFTER_GREETING_S = 0.8
DIALPLAN_CONTEXT = "lianluo-dialer"


@dataclass(frozen=True)
class Reach:
    """How a dialer call reaches the customer and what it shows them."""

    center_name: str
    caller_id: str
    languages: tuple[str, ...] = ("en",)  # the center's, the first its default


class DialerCall:
    """One placed call, from ringing to its end."""

    def __init__(
        self,
        call: Call,
        campaign: CampaignSettings,
        lead: Lead,
        attempt: DialAttempt,
        *,
        line: Line,
        room: WaitingRoom,
        voice: Voice,
        reach: Reach,
        store: Store,
        lines: NailedLines | None = None,
    ) -> None:
        self.call = call
        self.lines = lines
        self.campaign = campaign
        self.lead = lead
        self.attempt = attempt
        self.line = line
        self.room = room
        self.voice = voice
        self.reach = reach
        self.store = store
        self.answered = False
        self.agent_missed = False  # preview: the agent never took it; the customer was not called
        loop = asyncio.get_running_loop()
        self.dialled_at = loop.time()
        self.answered_loop_time: float | None = None
        self.connected_loop_time: float | None = None
        self.agent_ring_s: float | None = None  # how long a ringing agent's phone took to answer
        name = campaign.name
        call.agent_variables.update(
            {
                "LIANLUO_CAMPAIGN": name,
                "PJSIP_HEADER(add,X-Lianluo-Campaign)": name,
                # Phones that honour it pick up at once: the customer is already on the line.
                "PJSIP_HEADER(add,Call-Info)": "<sip:lianluo>;answer-after=0",
            }
        )

    @property
    def agent_id(self) -> str | None:
        conv = self.call.conversation
        return getattr(conv, "agent_id", None)

    async def dial_customer(self, amd: bool) -> None:
        """The customer's leg, through the campaign's trunk; its answered side runs AMD if asked."""
        a = self.attempt
        self.call.caller_placed = True
        try:
            placed = await dial_out(
                self.call,
                number=a.phone,
                trunk=a.trunk,
                purpose=Purpose.DIALER,
                kind="dialer",
                channel_id=self.call.caller,
                caller_id=f'"{self.reach.center_name}" <{self.reach.caller_id}>',
                timeout_s=self.campaign.ring_s,
                variables={
                    **call_data(self.call),
                    "LIANLUO_ATTEMPT": a.id,
                    "LIANLUO_AMD": "yes" if amd else "no",
                },
                dialplan_context=DIALPLAN_CONTEXT,
            )
        except OutboundRefused as refused:
            placed = None
            reason = refused.refusal.detail
        else:
            reason = "could not dial"
        if placed is None:  # the trunk (or the outbound policy) refused the call before it rang
            self.call.events.put_nowait(DialFailed(self.call.caller, reason))

    async def run(self) -> None:
        """The call start to end; `attempt.result` says how it went."""
        call = self.call

        def customer_left(phase: Phase) -> Outcome:
            return Outcome.COMPLETED if phase is Phase.CONNECTED else Outcome.ABANDONED

        try:
            await call.run(self.place, when_caller_leaves=customer_left, caller_is="customer")
        finally:
            if call.ended and self.answered:
                await call.hang_up()
        if call.it.outcome is Outcome.FAILED:
            self.attempt.result = self.attempt.result or CallResult.FAILED

    async def place(self) -> None:
        call, a, c = self.call, self.attempt, self.campaign
        answer: StasisStart | None = None
        while answer is None:
            ev = await call.events.get()  # not next_event: the customer's leg ending is a result
            if isinstance(ev, DialFailed):
                a.result = CallResult.FAILED
                call.it.end(call.now(), Outcome.FAILED, ended_by="system")
                return
            if isinstance(ev, PbxLost) and call.caller in ev.channel_ids:
                a.result = CallResult.FAILED  # the center stopped or Asterisk restarted meanwhile
                call.it.end(call.now(), Outcome.DROPPED, ended_by="pbx", reason=ev.why)
                return
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == call.caller:
                a.result = unanswered_result(ev.cause)
                call.it.end(call.now(), Outcome.CUSTOMER_UNREACHED, ended_by="system")
                return
            if isinstance(ev, StasisStart) and ev.channel.id == call.caller:
                answer = ev
        self.answered = True
        self.answered_loop_time = asyncio.get_running_loop().time()
        a.answered_at = call.now()
        a.amd_status = answer.args[2] if len(answer.args) > 2 else None
        await self.know_customer()
        if answered_result(a.amd_status) is CallResult.MACHINE:
            a.result = CallResult.MACHINE
            if c.on_machine == "message":
                await call.play(
                    await self.voice.say(list(c.machine_message), call.it.language), interruptible=False
                )
            call.it.end(call.now(), Outcome.CUSTOMER_UNREACHED, ended_by="system", result="machine")
            return
        a.live_answer = True
        call.it.record(call.now(), "dialer_answered", campaign=c.name, amd=a.amd_status, attempt=a.id)
        call.create()
        a.interaction_id = call.it.id
        window = c.connect_window_s - (AMD_AFTER_GREETING_S if c.amd and a.amd_status != "NOAMD" else 0.0)
        deadline = asyncio.get_running_loop().time() + max(0.3, window)
        waiting = await self.to_agent_within(deadline)
        if waiting is not None:
            a.result = CallResult.CONNECTED
            a.agent_id = self.agent_id
            self.connected_loop_time = asyncio.get_running_loop().time()
            await self.record_attempt()  # reports see it while the call is on
            await self.line.follow(call, waiting, self.room)
            return
        await self.abandon()

    async def know_customer(self) -> None:
        """Who answers, and the one language every prompt to them is in: the lead's, else their
        stored preference, else the center's default (`language_on_our_call`)."""
        call = self.call
        call.customer = await self.store.customer_by_phone(self.lead.phone)
        call.it.customer_id = call.customer.id if call.customer else None
        preference = call.customer.language if call.customer is not None else None
        call.serve_in(language_on_our_call("dialer", self.reach.languages, self.lead.language, preference))

    async def record_attempt(self) -> None:
        """Write the attempt's row; the interaction it refers to goes first (the writer batches
        interactions, so it may not be on disk yet)."""
        await self.call.save()
        await self.store.save_dial_attempt(self.attempt)

    async def to_agent_within(self, deadline: float) -> WaitingInteraction | None:
        """Offer the customer to an agent as a top-tier call; the line once an agent is talking."""
        call, c = self.call, self.campaign
        loop = asyncio.get_running_loop()
        call.it.enqueue(call.now(), c.queue, Tier.TOP.value, f"campaign:{c.name}")
        waiting = waiting_of(call, c.queue)
        waiting.data = {**waiting.data, "campaign": c.name, **self.lead.attributes}
        ticket = self.line.desk.enqueue(waiting)
        await asyncio.wait([ticket.decided], timeout=max(0.0, deadline - loop.time()))
        if not ticket.decided.done():
            self.line.desk.withdraw(call.it.id)
            return None
        if ticket.decided.cancelled():
            return None
        decision = ticket.decided.result()
        if self.lines is not None and len(decision.agent_ids) == 1:
            nailed = await self.lines.lend(call, decision.agent_ids[0], c.queue, decision.reason)
            if nailed is not None:  # straight through on the agent's line: nothing rings
                await self.line.conversation(call).join(nailed, announce=True)
                return waiting
        rang_at = loop.time()
        leg = await ring_agents(
            call,
            self.line.desk,
            decision,
            c.queue,
            ring_timeout_s=self.line.ring_timeout(c.queue),
            hold_caller=False,
            within_s=max(0.5, deadline - loop.time()),
        )
        if leg is None:
            return None
        self.agent_ring_s = loop.time() - rang_at
        await self.line.conversation(call).join(leg, announce=True)
        return waiting

    async def abandon(self) -> None:
        """No agent in time: the identifying message, then goodbye. Counted; the number locked out."""
        call, a = self.call, self.attempt
        a.result = CallResult.ABANDONED
        a.abandoned = True
        a.message_started_at = call.now()
        call.it.record(call.now(), "abandoned_by_dialer", campaign=self.campaign.name)
        with contextlib.suppress(CallerGone):
            await call.play(
                await self.voice.say(list(self.campaign.message), call.it.language), interruptible=False
            )
        call.it.end(call.now(), Outcome.ABANDONED, ended_by="system")


class PreviewCall(DialerCall):
    """A preview call: the agent who looked at the customer is rung first, then the customer.
    The agent hears the customer's phone ring; no AMD (a person is listening already)."""

    decision: Decision | None = None

    async def place(self) -> None:
        call, a, c = self.call, self.attempt, self.campaign
        assert self.decision is not None
        call.caller_placed = False  # the customer is called once the agent has answered
        self.answered = True  # our side is live from the agent's answer: clean up as a call
        await self.know_customer()
        call.it.record(call.now(), "preview_call", campaign=c.name, attempt=a.id)
        call.it.enqueue(call.now(), c.queue, Tier.TOP.value, f"preview:{c.name}")
        call.create()
        leg = await ring_agents(
            call,
            self.line.desk,
            self.decision,
            c.queue,
            ring_timeout_s=self.line.ring_timeout(c.queue),
            hold_caller=False,
        )
        if leg is None:
            self.agent_missed = True
            call.it.end(call.now(), Outcome.NO_AGENT, ended_by="agent")
            return
        conv = self.line.conversation(call)  # the agent is on the call from their answer
        conv.agent = leg
        if leg.agent_id is not None:
            conv.joined[leg.agent_id] = leg.answered_at or call.now()
        ringback = f"pb-{uuid.uuid4()}"
        with contextlib.suppress(PbxError):
            await call.pbx.play(leg.channel_id, "tone:ring;tonezone=us", ringback)
        await self.dial_customer(amd=False)
        while True:
            ev = await call.events.get()
            if isinstance(ev, DialFailed):
                a.result = CallResult.FAILED
                break
            if isinstance(ev, PbxLost):
                await call.hang_up()
                a.result = CallResult.FAILED
                call.it.end(call.now(), Outcome.DROPPED, ended_by="pbx", reason=ev.why)
                return
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == call.caller:
                a.result = unanswered_result(ev.cause)
                break
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == leg.channel_id:
                await call.hang_up()
                conv.agent = None  # gone: nothing to hang up, but their part ends
                if leg.agent_id is not None:
                    conv.agent_done(leg.agent_id)
                self.agent_missed = True
                call.it.end(call.now(), Outcome.NO_AGENT, ended_by="agent")
                return
            if isinstance(ev, StasisStart) and ev.channel.id == call.caller:
                a.answered_at = call.now()
                a.live_answer = True
                a.result = CallResult.CONNECTED
                a.agent_id = leg.agent_id
                self.connected_loop_time = asyncio.get_running_loop().time()
                await call.pbx.stop_playback(ringback)
                conv.agent = None
                await conv.join(leg, announce=True)
                await self.record_attempt()
                await self.line.follow(call, waiting_of(call, c.queue), self.room)
                return
        call.it.record(call.now(), "customer_unreached", result=a.result.value if a.result else None)
        call.it.end(call.now(), Outcome.CUSTOMER_UNREACHED, ended_by="system")
