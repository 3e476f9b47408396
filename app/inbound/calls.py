"""Inbound calls: from Stasis entry through the IVR to an agent.

A caller on a service line enters our Stasis app as `inbound,<DNIS>,<ANI>`. The call gets an
interaction, its customer is looked up by ANI, it is answered and walks the flow for its number
(app/inbound/ivr.py); a queue node puts it in line (app/calls/line.py) with the flow's skills,
the customer's tier and what the caller entered, to wait in the inbound waiting room
(app/inbound/waiting.py). After a restart, `resume` takes each caller up where they were.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

from app.adapters.ari import AriNotFound, Channel
from app.adapters.db import Customer
from app.adapters.speech import Recognizer
from app.calls.conversation import Conversation
from app.calls.events import CallerGone
from app.calls.line import Line, WaitingRoom, waiting_of
from app.calls.ports import Desk
from app.calls.recovery import Found, back_in_line, restore_conversation, talking
from app.calls.runtime import Runtime
from app.calls.session import Call
from app.calls.voice import Voice
from app.domain.admission import Admission, Refusal, source_address, trunk_of
from app.domain.caller_id import caller_number
from app.domain.interaction import Interaction, Outcome, Phase
from app.domain.ivr_flow import FlowSet
from app.domain.replay import verify
from app.domain.routing import customer_tier
from app.inbound.ivr import IvrWalker, Lookup, ToFax
from app.voicemail.service import VoicemailService

log = logging.getLogger(__name__)

KIND = "inbound"
# A caller is answered even when the customer database is slow: the lookup waits this long.
CUSTOMER_LOOKUP_S = 1.0


class InboundCalls:
    def __init__(
        self,
        *,
        runtime: Runtime,
        desk: Desk,
        line: Line,
        room: WaitingRoom,
        voice: Voice,
        flows: FlowSet,
        customers: Callable[[str], Awaitable[Customer | None]],
        lookup: Lookup,
        recognizer: Recognizer | None,
        voicemail: VoicemailService | None,
        default_queue: str,
        admission: Admission | None = None,
        fax: ToFax | None = None,
        fax_tone: Callable[[Call], Awaitable[bool]] | None = None,
        languages: tuple[str, ...] = ("en",),
        replay_secret: str = "",
    ) -> None:
        self.runtime = runtime
        # Signs the marker of a replayed call (app/domain/replay.py); "": replays are not taken.
        self.replay_secret = replay_secret
        self._replay_nonces: dict[str, float] = {}  # used once each, until they expire
        self.admission = admission  # None: no call limits
        self.board = runtime.board
        self.desk = desk
        self.line = line
        self.room = room
        self.voice = voice
        self.flows = flows  # replaced whole on a reload; a call keeps the flow it started
        self.customers = customers
        self.voicemail = voicemail
        self.default_queue = default_queue  # where a resumed caller without a queue waits
        # Receives the fax of a caller that turned out to be a fax machine (app/fax/inbound.py);
        # False when the caller really left.
        self.fax_tone = fax_tone
        self.ivr = IvrWalker(voice, recognizer, lookup, self.to_queue, self.to_voicemail, fax, languages)
        self.board.on_stasis(KIND, self.arrived)

    # -- a new caller ---------------------------------------------------------------

    async def arrived(self, channel: Channel, args: tuple[str, ...]) -> None:
        """A caller entered Stasis: their call starts at once (its own task does the rest), or
        is refused unanswered if its source or trunk is over its limits."""
        dnis = args[1] if len(args) > 1 else channel.exten
        # From the channel, not a Stasis argument: a comma in the caller ID would cut that.
        ani = caller_number(channel.caller_number)
        it = Interaction(str(uuid.uuid4()), channel.id, ani=ani, dnis=dnis, arrived_at=self.runtime.clock())
        it.legs["kind"] = KIND
        # The SIP peer's address (the dialplan passes it); the caller ID may be anything.
        it.legs["source"] = source = source_address(args[2] if len(args) > 2 else "")
        if len(args) > 3 and args[3]:
            self._mark_replay(it, args[3])
        call = self.runtime.call(it, KIND)
        if self.admission is not None:
            trunk = trunk_of(channel.name, self.admission.limits.trunks)
            if trunk is not None:
                it.legs["trunk"] = trunk
            refusal = self.admission.admit(source, trunk, time.monotonic())
            if refusal is not None:
                self.board.launch(call, lambda: call.run(lambda: self.refuse(call, channel, refusal)))
                return
            self._hold_place(call, source, trunk)
        self.board.launch(call, lambda: call.run(lambda: self.answer(call, channel)))

    def _mark_replay(self, it: Interaction, token: str) -> None:
        """A replay of a recorded call (app/replay/): marked, so it counts in no report, rings
        no agent and is not recorded. Only a genuine, unexpired, unused marker for this caller and
        number counts; anything else is an ordinary call (and said in the log)."""
        now = time.time()
        marker = verify(self.replay_secret, token, it.ani, it.dnis, now)
        self._replay_nonces = {n: t for n, t in self._replay_nonces.items() if t > now}
        if marker is None or marker.nonce in self._replay_nonces:
            log.warning("call %s: a replay marker that is not valid here; an ordinary call", it.id)
            return
        self._replay_nonces[marker.nonce] = now + 24 * 3600
        it.legs["replay"] = {"of": marker.of, "nonce": marker.nonce}

    def _hold_place(self, call: Call, source: str, trunk: str | None) -> None:
        admission = self.admission
        if admission is not None:
            call.cleanup.callback(admission.release, source, trunk)

    async def refuse(self, call: Call, channel: Channel, refusal: Refusal) -> None:
        """Over a limit: one closed interaction, and a 503 before anything is answered."""
        it = call.it
        if refusal.first:
            log.warning("refusing calls with 503: %s", refusal)
        it.record(it.arrived_at, "arrived", channel=channel.name, source=it.legs["source"])
        it.end(call.now(), Outcome.REFUSED, reason=refusal.rule.value, limit=refusal.limit)
        call.create()
        await call.pbx.hangup(call.caller, reason="congestion")

    async def find_customer(self, ani: str) -> Customer | None:
        try:
            async with asyncio.timeout(CUSTOMER_LOOKUP_S):
                return await self.customers(ani)
        except Exception as exc:  # the database is slow or down: serve the caller as unknown
            log.warning("customer lookup for %s failed (%s); the caller is served as unknown", ani, exc)
            return None

    async def answer(self, call: Call, channel: Channel) -> None:
        it = call.it
        call.customer = customer = await self.find_customer(it.ani)
        it.customer_id = customer.id if customer else None
        it.record(
            it.arrived_at,
            "arrived",
            channel=channel.name,
            customer_id=it.customer_id,
            customer_name=customer.name if customer else None,
        )
        replay = it.legs.get("replay")
        if replay:
            it.record(it.arrived_at, "replay", **replay)
        call.create()
        call.log.info("ANI %s DNIS %s customer %s", it.ani, it.dnis, customer.name if customer else "unknown")
        await call.pbx.answer(call.caller)
        it.record(call.now(), "answered_by_ivr")
        if not replay:  # the IVR part, where recording.ivr says so (a replay is not recorded)
            await call.recorder.ivr(it, call.caller, "start")
        # Written behind, in order: the caller hears the first prompt without waiting for the
        # database (benchmarks/answer_to_prompt.py measured the awaited write as half the delay).
        call.save_soon()
        # The flow is taken once: a reload meanwhile does not change this call's path.
        try:
            await self.ivr.walk(call, self.flows.for_dnis(it.dnis))
        except (CallerGone, AriNotFound):
            # The caller's channel left Stasis. Asterisk may have heard a fax machine's tone and
            # sent it on (fax.detect_on_voice): what the caller was doing has unwound as if they
            # had left (a place in line given up), and the fax is received on this same call.
            if self.fax_tone is None or not await self.fax_tone(call):
                raise

    # -- where the flow leads -------------------------------------------------------

    async def to_queue(self, call: Call, queue: str, skills: Mapping[str, int], reason: str) -> None:
        """Wait in `queue` for an agent, talk, and follow any transfer, until the call ends."""
        it = call.it
        await call.recorder.ivr(it, call.caller, "end")
        customer = call.customer
        tier = customer_tier(customer.vip, customer.tier) if customer else customer_tier(False, None)
        it.skills = dict(skills)
        it.enqueue(call.now(), queue, tier.value, reason)
        call.save_soon()
        last_agent = await self.desk.last_agent(it.customer_id, it.ani, queue)
        waiting = waiting_of(call, queue, customer.value if customer else 0.0, last_agent)
        await self.line.to_agent(call, waiting, self.room)

    async def to_voicemail(self, call: Call, queue: str | None) -> None:
        if self.voicemail is None:
            raise RuntimeError("a flow leads to voicemail, but voicemail is not configured")
        await call.recorder.ivr(call.it, call.caller, "end")
        await self.voicemail.leave(call, queue)

    # -- after a restart ------------------------------------------------------------

    def resume(self, it: Interaction, found: Found) -> bool:
        """Take a caller up where they were: in the menu again, back in line in their place (with
        their flow's skills and what they entered), still talking, or still leaving a message."""
        call = self.runtime.call(it, KIND, recorded=True)
        if self.admission is not None:
            source, trunk = it.legs.get("source", "unknown"), it.legs.get("trunk")
            self.admission.occupy(source, trunk)
            self._hold_place(call, source, trunk)
        # Claimed now, before anything else looks at Asterisk's channels: the legs still talking.
        conv = restore_conversation(call, self.line, found) if talking(it, found) else None
        self.board.launch(call, lambda: call.run(lambda: self._resume(call, found, conv)))
        return True

    async def _resume(self, call: Call, found: Found, conv: Conversation | None) -> None:
        it = call.it
        call.customer = await self.find_customer(it.ani)
        if "voicemail" in it.legs and self.voicemail is not None:
            await self.voicemail.resume(call)
            return
        if it.phase is Phase.IVR:
            it.record(call.now(), "ivr_resumed")
            call.save_soon()
            await self.ivr.walk(call, self.flows.for_dnis(it.dnis))
            return
        customer = call.customer
        value = customer.value if customer else 0.0
        queue = it.queue or self.default_queue
        if conv is not None:
            waiting = waiting_of(call, queue, value)
            if conv.external is not None:
                await conv.follow_external()
                return
            await self.line.follow(call, waiting, self.room)
            return
        await back_in_line(call, self.desk, found, "app restarted")
        it.enqueue(call.now(), queue, it.tier or "medium", "resumed")
        call.save_soon()
        waiting = waiting_of(call, queue, value)
        await self.line.to_agent(call, waiting, self.room)
