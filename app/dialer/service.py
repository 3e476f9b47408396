"""The outbound dialer: places campaign calls, sorts what answered, and hands people to agents.

Each pass (twice a second) works out how many calls each active campaign may start, with
the pacing rules of app/domain/pacing.py fed from the live floor: free and busy agents who
could take the campaign's calls, calls ringing, people waiting for an agent, the campaign's
own answer rate, ring and handle times, and the abandon-rate headroom (progressive: one call
per free agent; predictive: dials ahead under the abandon target). Inbound callers waiting in
the same queue come first. It then picks the leads the campaign's rules allow now and dials
them through the trunk its table chooses.

A dialled customer's answered leg runs the dialplan's AMD first when the campaign asks for
it. A machine hears the campaign's machine message (or is hung up on). A person is offered
to an agent at once, as a top-tier call in the campaign's queue (on the agent's nailed-up line
when they have one, app/dialer/nailed.py; an agent of a nailed campaign counts as free only
while their line is up): if no agent has picked up
within the connect window (2 s after the greeting, less what AMD spent listening for its
end), the customer hears the identifying message, the call is counted abandoned and the
number is locked out. Busy, no answer, congestion and invalid numbers never reach an agent.
Every call is a `dial_attempts` row; the abandon rate is abandoned over live answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.adapters.db import Store
from app.calls.line import Line, WaitingRoom, waiting_of
from app.calls.recovery import Found, back_in_line, restore_conversation, talking
from app.calls.runtime import Runtime
from app.calls.voice import Voice
from app.config import CampaignSettings, Settings
from app.dialer.calls import DialerCall, PreviewCall, Reach
from app.dialer.lists import rules_of
from app.dialer.nailed import CONNECTED, NailedLines
from app.domain.agent_state import Agent, AgentState
from app.domain.campaign import (
    CallResult,
    CampaignRules,
    DialAttempt,
    Lead,
    LeadStatus,
    after_call,
    agent_line,
    trunk_for,
    why_not_callable,
)
from app.domain.interaction import Interaction, Outcome
from app.domain.outbound import Purpose
from app.domain.pacing import (
    BusyAgent,
    CampaignStatistics,
    ComplianceGauge,
    DialMode,
    DialOutcome,
    PacingSettings,
    PacingSnapshot,
    calls_to_place,
    may_take_outbound,
    window_after_agent_ring,
)
from app.domain.pacing import InboundService as InboundLoad
from app.domain.routing import qualifies
from app.errors import AppError
from app.routing.desk import RoutingService

log = logging.getLogger(__name__)

PASS_S = 0.5
PREVIEW_SKIP = timedelta(minutes=15)
RING_GUESS_S = 1.0  # a ringing agent's answer time before one is measured (an auto-answer phone)
KIND = "dialer"


@dataclass
class CampaignState:
    settings: CampaignSettings
    rules: CampaignRules
    active: bool
    gauge: ComplianceGauge
    in_flight: dict[str, DialerCall] = field(default_factory=dict)  # attempt id -> call
    statistics: CampaignStatistics = field(default_factory=CampaignStatistics)
    previews: dict[int, tuple[Lead, str]] = field(default_factory=dict)  # lead -> (lead, agent)
    # How long ringing agents' phones take to answer a customer (a moving average; None: none yet).
    agent_ring_s: float | None = None

    def pacing(self, ringing_agents: bool = False) -> PacingSettings:
        """`ringing_agents`: some free agents have their phone rung for each customer; what their
        ring time takes from the connect window is gone (nailed lines take none)."""
        c = self.settings
        window = c.connect_window_s
        if ringing_agents:
            window = window_after_agent_ring(window, self.agent_ring_s or RING_GUESS_S)
        return PacingSettings(
            mode=DialMode(c.mode),
            abandon_target=c.abandon_target_pct / 100,
            max_lines_per_agent=c.max_lines_per_agent,
            connect_window_s=window,
            kill_switch=not self.active,
        )

    def learn_agent_ring(self, seconds: float) -> None:
        self.agent_ring_s = seconds if self.agent_ring_s is None else 0.8 * self.agent_ring_s + 0.2 * seconds


class DialerError(AppError):
    def __init__(self, message: str, http_status: int = 409) -> None:
        super().__init__("dialer-error", message, {}, http_status)


class DialerService:
    def __init__(
        self,
        *,
        runtime: Runtime,
        desk: RoutingService,
        line: Line,
        room: WaitingRoom,
        voice: Voice,
        store: Store,
        settings: Settings,
    ) -> None:
        self.runtime = runtime
        self.pbx = runtime.pbx
        self.board = runtime.board
        self.routing = desk
        self.line = line
        self.room = room
        self.voice = voice
        self.store = store
        self.settings = settings
        self.clock = runtime.clock
        self.campaigns = {
            c.name: CampaignState(
                c, rules_of(c, settings), c.active, ComplianceGauge(c.abandon_target_pct / 100)
            )
            for c in settings.campaigns
        }
        self._agent_lines = {a.id: a.outbound_line for a in settings.agents}
        self.lines = NailedLines(runtime, desk, self.wants_line)
        self._task: asyncio.Task[None] | None = None
        self._claims: list[asyncio.Future[None]] = []  # calls taken up, telling which attempt is theirs

    async def start(self, found: Found | None = None) -> None:
        """Pick up where the last run stopped: calls still followed (taken up by recovery) go on;
        calls placed and not followed are over (hung up if still ringing) and recorded so; their
        leads are dialled again in turn."""
        if self._claims:  # the calls taken up by recovery find their attempts first
            await asyncio.wait(self._claims, timeout=10)
            self._claims.clear()
        followed = {dc.attempt.id for st in self.campaigns.values() for dc in st.in_flight.values()}
        for attempt, lead in await self.store.open_dial_attempts():
            if attempt.id in followed:
                continue
            if found is not None and found.live(f"dial-{attempt.id}"):
                await self.pbx.hangup(f"dial-{attempt.id}")  # nobody would take it: stop it ringing
            attempt.result = attempt.result or CallResult.FAILED
            attempt.ended_at = self.clock()
            if attempt.result is not CallResult.FAILED:
                after_call(lead, attempt.result, self.campaigns[attempt.campaign].rules, self.clock())
                await self.store.save_lead(lead)
            await self.store.save_dial_attempt(attempt)
            log.info(
                "campaign %s: attempt %s to %s closed after a restart",
                attempt.campaign,
                attempt.id,
                lead.phone,
            )
        keep = [dc.lead.id for st in self.campaigns.values() for dc in st.in_flight.values()]
        reset = await self.store.reset_dialing(keep)
        if reset:
            log.info("%d lead(s) left mid-dial by the last stop are pending again", reset)
        since = self.clock() - timedelta(days=30)
        for state in self.campaigns.values():
            # The gauge the pacing runs on: the last 30 days of live answers, by minute.
            for at, answers, abandoned in await self.store.live_answers(state.settings.name, since):
                state.gauge.record_counts(at.timestamp(), answers, abandoned)
        if self.campaigns:
            self._task = asyncio.create_task(self._loop(), name="dialer")
            self.lines.start()

    async def stop(self, hand_over: bool = False) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lines.stop(hand_over)
        for state in self.campaigns.values():
            for dialer_call in list(state.in_flight.values()):
                # A customer must not pick up to nobody: calls still ringing stop, even for a
                # restart (the next start could not tell them from a stranger's call).
                if not dialer_call.answered:
                    await dialer_call.call.hang_up()

    # -- after a restart ------------------------------------------------------

    def resume(self, it: Interaction, found: Found) -> bool:
        """A customer who answered before the restart: still talking with an agent, followed to
        the end; still waiting for one (the connect window is long gone), they hear the
        identifying message, and the call counts as abandoned."""
        attempt_id = it.legs.get("attempt")
        if not isinstance(attempt_id, str):
            return False
        call = self.runtime.call(it, KIND, recorded=True)
        conv = restore_conversation(call, self.line, found) if talking(it, found) else None
        # `start` (right after recovery) closes the attempts nobody follows: it waits for this.
        claimed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._claims = [*(c for c in self._claims if not c.done()), claimed]

        async def main() -> None:
            try:
                await follow()
            finally:
                if not claimed.done():
                    claimed.set_result(None)

        async def follow() -> None:
            opened = {a.id: (a, lead) for a, lead in await self.store.open_dial_attempts()}
            attempt, lead = opened.get(attempt_id, (None, None))
            state = self.campaigns.get(attempt.campaign) if attempt is not None else None
            if attempt is None or lead is None or state is None:  # a campaign since removed
                claimed.set_result(None)
                queue = it.queue or self.settings.queues[0].name
                if conv is not None:
                    await call.run(lambda: self.line.follow(call, waiting_of(call, queue), self.room))
                else:

                    async def drop() -> None:
                        call.it.end(call.now(), Outcome.FAILED, ended_by="system", reason="campaign gone")
                        await call.hang_up()

                    await call.run(drop)
                return
            dialer_call = DialerCall(
                call,
                state.settings,
                lead,
                attempt,
                line=self.line,
                room=self.room,
                voice=self.voice,
                reach=Reach(self.settings.center_name, it.dnis, self.settings.languages),
                store=self.store,
            )
            dialer_call.answered = True
            state.in_flight[attempt.id] = dialer_call
            claimed.set_result(None)
            try:
                if conv is not None:
                    await call.run(
                        lambda: self.line.follow(call, waiting_of(call, state.settings.queue), self.room),
                        when_caller_leaves=lambda _: Outcome.COMPLETED,
                        caller_is="customer",
                    )
                else:
                    # The agents rung for the customer before the restart are free again; the
                    # customer, past the connect window, hears the identifying message.
                    await back_in_line(call, self.routing, found, "app restarted")
                    await call.run(dialer_call.abandon, caller_is="customer")
                    if call.ended:
                        await call.hang_up()  # the message said goodbye (as `DialerCall.run` does)
            finally:
                await self.finish(dialer_call)

        self.board.launch(call, main)
        return True

    def line_of(self, agent_id: str, state: CampaignState) -> str:
        """How this agent takes this campaign's customers: "nailed" or "ringing"."""
        c = state.settings
        return agent_line(c.mode, c.agent_line, self._agent_lines.get(agent_id))

    def wants_line(self, agent: Agent) -> bool:
        """Does the agent take calls of an active campaign on a nailed-up line now?"""
        for state in self.campaigns.values():
            if not state.active or self.line_of(agent.id, state) != "nailed":
                continue
            cfg = self.routing.router.queues.get(state.settings.queue)
            if cfg is not None and qualifies(agent, cfg):
                return True
        return False

    def set_active(self, name: str, active: bool) -> CampaignState:
        state = self.campaigns[name]
        state.active = active
        self.lines.review_all()  # agents of a started campaign are called, of a stopped one let go
        log.info("campaign %s %s", name, "started" if active else "stopped (kill switch)")
        return state

    async def _loop(self) -> None:
        while True:
            try:
                await self.dial_pass()
            except Exception:
                log.exception("dialer pass failed")
            await asyncio.sleep(PASS_S)

    async def dial_pass(self) -> None:
        for state in self.campaigns.values():
            if not state.active or state.settings.mode == "preview":
                continue
            wanted = self.calls_to_place(state)
            if wanted <= 0:
                continue
            now = self.clock()
            candidates = await self.store.candidate_leads(state.settings.name, now, limit=wanted * 5 + 5)
            chosen = [lead for lead in candidates if why_not_callable(lead, state.rules, now, False) is None]
            for lead in chosen[:wanted]:
                await self.dial(state, lead)

    def calls_to_place(self, state: CampaignState) -> int:
        """How many new calls the campaign may start now (app/domain/pacing.py decides).

        Inbound callers waiting in the campaign's queue are served first (blending): no
        outbound call starts while one waits."""
        queue = state.settings.queue
        if any(t.waiting.queue == queue for t in self.routing.tickets.values()):
            return 0  # callers of the campaign's own queue come first
        cfg = self.routing.router.queues.get(queue)
        if cfg is None:
            return 0
        now = self.clock()
        free = 0
        busy: list[BusyAgent] = []
        blended_out = self.blended_agents_held_back(state, now)
        ringing_agents = False
        for agent in self.routing.agents.values():
            if not agent.device_registered or not qualifies(agent, cfg):
                continue
            if agent.id in blended_out:
                continue
            nailed = self.line_of(agent.id, state) == "nailed"
            if nailed and self.lines.status(agent.id) is None:
                continue  # no line (not called yet, or they hung it up): not on the campaign
            if agent.routable and nailed and self.lines.status(agent.id) != CONNECTED:
                continue  # their phone is still being called for the line
            if agent.routable:
                free += 1
                ringing_agents = ringing_agents or not nailed
            elif agent.state in (AgentState.ON_CALL, AgentState.WRAP_UP) and agent.state_since is not None:
                elapsed = (now - agent.state_since).total_seconds()
                busy.append(BusyAgent(elapsed, wrapping_up=agent.state is AgentState.WRAP_UP))
        loop_now = asyncio.get_running_loop().time()
        ringing = tuple(loop_now - c.dialled_at for c in state.in_flight.values() if not c.answered)
        waiting = sum(1 for c in state.in_flight.values() if c.attempt.live_answer and c.agent_id is None)
        snapshot = PacingSnapshot(
            agents_free=free,
            estimates=state.statistics.estimates(),
            busy=tuple(busy),
            ringing_s=ringing,
            customers_waiting=waiting,
            headroom=state.gauge.reading(now.timestamp()).headroom,
        )
        return calls_to_place(snapshot, state.pacing(ringing_agents))

    def blended_agents_held_back(self, state: CampaignState, now: datetime) -> set[str]:
        """Agents of the inbound queues the campaign blends with, while inbound needs them."""
        c = state.settings
        if not c.blend_with:
            return set()
        offered = in_time = waiting = 0
        for q in c.blend_with:
            st = self.routing.stats(q)
            waiting += st.waiting
            offered += st.answered
            in_time += round(st.answered * (st.service_level_percent or 0) / 100)
        inbound = InboundLoad(offered=offered, answered_in_time=min(in_time, offered), waiting=waiting)
        if may_take_outbound(inbound, c.blend_service_level_pct):
            return set()
        held: set[str] = set()
        for q in c.blend_with:
            cfg = self.routing.router.queues.get(q)
            if cfg is None:
                continue
            held |= {a.id for a in self.routing.agents.values() if qualifies(a, cfg)}
        return held

    def _new_call(self, state: CampaignState, lead: Lead, attempt: DialAttempt, preview: bool) -> DialerCall:
        c = state.settings
        caller_id = c.caller_id or self.settings.carrier.presented_number
        it = Interaction(
            id=str(uuid.uuid4()),
            caller_channel_id=f"dial-{attempt.id}",
            ani=lead.phone,
            dnis=caller_id,
            arrived_at=attempt.started_at,
            direction="outbound",
        )
        it.legs["kind"] = KIND
        it.legs["attempt"] = attempt.id
        call = self.runtime.call(it, KIND)
        kind = PreviewCall if preview else DialerCall
        return kind(
            call,
            state.settings,
            lead,
            attempt,
            line=self.line,
            room=self.room,
            voice=self.voice,
            reach=Reach(self.settings.center_name, caller_id, self.settings.languages),
            store=self.store,
            lines=self.lines,
        )

    def _launch(self, dialer_call: DialerCall) -> None:
        state = self.campaigns[dialer_call.campaign.name]
        state.in_flight[dialer_call.attempt.id] = dialer_call

        async def main() -> None:
            try:
                await dialer_call.run()
            finally:
                if dialer_call.call.ended or dialer_call.attempt.result is not None:
                    await self.finish(dialer_call)
                else:  # stopped for a restart: the next start sorts the attempt out
                    state.in_flight.pop(dialer_call.attempt.id, None)

        self.board.launch(dialer_call.call, main)

    async def dial(self, state: CampaignState, lead: Lead) -> None:
        c = state.settings
        trunk = trunk_for(lead.phone, state.rules.trunks)
        if trunk is None:
            log.warning("campaign %s: no trunk for %s; lead skipped", c.name, lead.phone)
            return
        if await self._refused(lead, trunk):
            return
        attempt = DialAttempt(str(uuid.uuid4()), c.name, lead.id, lead.phone, trunk, self.clock())
        dialer_call = self._new_call(state, lead, attempt, preview=False)
        lead.status = LeadStatus.DIALING
        await self.store.save_lead(lead)
        await self.store.save_dial_attempt(attempt)
        self._launch(dialer_call)
        await dialer_call.dial_customer(amd=c.amd)

    async def _refused(self, lead: Lead, trunk: str) -> bool:
        """True when the outbound policy does not let us call this lead now: a number it never
        will is set invalid, one over a limit waits an hour."""
        now = self.clock()
        refusal = self.runtime.outbound.check(lead.phone, Purpose.DIALER, trunk, now)
        if refusal is None:
            return False
        log.warning("lead %s (%r) not dialled: %s", lead.id, lead.phone, refusal.detail)
        if refusal.reason.lasting:
            lead.status = LeadStatus.INVALID
        else:
            lead.status = LeadStatus.PENDING
            lead.next_attempt_at = now + timedelta(hours=1)
        await self.store.save_lead(lead)
        return True

    # -- preview: the agent sees the customer first, then calls or skips -------------------

    def preview_state(self, name: str) -> CampaignState:
        state = self.campaigns.get(name)
        if state is None:
            raise DialerError(f"no campaign {name!r}", 404)
        if state.settings.mode != "preview":
            raise DialerError(f"campaign {name} is {state.settings.mode}, not preview", 409)
        if not state.active:
            raise DialerError(f"campaign {name} is stopped", 409)
        return state

    def campaigns_of(self, agent_id: str) -> list[CampaignState]:
        """The campaigns this agent works: those whose queue they would answer (members, groups
        and skills, the same rule as the queue's own calls)."""
        agent = self.routing.agents.get(agent_id)
        if agent is None:
            return []
        out = []
        for state in self.campaigns.values():
            cfg = self.routing.router.queues.get(state.settings.queue)
            if cfg is not None and qualifies(agent, cfg):
                out.append(state)
        return out

    async def preview_next(self, name: str, agent_id: str) -> Lead | None:
        """The next customer for this agent to look at; held for them until they call or skip."""
        state = self.preview_state(name)
        held = next((lead for lead, who in state.previews.values() if who == agent_id), None)
        if held is not None:
            return held
        now = self.clock()
        for lead in await self.store.candidate_leads(name, now, limit=50):
            if lead.id in state.previews or why_not_callable(lead, state.rules, now, False) is not None:
                continue
            lead.status = LeadStatus.DIALING  # held: no other agent gets it
            await self.store.save_lead(lead)
            state.previews[lead.id] = (lead, agent_id)
            return lead
        return None

    async def preview_skip(self, name: str, lead_id: int, agent_id: str) -> None:
        state = self.preview_state(name)
        lead = self._held(state, lead_id, agent_id)
        del state.previews[lead_id]
        lead.status = LeadStatus.PENDING  # no attempt spent: nobody was called
        lead.next_attempt_at = self.clock() + PREVIEW_SKIP  # behind the others for a while
        await self.store.save_lead(lead)

    async def preview_call(self, name: str, lead_id: int, agent_id: str) -> DialAttempt:
        """Call the previewed customer: the agent's phone first, then the customer's."""
        state = self.preview_state(name)
        lead = self._held(state, lead_id, agent_id)
        trunk = trunk_for(lead.phone, state.rules.trunks)
        if trunk is None:
            raise DialerError(f"no trunk reaches {lead.phone}", 409)
        refusal = self.runtime.outbound.check(lead.phone, Purpose.DIALER, trunk, self.clock())
        if refusal is not None:
            raise DialerError(refusal.detail, 403)
        attempt = DialAttempt(str(uuid.uuid4()), name, lead.id, lead.phone, trunk, self.clock())
        dialer_call = self._new_call(state, lead, attempt, preview=True)
        assert isinstance(dialer_call, PreviewCall)
        # 409 if they are not Ready
        decision = self.routing.reserve_direct(agent_id, dialer_call.call.it.id, state.settings.queue)
        del state.previews[lead_id]
        await self.store.save_dial_attempt(attempt)
        dialer_call.decision = decision
        self._launch(dialer_call)
        return attempt

    def _held(self, state: CampaignState, lead_id: int, agent_id: str) -> Lead:
        held = state.previews.get(lead_id)
        if held is None or held[1] != agent_id:
            raise DialerError(f"lead {lead_id} is not being previewed by agent {agent_id}", 409)
        return held[0]

    async def finish(self, call: DialerCall) -> None:
        state, lead, attempt = self.campaigns[call.campaign.name], call.lead, call.attempt
        state.in_flight.pop(attempt.id, None)
        result = attempt.result or CallResult.FAILED
        attempt.result = result
        attempt.ended_at = attempt.ended_at or self.clock()
        self.learn(state, call, result)
        if call.agent_missed:
            lead.status = LeadStatus.PENDING  # not the customer's attempt: nobody called them
        else:
            after_call(lead, result, state.rules, self.clock())
        if attempt.live_answer:
            at = attempt.started_at.timestamp()
            if attempt.abandoned:
                state.gauge.record_abandoned(at)
            else:
                state.gauge.record_connected(at)
        try:
            if attempt.interaction_id is not None:
                await call.call.save()  # the row the attempt refers to, written first
            await self.store.save_dial_attempt(attempt)
            await self.store.save_lead(lead)
        except Exception:
            log.exception("could not record dial attempt %s", attempt.id)
        log.info(
            "campaign %s: %s -> %s (lead %s)",
            state.settings.name,
            lead.phone,
            result.value,
            lead.status.value,
        )

    def learn(self, state: CampaignState, call: DialerCall, result: CallResult) -> None:
        """The campaign's live estimates: answer rate, ring times, talk and wrap-up times."""
        at = asyncio.get_running_loop().time()
        rang_until = call.answered_loop_time or at
        outcome = {
            CallResult.CONNECTED: DialOutcome.LIVE,
            CallResult.ABANDONED: DialOutcome.LIVE,
            CallResult.MACHINE: DialOutcome.MACHINE,
            CallResult.BUSY: DialOutcome.BUSY,
            CallResult.NO_ANSWER: DialOutcome.NO_ANSWER,
        }.get(result, DialOutcome.FAILED)
        if call.answered or result is not CallResult.FAILED:
            state.statistics.record_dial(outcome, max(0.0, rang_until - call.dialled_at), at)
        if call.agent_ring_s is not None:
            state.learn_agent_ring(call.agent_ring_s)
        if result is CallResult.CONNECTED and call.connected_loop_time is not None:
            state.statistics.record_talk(at - call.connected_loop_time, at)
            q = self.routing.queue_settings.get(state.settings.queue)
            if q is not None:
                state.statistics.record_wrap_up(q.wrap_up_s, at)

    def view(self, state: CampaignState) -> dict[str, Any]:
        day, month = state.gauge.reading(self.clock().timestamp()).windows
        return {
            "name": state.settings.name,
            "mode": state.settings.mode,
            "active": state.active,
            "queue": state.settings.queue,
            "in_flight": len(state.in_flight),
            "abandon_target_pct": state.settings.abandon_target_pct,
            "abandon_rate_24h_pct": round((day.rate or 0.0) * 100, 2),
            "abandon_rate_30d_pct": round((month.rate or 0.0) * 100, 2),
            "live_answers_24h": day.live_answers,
            "abandoned_24h": day.abandoned,
            "live_answers_30d": month.live_answers,
            "abandoned_30d": month.abandoned,
        }
