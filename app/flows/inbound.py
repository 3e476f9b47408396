"""Inbound calls: from Stasis entry through the IVR to an agent, and the record of it all.

One asyncio task per call runs its script top to bottom (greet, collect a digit, offer
to an agent, bridge, wait for the end). ARI events are routed into that call's queue, so
each call is serialised on its own and no lock is shared between calls.

When the ARI websocket (re)connects, `reconcile` compares Asterisk's live channels with
the open interactions in PostgreSQL: calls that were in the IVR or waiting are taken up
again, bridged calls are watched to their end, and interactions whose caller vanished
while the app was down are closed as lost. Nothing stays stranded in Stasis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

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
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from app.adapters.db import Store
from app.config import Settings
from app.domain.agents import AgentView, choose_agent
from app.domain.interaction import Interaction, Outcome, Phase, outcome_when_caller_leaves
from app.errors import PbxError

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class CallerGone(Exception):
    """The caller hung up; the script unwinds and the interaction is closed."""


@dataclass
class AgentRuntime:
    id: str
    busy: bool = False
    idle_since: datetime | None = None


class CallSession:
    """One caller's call, driven by one task."""

    def __init__(self, service: InboundService, it: Interaction) -> None:
        self.service = service
        self.ari = service.ari
        self.it = it
        self.events: asyncio.Queue[AriEvent] = asyncio.Queue()
        self.agent_channel_id: str | None = None
        self.bridge_id: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.log = logging.LoggerAdapter(log, {"call": it.id})

    @property
    def caller(self) -> str:
        return self.it.caller_channel_id

    # -- plumbing -------------------------------------------------------------

    def now(self) -> datetime:
        return self.service.clock()

    async def save(self) -> None:
        await self.service.store.save(self.it)

    async def next_event(self, timeout: float | None = None) -> AriEvent | None:
        """The next event for this call; None on timeout. Raises CallerGone."""
        try:
            ev = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return None
        if (
            isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd)
            and ev.channel.id == self.caller
        ):
            raise CallerGone()
        return ev

    async def play(self, uris: list[str], interruptible: bool) -> str | None:
        """Play a prompt to the caller. Returns the digit that interrupted it, if any."""
        playback_id = f"pb-{uuid.uuid4()}"
        self.service.watch(playback_id, self)
        try:
            await self.ari.play(self.caller, uris, playback_id)
            while True:
                ev = await self.next_event()
                if isinstance(ev, PlaybackFinished) and ev.playback_id == playback_id:
                    return None
                if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self.caller and interruptible:
                    await self.ari.stop_playback(playback_id)
                    return ev.digit
        except AriNotFound:
            raise CallerGone() from None
        finally:
            self.service.unwatch(playback_id)

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
                await self.watch_connected()
            elif resume and self.it.phase in (Phase.QUEUED, Phase.OFFERED):
                if self.it.phase is Phase.OFFERED:
                    self.it.offer_failed(self.now(), self.it.agent_id or "?", "app restarted")
                await self.to_agent()
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
        s = self.service.settings.ivr
        if resume:
            self.it.record(self.now(), "ivr_resumed")
        else:
            await self.ari.answer(self.caller)
            self.it.record(self.now(), "answered_by_ivr")
        await self.save()
        for attempt in range(1, s.attempts + 1):
            digit = await self.play(self.service.prompts["greeting"], interruptible=True)
            if digit is None:
                self.it.record(self.now(), "prompt_played", prompt="greeting", attempt=attempt)
                digit = await self.wait_digit(s.digit_timeout_s)
            if digit is None:
                self.it.record(self.now(), "no_input", attempt=attempt)
                await self.save()
                continue
            self.it.digit(self.now(), digit)
            await self.save()
            if digit == "1":
                self.it.queue(self.now(), reason="menu:1")
                await self.save()
                await self.to_agent()
                return
            self.it.record(self.now(), "invalid_input", digit=digit, attempt=attempt)
            await self.play(self.service.prompts["invalid"], interruptible=False)
        await self.play(self.service.prompts["goodbye"], interruptible=False)
        self.it.end(self.now(), Outcome.NO_INPUT, ended_by="system")
        await self.ari.hangup(self.caller)

    async def to_agent(self) -> None:
        await self.play(self.service.prompts["connecting"], interruptible=False)
        tried: set[str] = set()
        while True:
            agent_id = await self.service.pick_agent(frozenset(tried))
            if agent_id is None:
                self.it.record(self.now(), "no_agent_available", tried=sorted(tried))
                await self.save()
                await self.ari.stop_moh(self.caller)
                await self.play(self.service.prompts["no_agent"], interruptible=False)
                self.it.end(self.now(), Outcome.NO_AGENT, ended_by="system")
                await self.ari.hangup(self.caller)
                return
            tried.add(agent_id)
            if await self.offer(agent_id):
                await self.watch_connected()
                return

    async def offer(self, agent_id: str) -> bool:
        """Ring one agent. True when the agent answered and the call is bridged."""
        agent = self.service.agents[agent_id]
        agent.busy = True
        channel_id = f"agent-{uuid.uuid4()}"
        self.agent_channel_id = channel_id
        self.service.watch(channel_id, self)
        self.it.offer(self.now(), agent_id)
        self.it.agent_id = agent_id
        await self.save()
        await self.ari.start_moh(self.caller)
        ring_timeout = self.service.settings.offer.ring_timeout_s
        try:
            await self.ari.originate(
                endpoint=f"PJSIP/{agent_id}",
                channel_id=channel_id,
                app_args=f"agent,{self.it.id}",
                caller_id=f'"{self.it.ani}" <{self.it.ani}>',
                timeout_s=max(1, round(ring_timeout)),
                variables={
                    "LIANLUO_INTERACTION": self.it.id,
                    "LIANLUO_ANI": self.it.ani,
                    "LIANLUO_DNIS": self.it.dnis,
                    "LIANLUO_IVR_DIGITS": self.it.digits,
                    # The agent's phone sees the call data in the INVITE too.
                    "PJSIP_HEADER(add,X-Lianluo-Interaction)": self.it.id,
                },
            )
        except PbxError as exc:
            self.log.warning("originate to %s failed: %s", agent_id, exc)
            return await self._offer_failed(agent, "originate_failed")
        # Asterisk cancels the ring itself after ring_timeout; the margin covers set-up.
        deadline = asyncio.get_running_loop().time() + ring_timeout + 5
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                ev = await self.next_event(max(left, 0.01))
            except CallerGone:
                await self.ari.hangup(channel_id)
                raise
            if ev is None:
                await self.ari.hangup(channel_id)
                return await self._offer_failed(agent, "ring_timeout")
            if isinstance(ev, StasisStart) and ev.channel.id == channel_id:
                break
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == channel_id:
                return await self._offer_failed(agent, ev.cause_txt or f"cause {ev.cause}")
        await self.ari.stop_moh(self.caller)
        bridge_id = f"call-{self.it.id}"
        await self.ari.create_bridge(bridge_id, name=f"interaction {self.it.id}")
        self.bridge_id = bridge_id
        await self.ari.add_to_bridge(bridge_id, [self.caller, channel_id])
        self.it.connect(self.now(), agent_id)
        await self.save()
        self.log.info("caller %s connected to agent %s", self.it.ani, agent_id)
        return True

    async def _offer_failed(self, agent: AgentRuntime, reason: str) -> bool:
        if self.agent_channel_id:
            self.service.unwatch(self.agent_channel_id)
        self.agent_channel_id = None
        agent.busy = False
        self.it.agent_id = None
        self.it.offer_failed(self.now(), agent.id, reason)
        await self.save()
        return False

    async def watch_connected(self) -> None:
        """Caller and agent talk until one of them hangs up."""
        while True:
            ev = await self.next_event()
            if isinstance(ev, ChannelDestroyed | ChannelHangupRequest | StasisEnd) and (
                ev.channel.id == self.agent_channel_id
            ):
                self.it.end(self.now(), Outcome.COMPLETED, ended_by="agent")
                await self.ari.hangup(self.caller)
                return

    async def cleanup(self) -> None:
        with contextlib.suppress(PbxError):
            if self.agent_channel_id is not None and self.it.phase is Phase.ENDED:
                await self.ari.hangup(self.agent_channel_id)
            if self.bridge_id is not None and self.it.phase is Phase.ENDED:
                await self.ari.destroy_bridge(self.bridge_id)
        if self.it.phase is Phase.ENDED:
            agent = self.service.agents.get(self.it.agent_id or "")
            if agent is not None and agent.busy:
                agent.busy = False
                agent.idle_since = self.now()
            try:
                await self.save()
            except Exception:
                self.log.exception("could not save the end of the interaction")
        self.service.forget(self)


