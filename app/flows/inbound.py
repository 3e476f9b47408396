"""Inbound calls: from Stasis entry through the IVR to an agent, and the record of it all.

One asyncio task per call runs its script top to bottom (greet, collect a digit, wait in
a queue, ring the chosen agent, bridge, wait for the end). ARI events and routing
decisions are routed into that call's own queue, so each call is serialised on its own
and no lock is shared between calls.

When the ARI websocket (re)connects, `reconcile` compares Asterisk's live channels with
the open interactions in PostgreSQL: calls that were in the IVR or waiting are taken up
again, bridged calls are watched to their end, and interactions whose caller vanished
while the app was down are closed as lost. Nothing stays stranded in Stasis.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from app.adapters.ari import (
    AriClient,
    AriEvent,
    AriNotFound,
    Bridge,
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Connected,
    EndpointStateChange,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisEnd,
    StasisStart,
)
from app.adapters.db import Customer, Store
from app.adapters.prompts import Prompt, PromptCache
from app.adapters.speech import Recognizer
from app.config import PromptText, Settings
from app.domain.callback import Callback, CallbackSource, valid_phone
from app.domain.interaction import Interaction, Outcome, Phase, outcome_when_caller_leaves
from app.domain.ivr_flow import FlowSet
from app.domain.routing import Decision, SkillRequirement, Tier, WaitingInteraction
from app.errors import PbxError
from app.flows.call_controls import CallControls, ControlError, ControlRequest, Transfer
from app.flows.ivr import walk
from app.flows.routing import RoutingError, RoutingService, Ticket

if TYPE_CHECKING:
    from app.flows.callbacks import CallbackService
    from app.flows.voicemail import VoicemailService

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Q.850 causes that mean "the phone rang and nobody picked up" (ring-no-answer).
NO_ANSWER_CAUSES = frozenset({0, 18, 19})


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _after_this_step(step: Coroutine[Any, Any, None]) -> None:
    await asyncio.sleep(0)
    await step


class CallerGone(Exception):
    """The caller hung up; the script unwinds and the interaction is closed."""


class CallerWantsCallback(Exception):
    """The caller pressed the callback key while waiting."""


class CallerWantsVoicemail(Exception):
    """The caller pressed the voicemail key while waiting."""


@dataclass(frozen=True)
class Wakeup:
    """Not from Asterisk: the routing desk has news for this call (a decision, an overflow)."""

    reason: str


CallEvent = AriEvent | Wakeup | ControlRequest


class CallSession:
    """One caller's call, driven by one task."""

    def __init__(self, service: InboundService, it: Interaction, customer: Customer | None = None) -> None:
        self.service = service
        self.ari = service.ari
        self.routing = service.routing
        self.it = it
        self.customer = customer
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.agent_channel_id: str | None = None
        self.agent_on_call: str | None = None  # the agent who picked up, until the call ends
        self.answered_at: datetime | None = None
        self.ringing: dict[str, str] = {}  # agent channel id -> agent id, while an offer rings
        self.bridge_id: str | None = None
        self.pending_callback: Callback | None = None
        self.collected: dict[str, str] = {}  # what the caller entered in the IVR, by field
        self.gone: set[str] = set()  # channels of this call seen hanging up
        self.controls: CallControls | None = None  # while connected to an agent
        self.external_channel: str | None = None  # a number the call was transferred to
        self.extra_agents: dict[str, str] = {}  # conference: channel -> agent, besides the main one
        self.joined: dict[str, datetime] = {}  # agent -> when they started talking on this call
        self.task: asyncio.Task[None] | None = None
        self._writes: asyncio.Queue[Interaction] = asyncio.Queue()
        self._side_steps: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self.log = logging.LoggerAdapter(log, {"call": it.id})

    @property
    def caller(self) -> str:
        return self.it.caller_channel_id

    # -- plumbing -------------------------------------------------------------

    def now(self) -> datetime:
        return self.service.clock()

    async def save(self) -> None:
        """Persist now and wait for it (state the next step depends on)."""
        self.save_soon()
        await self._writes.join()

    def save_soon(self) -> None:
        """Persist without waiting: the call goes on while the row is written, in order.

        On the path from the caller's key press to the agent's phone ringing, each awaited
        write costs about a millisecond; the writes still land in the order they were made.
        """
        snapshot = dataclasses.replace(self.it, pending=self.it.drain())
        self._writes.put_nowait(snapshot)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_behind(), name=f"save-{self.it.id}")

    async def _write_behind(self) -> None:
        await asyncio.sleep(0)  # let the step that asked for the write send its own requests first
        while not self._writes.empty():
            snapshot = self._writes.get_nowait()
            try:
                await self.service.store.save(snapshot)
            except Exception:
                self.log.exception("could not save interaction state; will retry with the next write")
                # Keep the events: they go out with the next snapshot.
                self.it.pending[:0] = snapshot.pending
            finally:
                self._writes.task_done()

    async def next_event(self, timeout: float | None = None) -> CallEvent | None:
        """The next event for this call; None on timeout. Raises CallerGone."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see RoutingService._dispatch_loop
                ev = await self.events.get()
        except TimeoutError:
            return None
        if isinstance(ev, ChannelDestroyed | StasisEnd):
            self.gone.add(ev.channel.id)
        if (
            isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd)
            and ev.channel.id == self.caller
        ):
            raise CallerGone()
        return ev

    async def play(
        self,
        uris: list[str],
        interruptible: bool,
        until: Ticket | None = None,
        channel: str | None = None,
    ) -> str | None:
        """Play a prompt to the caller (or `channel`). Returns the digit that interrupted it, if any.

        With `until`, the prompt also stops as soon as that ticket is decided: an agent who was
        just reserved must not wait for the end of an announcement.
        """
        if not uris:  # a prompt configured as an empty list (e.g. `connecting: []`) is silence
            return None
        channel = channel or self.caller
        playback_id = f"pb-{uuid.uuid4()}"
        self.service.watch(playback_id, self)
        try:
            await self.ari.play(channel, uris, playback_id)
            while True:
                ev = await self.next_event()
                if isinstance(ev, PlaybackFinished) and ev.playback_id == playback_id:
                    return None
                if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == channel and interruptible:
                    # Not awaited: the key press goes on to routing while Asterisk stops the prompt.
                    self.in_background(self.ari.stop_playback(playback_id))
                    return ev.digit
                if until is not None and until.decided.done():
                    await self.ari.stop_playback(playback_id)
                    return None
        except AriNotFound:
            raise CallerGone() from None
        finally:
            self.service.unwatch(playback_id)

    def in_background(self, step: Coroutine[Any, Any, None]) -> None:
        """Run a side step of this call without waiting for it; it is awaited at cleanup. It starts
        once the current step has sent its own requests (e.g. the originate after a key press)."""
        task = asyncio.create_task(_after_this_step(step))
        self._side_steps.add(task)
        task.add_done_callback(self._side_steps.discard)

    async def wait_digit(self, timeout: float) -> str | None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            ev = await self.next_event(left)
            if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self.caller:
                return ev.digit
        return None

    # -- the script -----------------------------------------------------------

    async def run(self, resume: bool = False) -> None:
        try:
            if self.it.phase is Phase.CONNECTED:
                await self.follow_transfer(await self.watch_connected())
            elif resume and self.it.phase in (Phase.QUEUED, Phase.OFFERED):
                if self.it.phase is Phase.OFFERED:
                    self.it.offer_failed(self.now(), self.it.agent_id or "?", "app restarted")
                    self.it.agent_id = None
                await self.to_agent(self.it.queue or self.service.default_queue, ())
            else:
                await self.ivr(resume)
        except CallerGone:
            self.it.end(self.now(), outcome_when_caller_leaves(self.it.phase), ended_by="caller")
        except AriNotFound as exc:
            # A channel vanished under us: almost always a hang-up racing our request.
            self.log.info("channel gone mid-step: %s", exc)
            self.it.end(self.now(), outcome_when_caller_leaves(self.it.phase), ended_by="caller")
            await self.ari.hangup(self.caller)
        except asyncio.CancelledError:
            # Service shutdown: leave the call in Asterisk; the next start reconciles it.
            self.log.info("call task cancelled in phase %s", self.it.phase.value)
            raise
        except Exception as exc:
            self.log.exception("call failed")
            self.it.end(self.now(), Outcome.FAILED, error=str(exc))
            await self.ari.hangup(self.caller)
        finally:
            await self.cleanup()

    async def ivr(self, resume: bool) -> None:
        if resume:
            self.it.record(self.now(), "ivr_resumed")
        else:
            await self.ari.answer(self.caller)
            self.it.record(self.now(), "answered_by_ivr")
        # Written behind, in order: the caller hears the first prompt without waiting for the
        # database (benchmarks/answer_to_prompt.py measured the awaited write as half the delay).
        self.save_soon()
        # The flow is taken once: a reload meanwhile does not change this call's path.
        await walk(self, self.service.flows.for_dnis(self.it.dnis))

    async def to_agent(
        self,
        queue: str,
        skills: tuple[SkillRequirement, ...],
        reason: str = "resumed",
        direct: str | None = None,
    ) -> None:
        """Wait in `queue` for an agent (or ring the `direct` agent first), talk, and follow any
        transfer the agent makes, until the call ends."""
        tier, value = self.service.tier_of(self.customer)
        self.it.enqueue(self.now(), queue, tier.value, reason)
        self.save_soon()
        last_agent = await self.service.last_agent(self.it, queue)
        waiting = WaitingInteraction(
            id=self.it.id,
            queue=queue,
            queued_at=self.it.queued_at or self.now(),
            tier=tier,
            customer_value=value,
            required_skills=skills,
            last_agent_id=last_agent,
            data={"ani": self.it.ani, "dnis": self.it.dnis, "digits": self.it.digits, **self.collected},
        )
        greeted = False
        while True:
            if direct is not None:
                target, direct = direct, None
                try:
                    chosen = self.routing.reserve_direct(target, self.it.id, waiting.queue)
                except RoutingError as exc:
                    self.log.info(
                        "transfer to agent %s: %s; the caller waits in %s", target, exc, waiting.queue
                    )
                else:
                    if await self.offer(chosen, waiting.queue):
                        over, direct = await self.talk(waiting)
                        if over:
                            return
                    else:
                        waiting.excluded_agents = waiting.excluded_agents | frozenset(chosen.agent_ids)
                    continue
            if not self.routing.anyone_logged_in(waiting.queue):
                await self.no_agent()
                return
            ticket = self.enter_queue(waiting)
            try:
                if not greeted:
                    # The place in line is taken first; the caller hears why they wait meanwhile.
                    greeted = True
                    await self.play(self.service.prompts["connecting"], interruptible=False)
                    # With a free agent the decision comes within a loop turn or two: music and
                    # announcements are only for callers who really wait (50 ms is not heard).
                    if not ticket.decided.done():
                        await asyncio.wait([ticket.decided], timeout=0.05)
                decision = await self.wait_for_agent(ticket, waiting)
            except CallerGone:
                self.leave_queue(ticket, waiting.queue, abandoned=True)
                raise
            except CallerWantsCallback:
                self.leave_queue(ticket, waiting.queue)
                if await self.leave_for_callback(waiting):
                    return
                continue  # refused: back in line, in the same place
            except CallerWantsVoicemail:
                self.leave_queue(ticket, waiting.queue)
                await self.leave_voicemail(waiting.queue)
                return
            except BaseException:
                self.leave_queue(ticket, waiting.queue)
                raise
            if decision is None:
                self.leave_queue(ticket, waiting.queue)
                await self.no_agent()
                return
            if await self.offer(decision, waiting.queue):
                over, direct = await self.talk(waiting)
                if over:
                    return
                continue
            # Keep the place in line (queued_at) and try someone else first.
            waiting.excluded_agents = waiting.excluded_agents | frozenset(decision.agent_ids)

    async def talk(self, waiting: WaitingInteraction) -> tuple[bool, str | None]:
        """Connected to an agent: (True, _) when the call is over; (False, agent to ring first,
        if any) when a transfer put it back in line."""
        transfer = await self.watch_connected()
        if transfer is None:
            return True, None
        if transfer.number is not None and await self.bridge_external(transfer.number):
            return True, None
        return False, self.after_transfer(transfer, waiting)

    async def follow_transfer(self, transfer: Transfer | None) -> None:
        """A transfer made on a call that did not come through `to_agent` (recovered, callback)."""
        if transfer is None:
            return
        if transfer.number is not None and await self.bridge_external(transfer.number):
            return
        queue = transfer.queue or self.it.queue or self.service.default_queue
        await self.to_agent(queue, (), reason="transfer", direct=transfer.agent_id)

    async def bridge_external(self, number: str) -> bool:
        """Blind transfer to a number through the carrier. True once that call has ended; False
        if nobody answered (the caller then goes back in line, in their place)."""
        settings = self.service.settings
        carrier = settings.carrier
        channel_id = f"external-{uuid.uuid4()}"
        presented = carrier.presented_number or self.it.dnis
        self.service.watch(channel_id, self)
        self.it.record(self.now(), "dialing_external", number=number)
        self.save_soon()
        try:
            await self.ari.originate(
                endpoint=f"PJSIP/{number}@{carrier.name}",
                channel_id=channel_id,
                app_args=f"external,{self.it.id}",
                caller_id=f'"{settings.center_name}" <{presented}>',
                timeout_s=30,
                variables={"LIANLUO_INTERACTION": self.it.id},
            )
        except PbxError as exc:
            self.log.warning("transfer to %s failed: %s", number, exc)
            self.service.unwatch(channel_id)
            self.it.record(self.now(), "external_failed", number=number, reason=str(exc))
            return False
        self.external_channel = channel_id
        while True:
            ev = await self.next_event()
            if isinstance(ev, StasisStart) and ev.channel.id == channel_id:
                break
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == channel_id:
                self.external_channel = None
                self.service.unwatch(channel_id)
                self.it.record(self.now(), "external_failed", number=number, reason=ev.cause_txt)
                self.save_soon()
                return False
        await self.ari.stop_moh(self.caller)
        if self.bridge_id is None:
            self.bridge_id = f"call-{self.it.id}"
            await self.ari.create_bridge(self.bridge_id, name=f"interaction {self.it.id}")
        await self.ari.add_to_bridge(self.bridge_id, [self.caller, channel_id])
        self.it.record(self.now(), "external_connected", number=number)
        self.save_soon()
        while True:
            ev = await self.next_event()
            if (
                isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd)
                and ev.channel.id == channel_id
            ):
                self.it.end(self.now(), Outcome.COMPLETED, ended_by="external")
                await self.ari.hangup(self.caller)
                return True

    def after_transfer(self, transfer: Transfer, waiting: WaitingInteraction) -> str | None:
        """A blind transfer: back in line (the original place), or to ring one agent first."""
        if transfer.queue is not None:
            waiting.queue = transfer.queue
        waiting.excluded_agents = frozenset()
        self.it.enqueue(self.now(), waiting.queue, waiting.tier.value, "transfer")
        self.save_soon()
        return transfer.agent_id

    def enter_queue(self, waiting: WaitingInteraction) -> Ticket:
        def overflowed(queue: str) -> None:
            self.events.put_nowait(Wakeup(f"overflow:{queue}"))

        ticket = self.routing.enqueue(waiting, on_overflow=overflowed)
        ticket.decided.add_done_callback(lambda _: self.events.put_nowait(Wakeup("decided")))
        self.routing.dispatch_now()
        return ticket

    def leave_queue(self, ticket: Ticket, queue: str, abandoned: bool = False) -> None:
        """The caller leaves the line; agents already reserved for them are set free."""
        if not ticket.decided.done():
            self.routing.withdraw(self.it.id, abandoned=abandoned)
        elif not ticket.decided.cancelled():
            for agent_id in ticket.decided.result().agent_ids:
                self.routing.offer_failed(agent_id, queue, "caller left", no_answer=False)

    async def wait_for_agent(self, ticket: Ticket, waiting: WaitingInteraction) -> Decision | None:
        """Wait in the queue for a decision. None when nobody is left who could answer.

        The caller hears music, and, if the queue says so, where they stand and how long the
        wait should be: on entry and every `announce_every_s` after.
        """
        loop = asyncio.get_running_loop()
        every = self.service.announce_every(waiting.queue)
        if not ticket.decided.done():
            if every:
                await self.announce(ticket)
            else:
                await self.ari.start_moh(self.caller)
        next_at = loop.time() + every if every else math.inf
        while not ticket.decided.done():
            ev = await self.next_event(timeout=max(0.01, min(1.0, next_at - loop.time())))
            if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self.caller:
                self.wait_key(ev.digit, ticket)
            if isinstance(ev, Wakeup) and ev.reason.startswith("overflow:"):
                self.it.enqueue(self.now(), waiting.queue, waiting.tier.value, "overflow")
                self.save_soon()
            if not ticket.decided.done() and not self.routing.anyone_logged_in(waiting.queue):
                return None
            if not ticket.decided.done() and loop.time() >= next_at:
                await self.announce(ticket)
                next_at = loop.time() + every
        return ticket.decided.result()

    async def announce(self, ticket: Ticket) -> None:
        """Tell the caller their place in line and expected wait, then back to the music."""
        place = self.routing.place_in_line(self.it.id)
        if place is None:
            return
        position, ewt = place
        ivr = self.service.settings.ivr
        texts = [dataclasses.replace(p, text=p.text.format(position=position)) for p in ivr.position]
        if ewt is not None:
            if ewt < 60:
                texts += ivr.expected_wait_short
            else:
                minutes = math.ceil(ewt / 60)
                texts += [
                    dataclasses.replace(p, text=p.text.format(minutes=minutes)) for p in ivr.expected_wait
                ]
        callback_key = self.service.callback_key(ticket.waiting.queue)
        if callback_key is not None:
            texts += [
                dataclasses.replace(p, text=p.text.format(key=callback_key)) for p in ivr.callback_offer
            ]
        voicemail_key = self.service.voicemail_key(ticket.waiting.queue)
        if voicemail_key is not None:
            texts += [
                dataclasses.replace(p, text=p.text.format(key=voicemail_key)) for p in ivr.voicemail_offer
            ]
        self.it.record(
            self.now(), "announced", position=position, expected_wait_s=None if ewt is None else round(ewt)
        )
        self.save_soon()
        uris = await self.service.say(texts)
        await self.ari.stop_moh(self.caller)
        keys = callback_key is not None or voicemail_key is not None
        digit = await self.play(uris, interruptible=keys, until=ticket)
        if digit is not None:
            self.wait_key(digit, ticket)
        if not ticket.decided.done():
            await self.ari.start_moh(self.caller)

    def wait_key(self, digit: str, ticket: Ticket) -> None:
        """A key pressed while waiting: callback or voicemail, unless an agent was just found."""
        if ticket.decided.done():
            return
        queue = ticket.waiting.queue
        if digit == self.service.callback_key(queue):
            raise CallerWantsCallback()
        if digit == self.service.voicemail_key(queue):
            raise CallerWantsVoicemail()

    async def leave_voicemail(self, queue: str | None) -> None:
        """Record a message; it is kept even if the caller hangs up instead of pressing #."""
        voicemail = self.service.voicemail
        q = self.routing.queue_settings.get(queue or "")
        if voicemail is None or q is None:
            raise RuntimeError("voicemail is not available here")  # callers only get here when it is
        loop = asyncio.get_running_loop()
        await self.ari.stop_moh(self.caller)
        self.it.record(self.now(), "voicemail_started", queue=queue)
        self.save_soon()
        await self.play(self.service.prompts["voicemail_intro"], interruptible=False)
        name = f"vm-{self.it.id}"
        self.service.watch(name, self)
        finished: RecordingFinished | None = None
        caller_left = False
        try:
            await self.ari.record(
                self.caller, name, max_duration_s=q.voicemail.max_s, max_silence_s=q.voicemail.max_silence_s
            )
            deadline = loop.time() + q.voicemail.max_s + 15
            while finished is None and (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        ev = await self.events.get()
                except TimeoutError:
                    break
                if isinstance(ev, RecordingFinished) and ev.name == name:
                    finished = ev
                elif isinstance(ev, RecordingFailed) and ev.name == name:
                    self.log.warning("voicemail recording failed: %s", ev.cause)
                    break
                elif isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd) and (
                    ev.channel.id == self.caller
                ):
                    caller_left = True  # Asterisk ends the recording and keeps what it has
        finally:
            self.service.unwatch(name)
        kept = await voicemail.keep(self.it, name, finished.duration_s, queue) if finished else None
        if kept is None:
            self.it.record(self.now(), "voicemail_empty")
            self.it.end(self.now(), Outcome.ABANDONED if caller_left else Outcome.NO_INPUT, ended_by="caller")
        else:
            vm, cb = kept
            self.pending_callback = cb
            self.it.record(
                self.now(),
                "voicemail_left",
                voicemail_id=vm.id,
                duration_s=vm.duration_s,
                callback_id=vm.callback_id,
            )
            self.it.end(self.now(), Outcome.VOICEMAIL, ended_by="caller")
        self.save_soon()
        if not caller_left:
            if kept is not None:
                with contextlib.suppress(CallerGone):
                    await self.play(self.service.prompts["voicemail_saved"], interruptible=False)
            await self.ari.hangup(self.caller)

    async def leave_for_callback(self, waiting: WaitingInteraction) -> bool:
        """Take the caller out of the line with a callback that keeps their place.

        False when we cannot call them back (no dialable number): they stay in line.
        """
        ivr = self.service.settings.ivr
        number = self.it.ani
        callbacks = self.service.callbacks
        await self.ari.stop_moh(self.caller)
        if callbacks is None or not valid_phone(number):
            self.it.record(self.now(), "callback_refused", number=number)
            self.save_soon()
            await self.play(self.service.prompts["callback_refused"], interruptible=False)
            return False
        cb = await callbacks.request(
            phone=number,
            queue=waiting.queue,
            source=CallbackSource.IVR,
            place_at=waiting.queued_at,
            tier=waiting.tier.value,
            customer_id=self.it.customer_id,
            origin_interaction_id=self.it.id,
            data={"ivr_digits": self.it.digits, "dnis": self.it.dnis},
            hold=True,
        )
        # It joins the line when this call is over, so the agent never rings a busy customer.
        self.pending_callback = cb
        self.it.record(self.now(), "callback_requested", callback_id=cb.id, number=number)
        self.it.end(self.now(), Outcome.CALLBACK_REQUESTED, ended_by="caller")
        self.save_soon()
        spoken = " ".join(number.lstrip("+"))
        texts = [dataclasses.replace(p, text=p.text.format(number=spoken)) for p in ivr.callback_confirmed]
        await self.play(await self.service.say(texts), interruptible=False)
        await self.ari.hangup(self.caller)
        return True

    async def no_agent(self) -> None:
        self.it.record(self.now(), "no_agent_available", queue=self.it.queue)
        self.save_soon()
        q = self.routing.queue_settings.get(self.it.queue or "")
        if (
            q is not None
            and q.voicemail.offer
            and q.voicemail.when_no_agent
            and self.service.voicemail is not None
        ):
            await self.leave_voicemail(q.name)
            return
        await self.ari.stop_moh(self.caller)
        await self.play(self.service.prompts["no_agent"], interruptible=False)
        self.it.end(self.now(), Outcome.NO_AGENT, ended_by="system")
        await self.ari.hangup(self.caller)

    async def offer(self, decision: Decision, queue: str) -> bool:
        """Ring the chosen agent(s). True when one answered and the call is bridged."""
        winner = await self.ring_agents(decision, queue, hold_caller=True)
        if winner is None:
            return False
        await self.ari.stop_moh(self.caller)
        await self.bridge(winner)
        self.log.info(
            "caller %s connected to agent %s (%s)", self.it.ani, self.agent_on_call, decision.reason
        )
        return True

    def offer_variables(self, queue: str, decision: Decision) -> dict[str, str]:
        """The call data that travels to the agent's phone (channel variables and SIP headers)."""
        return {
            "LIANLUO_INTERACTION": self.it.id,
            "LIANLUO_ANI": self.it.ani,
            "LIANLUO_DNIS": self.it.dnis,
            "LIANLUO_IVR_DIGITS": self.it.digits,
            "LIANLUO_QUEUE": queue,
            "LIANLUO_ROUTE_REASON": decision.reason,
            # The agent's phone sees the call data in the INVITE too.
            "PJSIP_HEADER(add,X-Lianluo-Interaction)": self.it.id,
            "PJSIP_HEADER(add,X-Lianluo-Queue)": queue,
            **self.collected_variables(),
        }

    def collected_variables(self) -> dict[str, str]:
        """What the caller entered in the IVR, for the agent: LIANLUO_DATA_<FIELD> and one header."""
        if not self.collected:
            return {}
        out = {f"LIANLUO_DATA_{k.upper()}": v for k, v in self.collected.items()}
        out["PJSIP_HEADER(add,X-Lianluo-Data)"] = urlencode(self.collected)
        return out

    async def ring_agents(
        self, decision: Decision, queue: str, hold_caller: bool, within_s: float | None = None
    ) -> str | None:
        """Ring the chosen agent(s); the channel of the one who answered, or None.

        The agent who answers is on this call from then on (routing is told), whatever
        happens next; the end of the call starts their wrap-up. `within_s` cuts the ring
        short of the queue's ring timeout (the dialer's connect window).
        """
        self.it.offer(self.now(), decision.agent_ids, decision.reason)
        self.save_soon()
        ring_timeout = self.service.ring_timeout(queue) if within_s is None else within_s
        for agent_id in decision.agent_ids:
            channel_id = f"agent-{uuid.uuid4()}"
            self.service.watch(channel_id, self)
            try:
                await self.ari.originate(
                    endpoint=f"PJSIP/{agent_id}",
                    channel_id=channel_id,
                    app_args=f"agent,{self.it.id}",
                    caller_id=f'"{self.it.ani}" <{self.it.ani}>',
                    timeout_s=max(1, round(ring_timeout)),
                    variables=self.offer_variables(queue, decision),
                )
            except PbxError as exc:
                self.log.warning("originate to %s failed: %s", agent_id, exc)
                self.service.unwatch(channel_id)
                self.routing.offer_failed(agent_id, queue, "originate failed", no_answer=False)
                continue
            self.ringing[channel_id] = agent_id
            self.routing.ringing(agent_id)
        if self.ringing and hold_caller:
            await self.ari.start_moh(self.caller)  # music while the agent's phone rings
        if not self.ringing:
            self.it.offer_failed(self.now(), ",".join(decision.agent_ids), "originate failed")
            self.save_soon()
            return None
        # Asterisk cancels the ring itself after ring_timeout; the margin covers set-up.
        deadline = asyncio.get_running_loop().time() + ring_timeout + (5 if within_s is None else 0)
        winner: str | None = None
        while self.ringing and winner is None:
            left = deadline - asyncio.get_running_loop().time()
            ev = await self.next_event(max(left, 0.01))
            if ev is None:
                for channel_id in list(self.ringing):
                    await self.ari.hangup(channel_id)
                    self._ring_ended(channel_id, queue, "ring timeout", no_answer=True)
            elif isinstance(ev, StasisStart) and ev.channel.id in self.ringing:
                winner = ev.channel.id
            elif isinstance(ev, ChannelDestroyed) and ev.channel.id in self.ringing:
                self._ring_ended(
                    ev.channel.id, queue, ev.cause_txt or f"cause {ev.cause}", ev.cause in NO_ANSWER_CAUSES
                )
        if winner is None:
            self.it.offer_failed(self.now(), ",".join(decision.agent_ids), "no agent answered")
            self.save_soon()
            return None
        agent_id = self.ringing.pop(winner)
        self.agent_channel_id = winner
        self.agent_on_call = agent_id
        self.answered_at = self.now()
        self.joined[agent_id] = self.answered_at
        waited = (self.answered_at - (self.it.queued_at or self.answered_at)).total_seconds()
        self.routing.answered(
            agent_id, queue, waited, self.it.id, self.tier(), first=self.it.answered_at is None
        )
        for channel_id in list(self.ringing):  # ring-all: the others stop ringing
            await self.ari.hangup(channel_id)
            self._ring_ended(channel_id, queue, "answered elsewhere", no_answer=False)
        return winner

    async def bridge(self, agent_channel: str) -> None:
        """Caller and the agent who answered join one bridge; the interaction is connected."""
        if self.bridge_id is None:  # after a transfer the call's bridge is there already
            bridge_id = f"call-{self.it.id}"
            await self.ari.create_bridge(bridge_id, name=f"interaction {self.it.id}")
            self.bridge_id = bridge_id
        await self.ari.add_to_bridge(self.bridge_id, [self.caller, agent_channel])
        self.it.connect(self.answered_at or self.now(), self.agent_on_call or "?")
        self.save_soon()

    def _ring_ended(self, channel_id: str, queue: str, reason: str, no_answer: bool) -> None:
        agent_id = self.ringing.pop(channel_id, None)
        self.service.unwatch(channel_id)
        if agent_id is not None:
            self.routing.offer_failed(agent_id, queue, reason, no_answer=no_answer)
            self.it.record(self.now(), "ring_ended", agent_id=agent_id, reason=reason, no_answer=no_answer)

    async def watch_connected(self) -> Transfer | None:
        """Caller and agent talk until one of them hangs up, or the agent transfers the call
        (then the transfer is returned, the call is back in line, and the caller hears music)."""
        controls = self.controls = CallControls(self)
        try:
            while True:
                ev = await self.next_event()
                if ev is None:
                    continue
                if isinstance(ev, ControlRequest):
                    transfer = await controls.handle(ev)
                    if transfer is not None:
                        self.it.transfer(
                            self.now(),
                            f"queue:{transfer.queue}" if transfer.queue else f"agent:{transfer.agent_id}",
                        )
                        self.save_soon()
                        return transfer
                    continue
                if await controls.on_event(ev):
                    continue
                if not isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd):
                    continue
                if ev.channel.id in self.extra_agents:  # one agent leaves a conference
                    self.service.unwatch(ev.channel.id)
                    self.agent_done(self.extra_agents.pop(ev.channel.id))
                    continue
                if ev.channel.id != self.agent_channel_id:
                    continue
                if self.extra_agents:  # the conference goes on with the other agent
                    self.service.unwatch(ev.channel.id)
                    if self.agent_on_call is not None:
                        self.agent_done(self.agent_on_call)
                    self.agent_channel_id, self.agent_on_call = self.extra_agents.popitem()
                    self.it.hand_over(self.now(), self.agent_on_call)
                    self.save_soon()
                    continue
                self.it.end(self.now(), Outcome.COMPLETED, ended_by="agent")
                await self.ari.hangup(self.caller)
                return None
        finally:
            await controls.close()
            self.controls = None

    async def control(self, req: ControlRequest, timeout: float = 10.0) -> dict[str, Any]:
        """A person's request (panel or API), carried out in this call's own order of events."""
        if self.controls is None:
            raise ControlError("the call is not connected to an agent right now")
        self.events.put_nowait(req)
        async with asyncio.timeout(timeout):
            return await req.done

    def agent_done(self, agent_id: str) -> None:
        """An agent's part in this call is over: their handle time counts, wrap-up starts."""
        since = self.joined.pop(agent_id, None) or self.answered_at or self.now()
        self.routing.hung_up(agent_id, self.it.queue, (self.now() - since).total_seconds())

    def tier(self) -> Tier:
        return Tier(self.it.tier or "medium")

    async def cleanup(self) -> None:
        for result in await asyncio.gather(*self._side_steps, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, PbxError):
                self.log.warning("side step failed: %r", result)
        ended = self.it.phase is Phase.ENDED
        if ended:
            with contextlib.suppress(PbxError):
                for channel_id in list(self.ringing):  # caller left while agents rang
                    await self.ari.hangup(channel_id)
                    self._ring_ended(channel_id, self.it.queue or "", "caller hung up", no_answer=False)
                if self.agent_channel_id is not None:
                    await self.ari.hangup(self.agent_channel_id)
                if self.bridge_id is not None:
                    await self.ari.destroy_bridge(self.bridge_id)
                for channel_id in list(self.extra_agents):
                    await self.ari.hangup(channel_id)
                if self.external_channel is not None:
                    await self.ari.hangup(self.external_channel)
            for agent_id in list(self.extra_agents.values()):
                self.agent_done(agent_id)
            self.extra_agents.clear()
            if self.agent_on_call is not None:
                if self.agent_on_call not in self.joined:
                    self.joined[self.agent_on_call] = self.answered_at or self.it.answered_at or self.now()
                self.agent_done(self.agent_on_call)
            try:
                await self.save()
            except Exception:
                self.log.exception("could not save the end of the interaction")
        if self.pending_callback is not None and self.service.callbacks is not None:
            self.service.callbacks.release(self.pending_callback)
        self.service.forget(self)


