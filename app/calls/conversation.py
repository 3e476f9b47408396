"""The connected phase of a call: who talks with the caller, and what people do with the call.

A `Conversation` starts when the first agent answers and lives as long as the call. It owns
the bridge, the agent in control, the other agents of a three-way call, hold, mute, a
consultation and an external party, in one place. People's requests (hold, mute, keys,
hang-up, transfers, consult, conference) are put in the call's own queue and carried out
between its ARI events, so a control never races a hang-up.

A blind transfer to a queue or an agent is not carried out here: `run` returns it as a
`Transfer` and the call's line (app/calls/line.py) puts the caller back in line. A transfer to a
number is: `to_number` rings it through the carrier and bridges it. Every change is written to
the interaction's `legs` so that a restarted app takes the conversation over as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.adapters.ari import (
    AriNotFound,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    PlaybackFinished,
    StasisStart,
)
from app.calls.events import CallEvent, ControlRequest, OfferReply, PbxLost, Reconnected
from app.calls.legs import Leg, OutboundRefused, agent_call_data, call_data, dial_out, place, wait_answer
from app.calls.ports import Desk
from app.calls.session import HANGUP_EVENTS, Call
from app.domain.callback import valid_phone
from app.domain.experts import Ask
from app.domain.interaction import Outcome
from app.domain.outbound import Purpose
from app.domain.routing import Tier
from app.errors import AppError, PbxError

ACTIONS = (
    "hold",
    "resume",
    "mute",
    "unmute",
    "dtmf",
    "hangup",
    "transfer",
    "consult",
    "complete",
    "conference",
    "cancel",
    "expert",
    "pause_recording",
    "resume_recording",
)
_DTMF = re.compile(r"^[0-9*#A-D]{1,32}$")


class ControlError(AppError):
    def __init__(self, message: str, http_status: int = 409) -> None:
        super().__init__("call-control", message, {}, http_status)


@dataclass(frozen=True)
class Transfer:
    """The caller leaves their agent for another agent, a queue or a number (blind transfer)."""

    queue: str | None
    agent_id: str | None
    number: str | None = None

    @property
    def target(self) -> str:
        if self.number is not None:
            return f"number:{self.number}"
        return f"queue:{self.queue}" if self.queue else f"agent:{self.agent_id}"


@dataclass(frozen=True)
class ExpertOffer:
    """One expert offered the call: previewed in their panel first when they have one."""

    offer_id: str
    expert_id: str
    name: str
    reason: str
    offer_s: float
    agent_id: str | None = None  # their agent account: the phone to ring, the panel that previews
    number: str | None = None  # an outside number, reached through the carrier


class Experts(Protocol):
    """Experts outside the center, as a conversation asks them (app/experts/service.py)."""

    number_ring_s: float
    key_s: float  # an outside expert's time to press 1 or 2 once the summary has been read

    async def summary(self, call: Call, offer: ExpertOffer, note: str) -> list[str]:
        """What an outside expert hears on answering: the call's data and "press 1 or 2" (sounds)."""

    def next_offer(self, call: Call, ask: Ask, note: str, by: str) -> ExpertOffer | None:
        """Choose the next expert for `ask` and offer them the call: reserved, their panel shows
        the preview, and the offer's time runs (an OfferReply "timeout" comes back to the call)."""

    def closed(self, call: Call, offer: ExpertOffer, verdict: str) -> None:
        """The offer is over: "accept" (their phone rings next), "reject" or "timeout" (set free;
        a silent one goes Not Ready), "cancel" (the agent cancelled or the caller left)."""

    def released(self, call: Call, offer: ExpertOffer) -> None:
        """The expert's leg of this call is over (unanswered, cancelled, or their talk ended)."""


@dataclass
class Asking:
    """An agent asked for an expert: the offers go round until one accepts and answers."""

    ask: Ask
    note: str
    by: str
    blind: bool
    offer: ExpertOffer | None = None


@dataclass
class Consult:
    agent_id: str
    channel_id: str
    answered: bool = False
    number: str | None = None  # a number outside, consulted through the carrier (agent_id "")
    expert: ExpertOffer | None = None  # a consulted expert (agent_id "" when on an outside number)
    asking: Asking | None = None  # what to try next if the expert's phone is not answered
    # An outside expert who answered hears the summary and takes the call with 1 (or not).
    summary: asyncio.Task[list[str]] | None = None
    hearing: bool = False  # answered, listening to the summary, no key yet
    playback_id: str | None = None
    key_timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class Dialing:
    """How the center reaches numbers outside: the carrier trunk, the number it shows, and the
    prefixes a transfer may go to (none by default: open transfers invite toll fraud)."""

    carrier: str
    presented_number: str
    center_name: str
    transfer_prefixes: tuple[str, ...] = ()
    external_ring_s: float = 30.0


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


