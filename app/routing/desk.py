"""The routing desk: agents' live state, the interactions waiting for one, and the decisions.

The rules are the pure `Router` in app/domain/routing.py; this module feeds it the facts
(device registrations from ARI, answers and hang-ups from the call flows, live changes
from the API), runs it whenever something changed, and hands each decision to the call
that waits for it. Everything here runs on the event loop; nothing blocks.

A decision is taken in one synchronous step (decide, then reserve every chosen agent),
so no agent can be given two offers whatever the interleaving of calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from app.adapters.db import PastInteraction
from app.bus import AgentsChanged, Bus, QueueChanged
from app.config import QueueSettings, Settings
from app.domain.agent_state import (
    Agent,
    AgentSnapshot,
    AgentState,
    AgentStateEvent,
    IllegalAgentTransition,
    skill_name_problem,
)
from app.domain.routing import (
    Decision,
    Overflow,
    QueueConfig,
    QueueStats,
    Relaxation,
    Router,
    ServiceTarget,
    SkillRequirement,
    Strategy,
    Tier,
    WaitingInteraction,
    could_ever_serve,
    risk_order,
)
from app.errors import AppError, BadRecord

log = logging.getLogger(__name__)

# How often waiting interactions are re-examined even when nothing happened:
# relaxation, sticky windows and overflow rules are all functions of time.
TICK_S = 0.5
# Agents' state changes are written to PostgreSQL in batches at most this often: a routed call
# changes its agent's state four times (reserved, ringing, on call, after the call), and a write
# per change was a transaction per change on the event loop. Listeners (panels, screen pops)
# hear of each change at once all the same.
SAVE_WINDOW_S = 0.1


class RoutingError(AppError):
    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__("routing-error", message, {}, http_status)


def queue_config(q: QueueSettings) -> QueueConfig:
    defaults = QueueConfig(q.name).targets
    targets = dict(defaults)
    for tier, t in q.targets.items():
        targets[Tier(tier)] = ServiceTarget(t.percent, t.seconds)
    return QueueConfig(
        name=q.name,
        strategy=Strategy(q.strategy),
        groups=frozenset(q.groups),
        members=q.members,
        required_skills=tuple(SkillRequirement(n.skill, n.min_level) for n in q.skills),
        targets=targets,
        sticky_s=q.sticky_s,
        relaxations=tuple(
            Relaxation(r.after_s, r.lower_min_level_by, frozenset(r.add_groups)) for r in q.relaxations
        ),
        overflow=tuple(
            Overflow(
                o.to_queue, o.max_wait_s, o.max_length, o.when_no_agents, o.expected_wait_over_s, o.asa_over_s
            )
            for o in q.overflow
        ),
    )


class AgentStore(Protocol):
    """What the desk keeps in PostgreSQL: agents' state history and live skill changes."""

    async def skill_overrides(self) -> dict[str, dict[str, int | None]]: ...
    async def set_skill_override(
        self, agent_id: str, skill: str, level: int | None, changed_by: str
    ) -> None: ...
    async def save_agent_events(
        self, events: Sequence[AgentStateEvent], now: Mapping[str, AgentSnapshot]
    ) -> None: ...
    async def agent_snapshots(self) -> dict[str, AgentSnapshot]: ...
    async def routing_history(self, since: datetime) -> list[PastInteraction]: ...
    async def last_agent_for(self, customer_id: int | None, ani: str, since: datetime) -> str | None: ...


@dataclass(frozen=True)
class Offer:
    """What the desk knew when it reserved an agent for an interaction (for the screen pop)."""

    decision: Decision
    waiting: WaitingInteraction
    at: datetime


@dataclass
class Ticket:
    """One interaction waiting in a queue, and the future its call awaits."""

    waiting: WaitingInteraction
    decided: asyncio.Future[Decision]
    on_overflow: Callable[[str], None] | None = None


