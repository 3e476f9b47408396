"""Recovery: after every (re)connect to ARI, what Asterisk really has is compared with what we
think is going on, and every call is taken up, closed, or told what it lost.

- A call this process follows whose channels are gone (the caller hung up while the websocket
  was down, or Asterisk restarted) gets a `PbxLost` event and ends the way its kind says.
- An open interaction nobody follows (the app was killed and started again) goes to its kind's
  `resume` if its caller is still there: in the menu, waiting, talking, on hold, consulting, in a
  conference, with an outside party, leaving a message. If the caller is gone it is closed:
  `dropped` when Asterisk restarted since the call began (the PBX lost it), else `lost` (the
  caller left while the app was down); what is left of it in Asterisk (an agent alone in a bridge)
  is hung up.
- A channel in our Stasis app that nobody claims is a new caller (`inbound`) or an orphan leg,
  hung up.
- Agents the desk believes busy with an interaction that no call follows any more are set free
  by the center's rule (wrap-up after a call, Ready after an offer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.adapters.ari import Bridge, Channel, StasisStart
from app.calls.conversation import Consult, Conversation
from app.calls.events import PbxLost, Reconnected
from app.calls.legs import Leg
from app.calls.line import Line
from app.calls.ports import Desk, InteractionStore
from app.calls.runtime import Runtime
from app.calls.session import Call
from app.domain.interaction import Interaction, Outcome, Phase
from app.errors import PbxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """What Asterisk has, read right after a (re)connect."""

    channels: Mapping[str, Channel]
    bridges: Mapping[str, Bridge]
    pbx_started_at: datetime | None  # when this Asterisk started (its ARI info)

    def restarted_since(self, at: datetime) -> bool:
        """Did Asterisk (re)start after `at`? Then calls older than that were lost by the PBX."""
        return self.pbx_started_at is not None and self.pbx_started_at > at

    def live(self, channel_id: str | None) -> bool:
        return channel_id is not None and channel_id in self.channels


# Starts a call that takes the interaction up; False when the kind would rather it were closed.
Resume = Callable[[Interaction, Found], bool]
Gone = Callable[[Interaction, Found], tuple[Outcome, str]]  # how to close one whose caller is gone


def kind_of(it: Interaction) -> str:
    kind = it.legs.get("kind")
    if isinstance(kind, str):
        return kind
    if it.callback_id is not None:
        return "callback"
    return "dialer" if it.direction == "outbound" else "inbound"


def legs_of(it: Interaction) -> set[str]:
    """Every channel the interaction's saved state names, besides the caller's."""
    out: set[str] = set(it.legs.get("ringing", {}) or {})
    talk = it.legs.get("talk") or {}
    if talk.get("agent"):
        out.add(str(talk["agent"][0]))
    out |= set(talk.get("conference") or {})
    if talk.get("consult"):
        out.add(str(talk["consult"][1]))
    if talk.get("external"):
        out.add(str(talk["external"][0]))
    for key in ("agent_leg", "customer_leg"):
        if it.legs.get(key):
            out.add(str(it.legs[key]))
    return out


def talking(it: Interaction, found: Found) -> bool:
    """Is someone still on the line with the caller (an agent, a conference, an outside party)?

    A caller transferred blind to a number talks there while the interaction stays queued (no
    agent of ours took it), so an outside party counts by its leg being up, whatever the phase."""
    talk = it.legs.get("talk") or {}
    parties = [talk["agent"][0]] if talk.get("agent") else []
    parties += list(talk.get("conference") or {})
    external = str(talk["external"][0]) if talk.get("external") else None
    if external is not None and found.live(external) and found.channels[external].state == "Up":
        return True
    if external is not None:
        parties.append(external)
    return it.phase is Phase.CONNECTED and any(found.live(str(c)) for c in parties)


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def restore_conversation(call: Call, line: Line, found: Found) -> Conversation | None:
    """The conversation a restarted app finds still going: the bridge, the agent in control, the
    other agents of a conference, a consultation, an outside party, hold and mute, as saved. Legs
    gone meanwhile end their agent's part. None when nobody is left to talk with the caller."""
    it = call.it
    desk = line.desk
    saved = it.legs.get("talk") or {}
    conv = line.conversation(call)
    if saved.get("bridge") in found.bridges:
        conv.bridge_id = str(saved["bridge"])
    conv.joined = {a: t for a, v in (saved.get("joined") or {}).items() if (t := _at(v)) is not None}
    conv.held, conv.muted = bool(saved.get("held")), bool(saved.get("muted"))

    def keep(channel_id: str, agent_id: str | None) -> bool:
        if found.live(channel_id):
            call.route(channel_id)
            if agent_id:  # "" or None: a party on a number outside
                desk.recover_on_call(agent_id, it.id)
            return True
        if agent_id:
            conv.joined.setdefault(agent_id, it.answered_at or call.now())
            conv.agent_done(agent_id)
        return False

    agent = saved.get("agent")
    if agent and keep(str(agent[0]), agent[1]):
        conv.agent = Leg(str(agent[0]), agent_id=agent[1], answered_at=conv.joined.get(agent[1]))
    for channel_id, agent_id in (saved.get("conference") or {}).items():
        if keep(channel_id, agent_id):
            conv.conference[channel_id] = agent_id
    consult = saved.get("consult")
    if consult:
        agent_id, channel_id, answered = str(consult[0]), str(consult[1]), bool(consult[2])
        if found.live(channel_id):
            call.route(channel_id)
            if answered and agent_id:
                desk.recover_on_call(agent_id, it.id)
            number = str(consult[3]) if len(consult) > 3 and consult[3] else None
            conv.consult = Consult(agent_id, channel_id, answered, number=number)
        elif not agent_id:
            pass  # an expert on an outside number: no agent state to put right
        elif answered:
            conv.joined.setdefault(agent_id, call.now())
            conv.agent_done(agent_id)
        else:
            desk.offer_failed(agent_id, it.queue or "", "consult lost in a restart", no_answer=False)
    asking = saved.get("asking")
    if asking and asking[1]:  # an expert was previewing an offer: the offer is over, they are free
        desk.offer_failed(str(asking[1]), it.queue or "", "expert offer lost in a restart", no_answer=False)
        it.record(call.now(), "expert_none", expert_id=str(asking[0]), reason="the app restarted")
    external = saved.get("external")
    if external and found.live(str(external[0])):
        call.route(str(external[0]))
        conv.external = Leg(str(external[0]), number=external[1])
    if conv.agent is None and conv.conference:  # the conference goes on with the one left
        channel_id, agent_id = conv.conference.popitem()
        conv.agent = Leg(channel_id, agent_id=agent_id or None, answered_at=conv.joined.get(agent_id))
        if agent_id:
            it.hand_over(call.now(), agent_id)
    conv.remember()
    if conv.agent is None and conv.external is None:
        return None
    call.save_soon()
    return conv