class Conversation:
    def __init__(self, call: Call, desk: Desk, dialing: Dialing, experts: Experts | None = None) -> None:
        self.call = call
        self.desk = desk
        self.dialing = dialing
        self.experts = experts
        self.asking: Asking | None = None  # an expert is being offered the call (preview)
        self.expert_legs: dict[str, ExpertOffer] = {}  # channel -> the expert on it
        self.bridge_id: str | None = None
        self._agent: Leg | None = None  # the agent on the call, who controls it
        self.conference: dict[str, str] = {}  # the other agents of a three-way call: channel -> agent
        self.held = False
        self.muted = False
        self.consult: Consult | None = None
        self.external: Leg | None = None  # a number the caller was transferred to
        self.joined: dict[str, datetime] = {}  # agent -> when they started talking on this call
        self.active = False  # True while `run` carries out requests
        # The recording notice of a call we place: its playback to the customer (the one waited
        # for), its copy to the agent, and the agent's channel, muted meanwhile.
        self.notice_id: str | None = None
        self.notice_echo: str | None = None
        self.notice_agent: str | None = None
        call.conversation = self
        call.when_over(self.hang_up_everyone)
        call.when_over(lambda: call.recorder.over(call.it))  # runs first: the file closes with the caller

    @property
    def agent(self) -> Leg | None:
        """The party in control of the call: an agent, or an outside expert it was handed to."""
        return self._agent

    @agent.setter
    def agent(self, leg: Leg | None) -> None:
        changed = leg is not self._agent
        self._agent = leg
        if changed:
            self.call.party_changed()  # a supervisor listening in moves with the call

    @property
    def queue(self) -> str:
        return self.call.it.queue or ""

    @property
    def agent_id(self) -> str | None:
        return self.agent.agent_id if self.agent is not None else None

    def has_agent(self, agent_id: str) -> bool:
        """Is this agent talking on the call (in control or in a conference)?"""
        return self.agent_id == agent_id or agent_id in self.conference.values()

    # -- joining ----------------------------------------------------------------

    async def _bridge(self) -> str:
        if self.bridge_id is None:
            bridge_id = f"call-{self.call.it.id}"
            await self.call.pbx.create_bridge(bridge_id, name=f"interaction {self.call.it.id}")
            self.bridge_id = bridge_id
        return self.bridge_id

    async def join(self, leg: Leg, announce: bool = False) -> None:
        """The caller and the agent who answered talk: one bridge, the interaction connected.

        With `announce` (a call we place: a callback, a campaign's call), a customer whose call
        is recorded hears the recording notice as they are joined, in their language; the agent
        hears it too, at the same moment, with their microphone off until it ends
        (`_notice_over`, from `run`). The customer is with a live agent at once (no dead air, the
        dialer's connect window is met) and nobody talks over the notice."""
        call = self.call
        # The agent is on this call from their answer: if the caller is gone before the bridge
        # is up, the end of the call still hangs up their leg and starts their wrap-up.
        self.agent = leg
        self.held = self.muted = False
        at = leg.answered_at or call.now()
        if leg.agent_id is not None:
            self.joined[leg.agent_id] = at
        campaign = call.agent_variables.get("LIANLUO_CAMPAIGN")
        notice = call.recorder.notice(call.it, campaign) if announce else []
        bridge = await self._bridge()
        # A notice still playing to the caller (the consent, started while the phone rang) is
        # heard whole before the agent speaks.
        await call.prompt_over()
        await call.music(False)
        if notice:  # off before the bridge: not even the agent's "hello" goes over the notice
            notice = await self._mute_for_notice(leg, notice)
        try:
            await call.pbx.add_to_bridge(bridge, [call.caller, leg.channel_id])
        except AriNotFound as exc:
            # One of them hung up between the answer and the bridge (an agent who answers and
            # drops at once): they did talk, for no time. That hang-up's event comes next and
            # ends the conversation as any hang-up does, with the agent's wrap-up.
            call.log.info("a party left before the bridge was up: %s", exc.message)
            notice = []
        call.it.connect(at, leg.agent_id or "?")
        await call.recorder.connected(call.it, call.caller, campaign)
        if notice:  # after the recording started: the file holds the notice, the proof it was given
            await self._play_notice(leg, notice)
        elif self.notice_agent is not None:
            await self._notice_over()
        self.remember()
        call.save_soon()

    # -- the recording notice on a call we place -----------------------------------

    async def _mute_for_notice(self, leg: Leg, notice: list[str]) -> list[str]:
        """The agent's microphone off for the notice; nothing to play if that failed."""
        try:
            await self.call.pbx.mute(leg.channel_id)
        except PbxError as exc:
            self.call.log.warning("recording notice not played: agent not muted: %s", exc.message)
            return []
        self.notice_agent = leg.channel_id
        self.call.when_over(self._notice_over)  # whatever way the call ends, the line is heard again
        return notice

    async def _play_notice(self, leg: Leg, notice: list[str]) -> None:
        """The notice to the customer's channel and, at the same moment, the same words to the
        agent's: each channel plays it over the bridge (a bridge's own playback needs Asterisk's
        announcer channels, which this build leaves out). The customer's playback is the one
        that counts: the conversation opens when it has played."""
        call = self.call
        playback_id, agent_playback = f"pb-{uuid.uuid4()}", f"pb-{uuid.uuid4()}"
        call.route(playback_id, channel=False)
        lang = call.it.language or "en"
        try:
            await call.pbx.play(call.caller, notice, playback_id, lang=lang)
        except PbxError as exc:
            call.log.warning("recording notice not played: %s", exc.message)
            call.unroute(playback_id)
            await self._notice_over()
            return
        self.notice_id = playback_id
        call.route(agent_playback, channel=False)
        try:
            await call.pbx.play(leg.channel_id, notice, agent_playback, lang=lang)
            self.notice_echo = agent_playback
        except PbxError as exc:  # the agent only misses hearing it: still muted until it ends
            call.log.info("recording notice not played to the agent: %s", exc.message)
            call.unroute(agent_playback)
        call.it.record(call.now(), "recording_notice", lang=call.it.language)
        call.log.info("recording notice playing to the customer and the agent (%s)", call.it.language)

    async def _notice_over(self, stopped_by: str | None = None) -> None:
        """The notice has played (or was stopped: a request of the agent's, the call's end):
        the agent's microphone is on again."""
        call = self.call
        playback_id, self.notice_id = self.notice_id, None
        channel, self.notice_agent = self.notice_agent, None
        echo, self.notice_echo = self.notice_echo, None
        if echo is not None:  # the agent's copy, if it runs on a moment longer
            call.unroute(echo)
            with contextlib.suppress(PbxError):
                await call.pbx.stop_playback(echo)
        if playback_id is not None:
            call.unroute(playback_id)
            if stopped_by is not None:
                with contextlib.suppress(PbxError):
                    await call.pbx.stop_playback(playback_id)
            call.it.record(call.now(), "recording_notice_over", stopped_by=stopped_by)
        if channel is not None and channel not in call.gone and not self.muted:
            with contextlib.suppress(PbxError):
                await call.pbx.unmute(channel)
        if playback_id is not None or channel is not None:
            self.remember()
            call.save_soon()

    async def _notice_event(self, ev: CallEvent) -> bool:
        """True if the event was about the notice (its end)."""
        if self.notice_id is None:
            return False
        if isinstance(ev, PlaybackFinished) and ev.playback_id == self.notice_id:
            await self._notice_over()
            return True
        if isinstance(ev, PlaybackFinished) and ev.playback_id == self.notice_echo:
            self.call.unroute(ev.playback_id)
            self.notice_echo = None
            return True
        if isinstance(ev, Reconnected) and not await self.call.pbx.playback_alive(self.notice_id):
            await self._notice_over()  # it ended while the events were not coming in
        return False

    # -- talking ----------------------------------------------------------------

    async def run(self) -> Transfer | None:
        """The caller and the agent talk until one of them hangs up (None), or the agent
        transfers the call blind (the Transfer; the caller then holds with music)."""
        call = self.call
        self.active = True
        try:
            while True:
                ev = await call.next_event()
                if ev is None:
                    continue
                if await self._notice_event(ev):
                    continue
                if isinstance(ev, ControlRequest):
                    if self.notice_id is not None:  # the agent acts: the notice gives way
                        await self._notice_over(stopped_by=ev.by)
                    transfer = await self.handle(ev)
                    if transfer is not None:
                        return transfer
                    continue
                if isinstance(ev, OfferReply):
                    await self._offer_reply(ev)
                    continue
                if await self._consult_event(ev):
                    continue
                for channel_id in _ended(ev):
                    if await self._party_left(channel_id):
                        return None
        finally:
            self.active = False
            if self.notice_agent is not None:
                await self._notice_over(stopped_by="call")
            self._close_asking()
            await self._close_consult()

    async def _party_left(self, channel_id: str) -> bool:
        """A leg of the conversation ended; True when that ends the call."""
        call = self.call
        self._expert_leg_over(channel_id)
        if channel_id in self.conference:  # one agent leaves a three-way call
            call.unroute(channel_id)
            self.agent_done(self.conference.pop(channel_id))
            self.remember()
            call.save_soon()
            return False
        if self.agent is None or channel_id != self.agent.channel_id:
            return False
        call.unroute(channel_id)
        left = self.agent.agent_id
        if self.conference:  # the conference goes on with the other agent, now in control
            if left is not None:
                self.agent_done(left)
            channel, agent_id = self.conference.popitem()
            self.agent = Leg(channel, agent_id=agent_id or None, answered_at=self.joined.get(agent_id))
            if agent_id:  # a party outside left alone with the caller talks on, handed nothing
                call.it.hand_over(call.now(), agent_id)
            self.remember()
            call.save_soon()
            return False
        call.it.end(call.now(), Outcome.COMPLETED, ended_by="agent")
        await call.hang_up()
        return True

    async def control(self, req: ControlRequest, timeout: float = 10.0) -> dict[str, Any]:
        """A person's request, carried out in this call's own order of events."""
        if not self.active:
            raise ControlError("the call is not connected to an agent right now")
        self.call.events.put_nowait(req)
        async with asyncio.timeout(timeout):
            return await req.done

    async def handle(self, req: ControlRequest) -> Transfer | None:
        """Carry out one request; a Transfer means the caller leaves this agent."""
        call = self.call
        try:
            result, transfer = await self._do(req)
        except AppError as exc:  # PbxError included: the person is told, the call goes on
            if not req.done.done():
                req.done.set_exception(exc)
            return None
        call.it.record(call.now(), f"control_{req.action}", by=req.by, **result)
        if transfer is not None:
            call.it.transfer(call.now(), transfer.target)
        self.remember()
        call.save_soon()
        if not req.done.done():
            req.done.set_result({"action": req.action, **result})
        return transfer

    async def _do(self, req: ControlRequest) -> tuple[dict[str, Any], Transfer | None]:
        call = self.call
        agent = self.agent
        if agent is None:
            raise ControlError("the call has no agent any more")
        if req.action == "hold":
            if self.held:
                raise ControlError("the caller is already on hold")
            await self._hold()
            return {}, None
        if req.action == "resume":
            if not self.held:
                raise ControlError("the caller is not on hold")
            if self.consult is not None or self.asking is not None:
                raise ControlError("end the consultation first: complete, conference or cancel")
            await self._resume()
            return {}, None
        if req.action in ("mute", "unmute"):
            if req.action == "mute":
                await call.pbx.mute(agent.channel_id)
            else:
                await call.pbx.unmute(agent.channel_id)
            self.muted = req.action == "mute"
            return {}, None
        if req.action == "dtmf":
            if req.digits is None or not _DTMF.fullmatch(req.digits):
                raise ControlError("digits: 1-32 of 0-9 * # A-D", 400)
            await call.pbx.send_dtmf(call.caller, req.digits)
            return {"digits": req.digits}, None
        if req.action == "hangup":
            if agent.give_back is not None:  # the agent's line stays up: the customer is let go
                await call.pbx.hangup(call.caller)
                return {}, None
            await call.pbx.hangup(agent.channel_id)  # its hang-up event ends the call as the agent's
            return {}, None
        if req.action == "transfer":
            if self.consult is not None or self.asking is not None:
                raise ControlError("end the consultation first: complete, conference or cancel")
            target = self._target(req.target)
            await self._leave_agent()
            return {"to": req.target}, target
        if req.action == "consult":
            return await self._start_consult(req.target), None
        if req.action in ("complete", "conference", "cancel"):
            return await self._end_consult(req.action), None
        if req.action == "expert":
            return await self._ask_expert(req), None
        if req.action in ("pause_recording", "resume_recording"):
            on = req.action == "pause_recording"
            return await call.recorder.paused(call.it, call.caller, on, req.by), None
        raise ControlError(f"unknown action {req.action!r}; use one of {', '.join(ACTIONS)}", 400)

    def _target(self, target: str | None) -> Transfer:
        kind, _, name = (target or "").partition(":")
        desk = self.desk
        if kind == "queue" and desk.is_queue(name):
            if not desk.anyone_logged_in(name):
                raise ControlError(f"nobody is logged in to queue {name}: the caller stays with you")
            return Transfer(queue=name, agent_id=None)
        if kind == "agent" and desk.is_agent(name):
            if name == self.agent_id:
                raise ControlError("that is the agent on the call")
            return Transfer(queue=None, agent_id=name)
        if kind == "number":
            return Transfer(queue=None, agent_id=None, number=self._outside(name))
        raise ControlError(
            f"transfer target must be 'agent:<id>', 'queue:<name>' or 'number:<digits>', got {target!r}", 400
        )

    def _outside(self, number: str) -> str:
        """A number outside an agent may send or consult the caller to: one of the allowed
        prefixes, and admitted by the outbound policy (checked again as it is dialled)."""
        if not valid_phone(number):
            raise ControlError(f"not a phone number: {number!r}", 400)
        if not any(number.startswith(prefix) for prefix in self.dialing.transfer_prefixes):
            raise ControlError(f"transfers to {number} are not allowed here (routing.transfer_numbers)", 403)
        refusal = self.call.outbound.check(number, Purpose.TRANSFER, self.dialing.carrier, self.call.now())
        if refusal is not None:
            raise ControlError(refusal.detail, 403)
        return number

    # -- hold -------------------------------------------------------------------

    async def _hold(self) -> None:
        call = self.call
        if self.bridge_id is not None:
            await call.pbx.remove_from_bridge(self.bridge_id, [call.caller])
        await call.music(True)
        self.held = True
        await call.recorder.held(call.it, call.caller, True)

    async def _resume(self) -> None:
        call = self.call
        await call.music(False)
        if self.bridge_id is not None:
            await call.pbx.add_to_bridge(self.bridge_id, [call.caller])
        self.held = False
        await call.recorder.held(call.it, call.caller, False)

    async def _leave_agent(self) -> None:
        """The agent drops off (blind transfer): their leg ends and their wrap-up starts; the caller
        holds with music until the next party answers."""
        call = self.call
        agent, self.agent = self.agent, None
        if not self.held:
            await self._hold()
        self.muted = False
        if agent is not None:
            call.unroute(agent.channel_id)
            if agent.give_back is not None:
                await agent.give_back(call)
            else:
                await call.hang_up(agent.channel_id)
            if agent.agent_id is not None:
                self.agent_done(agent.agent_id)

    def agent_done(self, agent_id: str) -> None:
        """An agent's part in this call is over: their handle time counts, wrap-up starts."""
        if not agent_id:  # a party on a number outside (consulted, in a conference): not an agent
            return
        call = self.call
        since = self.joined.pop(agent_id, None) or call.it.answered_at or call.now()
        self.desk.hung_up(agent_id, call.it.queue, (call.now() - since).total_seconds())

    # -- consultation -----------------------------------------------------------

    async def _start_consult(self, target: str | None) -> dict[str, Any]:
        call = self.call
        if self.consult is not None or self.asking is not None:
            raise ControlError("a consultation is already under way")
        kind, _, agent_id = (target or "").partition(":")
        if kind == "number":
            return await self._consult_number(self._outside(agent_id))
        if kind != "agent" or not self.desk.is_agent(agent_id) or agent_id == self.agent_id:
            raise ControlError(
                f"consult target must be another agent as 'agent:<id>' or 'number:<digits>', got {target!r}",
                400,
            )
        self.desk.reserve_direct(agent_id, call.it.id)  # refused (409) unless they are Ready
        if not self.held:
            await self._hold()
        first = self.agent_id or ""
        rules = self.desk.queue_rules(self.queue)
        channel_id = await place(
            call,
            endpoint=f"PJSIP/{agent_id}",
            kind="agent",
            channel_id=f"consult-{uuid.uuid4()}",
            caller_id=f'"{first}" <{first}>',
            timeout_s=rules.ring_timeout_s if rules is not None else 15.0,
            variables={**call_data(call, Consult=first), "LIANLUO_CONSULT_FROM": first},
        )
        if channel_id is None:
            self.desk.offer_failed(agent_id, self.queue, "originate failed", no_answer=False)
            raise ControlError(f"could not ring agent {agent_id}", 502)
        self.desk.ringing(agent_id)
        self.consult = Consult(agent_id, channel_id)
        return {"to": target, "state": "ringing"}

    async def _consult_number(self, number: str) -> dict[str, Any]:
        """Ring a number outside through the carrier while the caller holds; once it answers the
        agent talks with them, then completes (the caller stays with them), conferences or
        cancels, as with an agent."""
        call = self.call
        if not self.held:
            await self._hold()
        first = self.agent_id or ""
        try:
            channel_id = await self._dial_number(
                number,
                {**call_data(call, Consult=first), "LIANLUO_CONSULT_FROM": first},
                channel_id=f"consult-{uuid.uuid4()}",
            )
        except OutboundRefused as refused:
            raise ControlError(refused.message, 403) from refused
        if channel_id is None:
            raise ControlError(f"could not dial {number}", 502)
        self.consult = Consult("", channel_id, number=number)
        return {"to": f"number:{number}", "state": "ringing"}

    async def _end_consult(self, how: str) -> dict[str, Any]:
        call = self.call
        c = self.consult
        if c is None and self.asking is not None and how == "cancel":
            offer = self.asking.offer
            self._close_asking()
            call.it.record(call.now(), "expert_cancelled", expert_id=offer.expert_id if offer else None)
            await self._resume()
            return {"with": offer.expert_id if offer else None}
        if c is None:
            raise ControlError("there is no consultation to end")
        if how == "cancel":
            await call.hang_up(c.channel_id)
            self.consult = None
            self._consult_gone(c)
            await self._resume()
            return {"with": c.agent_id}
        if not c.answered:
            raise ControlError(f"agent {c.agent_id} has not answered yet")
        self.consult = None
        await self._resume()
        if how == "conference":
            self.conference[c.channel_id] = c.agent_id
            return {"with": c.agent_id}
        # complete: the caller stays with the consulted agent; the first agent drops off
        old = self.agent
        if c.agent_id:
            self.agent = Leg(c.channel_id, agent_id=c.agent_id, answered_at=self.joined.get(c.agent_id))
            call.it.hand_over(call.now(), c.agent_id)
        else:  # a number outside, or an expert on one: not an agent of the center
            number = c.number if c.expert is None else c.expert.number
            self.agent = Leg(c.channel_id, number=number, answered_at=call.now())
            call.it.record(
                call.now(),
                "transferred",
                to=f"number:{number}" if c.expert is None else f"expert:{c.expert.expert_id}",
                from_agent=call.it.agent_id,
                how="consult",
            )
        if old is not None:
            call.unroute(old.channel_id)
            await call.hang_up(old.channel_id)
            if old.agent_id is not None:
                self.agent_done(old.agent_id)
        return {
            "to": c.agent_id or (c.expert.expert_id if c.expert else f"number:{c.number}"),
            "from": old.agent_id if old else None,
        }

    async def _consult_event(self, ev: CallEvent) -> bool:
        """ARI events about the consulted agent's leg; True when the event was theirs."""
        c = self.consult
        call = self.call
        if c is None:
            return False
        if isinstance(ev, StasisStart) and ev.channel.id == c.channel_id and c.summary is not None:
            await self._read_summary(c)
            return True
        if isinstance(ev, PlaybackFinished) and c.hearing and ev.playback_id == c.playback_id:
            call.unroute(ev.playback_id)
            c.playback_id = None
            assert c.expert is not None
            call.it.record(call.now(), "expert_whispered", expert_id=c.expert.expert_id)
            call.save_soon()
            self._start_key_timer(c)
            return True
        if isinstance(ev, ChannelDtmfReceived) and c.hearing and ev.channel.id == c.channel_id:
            if ev.digit in ("1", "2"):
                await self._outside_key(c, ev.digit)
            return True
        if isinstance(ev, StasisStart) and ev.channel.id == c.channel_id:
            c.answered = True
            if c.agent_id:
                self.joined[c.agent_id] = call.now()
                tier = Tier(call.it.tier or "medium")
                self.desk.answered(c.agent_id, self.queue, 0.0, call.it.id, tier, first=False)
                call.recorder.party(call.it.id, c.agent_id)
            if self.bridge_id is not None:
                await call.pbx.add_to_bridge(self.bridge_id, [c.channel_id])
            call.it.record(call.now(), "consult_answered", agent_id=c.agent_id or None)
            if c.expert is not None:
                call.it.record(call.now(), "expert_connected", expert_id=c.expert.expert_id)
            self.remember()
            call.save_soon()
            if c.expert is not None and c.asking is not None and c.asking.blind:
                await self._end_consult("complete")  # blind: the agent drops off at the expert's answer
                call.it.record(call.now(), "expert_blind_completed", expert_id=c.expert.expert_id)
                self.remember()
                call.save_soon()
            return True
        if c.channel_id in _ended(ev):
            self.consult = None
            self._stop_hearing(c)
            self._consult_gone(c)
            if c.expert is not None and not c.answered and c.asking is not None:
                # The expert accepted but their phone was not answered: the next expert.
                self.asking = dataclasses.replace(c.asking, offer=None)
                if not await self._offer_next():
                    await self._give_up()
            return True
        return False

    def _consult_gone(self, c: Consult) -> None:
        call = self.call
        self._stop_hearing(c)
        call.unroute(c.channel_id)
        self._expert_leg_over(c.channel_id)
        if not c.agent_id:
            pass  # an expert on an outside number: no agent state to change
        elif c.answered:
            self.agent_done(c.agent_id)
        else:
            self.desk.offer_failed(c.agent_id, self.queue, "consult not answered", no_answer=False)
        call.it.record(call.now(), "consult_ended", agent_id=c.agent_id or None, answered=c.answered)
        self.remember()
        call.save_soon()

    async def _close_consult(self) -> None:
        """The conversation stops (call over or transferred): no consultation is left ringing."""
        c, self.consult = self.consult, None
        if c is not None and self.call.ended:
            await self.call.hang_up(c.channel_id)
            self._consult_gone(c)
        elif c is not None:
            self.consult = c  # stopped for a restart: the next start takes it over

    # -- asking an expert --------------------------------------------------------

    async def _ask_expert(self, req: ControlRequest) -> dict[str, Any]:
        """Offer the call to experts one by one (a preview first, for those with a panel) while the
        caller holds; the first who accepts is rung and consulted (or, blind, takes the caller)."""
        call = self.call
        if self.experts is None:
            raise ControlError("no experts are configured here", 404)
        if not isinstance(req.ask, Ask):
            raise ControlError("ask 'expertise:<tag>', 'group:<name>' or 'expert:<id>'", 400)
        if self.consult is not None or self.asking is not None:
            raise ControlError("a consultation is already under way")
        note = (req.note or "").strip()
        call.it.record(
            call.now(), "expert_asked", by=self.agent_id, target=req.target, note=note, blind=req.blind
        )
        was_held = self.held
        if not self.held:
            await self._hold()
        self.asking = Asking(req.ask, note, req.by, req.blind)
        if await self._offer_next():
            return {"to": req.target, "state": "offering" if self.consult is None else "ringing"}
        self.asking = None
        call.it.record(call.now(), "expert_none", target=req.target)
        call.save_soon()
        if not was_held:
            await self._resume()
        raise ControlError(f"no expert for {req.target} can take the call now: the caller stays with you")

    async def _offer_next(self) -> bool:
        """Offer the call to the next expert: True while one is previewing it or their phone rings."""
        call = self.call
        a = self.asking
        assert a is not None and self.experts is not None
        while True:
            offer = self.experts.next_offer(call, a.ask, a.note, a.by)
            if offer is None:
                return False
            a.offer = offer
            a.ask = dataclasses.replace(a.ask, tried=a.ask.tried | {offer.expert_id})
            call.it.record(
                call.now(),
                "expert_offered",
                expert_id=offer.expert_id,
                name=offer.name,
                reason=offer.reason,
                offer_s=offer.offer_s,
                preview=offer.agent_id is not None,
            )
            self.remember()
            call.save_soon()
            if offer.agent_id is not None:
                return True  # their panel previews it: Accept, Reject or the time runs out
            # An outside number has no panel: ringing it is the offer, answering it the acceptance.
            if await self._ring_expert(offer):
                return True

    async def _offer_reply(self, ev: OfferReply) -> None:
        call = self.call
        c = self.consult
        if c is not None and c.hearing and c.expert is not None and c.expert.offer_id == ev.offer_id:
            await self._outside_key(c, None)  # no key in time counts as declining
            return
        a = self.asking
        if a is None or a.offer is None or a.offer.offer_id != ev.offer_id or self.experts is None:
            return  # an answer to an offer that is over (e.g. its timer, after an accept)
        offer = a.offer
        if ev.verdict == "accept":
            call.it.record(call.now(), "expert_accepted", expert_id=offer.expert_id, by=ev.by)
            if await self._ring_expert(offer):
                return
        else:
            a.offer = None
            self.experts.closed(call, offer, ev.verdict)
            kind = "expert_timeout" if ev.verdict == "timeout" else "expert_rejected"
            call.it.record(call.now(), kind, expert_id=offer.expert_id, by=ev.by or None)
        call.save_soon()
        if not await self._offer_next():
            await self._give_up()

    async def _ring_expert(self, offer: ExpertOffer) -> bool:
        """Ring the expert who accepted (their phone, or their number through the carrier and the
        outbound policy); True once it rings, and the consultation is theirs."""
        call = self.call
        a = self.asking
        assert a is not None and self.experts is not None
        a.offer = None
        self.experts.closed(call, offer, "accept")
        first = self.agent_id or ""
        # The call's data travels on this hop too: to an expert's phone of ours as to an agent's;
        # to a number outside, as on any carrier leg (app/calls/legs.call_data).
        hop = {"LIANLUO_CONSULT_FROM": first, "LIANLUO_EXPERT": offer.expert_id}
        if a.note:  # a channel variable (in Asterisk), never a header: an outside expert hears it
            hop["LIANLUO_NOTE"] = a.note
        headers = {"Consult": first, "Expert": offer.expert_id}
        channel_id: str | None
        if offer.agent_id is not None:
            variables = {
                **agent_call_data(call, self.queue, offer.reason),
                **call_data(call, **headers),
                **hop,
            }
            rules = self.desk.queue_rules(self.queue)
            channel_id = await place(
                call,
                endpoint=f"PJSIP/{offer.agent_id}",
                kind="agent",
                channel_id=f"consult-{uuid.uuid4()}",
                caller_id=f'"{first}" <{first}>',
                timeout_s=rules.ring_timeout_s if rules is not None else 15.0,
                variables=variables,
            )
            if channel_id is None:
                self.desk.offer_failed(offer.agent_id, self.queue, "originate failed", no_answer=False)
            else:
                self.desk.ringing(offer.agent_id)
        else:
            assert offer.number is not None
            d = self.dialing
            try:
                channel_id = await dial_out(
                    call,
                    number=offer.number,
                    trunk=d.carrier,
                    purpose=Purpose.EXPERT,
                    kind="external",
                    channel_id=f"consult-{uuid.uuid4()}",
                    caller_id=f'"{d.center_name}" <{d.presented_number or call.it.dnis}>',
                    timeout_s=self.experts.number_ring_s,
                    variables={**call_data(call, **headers), **hop},
                )
            except OutboundRefused:
                channel_id = None
        if channel_id is None:
            self.experts.released(call, offer)
            call.it.record(call.now(), "expert_failed", expert_id=offer.expert_id, reason="could not ring")
            call.save_soon()
            return False
        self.asking = None
        self.consult = Consult(offer.agent_id or "", channel_id, expert=offer, asking=a)
        if offer.number is not None:  # made while their phone rings, read when they answer
            self.consult.summary = asyncio.create_task(self.experts.summary(call, offer, a.note))
        self.expert_legs[channel_id] = offer
        call.it.record(call.now(), "expert_ringing", expert_id=offer.expert_id, number=offer.number)
        self.remember()
        call.save_soon()
        return True

    async def _read_summary(self, c: Consult) -> None:
        """An outside expert answered: they hear who needs them and why, then press 1 or 2."""
        call = self.call
        assert c.summary is not None and c.expert is not None
        c.hearing = True
        call.it.record(call.now(), "expert_answered", expert_id=c.expert.expert_id)
        call.save_soon()
        try:
            uris = await c.summary
        except Exception:  # a summary that cannot be made must not lose the call: just the keys
            call.log.exception("expert %s: no summary", c.expert.expert_id)
            uris = []
        if not c.hearing:
            return
        if not uris:
            self._start_key_timer(c)
            return
        c.playback_id = f"pb-{uuid.uuid4()}"
        call.route(c.playback_id, channel=False)
        try:
            await call.pbx.play(c.channel_id, uris, c.playback_id)
        except PbxError as exc:  # they hung up meanwhile: their hang-up event follows
            call.log.info("expert %s: summary not played: %s", c.expert.expert_id, exc.message)

    def _start_key_timer(self, c: Consult) -> None:
        assert self.experts is not None and c.expert is not None
        reply = OfferReply(c.expert.offer_id, "timeout")
        c.key_timer = asyncio.get_running_loop().call_later(
            self.experts.key_s, self.call.events.put_nowait, reply
        )

    def _stop_hearing(self, c: Consult) -> None:
        c.hearing = False
        if c.key_timer is not None:
            c.key_timer.cancel()
            c.key_timer = None
        if c.playback_id is not None:
            self.call.unroute(c.playback_id)
            c.playback_id = None
        if c.summary is not None and not c.summary.done():
            c.summary.cancel()

    async def _outside_key(self, c: Consult, digit: str | None) -> None:
        """1: the outside expert takes the call (as an answer); 2 or no key: the next expert."""
        call = self.call
        assert c.expert is not None
        playback = c.playback_id
        self._stop_hearing(c)
        if playback is not None:
            call.in_background(call.pbx.stop_playback(playback))
        call.it.record(call.now(), "expert_key", expert_id=c.expert.expert_id, key=digit)
        if digit == "1":
            c.summary = None  # what follows is an answer like any other
            await self._consult_event(StasisStart(_channel_of(c.channel_id), ()))
            return
        call.it.record(
            call.now(), "expert_declined", expert_id=c.expert.expert_id, by="key" if digit else "no key"
        )
        call.save_soon()
        await call.hang_up(c.channel_id)  # its end offers the call to the next expert

    async def _give_up(self) -> None:
        """Nobody (more) could take it: the caller is back with the agent who asked."""
        call = self.call
        self.asking = None
        call.it.record(call.now(), "expert_none")
        if self.held and self.agent is not None:
            await self._resume()
        self.remember()
        call.save_soon()

    def _close_asking(self) -> None:
        """An offer still previewing ends with the call (or the agent's cancel): the expert is free."""
        a, self.asking = self.asking, None
        if a is not None and a.offer is not None and self.experts is not None:
            self.experts.closed(self.call, a.offer, "cancel")

    def _expert_leg_over(self, channel_id: str) -> None:
        offer = self.expert_legs.pop(channel_id, None)
        if offer is not None and self.experts is not None:
            self.experts.released(self.call, offer)

    # -- an external party ------------------------------------------------------

    async def _dial_number(
        self, number: str, variables: dict[str, str], channel_id: str | None = None
    ) -> str | None:
        """A transfer's or consultation's leg to a number outside, through the carrier, shown
        the center's name and number (raises OutboundRefused as dial_out does)."""
        d = self.dialing
        return await dial_out(
            self.call,
            number=number,
            trunk=d.carrier,
            purpose=Purpose.TRANSFER,
            kind="external",
            channel_id=channel_id,
            caller_id=f'"{d.center_name}" <{d.presented_number or self.call.it.dnis}>',
            timeout_s=d.external_ring_s,
            variables=variables,
        )

    async def to_number(self, number: str) -> bool:
        """Blind transfer to a number through the carrier: True once that call has ended; False
        if nobody answered (the caller goes back in line, in their place)."""
        call = self.call
        d = self.dialing
        call.it.record(call.now(), "dialing_external", number=number)
        call.save_soon()
        try:
            channel_id = await self._dial_number(number, call_data(call))
        except OutboundRefused:
            channel_id = None
        if channel_id is None:
            call.it.record(call.now(), "external_failed", number=number, reason="could not dial")
            call.save_soon()
            return False
        self.external = Leg(channel_id, number=number)
        self.remember()
        failed = await wait_answer(call, channel_id, d.external_ring_s + 5)
        if failed is not None:
            self.external = None
            call.it.record(call.now(), "external_failed", number=number, reason=failed.cause_txt)
            self.remember()
            call.save_soon()
            return False
        await call.music(False)
        self.held = False
        await call.pbx.add_to_bridge(await self._bridge(), [call.caller, channel_id])
        await call.recorder.held(call.it, call.caller, False)
        call.it.record(call.now(), "external_connected", number=number)
        self.remember()
        call.save_soon()
        await self.follow_external()
        return True

    async def follow_external(self) -> None:
        """The caller talks with the external party until either hangs up."""
        call = self.call
        assert self.external is not None
        while True:
            ev = await call.next_event()
            if ev is not None and self.external.channel_id in _ended(ev):
                call.it.end(call.now(), Outcome.COMPLETED, ended_by="external")
                await call.hang_up()
                return

    # -- the end ----------------------------------------------------------------

    async def hang_up_everyone(self) -> None:
        """The call is over: every leg still up ends, every agent on it starts wrap-up."""
        call = self.call
        self._close_asking()
        legs = [c for c in self.conference]
        if self.agent is not None and self.agent.give_back is not None:
            await self.agent.give_back(call)  # out of this call's bridge, back to its holding one
        elif self.agent is not None:
            legs.append(self.agent.channel_id)
        if self.external is not None:
            legs.append(self.external.channel_id)
        if self.consult is not None:
            legs.append(self.consult.channel_id)
            self._consult_gone(self.consult)
            self.consult = None
        for channel_id in legs:
            if channel_id not in call.gone:  # one seen hanging up (e.g. the agent's) needs no request
                await call.hang_up(channel_id)
            self._expert_leg_over(channel_id)
        if self.bridge_id is not None:
            try:
                await call.pbx.destroy_bridge(self.bridge_id)
            except PbxError as exc:
                call.log.info("bridge %s: %s", self.bridge_id, exc.message)
        for agent_id in list(self.conference.values()):
            self.agent_done(agent_id)
        self.conference.clear()
        if self.agent is not None and self.agent.agent_id is not None:
            self.joined.setdefault(self.agent.agent_id, self.agent.answered_at or call.now())
            self.agent_done(self.agent.agent_id)
        self.agent = None
        self.remember()

    # -- what it looks like, and what survives a restart -------------------------

    def view(self) -> dict[str, Any]:
        """For the agent's call box and the API."""
        it = self.call.it
        return {
            "interaction_id": it.id,
            "ani": it.ani,
            "queue": it.queue,
            "agent_id": self.agent_id,
            "conference": sorted(a for a in self.conference.values() if a),
            "held": self.held,
            "muted": self.muted,
            "notice": self.notice_id is not None,  # the recording notice is playing; the mic opens after it
            "consult": None
            if self.consult is None
            else {
                "agent_id": self.consult.agent_id,
                "answered": self.consult.answered,
                "number": self.consult.number,
                "expert": None if self.consult.expert is None else self.consult.expert.name,
            },
            "asking": None
            if self.asking is None or self.asking.offer is None
            else {
                "expert_id": self.asking.offer.expert_id,
                "expert": self.asking.offer.name,
                "offer_s": self.asking.offer.offer_s,
            },
            "recording": self.call.recorder.state(it.id),
        }

    def remember(self) -> None:
        """Write where the conversation stands into the interaction (saved with it)."""
        self.call.it.legs["talk"] = {
            "bridge": self.bridge_id,
            "agent": None if self.agent is None else [self.agent.channel_id, self.agent.agent_id],
            "conference": dict(self.conference),
            "held": self.held,
            # Muted for the recording notice too: an app restarted meanwhile shows the agent
            # muted, with Unmute, rather than leaving the microphone off unseen.
            "muted": self.muted or self.notice_agent is not None,
            "consult": None
            if self.consult is None
            else [self.consult.agent_id, self.consult.channel_id, self.consult.answered, self.consult.number],
            "external": None if self.external is None else [self.external.channel_id, self.external.number],
            # An expert previewing an offer: held for it, to be set free if the app restarts.
            "asking": None
            if self.asking is None or self.asking.offer is None
            else [self.asking.offer.expert_id, self.asking.offer.agent_id],
            "joined": {a: _iso(t) for a, t in self.joined.items()},
        }


def _ended(ev: CallEvent | None) -> frozenset[str]:
    """The channels an event says are gone."""
    if isinstance(ev, PbxLost):
        return ev.channel_ids
    if isinstance(ev, ChannelDestroyed):
        return frozenset({ev.channel.id})
    if ev is not None and isinstance(ev, HANGUP_EVENTS):
        return frozenset({ev.channel.id})
    return frozenset()


def _channel_of(channel_id: str) -> Channel:
    return Channel(channel_id, "", "", "", "", "", "", "", "")
