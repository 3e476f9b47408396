"""The switchboard: ARI events in, sorted to the calls they belong to; the registry of live calls.

Each call kind registers what to do with a channel that enters our Stasis app with its name as
first argument (`on_stasis("inbound", ...)`); a channel already routed to a call (an agent who
answered, a customer picking up) goes to that call instead. Registered hooks run in order every
time the ARI websocket (re)connects: events were lost meanwhile, so device states are read again
and calls are reconciled with what Asterisk really has (app/calls/recovery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from app.adapters.ari import (
    Channel,
    Connected,
    EndpointStateChange,
    PlaybackFinished,
    RecordingFailed,
    RecordingFinished,
    StasisStart,
)
from app.calls.events import CallEvent
from app.calls.ports import Pbx
from app.calls.session import Call

log = logging.getLogger(__name__)

StasisHandler = Callable[[Channel, tuple[str, ...]], Awaitable[None]]
ConnectHook = Callable[[bool], Awaitable[None]]  # argument: True on a reconnect
EndpointListener = Callable[[str, bool], None]  # agent id, registered
Watcher = Callable[[CallEvent], None]  # events of a channel that belongs to no call


class Switchboard:
    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self._calls: dict[str, Call] = {}  # interaction id -> call
        self._routes: dict[str, Call] = {}  # channel, playback or recording id -> call
        self._stasis: dict[str, StasisHandler] = {}
        self._connect_hooks: list[ConnectHook] = []
        self._endpoint_listeners: list[EndpointListener] = []
        self._watchers: dict[str, Watcher] = {}  # channel id -> who follows it besides calls
        self.ready = asyncio.Event()  # set once the first connect's hooks have all run

    # -- registration -------------------------------------------------------------

    def on_stasis(self, kind: str, handler: StasisHandler) -> None:
        """Channels entering Stasis as `<kind>,...` that no call is expecting go to `handler`."""
        self._stasis[kind] = handler

    def on_connect(self, hook: ConnectHook) -> None:
        self._connect_hooks.append(hook)

    def on_endpoint(self, listener: EndpointListener) -> None:
        self._endpoint_listeners.append(listener)

    # -- the registry of calls ------------------------------------------------------

    def route(self, key: str, call: Call) -> None:
        self._routes[key] = call

    def unroute(self, key: str) -> None:
        self._routes.pop(key, None)

    def watch(self, channel_id: str, watcher: Watcher) -> None:
        """Events of a channel that is no call's leg (a supervisor listening in, a snoop) go to
        `watcher`; set before the channel is made, so that none is missed."""
        self._watchers[channel_id] = watcher

    def unwatch(self, channel_id: str) -> None:
        self._watchers.pop(channel_id, None)

    def remove(self, call: Call) -> None:
        if self._calls.get(call.it.id) is call:
            del self._calls[call.it.id]
        for key in [k for k, c in self._routes.items() if c is call]:
            del self._routes[key]

    def launch(self, call: Call, main: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Register a call and start its task (`main` usually ends with `call.run(...)`)."""
        self._calls[call.it.id] = call
        call.route(call.caller, channel=call.caller_placed)

        async def run() -> None:
            await main()

        call.task = asyncio.create_task(run(), name=f"{call.kind}-{call.it.id}")
        return call.task

    def call(self, interaction_id: str) -> Call | None:
        return self._calls.get(interaction_id)

    def calls(self) -> Iterator[Call]:
        return iter(list(self._calls.values()))

    def live_calls(self) -> Iterator[Call]:
        """Calls not yet ended. An ended call lives on while it is cleaned up, but it is nobody's
        call any more."""
        return (c for c in self.calls() if not c.ended and c.counted)

    def holds(self, channel_id: str) -> bool:
        """Someone follows this channel: a call, or a watcher (a supervisor's phone, a snoop)."""
        return channel_id in self._routes or channel_id in self._watchers

    # -- events -----------------------------------------------------------------

    async def run(self) -> None:
        async for ev in self.pbx.events():
            try:
                await self.dispatch(ev)
            except Exception:
                log.exception("failed to handle %s", type(ev).__name__)

    async def dispatch(self, ev: CallEvent) -> None:
        if isinstance(ev, Connected):
            for hook in self._connect_hooks:
                try:
                    await hook(ev.reconnect)
                except Exception:
                    log.exception("reconnect step %r failed", hook)
            self.ready.set()
            return
        if isinstance(ev, EndpointStateChange):
            for listener in self._endpoint_listeners:
                listener(ev.endpoint.resource, ev.endpoint.online)
            return
        key: str | None = None
        if isinstance(ev, PlaybackFinished):
            key = ev.playback_id
        elif isinstance(ev, RecordingFinished | RecordingFailed):
            key = ev.name
        elif hasattr(ev, "channel"):
            key = ev.channel.id
        call = self._routes.get(key) if key else None
        if call is not None:
            call.events.put_nowait(ev)
            return
        watcher = self._watchers.get(key) if key else None
        if watcher is not None:
            watcher(ev)
            return
        if isinstance(ev, StasisStart):
            await self._enter(ev)

    async def unclaimed(self, ev: StasisStart) -> None:
        """A StasisStart that reached a call only after it ended: to the call that holds the
        channel now, else as a channel entering Stasis afresh."""
        call = self._routes.get(ev.channel.id)
        if call is not None:
            call.events.put_nowait(ev)
            return
        await self._enter(ev)

    async def _enter(self, ev: StasisStart) -> None:
        """A channel entered Stasis that no call holds: to the handler of its kind, else hung up."""
        kind = ev.args[0] if ev.args else ""
        handler = self._stasis.get(kind)
        if handler is not None:
            await handler(ev.channel, ev.args)
            return
        log.warning("%s leg %s entered Stasis for a call we no longer hold; hanging up", kind, ev.channel.id)
        with contextlib.suppress(Exception):
            await self.pbx.hangup(ev.channel.id)

    async def stop_calls(self) -> int:
        """Stop following every call, leaving them up in Asterisk (a restart takes them over).
        Returns how many there were."""
        tasks = [c.task for c in self.calls() if c.task is not None and not c.task.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        return len(tasks)