async def back_in_line(call: Call, desk: Desk, found: Found, reason: str) -> None:
    """A resumed call that was being offered (or whose agent is gone) waits again in its place:
    phones still ringing for it stop, and every agent held for it is free again."""
    it = call.it
    ringing = dict(it.legs.pop("ringing", None) or {})
    for channel_id, agent_id in ringing.items():
        if found.live(channel_id):
            await call.hang_up(channel_id)
        desk.offer_failed(agent_id, it.queue or "", reason, no_answer=False)
    # Anyone the desk still holds for this call (reserved or rung just before the restart, before
    # that was saved; or talking until their leg went while the app was down) is freed by the
    # center's rule: the offer failed, or the call is over for them (wrap-up).
    desk.interaction_gone(it.id, it.queue)
    if it.phase is Phase.OFFERED:
        it.offer_failed(call.now(), ",".join(ringing.values()) or "?", reason)
    elif it.phase is Phase.CONNECTED:
        it.requeue(call.now(), reason)


class Recovery:
    def __init__(
        self,
        *,
        runtime: Runtime,
        store: InteractionStore,
        desk: Desk,
        app_name: str,
    ) -> None:
        self.pbx = runtime.pbx
        self.board = runtime.board
        self.store = store
        self.writer = runtime.writer
        self.desk = desk
        self.clock = runtime.clock
        self.app_name = app_name
        self._resume: dict[str, Resume] = {}
        self._gone: dict[str, Gone] = {}
        self.pbx_started_at: datetime | None = None
        self.found: Found | None = None  # what the last reconcile found
        self.last: dict[str, int] = {}  # what the last reconcile did, for logs and tests

    def register(self, kind: str, resume: Resume, gone: Gone | None = None) -> None:
        self._resume[kind] = resume
        if gone is not None:
            self._gone[kind] = gone

    async def _started_at(self) -> datetime | None:
        try:
            info = await self.pbx.asterisk_info()
            value = str((info.get("status") or {}).get("startup_time", ""))
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z") if value else None
        except (PbxError, ValueError) as exc:
            log.warning("could not read when Asterisk started: %s", exc)
            return None

    async def reconcile(self, reconnect: bool) -> None:
        started = await self._started_at()
        found = Found(
            {c.id: c for c in await self.pbx.channels()},
            {b.id: b for b in await self.pbx.bridges()},
            started,
        )
        restarted_now = (
            self.pbx_started_at is not None and started is not None and started != self.pbx_started_at
        )
        if restarted_now:
            log.warning("Asterisk restarted (at %s): its calls are gone", started)
        self.pbx_started_at = started
        self.found = found
        counts = {"told": 0, "resumed": 0, "closed": 0, "new": 0, "orphans": 0}
        # Calls this process follows end by themselves when told; one may be gone from the board
        # before its end is written, and must not be taken for an interaction nobody follows.
        followed = {call.it.id for call in self.board.calls()}
        for call in self.board.calls():
            if call.ended:
                continue
            missing = call.channels - found.channels.keys()
            if missing:
                counts["told"] += 1
                restarted = restarted_now or found.restarted_since(call.it.arrived_at)
                why = "Asterisk restarted" if restarted else ""
                call.events.put_nowait(PbxLost(frozenset(missing), restarted, why))
            call.events.put_nowait(Reconnected())
        for it in await self.store.open_interactions():
            if it.id in followed or self.board.call(it.id) is not None:
                continue
            kind = kind_of(it)
            resume = self._resume.get(kind)
            if resume is not None and found.live(it.caller_channel_id):
                it.record(self.clock(), "recovered", state=it.phase.value)
            if resume is not None and found.live(it.caller_channel_id) and resume(it, found):
                log.info("interaction %s (%s) taken up in phase %s", it.id, kind, it.phase.value)
                counts["resumed"] += 1
            else:
                await self.close(it, kind, found)
                counts["closed"] += 1
        prefix = self.app_name + ","
        for channel in found.channels.values():
            if channel.app_name != "Stasis" or not (channel.app_data + ",").startswith(prefix):
                continue
            if self.board.holds(channel.id):
                continue
            args = tuple(channel.app_data.split(",")[1:])
            if args and args[0] == "inbound":
                # It entered Stasis but we never recorded it: take it as a new call.
                await self.board.dispatch(StasisStart(channel, args))
                counts["new"] += 1
            else:
                log.warning("hanging up orphan channel %s (%s)", channel.id, channel.app_data)
                counts["orphans"] += 1
                try:
                    await self.pbx.hangup(channel.id)
                except PbxError as exc:
                    log.info("orphan %s: %s", channel.id, exc.message)
        # A call that has just ended (e.g. told above that Asterisk restarted) is still closing:
        # it frees its own agents by its queue's rule; only agents of no call at all are orphans.
        self.desk.release_orphans({c.it.id for c in self.board.calls()})
        self.last = counts
        log.info("reconciled after %s: %s", "a reconnect" if reconnect else "start", counts)

    async def close(self, it: Interaction, kind: str, found: Found) -> None:
        """An open interaction whose caller is gone: closed with an outcome that says why, and
        what is left of it in Asterisk hung up."""
        gone = self._gone.get(kind)
        if gone is not None:
            outcome, reason = gone(it, found)
        elif found.restarted_since(it.arrived_at):
            outcome, reason = Outcome.DROPPED, "Asterisk restarted"
        else:
            outcome, reason = Outcome.LOST, "caller gone while the app was down"
        for channel_id in legs_of(it):
            if found.live(channel_id):
                try:
                    await self.pbx.hangup(channel_id)
                except PbxError as exc:
                    log.info("leg %s: %s", channel_id, exc.message)
        bridge = (it.legs.get("talk") or {}).get("bridge")
        if bridge in found.bridges:
            try:
                await self.pbx.destroy_bridge(str(bridge))
            except PbxError as exc:
                log.info("bridge %s: %s", bridge, exc.message)
        it.end(
            self.clock(), outcome, ended_by="pbx" if outcome is Outcome.DROPPED else "caller", reason=reason
        )
        self.writer.save(it)
        self.desk.interaction_gone(it.id, it.queue)
        log.warning("interaction %s closed as %s: %s", it.id, outcome.value, reason)