class RoutingService:
    def __init__(
        self, settings: Settings, store: AgentStore, clock: Callable[[], datetime], bus: Bus | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.bus = bus or Bus()
        self.queue_settings = {q.name: q for q in settings.queues}
        self.router = Router({q.name: queue_config(q) for q in settings.queues})
        self.agents: dict[str, Agent] = {
            a.id: Agent(a.id, a.name, skills=dict(a.skills), groups=frozenset(a.groups))
            for a in settings.agents
        }
        self.tickets: dict[str, Ticket] = {}
        self._kick = asyncio.Event()
        self._wrap_up_timers: dict[str, asyncio.TimerHandle] = {}
        self._announce_due = False  # an announcement of agents' changes is scheduled
        self._save_due = asyncio.Event()
        self._unsaved: list[AgentStateEvent] = []  # told to listeners, not yet in PostgreSQL
        self._tasks: list[asyncio.Task[None]] = []
        self.offers: dict[str, Offer] = {}  # agent id -> the latest offer made to them
        # Agents change far less often than calls ask: what a pass needs is kept between changes
        # instead of scanning every agent for every decision (1,000 agents, 20 calls a second).
        self._version = 0
        self._free_cache: tuple[int, list[Agent]] = (-1, [])
        self._staffed: dict[str, tuple[int, bool]] = {}

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        overrides = await self.store.skill_overrides()
        for agent_id, skills in overrides.items():
            agent = self.agents.get(agent_id)
            if agent is None:
                continue
            for skill, level in skills.items():
                if level is None:
                    agent.skills.pop(skill, None)
                else:
                    agent.skills[skill] = level
        await self._restore_agents()
        await self._rebuild_statistics()
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="routing-dispatch"),
            asyncio.create_task(self._persist_loop(), name="routing-persist"),
        ]

    async def _restore_agents(self) -> None:
        """Each agent as they were before the restart (Not Ready with its reason, wrap-up with
        its remaining time, on a call), from what was stored, not from their phone."""
        now = self.clock()
        for agent_id, snap in (await self.store.agent_snapshots()).items():
            agent = self.agents.get(agent_id)
            if agent is None or snap.state is AgentState.LOGGED_OUT:
                continue
            agent.restore(
                now,
                snap.state,
                snap.since,
                snap.reason,
                snap.interaction_id,
                snap.wrap_up_until,
                snap.logged_in_at,
            )
            if agent.state is AgentState.WRAP_UP:
                left = (agent.wrap_up_until - now).total_seconds() if agent.wrap_up_until else 0.0
                self._schedule_wrap_up_end(agent_id, max(0.0, left))
            log.info("agent %s restored: %s %s", agent_id, agent.state.value, agent.not_ready_reason or "")
        self._changed()

    async def _rebuild_statistics(self) -> None:
        """What routing depends on besides the agents, from the last window of history: speed of
        answer and service level, handle times for the expected wait, abandons, and where each
        round-robin rotation stands."""
        now = self.clock()
        since = now - timedelta(seconds=self.router.window_s)
        for past in await self.store.routing_history(since):
            if past.queue not in self.queue_settings:
                continue
            tier = Tier(past.tier) if past.tier in {t.value for t in Tier} else Tier.MEDIUM
            if past.answered_at is not None:
                waited = (past.answered_at - past.queued_at).total_seconds()
                self.router.record_answer(past.queue, past.id, waited, past.answered_at, tier)
                if past.agent_id is not None:
                    self.router.remember_rotation(past.queue, past.agent_id)
                if past.ended_at is not None:
                    wrap_up = self.queue_settings[past.queue].wrap_up_s
                    handle = (past.ended_at - past.answered_at).total_seconds() + wrap_up
                    self.router.record_handle_time(past.queue, handle, past.ended_at)
            elif past.outcome == "abandoned" and past.ended_at is not None:
                self.router.record_abandon(
                    past.queue, (past.ended_at - past.queued_at).total_seconds(), past.ended_at
                )

    async def stop(self) -> None:
        for timer in self._wrap_up_timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):  # the database may be gone: the history says so
            await self._flush_agent_events()

    def kick(self) -> None:
        self._kick.set()

    def _changed(self) -> None:
        """An agent's state changed: announce and persist it, and look for work for them."""
        self._version += 1
        self._announce_soon()
        self.kick()

    def _announce_soon(self) -> None:
        """One loop turn later (the step that changed the agent, e.g. a call about to originate,
        sends its own requests first), once for a burst of changes."""
        if self._announce_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # set up before the loop runs: the first announcement takes them
            return
        self._announce_due = True
        loop.call_soon(self._announce)

    def _announce(self) -> None:
        """Tell the listeners of the changes so far, and hand them to the writing task."""
        self._announce_due = False
        events = [e for agent in self.agents.values() if agent.pending for e in agent.drain()]
        if not events:
            return
        events.sort(key=lambda e: e.at)
        self._unsaved.extend(events)
        self._save_due.set()
        try:
            self._tell_listeners(events)
        except Exception:
            log.exception("agent change listeners failed")

    def free_agents(self) -> list[Agent]:
        """The agents a call could be offered to now (Ready, phone registered)."""
        version, free = self._free_cache
        if version != self._version:
            free = [a for a in self.agents.values() if a.routable]
            self._free_cache = (self._version, free)
        return free

    async def _dispatch_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races the event being set, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._kick.wait()
            self._kick.clear()
            self.dispatch_now()

    async def _persist_loop(self) -> None:
        backoff = 0.2
        while True:
            await self._save_due.wait()
            await asyncio.sleep(SAVE_WINDOW_S)  # what else changes meanwhile goes in the same batch
            self._save_due.clear()
            while True:
                try:
                    await self._save_agent_events()
                    backoff = 0.2
                    break
                except Exception as exc:  # kept in memory and tried again: none is lost
                    log.warning("could not save %d agent state event(s): %s", len(self._unsaved), exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)

    async def _flush_agent_events(self) -> None:
        """Announce what has not been yet, and write everything unsaved (at stop)."""
        self._announce()
        await self._save_agent_events()

    async def _save_agent_events(self) -> None:
        """One transaction for every change not yet written: the history rows in order, and
        each agent's state as it stands now (so a restart finds them as they are)."""
        if not self._unsaved:
            return
        batch = list(self._unsaved)
        try:
            await self.store.save_agent_events(batch, self._snapshots(batch))
        except BadRecord as exc:
            # One row the database will never take must not hold back (or lose) the others.
            log.warning("%d agent state event(s) refused together (%s); saved one by one", len(batch), exc)
            for event in batch:
                try:
                    await self.store.save_agent_events([event], self._snapshots([event]))
                except BadRecord as bad:
                    log.error("agent state event dropped, the database refuses it (%s): %r", bad, event)
                self._unsaved.remove(event)
            return
        del self._unsaved[: len(batch)]

    def _snapshots(self, events: Sequence[AgentStateEvent]) -> dict[str, AgentSnapshot]:
        agents = dict.fromkeys(e.agent_id for e in events)
        return {a: self.agents[a].snapshot() for a in agents if a in self.agents}

    def _tell_listeners(self, events: Sequence[AgentStateEvent]) -> None:
        changed = [self.agents[i] for i in dict.fromkeys(e.agent_id for e in events) if i in self.agents]
        self.bus.publish(AgentsChanged(tuple(changed)))

    # -- waiting interactions ---------------------------------------------------

    def enqueue(
        self, waiting: WaitingInteraction, on_overflow: Callable[[str], None] | None = None
    ) -> Ticket:
        ticket = Ticket(waiting, asyncio.get_running_loop().create_future(), on_overflow)
        self.tickets[waiting.id] = ticket
        self.bus.publish(QueueChanged(waiting.queue))
        self.kick()
        return ticket

    def withdraw(self, interaction_id: str, abandoned: bool = False) -> None:
        """The caller leaves the line; `abandoned` when they hung up (the wait model learns from it)."""
        ticket = self.tickets.pop(interaction_id, None)
        if ticket is None:
            return
        if abandoned:
            now = self.clock()
            waited_s = (now - ticket.waiting.queued_at).total_seconds()
            self.router.record_abandon(ticket.waiting.queue, waited_s, now)
        if not ticket.decided.done():
            ticket.decided.cancel()
        self.bus.publish(QueueChanged(ticket.waiting.queue))

    def dispatch_now(self) -> None:
        """A routing pass at once, in the calling task, its errors logged (the desk's loop runs
        the same): a call that joins a queue while an agent is free has its decision before it
        yields, instead of a few loop turns later."""
        try:
            self.dispatch()
        except Exception:
            log.exception("routing pass failed")

    def dispatch(self) -> list[Decision]:
        if not self.tickets:
            return []  # nothing waits; a pass would only re-index every agent
        now = self.clock()
        waiting = [t.waiting for t in self.tickets.values()]
        queues = self.router.queues
        overflows = (
            self.router.overflows(waiting, list(self.agents.values()), now)
            if any(queues[w.queue].overflow for w in waiting if w.queue in queues)
            else {}
        )
        for interaction_id, target in overflows.items():
            ticket = self.tickets[interaction_id]
            if target != ticket.waiting.queue:
                log.info("interaction %s overflows %s -> %s", interaction_id, ticket.waiting.queue, target)
                ticket.waiting.queue = target
                if ticket.on_overflow is not None:
                    ticket.on_overflow(target)
        free = self.free_agents()
        for ticket in self.tickets.values():
            self._forgive_if_everyone_tried(ticket, free)
        decisions = self.router.decide(waiting, free, now)
        if decisions:
            self._version += 1  # the reserved agents are not free any more
        for d in decisions:
            ticket = self.tickets.pop(d.interaction_id)
            for agent_id in d.agent_ids:
                self.agents[agent_id].reserve(now, d.interaction_id)
                self.offers[agent_id] = Offer(d, ticket.waiting, now)
            ticket.decided.set_result(d)
        if decisions:
            self._announce_soon()
            for queue in dict.fromkeys(d.queue for d in decisions):
                self.bus.publish(QueueChanged(queue))
        return decisions

    def _forgive_if_everyone_tried(self, ticket: Ticket, free: list[Agent]) -> None:
        """Agents who let this call ring out are skipped, until every ready agent has had a turn."""
        w = ticket.waiting
        if not w.excluded_agents:
            return
        if free and all(a.id in w.excluded_agents for a in free):
            w.excluded_agents = frozenset(w.declined_by)

    def declined(self, agent_id: str) -> None:
        """The agent declined the offer ringing for them: that caller is not offered to them again
        (`WaitingInteraction.declined_by`); the ring's end frees them for other callers."""
        offer = self.offers.get(agent_id)
        if offer is not None:
            w = offer.waiting
            w.declined_by = w.declined_by | {agent_id}
            w.excluded_agents = w.excluded_agents | {agent_id}

    def anyone_logged_in(self, queue: str) -> bool:
        """Could anyone ever take a call from this queue? (No: tell the caller.)"""
        version, staffed = self._staffed.get(queue, (-1, False))
        if version != self._version:
            cfg = self.router.queues[queue]
            staffed = any(could_ever_serve(agent, cfg) for agent in self.agents.values())
            self._staffed[queue] = (self._version, staffed)
        return staffed

    async def last_agent(self, customer_id: int | None, ani: str, queue: str) -> str | None:
        """For sticky routing: the agent who last served this customer (or number), if the queue
        is sticky and it was recent enough. None when the database does not answer at once."""
        q = self.queue_settings.get(queue)
        if q is None or q.sticky_s <= 0:
            return None
        since = self.clock() - timedelta(seconds=self.settings.routing.sticky_history_s)
        try:
            async with asyncio.timeout(1.0):
                return await self.store.last_agent_for(customer_id, ani, since)
        except Exception as exc:  # the database is slow or down: route without the preference
            log.warning("no sticky agent for %s: %s", ani, exc)
            return None

    def queue_rules(self, queue: str) -> QueueSettings | None:
        return self.queue_settings.get(queue)

    def is_queue(self, queue: str) -> bool:
        return queue in self.queue_settings

    def is_agent(self, agent_id: str) -> bool:
        return agent_id in self.agents

    def place_in_line(self, interaction_id: str) -> tuple[int, float | None] | None:
        """(position, expected wait in seconds or None) of a waiting interaction; None if not waiting."""
        ticket = self.tickets.get(interaction_id)
        if ticket is None:
            return None
        now = self.clock()
        queue = ticket.waiting.queue
        mine = [t.waiting for t in self.tickets.values() if t.waiting.queue == queue]
        order = [w.id for w in risk_order(mine, self.router.queues, now)]
        position = order.index(interaction_id) + 1
        st = self.router.stats(queue, mine, list(self.agents.values()), now)
        return position, self.router.expected_wait(queue, position, st.agents_ready, st.agents_serving)

    def stats(self, queue: str) -> QueueStats:
        return self.router.stats(
            queue, [t.waiting for t in self.tickets.values()], list(self.agents.values()), self.clock()
        )

    # -- agents: facts from the phones and the call flows ------------------------

    def agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise RoutingError(f"no agent {agent_id!r}", 404)
        return agent

    def reserve_direct(self, agent_id: str, interaction_id: str, queue: str = "") -> Decision:
        """Reserve one named agent (a transfer or consultation to them), if they are Ready."""
        agent = self.agent(agent_id)
        if not agent.routable:
            raise RoutingError(f"agent {agent_id} is not ready ({agent.state.value})", 409)
        now = self.clock()
        agent.reserve(now, interaction_id)
        decision = Decision(interaction_id, queue, (agent_id,), f"direct to agent {agent_id}")
        # The screen pop shows a transferred or consulted call like any other offer.
        self.offers[agent_id] = Offer(decision, WaitingInteraction(interaction_id, queue, now), now)
        self._changed()
        return decision

    def offer_of(self, agent_id: str) -> Offer | None:
        """The offer behind the interaction this agent holds now (offered, on the call, wrap-up)."""
        agent = self.agents.get(agent_id)
        offer = self.offers.get(agent_id)
        if agent is None or offer is None or agent.interaction_id != offer.decision.interaction_id:
            return None
        return offer

    def device_changed(self, agent_id: str, registered: bool) -> None:
        agent = self.agents.get(agent_id)
        if agent is None or agent.device_registered == registered:
            return
        now = self.clock()
        agent.set_device(now, registered)
        if registered and self.settings.routing.login_on_register and agent.state is AgentState.LOGGED_OUT:
            agent.login(now)
            agent.ready(now)
        log.info(
            "agent %s device %s (%s)", agent_id, "registered" if registered else "gone", agent.state.value
        )
        self._changed()

    def outbound_line_changed(self, agent_id: str, status: str | None) -> None:
        """The agent's nailed-up outbound line changed (shown in the panel, not a state change)."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.outbound_line == status:
            return
        agent.outbound_line = status
        self.bus.publish(AgentsChanged((agent,)))

    def ringing(self, agent_id: str) -> None:
        self._apply(agent_id, lambda a, now: a.ring(now))

    def answered(
        self, agent_id: str, queue: str, waited_s: float, interaction_id: str, tier: Tier, first: bool = True
    ) -> None:
        """An agent picked up. Only the first answer of an interaction counts for service level
        and speed of answer; a transfer's or consultation's answer is the agent's only."""
        self._apply(agent_id, lambda a, now: a.answer(now))
        if first:
            self.router.record_answer(queue, interaction_id, waited_s, self.clock(), tier)

    def offer_failed(
        self, agent_id: str, queue: str, reason: str, no_answer: bool, not_ready_reason: str | None = None
    ) -> None:
        """`not_ready_reason`: the agent goes Not Ready with it, whatever the queue says (an expert
        who let a preview time out)."""
        q = self.queue_settings.get(queue)
        set_not_ready = (
            bool(no_answer and q is not None and q.no_answer_not_ready) or not_ready_reason is not None
        )
        why = not_ready_reason or ("no answer" if no_answer else reason)
        self._apply(agent_id, lambda a, now: a.offer_failed(now, why, set_not_ready))

    def hung_up(self, agent_id: str, queue: str | None, talk_s: float) -> None:
        q = self.queue_settings.get(queue or "")
        wrap_up_s = q.wrap_up_s if q is not None else 0.0
        if q is not None:
            # Handle time = talk + after-call work: what the expected-wait estimate needs.
            self.router.record_handle_time(q.name, talk_s + wrap_up_s, self.clock())
        self._apply(agent_id, lambda a, now: a.hang_up(now, wrap_up_s))
        if wrap_up_s > 0:
            self._schedule_wrap_up_end(agent_id, wrap_up_s)

    def log_everyone_out(self, reason: str) -> None:
        """The center is stopping (not restarting): every agent is logged out, so the next start
        finds nobody Ready whose phone may not be there."""
        now = self.clock()
        for agent in self.agents.values():
            try:
                if agent.state in (AgentState.RESERVED, AgentState.RINGING):
                    agent.offer_failed(now, reason, set_not_ready=False)
                elif agent.state is AgentState.ON_CALL:
                    agent.hang_up(now, 0.0)
                if agent.state is not AgentState.LOGGED_OUT:
                    agent.logout(now, reason)
            except IllegalAgentTransition as exc:
                log.warning("agent %s: %s", agent.id, exc)
        self._changed()

    def interaction_gone(self, interaction_id: str, queue: str | None) -> None:
        """An interaction ended without its call saying so (closed after a restart): the agents
        still holding it are freed as after a normal end (an offer fails, a call goes to wrap-up)."""
        for agent in self.agents.values():
            if agent.interaction_id == interaction_id:
                self._free(agent, queue)

    def release_orphans(self, followed: set[str]) -> None:
        """After recovery: agents busy with an interaction that no call follows any more."""
        for agent in self.agents.values():
            if agent.interaction_id is None or agent.interaction_id in followed:
                continue
            if agent.state in (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL):
                offer = self.offers.get(agent.id)
                self._free(agent, offer.decision.queue if offer else None)

    def _free(self, agent: Agent, queue: str | None) -> None:
        if agent.state in (AgentState.RESERVED, AgentState.RINGING):
            self.offer_failed(agent.id, queue or "", "call gone", no_answer=False)
        elif agent.state is AgentState.ON_CALL:
            since = agent.state_since or self.clock()
            self.hung_up(agent.id, queue, (self.clock() - since).total_seconds())

    def recover_on_call(self, agent_id: str, interaction_id: str) -> None:
        """After a restart, an agent found talking in a bridge is on a call, whatever we knew."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.state is AgentState.ON_CALL:
            return
        now = self.clock()
        try:
            if agent.state is AgentState.LOGGED_OUT:
                agent.login(now)
            if agent.state is not AgentState.READY:
                agent.ready(now)
            agent.reserve(now, interaction_id)
            agent.ring(now)
            agent.answer(now)
        except IllegalAgentTransition as exc:
            log.warning("agent %s: cannot mark on call after recovery: %s", agent_id, exc)
        self._changed()

    def _schedule_wrap_up_end(self, agent_id: str, delay_s: float) -> None:
        old = self._wrap_up_timers.pop(agent_id, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._wrap_up_timers.pop(agent_id, None)
            agent = self.agents[agent_id]
            # The agent may have gone Ready or Not Ready by hand meanwhile: re-check.
            if agent.wrap_up_expired(self.clock()):
                self._changed()

        self._wrap_up_timers[agent_id] = asyncio.get_running_loop().call_later(delay_s + 0.01, fire)

    def _apply(self, agent_id: str, step: Callable[[Agent, datetime], None]) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        try:
            step(agent, self.clock())
        except IllegalAgentTransition as exc:
            # A late or duplicate fact (e.g. a hang-up after the app restarted): log, keep state.
            log.warning("agent %s: %s", agent_id, exc)
        self._changed()

    # -- agents: changes asked for by people (API) --------------------------------

    def set_state(self, agent_id: str, state: str, reason: str | None) -> Agent:
        agent = self.agent(agent_id)
        now = self.clock()
        if state == agent.state.value and state != "not_ready":
            return agent  # asking twice is not an error
        try:
            if state == "ready":
                if agent.state is AgentState.LOGGED_OUT:
                    agent.login(now)
                agent.ask_ready(now)
            elif state == "not_ready":
                if agent.state is AgentState.LOGGED_OUT:
                    agent.login(now)
                agent.ask_not_ready(now, reason or "break")
            elif state == "logged_out":
                agent.logout(now)
            else:
                raise RoutingError(f"unknown state {state!r}; use ready, not_ready or logged_out")
        except IllegalAgentTransition as exc:
            raise RoutingError(f"agent {agent_id} cannot go {state} now: {exc}", 409) from exc
        self._changed()
        return agent

    async def set_skill(self, agent_id: str, skill: str, level: int | None, changed_by: str) -> Agent:
        agent = self.agent(agent_id)
        if level is not None and not 1 <= level <= 10:
            raise RoutingError(f"skill level must be 1-10, got {level}")
        if (problem := skill_name_problem(skill)) is not None:
            raise RoutingError(problem)
        await self.store.set_skill_override(agent_id, skill, level, changed_by)
        if level is None:
            agent.skills.pop(skill, None)
        else:
            agent.skills[skill] = level
        log.info("agent %s skill %s -> %s (by %s)", agent_id, skill, level, changed_by)
        self.kick()
        return agent
