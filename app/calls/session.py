"""One call, driven by one asyncio task: its event queue and the steps every call kind uses.

ARI events about the call's channels, playbacks and recordings, the desk's decisions and
people's control requests are routed into the call's own queue (see `Switchboard`), so each
call is serialised on its own and no lock is shared between calls. The script of the call kind
runs top to bottom in `Call.run`, which closes the interaction whatever way the script ends.

Cleanup is an exit stack: each leg or phase that leaves something in Asterisk (a ringing agent,
a bridge, an external party) pushes what undoes it, and those steps run when the call is over.
A call whose task is cancelled without having ended (the app stopping for a restart) leaves all
of it in place for the next start to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from app.adapters.ari import (
    AriNotFound,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisEnd,
    StasisStart,
)
from app.calls.events import CallDropped, CallerGone, CallEvent, PbxLost, Reconnected
from app.calls.ports import Clock, Pbx
from app.calls.recorder import NoRecorder, Recorder
from app.calls.writer import InteractionWriter
from app.domain.interaction import Interaction, Outcome, Phase, outcome_when_caller_leaves
from app.domain.outbound import OutboundPolicy
from app.domain.prompt import LanguageChoice
from app.errors import PbxError

if TYPE_CHECKING:
    from app.adapters.db import Customer

log = logging.getLogger(__name__)

HANGUP_EVENTS = (ChannelDestroyed, ChannelHangupRequest, StasisEnd)


class Routes(Protocol):
    """Where ARI events are sorted to calls by channel, playback or recording id."""

    def route(self, key: str, call: Call) -> None: ...
    def unroute(self, key: str) -> None: ...
    def remove(self, call: Call) -> None: ...
    async def unclaimed(self, ev: StasisStart) -> None: ...


async def _after_this_step(step: Coroutine[Any, Any, None]) -> None:
    await asyncio.sleep(0)
    await step


class Call:
    """One call of some kind ("inbound", "callback", "dialer", ...) and its interaction."""

    def __init__(
        self,
        it: Interaction,
        kind: str,
        *,
        pbx: Pbx,
        writer: InteractionWriter,
        routes: Routes,
        clock: Clock,
        outbound: OutboundPolicy,
        customer: Customer | None = None,
        recorded: bool = False,
        recorder: Recorder | None = None,
    ) -> None:
        self.it = it
        self.kind = kind
        self.pbx = pbx
        self.writer = writer
        self.routes = routes
        self.clock = clock
        self.outbound = outbound
        self.customer = customer
        self.recorded = recorded  # its row exists (or is on its way): saves go out
        self.recorder: Recorder = recorder or NoRecorder()  # call recording (app/recording/)
        # False while the caller is someone we have yet to call (a callback's customer).
        self.caller_placed = True
        # False for an agent's standing line (app/dialer/nailed.py): a channel we keep, not a
        # call of anyone, so not counted or ended with the calls in progress.
        self.counted = True
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.gone: set[str] = set()  # channels of this call seen hanging up
        # Call data that goes to an agent's phone besides the standard set (e.g. the campaign).
        self.agent_variables: dict[str, str] = {}
        # The connected phase, once an agent (or anyone) answered: app/calls/conversation.py.
        self.conversation: Any = None
        self.task: asyncio.Task[None] | None = None
        # Whether the caller hears music on hold: None when not known (a call taken over after
        # a restart), so that the first change is always sent.
        self.music_playing: bool | None = None if recorded else False
        self.cleanup = contextlib.AsyncExitStack()
        self._side_steps: set[asyncio.Task[None]] = set()
        self._keys: set[str] = set()
        self._channels: set[str] = set()
        # Prompts playing to the caller while the call goes on (the consent notice while an
        # agent's phone rings), by playback id, until they have played.
        self._behind: set[str] = set()
        # Told when the party in control of the call changes (an agent answers, hands the call
        # over, leaves it): a supervisor listening in follows (app/supervision/coaching.py).
        self._party_watchers: list[Callable[[], None]] = []
        self.log = logging.LoggerAdapter(log, {"call": it.id})

    @property
    def caller(self) -> str:
        """The caller's (or the customer's) channel id."""
        return self.it.caller_channel_id

    @property
    def ended(self) -> bool:
        return self.it.phase is Phase.ENDED

    def now(self) -> datetime:
        return self.clock()

    # -- the record -------------------------------------------------------------

    def create(self) -> None:
        """The interaction's row is written from now on (a dialled customer who never answers
        leaves no interaction, only a dial attempt)."""
        self.recorded = True
        self.writer.create(self.it)

    def serve_in(self, choice: LanguageChoice, key: str | None = None) -> None:
        """Every prompt the caller (or customer) hears from here on is in this language alone
        (`Voice.say` and `Voice.fixed_in` read `it.language`); the choice is an event (with the
        key pressed, when the caller chose)."""
        self.it.language = choice.lang
        self.it.record(
            self.now(), "language", lang=choice.lang, by=choice.by, **({"key": key} if key else {})
        )
        self.save_soon()
        self.log.info("caller's language %s (by %s)", choice.lang, choice.by)

    def save_soon(self) -> None:
        """Persist without waiting: the call goes on while the row is written, in order."""
        if self.recorded:
            self.writer.save(self.it)

    async def save(self, timeout: float = 5.0) -> bool:
        """Persist and wait for it, for a step that needs the row on disk (a row elsewhere that
        refers to this interaction). False if the database did not take it in time."""
        if not self.recorded:
            return False
        self.writer.save(self.it)
        return await self.writer.flush(self.it.id, timeout)

    def note(self, kind: str, **data: Any) -> None:
        """Add to the call's record something done from outside it (a supervisor listening in):
        written behind, in order with the call's own events."""
        self.it.record(self.now(), kind, **data)
        self.save_soon()

    def watch_party(self, watcher: Callable[[], None]) -> None:
        self._party_watchers.append(watcher)

    def unwatch_party(self, watcher: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._party_watchers.remove(watcher)

    def party_changed(self) -> None:
        """Someone else is in control of the call now (or nobody); watchers only queue work."""
        for watcher in list(self._party_watchers):
            watcher()

    # -- events -----------------------------------------------------------------

    def route(self, key: str, channel: bool = True) -> None:
        """Events about this channel (or playback or recording) come to this call."""
        self._keys.add(key)
        if channel:
            self._channels.add(key)
        self.routes.route(key, self)

    def unroute(self, key: str) -> None:
        self._keys.discard(key)
        self._channels.discard(key)
        self.routes.unroute(key)

    @property
    def channels(self) -> frozenset[str]:
        """The channels of this call the app follows now (the caller's, once placed, and its
        legs'). Asterisk cannot lose a caller we have not called yet (a callback waiting in line)."""
        channels = self._channels | {self.caller}
        return frozenset(channels if self.caller_placed else channels - {self.caller})

    async def next_event(self, timeout: float | None = None) -> CallEvent | None:
        """The next event for this call; None on timeout. Raises CallerGone when the caller's
        leg ends, CallDropped when the PBX lost it."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancellation
                ev = await self.events.get()
        except TimeoutError:
            return None
        self._sort_behind(ev)
        if isinstance(ev, PbxLost):
            self.gone |= ev.channel_ids
            if self.caller in ev.channel_ids:
                if ev.pbx_restarted:
                    raise CallDropped(ev.why or "Asterisk restarted")
                raise CallerGone()  # left while the app was not listening
            return ev
        if isinstance(ev, HANGUP_EVENTS):
            self.gone.add(ev.channel.id)
        if isinstance(ev, HANGUP_EVENTS) and ev.channel.id == self.caller:
            raise CallerGone()
        return ev

    async def back_in_stasis(self, kind: str, within: float) -> bool:
        """After the caller's channel left Stasis (its StasisEnd, or a request that found it
        gone): whether it came back into Stasis as `kind` (the dialplan sent it on, e.g. on a
        fax tone) rather than hanging up. Waits at most `within` seconds, less when the caller's
        hang-up shows first; the events looked at stay queued, in order, but that StasisStart."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        seen: list[CallEvent] = []
        back = False
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        ev = await self.events.get()
                except TimeoutError:
                    break
                if isinstance(ev, StasisStart) and ev.channel.id == self.caller and ev.args[:1] == (kind,):
                    back = True
                    break
                seen.append(ev)
                if isinstance(ev, ChannelDestroyed | ChannelHangupRequest) and ev.channel.id == self.caller:
                    break
                if isinstance(ev, PbxLost) and self.caller in ev.channel_ids:
                    break
        finally:
            later: list[CallEvent] = []
            while not self.events.empty():
                later.append(self.events.get_nowait())
            for ev in seen + later:
                self.events.put_nowait(ev)
        if back:
            self.gone.discard(self.caller)
        return back

    def in_background(self, step: Coroutine[Any, Any, None]) -> None:
        """Run a side step without waiting for it; it is awaited at cleanup. It starts once the
        current step has sent its own requests (e.g. the originate after a key press)."""
        task = asyncio.create_task(_after_this_step(step))
        self._side_steps.add(task)
        task.add_done_callback(self._side_steps.discard)

    # -- media ------------------------------------------------------------------

    async def play(
        self,
        uris: list[str],
        interruptible: bool,
        until: asyncio.Future[Any] | None = None,
        channel: str | None = None,
        keep_key: bool = False,
    ) -> str | None:
        """Play to the caller (or `channel`); the key that interrupted it, if any.

        With `until`, the prompt also stops as soon as that future is done: an agent who was
        just reserved must not wait for the end of an announcement.

        With `keep_key`, a key pressed during the prompt is not used up here: it goes back to
        the head of the call's events for the step that follows (a key pressed during "please
        hold" is the queue's business); an uninterruptible prompt plays on and the key waits
        for its end. Without it, a key an uninterruptible prompt hears is dropped."""
        if not uris:  # a prompt configured as an empty list is silence
            return None
        channel = channel or self.caller
        playback_id = f"pb-{uuid.uuid4()}"
        self.route(playback_id, channel=False)
        kept: list[CallEvent] = []
        try:
            await self.pbx.play(channel, uris, playback_id)
            while True:
                ev = await self.next_event()
                if isinstance(ev, PlaybackFinished) and ev.playback_id == playback_id:
                    return None
                if isinstance(ev, Reconnected) and not await self.pbx.playback_alive(playback_id):
                    return None  # it finished while the events were not coming in
                if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == channel:
                    if keep_key:
                        kept.append(ev)
                    if interruptible:
                        # Not awaited: the key goes on to routing while Asterisk stops the prompt.
                        self.in_background(self.pbx.stop_playback(playback_id))
                        return ev.digit
                if isinstance(ev, HANGUP_EVENTS) and ev.channel.id == channel:
                    self.gone.add(channel)
                    return None  # another party than the caller left: nobody to play to
                if until is not None and until.done():
                    await self.pbx.stop_playback(playback_id)
                    return None
        except AriNotFound:
            if channel == self.caller:
                raise CallerGone() from None
            return None
        finally:
            self.unroute(playback_id)
            if kept:
                self.put_back(kept)

    def typed_ahead(self) -> str | None:
        """The first key the caller pressed that no step has used yet (a prompt stopped by it,
        or one that played on: `play(keep_key=True)`), taken out of the events; the keys after
        it stay, in order, for the steps that read them."""
        held: list[CallEvent] = []
        digit: str | None = None
        while not self.events.empty():
            ev = self.events.get_nowait()
            if digit is None and isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self.caller:
                digit = ev.digit
                continue
            held.append(ev)
        self.put_back(held)
        return digit

    def drop_typed_ahead(self) -> None:
        """Keys pressed ahead that nothing will ask for any more (the caller goes to a queue,
        where a key means "call me back"): forgotten."""
        while self.typed_ahead() is not None:
            pass

    def put_back(self, events: list[CallEvent]) -> None:
        """Events a step looked at but leaves for the next one: back at the head of the queue,
        in order, ahead of what came after them."""
        later: list[CallEvent] = []
        while not self.events.empty():
            later.append(self.events.get_nowait())
        for ev in events + later:
            self.events.put_nowait(ev)

    async def play_behind(self, uris: list[str]) -> None:
        """Start a prompt to the caller that no key stops, and go on at once: the call's next
        steps (ringing an agent) happen while it plays. `prompt_over` waits for its end, and so
        does the bridge to an agent (Conversation.join): the caller hears it whole before
        anyone speaks to them."""
        if not uris:
            return
        playback_id = f"pb-{uuid.uuid4()}"
        self._behind.add(playback_id)
        self.route(playback_id, channel=False)
        try:
            await self.pbx.play(self.caller, uris, playback_id)
        except AriNotFound:
            self._behind_over(playback_id)
            raise CallerGone() from None
        except PbxError as exc:  # not heard: nothing to wait for; the call goes on
            self.log.warning("prompt %s not played: %s", uris, exc.message)
            self._behind_over(playback_id)

    async def prompt_over(self, until: asyncio.Future[Any] | None = None, timeout: float = 60.0) -> None:
        """Wait until the prompts started by `play_behind` have played (or `until` is done).
        Events that come meanwhile are kept, in order, for the steps that follow."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        held: list[CallEvent] = []
        try:
            while self._behind and not (until is not None and until.done()):
                left = deadline - loop.time()
                if left <= 0:
                    self.log.warning("a prompt to the caller did not end in %.0f s; going on", timeout)
                    for playback_id in list(self._behind):
                        self._behind_over(playback_id)
                    break
                ev = await self.next_event(left)
                if ev is None:
                    continue
                if isinstance(ev, Reconnected):  # its end may have come while we were away
                    for playback_id in list(self._behind):
                        if not await self.pbx.playback_alive(playback_id):
                            self._behind_over(playback_id)
                held.append(ev)
        finally:
            self.put_back(held)

    def _sort_behind(self, ev: CallEvent) -> None:
        if isinstance(ev, PlaybackFinished) and ev.playback_id in self._behind:
            self._behind_over(ev.playback_id)

    def _behind_over(self, playback_id: str) -> None:
        self._behind.discard(playback_id)
        self.unroute(playback_id)

    async def music(self, on: bool) -> None:
        """Music on hold for the caller, on or off. A request goes to the PBX only when it
        changes something: the caller of an agent who answers at once never had music started,
        so none is stopped either."""
        if self.music_playing is on:
            return
        if on:
            await self.pbx.start_moh(self.caller)
        else:
            await self.pbx.stop_moh(self.caller)
        self.music_playing = on

    async def wait_digit(self, timeout: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            ev = await self.next_event(left)
            if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self.caller:
                return ev.digit
        return None

    async def record(
        self,
        name: str,
        *,
        max_duration_s: int,
        max_silence_s: int,
        terminate_on: str = "#",
        beep: bool = True,
        on_key: Callable[[str], bool] | None = None,
    ) -> tuple[RecordingFinished | None, bool]:
        """Record the caller and wait for the recording to finish: (the finished recording or
        None, whether the caller hung up meanwhile). Asterisk keeps what was said before a
        hang-up. `on_key` sees keys pressed meanwhile; True stops the wait (e.g. speech input
        answered by a key)."""
        self.route(name, channel=False)
        try:
            await self.pbx.record(
                self.caller,
                name,
                max_duration_s=max_duration_s,
                max_silence_s=max_silence_s,
                terminate_on=terminate_on,
                beep=beep,
            )
        except BaseException:
            self.unroute(name)
            raise
        return await self.wait_recording(name, max_duration_s + 15, on_key)

    async def wait_recording(
        self, name: str, timeout: float = 615.0, on_key: Callable[[str], bool] | None = None
    ) -> tuple[RecordingFinished | None, bool]:
        """Wait for a recording of this call (started here, or before a restart) to finish."""
        loop = asyncio.get_running_loop()
        self.route(name, channel=False)
        caller_left = False
        try:
            deadline = loop.time() + timeout
            while (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        ev = await self.events.get()
                except TimeoutError:
                    break
                self._sort_behind(ev)
                if isinstance(ev, RecordingFinished) and ev.name == name:
                    return ev, caller_left
                if isinstance(ev, RecordingFailed) and ev.name == name:
                    self.log.warning("recording %s failed: %s", name, ev.cause)
                    break
                if isinstance(ev, PbxLost) and self.caller in ev.channel_ids:
                    self.gone |= ev.channel_ids
                    if ev.pbx_restarted:
                        raise CallDropped(ev.why or "Asterisk restarted")
                    # Gone while the app was not listening: its RecordingFinished went with it.
                    return None, True
                if isinstance(ev, HANGUP_EVENTS) and ev.channel.id == self.caller:
                    self.gone.add(ev.channel.id)
                    caller_left = True  # Asterisk ends the recording and keeps what it has
                elif isinstance(ev, ChannelDtmfReceived) and ev.channel.id == self.caller:
                    if on_key is not None and on_key(ev.digit):
                        break
            return None, caller_left
        finally:
            self.unroute(name)

    async def hang_up(self, channel_id: str | None = None) -> None:
        """Hang up the caller (or another leg); one already gone is fine."""
        with contextlib.suppress(PbxError):
            await self.pbx.hangup(channel_id or self.caller)

    def when_over(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` at cleanup if the call has ended; when the app only stops for a restart,
        what the step would undo stays in Asterisk for the next start to take over."""

        async def guarded() -> None:
            if self.ended:
                await step()

        self.cleanup.push_async_callback(guarded)

    # -- the whole call ---------------------------------------------------------

    async def run(
        self,
        script: Callable[[], Awaitable[None]],
        when_caller_leaves: Callable[[Phase], Outcome] = outcome_when_caller_leaves,
        caller_is: str = "caller",
    ) -> None:
        """Run the kind's script; the interaction ends however the script ends."""
        try:
            await script()
        except CallerGone:
            self.it.end(self.now(), when_caller_leaves(self.it.phase), ended_by=caller_is)
        except CallDropped as exc:
            self.log.warning("call dropped in phase %s: %s", self.it.phase.value, exc.why)
            self.it.end(self.now(), Outcome.DROPPED, ended_by="pbx", reason=exc.why)
        except AriNotFound as exc:
            # A channel vanished under us: almost always a hang-up racing our request.
            self.log.info("channel gone mid-step: %s", exc)
            self.it.end(self.now(), when_caller_leaves(self.it.phase), ended_by=caller_is)
            await self.hang_up()
        except asyncio.CancelledError:
            # Stopping for a restart: the call stays in Asterisk; the next start takes it over.
            self.log.info("call task stopped in phase %s", self.it.phase.value)
            raise
        except Exception as exc:
            self.log.exception("call failed")
            self.it.end(self.now(), Outcome.FAILED, error=str(exc))
            await self.hang_up()
        finally:
            await self.close()

    async def close(self) -> None:
        """Undo what the call left in Asterisk (if it ended), write its last state, forget it."""
        for result in await asyncio.gather(*self._side_steps, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, PbxError):
                self.log.warning("side step failed: %r", result)
        try:
            await self.cleanup.aclose()
        except Exception:
            self.log.exception("cleanup failed")
        self.save_soon()
        for key in list(self._keys):
            self.routes.unroute(key)
        self._keys.clear()
        self.routes.remove(self)
        # The caller's channel entering Stasis again as the call stopped looking (sent on by the
        # dialplan, e.g. on a fax tone) goes to whoever takes it now, rather than waiting in
        # Stasis for no one. (A call only stopped for a restart leaves it: the next start takes
        # over what is in Stasis.)
        while self.ended and not self.events.empty():
            ev = self.events.get_nowait()
            if isinstance(ev, StasisStart) and ev.channel.id == self.caller:
                await self.routes.unclaimed(ev)
