"""Agents nailed up for the shift: one call to the agent's phone, kept up between customers.

When an agent of a campaign on nailed lines (app/domain/campaign.py `agent_line`) goes Ready
with their phone (or browser softphone) registered, their phone is called once. Answered, the
line waits in a holding bridge of its own, with a short soft beep every few seconds so the agent
knows it is up. A customer who answers (AMD said human) and is given to this agent is put
through on that line at once: the line leaves the holding bridge for the call's bridge, nothing
rings. When the customer's call is over the line goes back to the holding bridge, and the agent
does their wrap-up on it.

The agent hanging up the line takes them out of the campaign: Not Ready, with the reason, and
nothing is dialled for them until they go Ready again (which calls their phone again). A phone
that does not answer the line's call is treated the same way. The dialer counts an agent of a
nailed campaign as free only while their line is up (app/dialer/service.py).

The line is not an interaction (nothing is written): it is a call of kind "nailed" on the
switchboard so that its channel's events reach it, and recovery treats it as every call. When the
app stops, every line is hung up; one found in Asterisk by a later start is an orphan channel and
recovery hangs it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from app.adapters.ari import Channel, ChannelDestroyed, StasisStart
from app.bus import AgentsChanged
from app.calls.events import DialFailed, PbxLost
from app.calls.legs import Leg, place
from app.calls.runtime import Runtime
from app.calls.session import HANGUP_EVENTS, Call
from app.domain.agent_state import Agent, AgentState
from app.domain.interaction import Interaction
from app.domain.routing import Tier
from app.errors import PbxError
from app.routing.desk import RoutingError, RoutingService

log = logging.getLogger(__name__)

KIND = "nailed"
ANSWER_S = 30.0  # how long the agent's phone rings for the line before it counts as refused
# A 425 Hz beep of 120 ms every 5 s: the agent hears that the line is up, and it is not in the
# way of anything (a customer is bridged in without waiting for it).
HOLD_TONE = "tone:425/120,0/4880"
HUNG_UP = "hung up the outbound line"
UNANSWERED = "did not answer the outbound line"

CALLING, CONNECTED, WITH_CUSTOMER = "calling", "connected", "with_customer"


@dataclass
class NailedLine:
    agent_id: str
    call: Call
    status: str = CALLING
    bridge_id: str | None = None
    tone_id: str | None = None
    closing: bool = False  # we hang it up (stopped campaign, logout, app stopping)

    @property
    def channel_id(self) -> str:
        return self.call.caller


class NailedLines:
    """The nailed-up lines of every agent; one line per agent, whatever their campaigns."""

    def __init__(self, runtime: Runtime, desk: RoutingService, wants_line: Callable[[Agent], bool]) -> None:
        self.runtime = runtime
        self.pbx = runtime.pbx
        self.desk = desk
        self.wants_line = wants_line  # does this agent take a nailed campaign's calls now?
        self.lines: dict[str, NailedLine] = {}
        self._dropped: set[str] = set()  # hung up by the agent (or unanswered): Not Ready next
        self._reasons: dict[str, str] = {}
        self._reviews: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._unsubscribe = self.desk.bus.subscribe(AgentsChanged, self._agents_changed)
        self.review_all()

    async def stop(self, hand_over: bool = False) -> None:
        """Every line ends (a restart's next start calls the agents again); a line a customer is
        talking on is left to that call when the app only restarts (the call is taken up)."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._reviews):
            task.cancel()
        tasks = []
        for line in list(self.lines.values()):
            if hand_over and line.status == WITH_CUSTOMER:
                continue
            line.closing = True
            with contextlib.suppress(PbxError):
                await self.pbx.hangup(line.channel_id)
            if line.call.task is not None:
                tasks.append(line.call.task)
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def status(self, agent_id: str) -> str | None:
        line = self.lines.get(agent_id)
        return line.status if line is not None else None

    # -- when lines open and close ------------------------------------------------------

    def _agents_changed(self, notice: AgentsChanged) -> None:
        for agent in notice.agents:
            self._review_soon(agent.id)

    def review_all(self) -> None:
        """Campaigns started or stopped: who needs a line now."""
        for agent_id in self.desk.agents:
            self._review_soon(agent_id)

    def _review_soon(self, agent_id: str) -> None:
        if self._stopping:
            return
        task = asyncio.create_task(self._review(agent_id), name=f"nailed-review-{agent_id}")
        self._reviews.add(task)
        task.add_done_callback(self._reviews.discard)

    async def _review(self, agent_id: str) -> None:
        agent = self.desk.agents.get(agent_id)
        if agent is None:
            return
        if agent_id in self._dropped:
            if agent.state in (AgentState.READY, AgentState.WRAP_UP):
                self._dropped.discard(agent_id)
                reason = self._reasons.pop(agent_id, HUNG_UP)
                log.info("agent %s %s: Not Ready", agent_id, reason)
                try:
                    self.desk.set_state(agent_id, "not_ready", reason)
                except RoutingError as exc:  # moved on meanwhile (e.g. a call): the next change
                    log.info("agent %s: %s", agent_id, exc.message)
                return
            if agent.state in (AgentState.NOT_READY, AgentState.LOGGED_OUT):
                self._dropped.discard(agent_id)
            return
        line = self.lines.get(agent_id)
        if line is not None:
            gone = agent.state is AgentState.LOGGED_OUT or not agent.device_registered
            if line.status != WITH_CUSTOMER and (gone or not self.wants_line(agent)):
                line.closing = True
                with contextlib.suppress(PbxError):
                    await self.pbx.hangup(line.channel_id)
            return
        if agent.state is AgentState.READY and agent.device_registered and self.wants_line(agent):
            self._open(agent_id)

    def _open(self, agent_id: str) -> None:
        now = self.runtime.clock()
        it = Interaction(
            id=str(uuid.uuid4()),
            caller_channel_id=f"{KIND}-{agent_id}-{uuid.uuid4().hex[:12]}",
            ani=agent_id,
            dnis="",
            arrived_at=now,
            direction="outbound",
        )
        call = self.runtime.call(it, KIND)  # never written: a line is not an interaction
        call.counted = False
        line = NailedLine(agent_id, call)
        self.lines[agent_id] = line
        self.desk.outbound_line_changed(agent_id, CALLING)

        async def main() -> None:
            try:
                await self._keep(line)
            finally:
                await self._closed(line)

        self.runtime.board.launch(call, main)

    async def _keep(self, line: NailedLine) -> None:
        call = line.call
        call.log.info("calling agent %s for their outbound line", line.agent_id)
        placed = await place(
            call,
            endpoint=f"PJSIP/{line.agent_id}",
            kind=KIND,
            caller_id='"Outbound line" <outbound>',
            timeout_s=ANSWER_S,
            variables={"LIANLUO_LINE": "nailed", "PJSIP_HEADER(add,X-Lianluo-Line)": "nailed"},
            channel_id=call.caller,
        )
        if placed is None:
            self._drop(line, UNANSWERED)
            return
        while True:
            ev = await call.events.get()
            if isinstance(ev, StasisStart) and ev.channel.id == line.channel_id:
                break
            if _ends(ev, line.channel_id):
                self._drop(line, UNANSWERED)
                return
        line.bridge_id = f"hold-{line.agent_id}-{uuid.uuid4().hex[:8]}"
        try:
            await self.pbx.create_bridge(line.bridge_id, name=f"outbound line of {line.agent_id}")
            await self.pbx.add_to_bridge(line.bridge_id, [line.channel_id])
            await self._tone(line, True)
        except PbxError as exc:
            call.log.warning("agent %s's outbound line: %s", line.agent_id, exc.message)
            self._drop(line, HUNG_UP)
            return
        line.status = CONNECTED
        self.desk.outbound_line_changed(line.agent_id, CONNECTED)
        call.log.info("agent %s's outbound line is up", line.agent_id)
        while True:
            ev = await call.events.get()
            if _ends(ev, line.channel_id):
                if isinstance(ev, PbxLost):
                    line.closing = True  # the center is stopping, or Asterisk lost it: not the agent
                self._drop(line, HUNG_UP)
                return

    def _drop(self, line: NailedLine, reason: str) -> None:
        """The line ended: by the agent (or unanswered) unless we closed it ourselves."""
        if line.closing or self._stopping:
            return
        self._dropped.add(line.agent_id)
        self._reasons[line.agent_id] = reason
        line.call.log.info("agent %s %s", line.agent_id, reason)

    async def _closed(self, line: NailedLine) -> None:
        if self.lines.get(line.agent_id) is line:
            del self.lines[line.agent_id]
        lent = line.status == WITH_CUSTOMER
        if not lent:
            with contextlib.suppress(PbxError):
                await self.pbx.hangup(line.channel_id)
        if line.bridge_id is not None:
            with contextlib.suppress(PbxError):
                await self.pbx.destroy_bridge(line.bridge_id)
        await line.call.close()
        self.desk.outbound_line_changed(line.agent_id, None)
        if not self._stopping:
            self._review_soon(line.agent_id)

    async def _tone(self, line: NailedLine, on: bool) -> None:
        if on:
            line.tone_id = f"line-{uuid.uuid4()}"
            await self.pbx.play(line.channel_id, HOLD_TONE, line.tone_id)
        elif line.tone_id is not None:
            tone_id, line.tone_id = line.tone_id, None
            with contextlib.suppress(PbxError):
                await self.pbx.stop_playback(tone_id)

    # -- a customer on the line ---------------------------------------------------------

    async def lend(self, call: Call, agent_id: str, queue: str, reason: str) -> Leg | None:
        """Put the customer of `call` through to this agent on their line: the leg to join, or
        None when the agent has no line up (then their phone is rung as usual)."""
        line = self.lines.get(agent_id)
        if line is None or line.status != CONNECTED or line.bridge_id is None:
            return None
        line.status = WITH_CUSTOMER
        channel_id = line.channel_id
        # Its events go to the customer's call while they talk (a hang-up ends that call).
        line.call.unroute(channel_id)
        call.route(channel_id)
        await self._tone(line, False)
        try:
            await self.pbx.remove_from_bridge(line.bridge_id, [channel_id])
        except PbxError as exc:
            call.log.info("agent %s's line left before the customer came: %s", agent_id, exc.message)
        it = call.it
        it.offer(call.now(), (agent_id,), reason)
        self.desk.ringing(agent_id)
        answered_at = call.now()
        waited = (answered_at - (it.queued_at or answered_at)).total_seconds()
        self.desk.answered(agent_id, queue, waited, it.id, _tier(it.tier))
        self.desk.outbound_line_changed(agent_id, WITH_CUSTOMER)
        call.log.info("customer put through on agent %s's outbound line", agent_id)

        async def give_back(on: Call) -> None:
            await self._give_back(line, on)

        return Leg(channel_id, agent_id=agent_id, answered_at=answered_at, give_back=give_back)

    async def _give_back(self, line: NailedLine, call: Call) -> None:
        """The customer's call is over (or the agent passed it on): the line is the agent's again,
        back in its holding bridge, where they do their wrap-up."""
        channel_id = line.channel_id
        call.unroute(channel_id)
        line.call.route(channel_id)
        if channel_id in call.gone:  # the agent hung up on the customer (or Asterisk lost it)
            line.status = CONNECTED  # ours again: whatever is left of it is hung up
            line.call.events.put_nowait(ChannelDestroyed(_channel(channel_id), 16, "hung up during a call"))
            return
        conv = call.conversation
        bridge_id = getattr(conv, "bridge_id", None)
        try:
            if bridge_id is not None:
                await self.pbx.remove_from_bridge(bridge_id, [channel_id])
            if line.bridge_id is not None:
                await self.pbx.add_to_bridge(line.bridge_id, [channel_id])
            await self._tone(line, True)
        except PbxError as exc:  # gone meanwhile: its hang-up reaches the line's own call
            call.log.info("agent %s's line: %s", line.agent_id, exc.message)
        line.status = CONNECTED
        self.desk.outbound_line_changed(line.agent_id, CONNECTED)


def _ends(ev: object, channel_id: str) -> bool:
    if isinstance(ev, PbxLost):
        return channel_id in ev.channel_ids
    if isinstance(ev, DialFailed):
        return ev.channel_id == channel_id
    return isinstance(ev, HANGUP_EVENTS) and ev.channel.id == channel_id


def _channel(channel_id: str) -> Channel:
    return Channel(channel_id, "", "", "", "", "", "", "", "")


def _tier(tier: str | None) -> Tier:
    return Tier(tier or "medium")