class InboundService:
    def __init__(
        self,
        ari: AriClient,
        store: Store,
        settings: Settings,
        prompts: dict[str, list[str]],
        routing: RoutingService,
        prompt_cache: PromptCache,
        flows: FlowSet,
        recognizer: Recognizer | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.ari = ari
        self.store = store
        self.settings = settings
        self.prompts = prompts
        self.routing = routing
        self.prompt_cache = prompt_cache
        self.clock = clock
        self.default_queue = settings.ivr.menu[0].queue if settings.ivr.menu else settings.queues[0].name
        self.callbacks: CallbackService | None = None  # set when callbacks are configured
        self.flows: FlowSet = flows
        self.recognizer: Recognizer | None = recognizer
        self.voicemail: VoicemailService | None = None
        self.sessions: dict[str, CallSession] = {}  # caller channel id -> session
        self._watch: dict[str, CallSession] = {}  # any channel or playback id -> session
        self.reconciled = asyncio.Event()

    def voicemail_key(self, queue: str) -> str | None:
        """The key that leaves a message while waiting in this queue, if it offers that."""
        q = self.routing.queue_settings.get(queue)
        if q is None or not q.voicemail.offer or self.voicemail is None:
            return None
        return q.voicemail.key

    def callback_key(self, queue: str) -> str | None:
        """The key that asks for a callback while waiting in this queue, if it offers them."""
        q = self.routing.queue_settings.get(queue)
        if q is None or not q.callback.offer or self.callbacks is None:
            return None
        return q.callback.key

    def announce_every(self, queue: str) -> float:
        q = self.routing.queue_settings.get(queue)
        return q.announce_every_s if q is not None else 0.0

    async def say(self, texts: list[PromptText]) -> list[str]:
        """Sound URIs for texts made at call time (cached: a place in line repeats often)."""
        paths = [await self.prompt_cache.render(Prompt(t.text, t.lang)) for t in texts]
        return [PromptCache.asterisk_uri(p) for p in paths]

    def ring_timeout(self, queue: str) -> float:
        q = self.routing.queue_settings.get(queue)
        return q.ring_timeout_s if q is not None else 15.0

    def tier_of(self, customer: Customer | None) -> tuple[Tier, float]:
        if customer is None:
            return Tier.MEDIUM, 0.0
        return (Tier.TOP if customer.vip else Tier(customer.tier)), customer.value

    async def last_agent(self, it: Interaction, queue: str) -> str | None:
        q = self.routing.queue_settings.get(queue)
        if q is None or q.sticky_s <= 0:
            return None
        since = self.clock() - timedelta(seconds=self.settings.routing.sticky_history_s)
        return await self.store.last_agent_for(it.customer_id, it.ani, since)

    # -- registry -------------------------------------------------------------

    def watch(self, key: str, session: CallSession) -> None:
        self._watch[key] = session

    def unwatch(self, key: str) -> None:
        self._watch.pop(key, None)

    def forget(self, session: CallSession) -> None:
        self.sessions.pop(session.caller, None)
        for key in [k for k, v in self._watch.items() if v is session]:
            del self._watch[key]

    def session_for(self, interaction_id: str) -> CallSession | None:
        return next((s for s in self.sessions.values() if s.it.id == interaction_id), None)

    def _live_sessions(self) -> Iterator[CallSession]:
        """Calls not yet ended. An ended call's session lives on while it is cleaned up, but it
        is nobody's call any more: the agent's panel asks again when their state turns to
        wrap-up, which happens then."""
        return (s for s in self.sessions.values() if s.it.phase is not Phase.ENDED)

    def call_of_agent(self, agent_id: str) -> CallSession | None:
        """The call an agent is talking on (as the main agent or in a conference)."""
        for s in self._live_sessions():
            if s.agent_on_call == agent_id or agent_id in s.extra_agents.values():
                return s
        return None

    def consulted_call(self, agent_id: str) -> CallSession | None:
        """The call an agent is being consulted about (ringing or talking to the first agent)."""
        for s in self._live_sessions():
            consult = s.controls.consult if s.controls is not None else None
            if consult is not None and consult.agent_id == agent_id:
                return s
        return None

    def start_session(self, it: Interaction, customer: Customer | None, resume: bool = False) -> CallSession:
        session = CallSession(self, it, customer)
        self.sessions[it.caller_channel_id] = session
        self.watch(it.caller_channel_id, session)
        session.task = asyncio.create_task(session.run(resume), name=f"call-{it.id}")
        return session

    # -- events ---------------------------------------------------------------

    async def run(self) -> None:
        async for ev in self.ari.events():
            try:
                await self.dispatch(ev)
            except Exception:
                log.exception("failed to handle %s", type(ev).__name__)

    async def dispatch(self, ev: AriEvent) -> None:
        if isinstance(ev, Connected):
            await self.ari.subscribe("endpoint:PJSIP")
            await self.refresh_devices()
            await self.reconcile()
            return
        if isinstance(ev, EndpointStateChange):
            self.routing.device_changed(ev.endpoint.resource, ev.endpoint.online)
            return
        if isinstance(ev, StasisStart):
            kind = ev.args[0] if ev.args else ""
            if kind == "inbound" and ev.channel.id not in self.sessions:
                await self.new_call(ev.channel, ev.args)
                return
            if kind in ("agent", "callback", "external") and ev.channel.id not in self._watch:
                log.warning("%s leg %s answered for an interaction we no longer hold", kind, ev.channel.id)
                await self.ari.hangup(ev.channel.id)
                return
        key = None
        if isinstance(ev, PlaybackFinished):
            key = ev.playback_id
        elif isinstance(ev, RecordingFinished | RecordingFailed):
            key = ev.name
        elif hasattr(ev, "channel"):
            key = ev.channel.id
        session = self._watch.get(key) if key else None
        if session is not None:
            session.events.put_nowait(ev)

    async def refresh_devices(self) -> None:
        """Events were lost while disconnected: read every agent's device state afresh."""
        for agent_id in self.routing.agents:
            endpoint = await self.ari.endpoint("PJSIP", agent_id)
            self.routing.device_changed(agent_id, endpoint is not None and endpoint.online)

    async def new_call(self, channel: Channel, args: tuple[str, ...]) -> None:
        dnis = args[1] if len(args) > 1 else channel.exten
        ani = args[2] if len(args) > 2 and args[2] else channel.caller_number
        now = self.clock()
        it = Interaction(str(uuid.uuid4()), channel.id, ani=ani, dnis=dnis, arrived_at=now)
        customer = await self.store.customer_by_phone(ani)
        it.customer_id = customer.id if customer else None
        it.record(
            now,
            "arrived",
            channel=channel.name,
            customer_id=it.customer_id,
            customer_name=customer.name if customer else None,
        )
        await self.store.create_interaction(it)
        log.info(
            "call %s: ANI %s DNIS %s customer %s", it.id, ani, dnis, customer.name if customer else "unknown"
        )
        self.start_session(it, customer)

    # -- recovery -------------------------------------------------------------

    async def reconcile(self) -> None:
        """Match live Stasis channels with open interactions after a (re)connect."""
        channels = await self.ari.channels()
        bridges = await self.ari.bridges()
        app_prefix = self.settings.ari_app + ","
        ours = {
            c.id: c for c in channels if c.app_name == "Stasis" and (c.app_data + ",").startswith(app_prefix)
        }
        open_its = await self.store.open_interactions()
        now = self.clock()
        claimed: set[str] = set()
        for it in open_its:
            if it.caller_channel_id in self.sessions:
                claimed.add(it.caller_channel_id)
                continue
            caller = ours.get(it.caller_channel_id)
            if caller is None:
                await self.store.close_lost(
                    it.id, now, Outcome.LOST.value, "caller gone while the app was down"
                )
                log.warning("interaction %s: caller left while the app was down; closed as lost", it.id)
                continue
            claimed.add(caller.id)
            customer = await self.store.customer_by_phone(it.ani)
            bridge = _bridge_of(caller.id, bridges)
            agent_leg = next((c for c in (bridge.channels if bridge else ()) if c != caller.id), None)
            if it.phase is Phase.CONNECTED and bridge is not None and agent_leg is not None:
                claimed.add(agent_leg)
                it.record(now, "recovered", state="connected")
                session = CallSession(self, it, customer)
                session.agent_channel_id = agent_leg
                session.bridge_id = bridge.id
                if it.agent_id is not None:
                    session.agent_on_call = it.agent_id
                    self.routing.recover_on_call(it.agent_id, it.id)
                self.sessions[caller.id] = session
                self.watch(caller.id, session)
                self.watch(agent_leg, session)
                session.task = asyncio.create_task(session.run(resume=True), name=f"call-{it.id}")
            else:
                if it.phase is Phase.CONNECTED:
                    # The agent leg vanished while we were away: back to the queue.
                    it.phase = Phase.OFFERED
                it.record(now, "recovered", state=it.phase.value)
                self.start_session(it, customer, resume=True)
            log.info("interaction %s recovered in phase %s", it.id, it.phase.value)
        for channel in ours.values():
            if channel.id in claimed or channel.id in self._watch:
                continue
            args = channel.app_data.split(",")[1:]
            if args and args[0] == "inbound":
                # It entered Stasis but we never recorded it: take it as a new call.
                await self.new_call(channel, tuple(args))
            else:
                log.warning("hanging up orphan channel %s (%s)", channel.id, channel.app_data)
                await self.ari.hangup(channel.id)
        self.reconciled.set()

    async def shutdown(self) -> None:
        tasks = [s.task for s in self.sessions.values() if s.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


def _bridge_of(channel_id: str, bridges: list[Bridge]) -> Bridge | None:
    return next((b for b in bridges if channel_id in b.channels), None)
