"""Listen, whisper, barge: a supervisor's phone joined to a live call through an ARI snoop.

One session per supervisor, driven by one asyncio task with its own queue (like a call): ARI
events of the supervisor's phone channel and of the snoop come in through the switchboard's
watchers, the supervisor's requests (another mode, end) through `ask`, so a mode change never
races a hang-up. What each mode lets through is app/domain/coaching.py.

The session:
1. rings the supervisor's own SIP account (desk phone or softphone, registered with its
   password like an agent's), which enters our Stasis app when answered;
2. puts that channel in a bridge of its own and makes a snoop for the mode asked, on the
   agent's channel or, while nobody has answered (the caller in the IVR or in line), on the
   caller's; the snoop joins the bridge once it is in Stasis;
3. on a mode change drops the snoop and makes another (the supervisor's call stays up);
4. follows the call when someone else takes control of it (an agent answers the waiting
   caller, a consultation is completed, the agent sends the caller back in line): the call
   tells it (`Call.watch_party`), and a new snoop goes on the new party's channel;
5. ends when the supervisor hangs up or asks, when the snoop goes and nobody is left to
   listen to in that mode, or when the call is over, and then hangs up whatever is left of it
   and destroys its bridge.

Every start, mode change and end is an event of the interaction (`supervision_started`,
`supervision_mode`, `supervision_ended`), and so is following the call to another agent
(`supervision_followed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.adapters.ari import AriNotFound, Bridge, Channel, StasisStart
from app.calls.conversation import Conversation
from app.calls.events import CallEvent
from app.calls.session import HANGUP_EVENTS, Call
from app.domain.coaching import Mode, Side, modes_on, refusal, side_for, snoop_directions
from app.domain.interaction import Phase
from app.errors import AppError, PbxError

log = logging.getLogger(__name__)

STASIS_KIND = "coach"  # first Stasis argument of the supervisor's phone and of the snoops


class CoachingPbx(Protocol):
    """The few ARI requests a session makes (app/adapters/ari.py)."""

    async def originate(
        self,
        *,
        endpoint: str,
        channel_id: str,
        app_args: str,
        caller_id: str,
        timeout_s: int,
        variables: Mapping[str, str],
    ) -> Channel: ...
    async def snoop(
        self, channel_id: str, snoop_id: str, *, spy: str, whisper: str, app_args: str
    ) -> Channel: ...
    async def hangup(self, channel_id: str, reason: str = "normal") -> None: ...
    async def create_bridge(self, bridge_id: str, name: str) -> Bridge: ...
    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None: ...
    async def destroy_bridge(self, bridge_id: str) -> None: ...
    async def channels(self) -> list[Channel]: ...


class LiveCalls(Protocol):
    """The switchboard, as sessions use it (app/calls/switchboard.py)."""

    def call(self, interaction_id: str) -> Call | None: ...
    def live_calls(self) -> Iterator[Call]: ...
    def watch(self, channel_id: str, watcher: Callable[[CallEvent], None]) -> None: ...
    def unwatch(self, channel_id: str) -> None: ...


class CoachingError(AppError):
    def __init__(self, message: str, http_status: int = 409) -> None:
        super().__init__("supervision", message, {}, http_status)


def agent_channel(call: Call) -> tuple[str, str] | None:
    """(channel, who) of the party in control of the call: an agent (their id), or an outside
    expert the call was handed to (their number); None while nobody is."""
    conversation = call.conversation
    if not isinstance(conversation, Conversation) or conversation.agent is None:
        return None
    agent = conversation.agent
    return agent.channel_id, agent.agent_id or agent.number or ""


# Calls whose far end is a machine, not a caller: nobody to listen to, and an audio hook on a
# fax channel could only disturb the fax.
NOT_A_CALLER = frozenset({"fax"})


def caller_channel(call: Call) -> str | None:
    """The caller's channel while it is up: not a callback's customer not yet called."""
    if call.kind in NOT_A_CALLER or not call.caller_placed or not call.caller or call.caller in call.gone:
        return None
    return call.caller


@dataclass(frozen=True)
class Point:
    """Where a supervisor listens: whose side, the channel the snoop goes on, who that is."""

    side: Side
    channel: str
    who: str


def listening_point(call: Call) -> Point | None:
    leg = agent_channel(call)
    caller = caller_channel(call)
    side = side_for(leg is not None, caller is not None)
    if side is Side.AGENT and leg is not None:
        return Point(side, leg[0], leg[1])
    if side is Side.CALLER and caller is not None:
        return Point(side, caller, call.it.ani or "")
    return None


def stage(call: Call) -> str:
    """What a supervisor sees of the call: in the IVR, waiting for an agent, or talking."""
    if agent_channel(call) is not None:
        return "talking"
    return "ivr" if call.it.phase is Phase.IVR else "waiting"


@dataclass(frozen=True)
class _PartyChanged:
    pass


@dataclass(frozen=True)
class _Ask:
    mode: Mode | None  # None: end the session


@dataclass(frozen=True)
class _CallOver:
    pass


class Session:
    def __init__(self, supervisor: str, endpoint: str, call: Call, mode: Mode) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.supervisor = supervisor
        self.endpoint = endpoint
        self.call = call
        self.mode = mode  # as last asked
        self.hearing: Mode | None = None  # the mode of the snoop in the bridge now
        self.phone = f"coach-{self.id}"  # the supervisor's channel
        self.bridge = f"coach-{self.id}"
        self.bridge_made = False
        self.answered = False
        self.snoop: str | None = None  # in the bridge
        self.snoop_mode: Mode | None = None  # of the snoop being made or in the bridge
        self.coming: str | None = None  # made, not yet in Stasis
        self.target: str | None = None  # the channel the snoop spies on
        self.side: Side | None = None  # whose channel that is
        self.ended = False
        self.inbox: asyncio.Queue[CallEvent | _Ask | _CallOver | _PartyChanged] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self._numbers = itertools.count(1)
        self.log = logging.LoggerAdapter(log, {"call": call.it.id})

    def party_changed(self) -> None:
        self.inbox.put_nowait(_PartyChanged())

    def next_snoop_id(self) -> str:
        return f"snoop-{self.id}-{next(self._numbers)}"

    def view(self) -> dict[str, Any]:
        if self.ended:
            state = "ended"
        elif not self.answered:
            state = "ringing"
        else:  # "joining": answered, the snoop (a new one after a transfer) not in yet
            state = "connected" if self.hearing is not None else "joining"
        return {
            "session_id": self.id,
            "supervisor": self.supervisor,
            "interaction_id": self.call.it.id,
            "mode": self.mode.value,
            "hearing": None if self.hearing is None else self.hearing.value,
            "side": None if self.side is None or self.hearing is None else self.side.value,
            "state": state,
        }


class Coaching:
    def __init__(
        self,
        pbx: CoachingPbx,
        calls: LiveCalls,
        phones: Mapping[str, str],  # supervisor username -> their SIP endpoint ("PJSIP/lead")
        ring_s: int = 30,
    ) -> None:
        self.pbx = pbx
        self.calls = calls
        self.phones = phones
        self.ring_s = ring_s
        self._sessions: dict[str, Session] = {}  # supervisor -> their session

    # -- what supervisors ask ---------------------------------------------------------

    def session_of(self, supervisor: str) -> Session | None:
        return self._sessions.get(supervisor)

    def live_calls(self) -> list[dict[str, Any]]:
        """Calls that can be listened to (an agent talking, or a caller in the IVR or in line),
        and who listens to each."""
        out = []
        for call in self.calls.live_calls():
            point = listening_point(call)
            if point is None:
                continue
            out.append(
                {
                    "interaction_id": call.it.id,
                    "kind": call.kind,
                    "direction": call.it.direction,
                    "ani": call.it.ani,
                    "queue": call.it.queue,
                    "agent_id": point.who if point.side is Side.AGENT else None,
                    "stage": stage(call),
                    "modes": [m.value for m in modes_on(point.side)],
                    "supervisors": sorted(
                        s.supervisor for s in self._sessions.values() if s.call is call and not s.ended
                    ),
                }
            )
        return out

    def join(self, supervisor: str, interaction_id: str, mode: Mode) -> Session:
        """Listen to, whisper to or barge into a call; on the call already listened to, change
        mode without hanging up."""
        mine = self._sessions.get(supervisor)
        if mine is not None and not mine.ended:
            if mine.call.it.id != interaction_id:
                raise CoachingError(
                    f"you are on call {mine.call.it.id}; end that first (POST .../supervision/end)"
                )
            if mode is not mine.mode:
                point = listening_point(mine.call)
                reason = None if point is None else refusal(mode, point.side)
                if reason is not None:
                    raise CoachingError(reason)
                mine.call.note(
                    "supervision_mode", supervisor=supervisor, mode=mode.value, was=mine.mode.value
                )
                mine.mode = mode
                mine.inbox.put_nowait(_Ask(mode))
            return mine
        endpoint = self.phones.get(supervisor)
        if endpoint is None:
            raise CoachingError(
                f"{supervisor} has no phone to listen with: give the user `phone: true` in web.users"
            )
        call = self.calls.call(interaction_id)
        if call is None or call.ended:
            raise CoachingError(f"no call {interaction_id} in progress", 404)
        point = listening_point(call)
        if point is None:
            raise CoachingError(
                f"call {interaction_id} has nobody to listen to (a customer not called yet, or a fax)"
            )
        reason = refusal(mode, point.side)
        if reason is not None:
            raise CoachingError(reason)
        session = Session(supervisor, endpoint, call, mode)
        self._sessions[supervisor] = session
        if point.side is Side.AGENT:
            call.note("supervision_started", supervisor=supervisor, mode=mode.value)
        else:  # nobody answered yet: say where the caller is
            call.note("supervision_started", supervisor=supervisor, mode=mode.value, stage=stage(call))

        async def over() -> None:
            session.inbox.put_nowait(_CallOver())

        call.when_over(over)
        call.watch_party(session.party_changed)
        session.task = asyncio.create_task(self._run(session), name=f"coach-{session.id}")
        session.log.info("supervisor %s joins the call (%s)", supervisor, mode.value)
        return session

    def leave(self, supervisor: str) -> Session:
        mine = self._sessions.get(supervisor)
        if mine is None or mine.ended:
            raise CoachingError("you are not listening to any call", 404)
        mine.inbox.put_nowait(_Ask(None))
        return mine

    async def stop(self) -> None:
        """The app stops: every supervisor's call ends (nothing is taken over after a restart)."""
        sessions = list(self._sessions.values())
        for s in sessions:
            s.inbox.put_nowait(_Ask(None))
        tasks = [s.task for s in sessions if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def reconcile(self, reconnect: bool) -> None:
        """Events were lost while ARI was away: a session whose channels are gone is over."""
        if not reconnect or not self._sessions:
            return
        alive = {c.id for c in await self.pbx.channels()}
        for s in list(self._sessions.values()):
            if s.phone not in alive or (s.snoop is not None and s.snoop not in alive):
                s.inbox.put_nowait(_CallOver())

    # -- the session's task -----------------------------------------------------------

    async def _run(self, s: Session) -> None:
        try:
            self.calls.watch(s.phone, s.inbox.put_nowait)
            point = listening_point(s.call)
            if point is not None and point.side is Side.AGENT:
                caller_id = f'"Agent {point.who}" <{point.who}>'
            else:  # the number only: what a caller sent is not trusted inside quotes
                digits = "".join(ch for ch in (s.call.it.ani or "") if ch.isdigit() or ch == "+")
                caller_id = f'"Caller" <{digits}>'
            await self.pbx.originate(
                endpoint=s.endpoint,
                channel_id=s.phone,
                app_args=f"{STASIS_KIND},{s.id}",
                caller_id=caller_id,
                timeout_s=self.ring_s,
                variables={},
            )
            while not s.ended:
                await self._handle(s, await s.inbox.get())
        except PbxError as exc:
            s.log.warning("supervisor %s: %s", s.supervisor, exc)
            await self._finish(s, "pbx_error")
        except Exception:
            s.log.exception("supervisor %s: session failed", s.supervisor)
            await self._finish(s, "failed")
        finally:
            if not s.ended:  # cancelled
                await self._finish(s, "stopped")

    async def _handle(self, s: Session, item: CallEvent | _Ask | _CallOver | _PartyChanged) -> None:
        if isinstance(item, _CallOver):
            await self._finish(s, "call_over")
        elif isinstance(item, _PartyChanged):
            if s.answered:  # before that, the answer makes the snoop wherever the call is then
                await self._follow(s)
        elif isinstance(item, _Ask):
            if item.mode is None:
                await self._finish(s, "ended_by_supervisor")
            elif s.answered and item.mode is not s.snoop_mode:
                await self._snoop(s)
        elif isinstance(item, StasisStart):
            channel = item.channel.id
            if channel == s.phone and not s.answered:
                s.answered = True
                await self.pbx.create_bridge(s.bridge, name=f"supervisor {s.supervisor}")
                s.bridge_made = True
                await self.pbx.add_to_bridge(s.bridge, [s.phone])
                await self._snoop(s)
            elif channel == s.coming:
                await self.pbx.add_to_bridge(s.bridge, [channel])
                s.snoop, s.coming, s.hearing = channel, None, s.snoop_mode
                s.log.info("supervisor %s hears the call (%s)", s.supervisor, s.snoop_mode)
        elif isinstance(item, HANGUP_EVENTS):
            channel = item.channel.id
            if channel == s.phone:
                await self._finish(s, "supervisor_hung_up" if s.answered else "not_answered")
            elif channel in (s.snoop, s.coming):
                self.calls.unwatch(channel)
                s.snoop = s.coming = None
                await self._follow(s)

    async def _follow(self, s: Session) -> None:
        """Someone else is in control of the call (an agent answered the waiting caller, a
        consultation was completed, the caller was sent back in line), or the snoop went with
        the channel it spied on. Listen to whoever is there now, on the same phone call; if
        nobody is, or not in this mode (whisper with no agent), it is over."""
        point = listening_point(s.call)
        if s.call.ended:
            await self._finish(s, "call_over")
            return
        if point is not None and point.channel == s.target:
            if s.snoop is None and s.coming is None:  # the snoop went, its channel did not change
                await self._finish(s, "agent_left" if point.side is Side.AGENT else "call_over")
            return  # already there (told twice: by the call and by the old snoop's end)
        if point is None or refusal(s.mode, point.side) is not None:
            await self._finish(s, "agent_left")
            return
        to = point.who if point.side is Side.AGENT else "caller"
        s.log.info("supervisor %s follows the call to %s", s.supervisor, to)
        s.call.note("supervision_followed", supervisor=s.supervisor, to=to)
        s.hearing = None  # until the new snoop is in
        await self._snoop(s)

    async def _snoop(self, s: Session) -> None:
        """A snoop for the mode asked last, in place of the one there was."""
        for old in (s.snoop, s.coming):
            if old is not None:
                self.calls.unwatch(old)
                await self.pbx.hangup(old)
        s.snoop = s.coming = None
        point = listening_point(s.call)
        if point is None or s.call.ended:
            await self._finish(s, "call_over")
            return
        if refusal(s.mode, point.side) is not None:  # whisper asked; the agent left meanwhile
            await self._finish(s, "agent_left")
            return
        snoop_id = s.next_snoop_id()
        directions = snoop_directions(s.mode, point.side)
        self.calls.watch(snoop_id, s.inbox.put_nowait)
        s.coming, s.snoop_mode, s.target, s.side = snoop_id, s.mode, point.channel, point.side
        try:
            await self.pbx.snoop(
                point.channel,
                snoop_id,
                spy=directions.spy,
                whisper=directions.whisper,
                app_args=f"{STASIS_KIND},{s.id}",
            )
        except AriNotFound:
            await self._finish(s, "call_over")  # the agent's channel went meanwhile

    async def _finish(self, s: Session, reason: str) -> None:
        if s.ended:
            return
        s.ended = True
        s.hearing = None
        s.call.unwatch_party(s.party_changed)
        for channel in (s.snoop, s.coming, s.phone):
            if channel is not None:
                self.calls.unwatch(channel)
                with contextlib.suppress(PbxError):
                    await self.pbx.hangup(channel)
        if s.bridge_made:
            with contextlib.suppress(PbxError):
                await self.pbx.destroy_bridge(s.bridge)
        s.call.note("supervision_ended", supervisor=s.supervisor, reason=reason)
        if self._sessions.get(s.supervisor) is s:
            del self._sessions[s.supervisor]
        s.log.info("supervisor %s leaves the call: %s", s.supervisor, reason)
