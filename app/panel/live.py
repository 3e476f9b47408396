"""Live agent state for the panel's websockets.

The routing desk announces which agents changed (`AgentsChanged` on the bus); the hub turns each
into a JSON-ready view at once (the Agent objects keep changing) and queues it for every
subscriber allowed to see that agent. Each websocket drains its own queue, so a slow
browser never holds up routing: past `max_backlog` unsent messages it is cut off and
reconnects for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from app.bus import AgentsChanged
from app.domain.agent_state import Agent

Message = dict[str, Any]
EndReason = Literal["signed-out", "server-stopping", "too-slow"]


@dataclass(eq=False)
class Subscription:
    agent_ids: frozenset[str] | None  # None: every agent (supervisors)
    session: bytes  # the session's token hash, so signing out ends its sockets
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    ended: EndReason | None = None

    def wants(self, agent_id: str) -> bool:
        return self.agent_ids is None or agent_id in self.agent_ids

    def end(self, reason: EndReason) -> None:
        if self.ended is None:
            self.ended = reason
            self.queue.put_nowait({"type": "end", "reason": reason})


class LiveHub:
    def __init__(self, view: Callable[[Agent], Message], max_backlog: int = 200) -> None:
        self.view = view  # what a browser is sent about an agent
        self.max_backlog = max_backlog
        self._subs: set[Subscription] = set()

    def subscribe(self, agent_ids: frozenset[str] | None, session: bytes) -> Subscription:
        sub = Subscription(agent_ids, session)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def agents_changed(self, notice: AgentsChanged) -> None:
        views = [self.view(a) for a in notice.agents]
        for sub in self._subs:
            for view in views:
                if sub.ended is not None or not sub.wants(view["id"]):
                    continue
                if sub.queue.qsize() >= self.max_backlog:
                    sub.end("too-slow")
                    continue
                sub.queue.put_nowait({"type": "agent", "agent": view})

    def watching(self, agent_id: str) -> bool:
        """Whether any of this agent's own panels is open (what `push` would reach)."""
        return any(
            sub.ended is None and sub.agent_ids is not None and agent_id in sub.agent_ids
            for sub in self._subs
        )

    def push(self, agent_id: str, message: Message) -> int:
        """Send a message meant for one agent's own panels (e.g. a screen pop); supervisors'
        sockets, which follow every agent, do not get it. Returns how many sockets it went to."""
        sent = 0
        for sub in self._subs:
            if sub.ended is not None or sub.agent_ids is None or agent_id not in sub.agent_ids:
                continue
            if sub.queue.qsize() >= self.max_backlog:
                sub.end("too-slow")
                continue
            sub.queue.put_nowait(message)
            sent += 1
        return sent

    def to_supervisors(self, message: Message) -> None:
        """Send a message to every supervisor's socket (those that follow every agent)."""
        for sub in self._subs:
            if sub.ended is not None or sub.agent_ids is not None:
                continue
            if sub.queue.qsize() >= self.max_backlog:
                sub.end("too-slow")
                continue
            sub.queue.put_nowait(message)

    def end_session(self, session: bytes) -> None:
        for sub in self._subs:
            if sub.session == session:
                sub.end("signed-out")

    def close_all(self) -> None:
        for sub in self._subs:
            sub.end("server-stopping")


LIVE = web.AppKey("live", LiveHub)
