"""The wallboard: queue figures folded from the interaction events as they are saved (the same
events the reports read; app/domain/wallboard.py), callers waiting and agents by state (counted,
and each with their time in state and Not Ready reason) from the routing desk, pushed to every
supervisor's open page within a fraction of a second of a change.

At start, the day so far is read back from `interaction_events`, so a restart changes no figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.bus import AgentsChanged, Bus, InteractionSaved, QueueChanged
from app.domain.agent_state import Agent, AgentState
from app.domain.routing import QueueStats
from app.domain.wallboard import WINDOW, Wallboard, agents_by_state

log = logging.getLogger(__name__)

PUSH_EVERY_S = 0.25  # at most this often: a burst of events becomes one message
WORK_REFRESH_S = 5.0  # callbacks and voicemails handled with no call event show within this
Events = list[tuple[str, str, datetime, dict[str, Any]]]


def day_start_in(zone: ZoneInfo) -> Callable[[datetime], datetime]:
    def start(at: datetime) -> datetime:
        local = at.astimezone(zone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    return start


class WallboardService:
    def __init__(
        self,
        board: Wallboard,
        bus: Bus,
        events_since: Callable[[datetime], Awaitable[Events]],
        queues: Callable[[], list[QueueStats]],
        agents: Callable[[], Iterable[Agent]],
        push: Callable[[dict[str, Any]], None],
        clock: Callable[[], datetime],
        work_waiting: Callable[[], Awaitable[dict[str, tuple[int, int]]]] | None = None,
        campaigns: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self.board = board
        self._bus = bus
        self._events_since = events_since
        self._queues = queues
        self._agents = agents
        self._push = push
        self._clock = clock
        self._work_waiting = work_waiting
        self._campaigns = campaigns
        # Callbacks pending and voicemails new per queue: read from the database before each push
        # (and every few seconds: a callback or message handled through the API has no call event).
        self._work: dict[str, tuple[int, int]] = {}
        self._work_failing = False
        self._held: list[InteractionSaved] | None = []  # saved while the day is read back
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Follow saved events from now on; the day so far is read back behind, so that
        start-up (taking calls over after a restart) does not wait for a day's events."""
        self._unsubscribe = [
            self._bus.subscribe(InteractionSaved, self._saved),
            self._bus.subscribe(QueueChanged, lambda _: self._due.set()),
            self._bus.subscribe(AgentsChanged, lambda _: self._due.set()),
        ]
        self._task = asyncio.create_task(self._run(), name="wallboard")

    async def _catch_up(self) -> None:
        now = self._clock()
        since = min(self.board.day_start(now), now - WINDOW) - timedelta(hours=2)
        try:
            events = await self._events_since(since)
        except Exception as exc:
            log.warning("wallboard: cannot read the day so far (%s); counting from now", exc)
            events = []
        self.board.replay(events)
        # Then the events saved meanwhile, in order, less those the read already had.
        seen = {(i, kind, at) for i, kind, at, _ in events}
        held, self._held = self._held, None
        for notice in held or []:
            fresh = tuple(e for e in notice.events if (notice.interaction_id, e.kind, e.at) not in seen)
            self._fold(InteractionSaved(notice.interaction_id, fresh))
        log.info("wallboard: %d event(s) of the day so far folded in", len(events))

    async def stop(self) -> None:
        for stop in self._unsubscribe:
            stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh_work(self) -> None:
        if self._work_waiting is None:
            return
        try:
            self._work = await self._work_waiting()
            self._work_failing = False
        except Exception as exc:  # the board goes on with the last counts; said once per outage
            if not self._work_failing:
                log.warning(
                    "wallboard: cannot count callbacks and voicemails (%s); showing the last counts", exc
                )
            self._work_failing = True

    def _saved(self, notice: InteractionSaved) -> None:
        if self._held is not None:  # still reading the day so far back
            self._held.append(notice)
            return
        self._fold(notice)

    def _fold(self, notice: InteractionSaved) -> None:
        changed = False
        for e in notice.events:
            changed |= self.board.event(notice.interaction_id, e.kind, e.at, e.data)
        if changed:
            self._due.set()

    def view(self) -> dict[str, Any]:
        now = self._clock()
        figures = self.board.figures(now)
        queues = {}
        for st in self._queues():
            callbacks, voicemails = self._work.get(st.queue, (0, 0))
            queue_figures = figures.get(st.queue, {"today": None, "last_30_min": None, "tiers": {}})
            level = (queue_figures["today"] or {}).get("service_level_percent")
            queues[st.queue] = {
                # The tile's colour, by the configured thresholds: "warn" (amber), "bad" (red) or "".
                "tile": self.board.tiles.colour(st.oldest_wait_s, level),
                "waiting": st.waiting,
                "callbacks_pending": callbacks,
                "voicemails_new": voicemails,
                "longest_wait_s": round(st.oldest_wait_s, 1),
                "agents_ready": st.agents_ready,
                "agents_logged_in": st.agents_logged_in,
                **queue_figures,
            }
        agents = list(self._agents())
        states: dict[str, int] = dict.fromkeys((s.value for s in AgentState), 0)
        reasons: dict[str, int] = {}
        for agent in agents:
            states[agent.state.value] += 1
            if agent.state is AgentState.NOT_READY:
                reason = agent.not_ready_reason or ""
                reasons[reason] = reasons.get(reason, 0) + 1
        campaigns = [
            {
                k: c[k]
                for k in (
                    "name",
                    "active",
                    "abandon_rate_24h_pct",
                    "abandon_rate_30d_pct",
                    "abandon_target_pct",
                )
            }
            for c in self._campaigns()
        ]
        return {
            "at": now.isoformat(),
            "queues": queues,
            "agents": states,
            "not_ready_reasons": reasons,
            # Each logged-in agent; the page counts the time in state from `since` (and `at`).
            "agent_list": [line.view() for line in agents_by_state(agents)],
            "campaigns": campaigns,
        }

    async def _run(self) -> None:
        await self._catch_up()
        self._due.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WORK_REFRESH_S):
                    await self._due.wait()
            self._due.clear()
            await self.refresh_work()
            with contextlib.suppress(Exception):
                self._push({"type": "wallboard", "board": self.view()})
            await asyncio.sleep(PUSH_EVERY_S)
