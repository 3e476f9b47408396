"""The screen pop: what an agent sees the moment a call is offered to them.

`PopService` follows the bus: agents' state changes and saved interactions. When an agent is reserved for an
interaction (or found ringing or on a call with one not yet shown), it reads the interaction's
context from PostgreSQL (customer, IVR journey, callback and voicemail, recent history), adds
what the desk decided in memory (the route reason, which may not be written yet), and pushes
one `{"type": "pop"}` message to that agent's own panels. Nothing is polled: the push follows
the state change that the routing core announces, and the store's note that the call's
`offered` event is written (the pop is then sent again, complete, if anything changed).
Only agents with a panel open get one built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from app.adapters.pop_store import CustomerProfile, PopContext, PopStore
from app.bus import AgentsChanged, InteractionSaved
from app.domain.agent_state import AgentState
from app.domain.ivr_flow import FlowSet, PanelLabels, panel_labels
from app.domain.route_reason import explain
from app.domain.screen_pop import POP_STATES, REFRESH_KINDS, PopTracker, journey
from app.panel.live import LiveHub
from app.routing.desk import RoutingService

log = logging.getLogger(__name__)

Message = dict[str, Any]
# A reloaded panel gets the pop back while its agent still works on the interaction.
CURRENT_STATES = POP_STATES | {AgentState.WRAP_UP}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def customer_view(c: CustomerProfile | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "id": c.id,
        "name": c.name,
        "phone": c.phone,
        "account_number": c.account_number,
        "email": c.email,
        "tier": c.tier,
        "vip": c.vip,
        "notes": c.notes,
    }


def voicemail_audio_url(voicemail_id: str) -> str:
    return f"/panel/api/voicemails/{voicemail_id}/audio"


class PopService:
    def __init__(
        self,
        store: PopStore,
        routing: RoutingService,
        hub: LiveHub,
        clock: Callable[[], datetime],
        flows: Callable[[], FlowSet | None] | None = None,  # the IVR flows now loaded (their labels)
    ) -> None:
        self.flows = flows
        self.store = store
        self.routing = routing
        self.hub = hub
        self.clock = clock
        self._tracker = PopTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}  # one build at a time per agent, in order
        self._last: dict[str, Message] = {}  # agent id -> the pop last sent (without its time)

    # -- the listener -------------------------------------------------------------------------

    def agents_changed(self, notice: AgentsChanged) -> None:
        for agent in notice.agents:
            interaction_id = agent.interaction_id
            if self._tracker.should_pop(agent.id, agent.state, interaction_id) and interaction_id:
                self._spawn(agent.id, interaction_id, "offer")
            elif interaction_id is None:
                self._last.pop(agent.id, None)  # idle again: a repeated offer is sent in full

    def interaction_saved(self, notice: InteractionSaved) -> None:
        """Events that complete a pop on someone's screen send it again."""
        interaction_id = notice.interaction_id
        if not any(e.kind in REFRESH_KINDS for e in notice.events):
            return
        for agent_id in self._tracker.showing(interaction_id):
            self._spawn(agent_id, interaction_id, "refresh")

    def _spawn(self, agent_id: str, interaction_id: str, why: str) -> None:
        if not self.hub.watching(agent_id):
            # Nobody would see it: a desk phone with no panel open. A panel that opens later
            # gets the pop of the current call when it connects (`current`). At 40 calls a
            # second the queries of pops nobody saw were a tenth of the event loop's time.
            return
        task = asyncio.create_task(self._pop(agent_id, interaction_id, why), name=f"pop-{agent_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pop(self, agent_id: str, interaction_id: str, why: str) -> None:
        loop = asyncio.get_running_loop()
        async with self._locks.setdefault(agent_id, asyncio.Lock()):
            if agent_id not in self._tracker.showing(interaction_id):
                return  # the agent has moved on meanwhile
            started = loop.time()
            try:
                view = await self.build(agent_id, interaction_id)
            except Exception:
                log.exception("interaction %s: screen pop for agent %s failed", interaction_id, agent_id)
                return
            same = {k: v for k, v in view.items() if k != "pushed_at"}
            if self._last.get(agent_id) == same:
                return  # a refresh that adds nothing
            self._last[agent_id] = same
            sent = self.hub.push(agent_id, {"type": "pop", "pop": view})
        log.info(
            "interaction %s: screen pop (%s) for agent %s built in %.1f ms, sent to %d panel(s)",
            interaction_id,
            why,
            agent_id,
            (loop.time() - started) * 1000,
            sent,
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- views --------------------------------------------------------------------------------

    async def current(self, agent_id: str) -> Message | None:
        """The pop of the interaction this agent works on now, if any (for a panel that connects)."""
        agent = self.routing.agents.get(agent_id)
        if agent is None or agent.interaction_id is None or agent.state not in CURRENT_STATES:
            return None
        try:
            return await self.build(agent_id, agent.interaction_id)
        except Exception:  # the live state still goes out; only the pop is missing
            log.exception("interaction %s: screen pop for agent %s failed", agent.interaction_id, agent_id)
            return None

    async def build(self, agent_id: str, interaction_id: str) -> Message:
        offer = self.routing.offer_of(agent_id)
        if offer is not None and offer.decision.interaction_id != interaction_id:
            offer = None
        ctx = await self.store.context(interaction_id)
        path = journey(ctx.events if ctx else [])
        data = offer.waiting.data if offer else {}
        ani = ctx.ani if ctx else data.get("ani", "")
        reason = offer.decision.reason if offer else path.route_reason
        labels = self._labels(path.flow)
        return {
            "interaction_id": interaction_id,
            "agent_id": agent_id,
            "direction": ctx.direction if ctx else "inbound",
            "ani": ani,
            "dnis": ctx.dnis if ctx else data.get("dnis", ""),
            "arrived_at": _iso(ctx.arrived_at) if ctx else None,
            "reserved_at": _iso(offer.at) if offer else None,
            "offered_at": _iso(path.offered_at),
            "pushed_at": _iso(self.clock()),
            "customer": customer_view(ctx.customer if ctx else None),
            "ivr": {
                "digits": path.digits or (ctx.ivr_digits if ctx else "") or data.get("digits", ""),
                "language": path.language,  # the caller's (README, "Languages"); None: not chosen
                "menu": list(path.menu),
                "collected": [[k, v] for k, v in path.collected.items()],
                # The flow's labels for those choices and fields, by language ({} where none).
                "menu_labels": [labels.choices.get(to or "", {}) for to in path.menu_to]
                if labels
                else [{} for _ in path.menu],
                "field_labels": {k: labels.fields[k] for k in path.collected if k in labels.fields}
                if labels
                else {},
            },
            "route": {
                # The desk's own decision first: its `offered` event may still be on its way to disk.
                "queue": offer.decision.queue if offer else (ctx.queue if ctx else None) or path.queue,
                "tier": (ctx.tier if ctx else None) or path.tier,
                "reason": reason,
                # The same facts in the agent's words (the panel words them, app/domain/route_reason.py).
                "parts": [{"kind": p.kind, **p.values} for p in explain(reason)],
            },
            "callback": self._callback_view(ctx),
            "history": [
                {
                    "id": h.id,
                    "arrived_at": _iso(h.arrived_at),
                    "direction": h.direction,
                    "queue": h.queue,
                    "outcome": h.outcome,
                    "agent_id": h.agent_id,
                    "agent_name": h.agent_name,
                    "disposition": h.disposition,
                    "notes": h.notes,
                }
                for h in (ctx.history if ctx else [])
            ],
            "disposition": (
                {"code": ctx.disposition, "notes": ctx.notes, "at": _iso(ctx.disposition_at)}
                if ctx is not None and ctx.disposition
                else None
            ),
        }

    def _labels(self, flow_name: str | None) -> PanelLabels | None:
        flows = self.flows() if self.flows is not None else None
        flow = flows.flows.get(flow_name) if flows is not None and flow_name else None
        return panel_labels(flow) if flow is not None else None

    @staticmethod
    def _callback_view(ctx: PopContext | None) -> dict[str, Any] | None:
        if ctx is None or ctx.callback is None:
            return None
        cb = ctx.callback
        vm = cb.voicemail
        return {
            "id": cb.id,
            "source": cb.source,
            "requested_at": _iso(cb.requested_at),
            "attempts": cb.attempts,
            "voicemail": (
                {
                    "id": vm.id,
                    "recorded_at": _iso(vm.recorded_at),
                    "duration_s": vm.duration_s,
                    "audio_url": voicemail_audio_url(vm.id),
                }
                if vm
                else None
            ),
        }


POPS = web.AppKey("pops", PopService)