class InboundService:
    def __init__(
        self,
        ari: AriClient,
        store: Store,
        settings: Settings,
        prompts: dict[str, list[str]],
        clock: Clock = utcnow,
    ) -> None:
        self.ari = ari
        self.store = store
        self.settings = settings
        self.prompts = prompts
        self.clock = clock
        self.agents = {a.id: AgentRuntime(a.id) for a in settings.agents}
        self.sessions: dict[str, CallSession] = {}  # caller channel id -> session
        self._watch: dict[str, CallSession] = {}  # any channel or playback id -> session
        self.reconciled = asyncio.Event()

    # -- registry -------------------------------------------------------------

    def watch(self, key: str, session: CallSession) -> None:
        self._watch[key] = session

    def unwatch(self, key: str) -> None:
        self._watch.pop(key, None)

    def forget(self, session: CallSession) -> None:
        self.sessions.pop(session.caller, None)
        for key in [k for k, v in self._watch.items() if v is session]:
            del self._watch[key]

    def start_session(self, it: Interaction, resume: bool = False) -> CallSession:
        session = CallSession(self, it)
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
            await self.reconcile()
            return
        if isinstance(ev, StasisStart):
            kind = ev.args[0] if ev.args else ""
            if kind == "inbound" and ev.channel.id not in self.sessions:
                await self.new_call(ev.channel, ev.args)
                return
            if kind == "agent" and ev.channel.id not in self._watch:
                log.warning("agent leg %s answered for an interaction we no longer hold", ev.channel.id)
                await self.ari.hangup(ev.channel.id)
                return
        key = None
        if isinstance(ev, PlaybackFinished):
            key = ev.playback_id
        elif hasattr(ev, "channel"):
            key = ev.channel.id
        session = self._watch.get(key) if key else None
        if session is not None:
            session.events.put_nowait(ev)

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
        self.start_session(it)

    async def pick_agent(self, exclude: frozenset[str]) -> str | None:
        views = []
        for agent in self.agents.values():
            endpoint = await self.ari.endpoint("PJSIP", agent.id)
            registered = endpoint is not None and endpoint.online
            # A phone already on a call we did not place (e.g. agent-to-agent) is busy too.
            busy = agent.busy or bool(endpoint and endpoint.channel_ids)
            views.append(AgentView(agent.id, registered, busy, agent.idle_since))
        chosen = choose_agent(views, exclude)
        if chosen is not None:
            self.agents[chosen].busy = True
        return chosen

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
            bridge = _bridge_of(caller.id, bridges)
            agent_leg = next((c for c in (bridge.channels if bridge else ()) if c != caller.id), None)
            if it.phase is Phase.CONNECTED and bridge is not None and agent_leg is not None:
                claimed.add(agent_leg)
                it.record(now, "recovered", state="connected")
                session = CallSession(self, it)
                session.agent_channel_id = agent_leg
                session.bridge_id = bridge.id
                if it.agent_id in self.agents:
                    self.agents[it.agent_id].busy = True
                self.sessions[caller.id] = session
                self.watch(caller.id, session)
                self.watch(agent_leg, session)
                session.task = asyncio.create_task(session.run(resume=True), name=f"call-{it.id}")
            else:
                if it.phase is Phase.CONNECTED:
                    # The agent leg vanished while we were away: back to the queue.
                    it.phase = Phase.OFFERED
                it.record(now, "recovered", state=it.phase.value)
                self.start_session(it, resume=True)
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
