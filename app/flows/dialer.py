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
to an agent at once, as a top-tier call in the campaign's queue: if no agent has picked up
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

from app.adapters.ari import ChannelDestroyed, StasisStart
from app.adapters.db import Store
from app.config import CampaignSettings, Settings
from app.domain.agent_state import Agent, AgentState
from app.domain.campaign import (
    CallResult,
    CampaignRules,
    DialAttempt,
    Lead,
    LeadStatus,
    abandon_rate,
    after_call,
    answered_result,
    trunk_for,
    unanswered_result,
    why_not_callable,
)
from app.domain.interaction import Interaction, Outcome
from app.domain.pacing import (
    BusyAgent,
    CampaignStatistics,
    DialMode,
    DialOutcome,
    PacingSettings,
    PacingSnapshot,
    calls_to_place,
    may_take_outbound,
)
from app.domain.pacing import InboundService as InboundLoad
from app.domain.routing import Decision, QueueConfig, Tier, WaitingInteraction, eligible
from app.errors import AppError, PbxError
from app.flows.campaigns import rules_of
from app.flows.inbound import CallerGone, CallSession, Clock, InboundService, Wakeup
from app.flows.routing import RoutingService

log = logging.getLogger(__name__)

PASS_S = 0.5
PREVIEW_SKIP = timedelta(minutes=15)
# How long AMD listens after a greeting before it says "human": that part of the 2 s is gone.
AMD_AFTER_GREETING_S = 0.8


@dataclass
class CampaignState:
    settings: CampaignSettings
    rules: CampaignRules
    active: bool
    in_flight: dict[str, DialerCall] = field(default_factory=dict)  # attempt id -> call
    gauge: tuple[int, int, int, int] = (0, 0, 0, 0)  # abandoned/live over 24 h, over 30 days
    statistics: CampaignStatistics = field(default_factory=CampaignStatistics)
    previews: dict[int, tuple[Lead, str]] = field(default_factory=dict)  # lead -> (lead, agent)

    def pacing(self) -> PacingSettings:
        c = self.settings
        return PacingSettings(
            mode=DialMode(c.mode),
            abandon_target=c.abandon_target_pct / 100,
            max_lines_per_agent=c.max_lines_per_agent,
            connect_window_s=c.connect_window_s,
            kill_switch=not self.active,
        )

    def headroom(self) -> float:
        """The share of the abandon allowance left in the tighter window, a window's rate taken
        over at least 100 live answers (the first abandons weigh as they will later)."""
        target = self.settings.abandon_target_pct / 100
        a24, l24, a30, l30 = self.gauge
        used = max(a24 / max(l24, 100), a30 / max(l30, 100)) / target
        return max(0.0, 1.0 - used)


class DialerError(AppError):
    def __init__(self, message: str, http_status: int = 409) -> None:
        super().__init__("dialer-error", message, {}, http_status)


class DialerService:
    def __init__(
        self, inbound: InboundService, routing: RoutingService, store: Store, settings: Settings, clock: Clock
    ) -> None:
        self.inbound = inbound
        self.routing = routing
        self.store = store
        self.settings = settings
        self.clock = clock
        self.campaigns = {
            c.name: CampaignState(c, rules_of(c, settings), c.active) for c in settings.campaigns
        }
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reset = await self.store.reset_dialing()
        if reset:
            log.info("%d lead(s) left mid-dial by the last stop are pending again", reset)
        for state in self.campaigns.values():
            await self.refresh_gauge(state)
        if self.campaigns:
            self._task = asyncio.create_task(self._loop(), name="dialer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for state in self.campaigns.values():
            for call in list(state.in_flight.values()):
                if not call.answered:  # a customer must not pick up to nobody
                    with contextlib.suppress(PbxError):
                        await self.inbound.ari.hangup(call.caller)

    def set_active(self, name: str, active: bool) -> CampaignState:
        state = self.campaigns[name]
        state.active = active
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
        probe = WaitingInteraction("dialer-probe", queue, now)
        free = 0
        busy: list[BusyAgent] = []
        blended_out = self.blended_agents_held_back(state, now)
        for agent in self.routing.agents.values():
            if not agent.device_registered or not eligible_if_ready(agent, probe, cfg, now):
                continue
            if agent.id in blended_out:
                continue
            if agent.routable:
                free += 1
            elif agent.state in (AgentState.ON_CALL, AgentState.WRAP_UP) and agent.state_since is not None:
                elapsed = (now - agent.state_since).total_seconds()
                busy.append(BusyAgent(elapsed, wrapping_up=agent.state is AgentState.WRAP_UP))
        loop_now = asyncio.get_running_loop().time()
        ringing = tuple(loop_now - c.dialled_at for c in state.in_flight.values() if not c.answered)
        waiting = sum(
            1 for c in state.in_flight.values() if c.attempt.live_answer and c.agent_on_call is None
        )
        snapshot = PacingSnapshot(
            agents_free=free,
            estimates=state.statistics.estimates(),
            busy=tuple(busy),
            ringing_s=ringing,
            customers_waiting=waiting,
            headroom=state.headroom(),
        )
        return calls_to_place(snapshot, state.pacing())

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
            probe = WaitingInteraction("blend-probe", q, now)
            held |= {a.id for a in self.routing.agents.values() if eligible_if_ready(a, probe, cfg, now)}
        return held

    async def dial(self, state: CampaignState, lead: Lead) -> None:
        c = state.settings
        trunk = trunk_for(lead.phone, state.rules.trunks)
        if trunk is None:
            log.warning("campaign %s: no trunk for %s; lead skipped", c.name, lead.phone)
            return
        attempt = DialAttempt(str(uuid.uuid4()), c.name, lead.id, lead.phone, trunk, self.clock())
        call = DialerCall(self, state, lead, attempt)
        lead.status = LeadStatus.DIALING
        await self.store.save_lead(lead)
        await self.store.save_dial_attempt(attempt)
        state.in_flight[attempt.id] = call
        call.start()
        await self.dial_customer(call, amd=c.amd)

    async def dial_customer(self, call: DialerCall, amd: bool) -> None:
        """The customer's leg, through the campaign's trunk; its answered side runs AMD if asked."""
        c, attempt = call.state.settings, call.attempt
        carrier = self.settings.carrier
        caller_id = c.caller_id or carrier.presented_number
        try:
            await self.inbound.ari.originate_to_dialplan(
                endpoint=f"PJSIP/{attempt.phone}@{attempt.trunk}",
                channel_id=call.caller,
                context="lianluo-dialer",
                caller_id=f'"{self.settings.center_name}" <{caller_id}>',
                timeout_s=round(c.ring_s),
                variables={"LIANLUO_ATTEMPT": attempt.id, "LIANLUO_AMD": "yes" if amd else "no"},
            )
        except PbxError as exc:
            log.warning("campaign %s: could not dial %s: %s", c.name, attempt.phone, exc)
            call.events.put_nowait(Wakeup("dial failed"))

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
        attempt = DialAttempt(str(uuid.uuid4()), name, lead.id, lead.phone, trunk, self.clock())
        call = PreviewCall(self, state, lead, attempt)
        decision = self.routing.reserve_direct(agent_id, call.it.id, state.settings.queue)  # 409 if busy
        del state.previews[lead_id]
        await self.store.save_dial_attempt(attempt)
        state.in_flight[attempt.id] = call
        call.decision = decision
        call.start()
        return attempt

    def _held(self, state: CampaignState, lead_id: int, agent_id: str) -> Lead:
        held = state.previews.get(lead_id)
        if held is None or held[1] != agent_id:
            raise DialerError(f"lead {lead_id} is not being previewed by agent {agent_id}", 409)
        return held[0]

    async def finish(self, call: DialerCall) -> None:
        state, lead, attempt = call.state, call.lead, call.attempt
        state.in_flight.pop(attempt.id, None)
        result = attempt.result or CallResult.FAILED
        attempt.result = result
        attempt.ended_at = attempt.ended_at or self.clock()
        self.learn(state, call, result)
        if call.agent_missed:
            lead.status = LeadStatus.PENDING  # not the customer's attempt: nobody called them
        else:
            after_call(lead, result, state.rules, self.clock())
        try:
            await self.store.save_dial_attempt(attempt)
            await self.store.save_lead(lead)
            if attempt.live_answer:
                await self.refresh_gauge(state)
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
        if result is CallResult.CONNECTED and call.connected_loop_time is not None:
            state.statistics.record_talk(at - call.connected_loop_time, at)
            q = self.routing.queue_settings.get(state.settings.queue)
            if q is not None:
                state.statistics.record_wrap_up(q.wrap_up_s, at)

    async def refresh_gauge(self, state: CampaignState) -> None:
        now = self.clock()
        a24, l24 = await self.store.abandon_counts(state.settings.name, now - timedelta(hours=24))
        a30, l30 = await self.store.abandon_counts(state.settings.name, now - timedelta(days=30))
        state.gauge = (a24, l24, a30, l30)

    def view(self, state: CampaignState) -> dict[str, Any]:
        a24, l24, a30, l30 = state.gauge
        return {
            "name": state.settings.name,
            "mode": state.settings.mode,
            "active": state.active,
            "queue": state.settings.queue,
            "in_flight": len(state.in_flight),
            "abandon_target_pct": state.settings.abandon_target_pct,
            "abandon_rate_24h_pct": round(abandon_rate(a24, l24) * 100, 2),
            "abandon_rate_30d_pct": round(abandon_rate(a30, l30) * 100, 2),
            "live_answers_24h": l24,
            "abandoned_24h": a24,
            "live_answers_30d": l30,
            "abandoned_30d": a30,
        }


class DialerCall(CallSession):
    """One placed call: ringing, then a machine, a person for an agent, or an abandoned call."""

    def __init__(self, dialer: DialerService, state: CampaignState, lead: Lead, attempt: DialAttempt) -> None:
        carrier = dialer.settings.carrier
        c = state.settings
        it = Interaction(
            id=str(uuid.uuid4()),
            caller_channel_id=f"dial-{attempt.id}",
            ani=lead.phone,
            dnis=c.caller_id or carrier.presented_number,
            arrived_at=attempt.started_at,
            direction="outbound",
        )
        super().__init__(dialer.inbound, it)
        self.dialer = dialer
        self.state = state
        self.lead = lead
        self.attempt = attempt
        self.answered = False
        self.cancelled = False
        self.agent_missed = False  # preview: the agent never took it; the customer was not called
        loop = asyncio.get_running_loop()
        self.dialled_at = loop.time()
        self.answered_loop_time: float | None = None
        self.connected_loop_time: float | None = None

    def start(self) -> None:
        self.service.sessions[self.caller] = self
        self.service.watch(self.caller, self)
        self.task = asyncio.create_task(self.run(), name=f"dial-{self.attempt.id}")

    def offer_variables(self, queue: str, decision: Decision) -> dict[str, str]:
        out = super().offer_variables(queue, decision)
        out["LIANLUO_CAMPAIGN"] = self.state.settings.name
        out["PJSIP_HEADER(add,X-Lianluo-Campaign)"] = self.state.settings.name
        # Phones that honour it pick up at once: the customer is already on the line.
        out["PJSIP_HEADER(add,Call-Info)"] = "<sip:lianluo>;answer-after=0"
        return out

    async def run(self, resume: bool = False) -> None:
        try:
            await self.place()
        except CallerGone:
            self.it.end(
                self.now(),
                Outcome.COMPLETED if self.agent_on_call else Outcome.ABANDONED,
                ended_by="customer",
            )
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except Exception as exc:
            self.log.exception("dialer call failed")
            self.attempt.result = self.attempt.result or CallResult.FAILED
            self.it.end(self.now(), Outcome.FAILED, error=str(exc))
        finally:
            if self.answered:
                with contextlib.suppress(PbxError):
                    await self.ari.hangup(self.caller)
                await self.cleanup()
            else:
                self.service.forget(self)
            if self.cancelled and self.attempt.result is None:
                # Stopped mid-call: the lead goes back to pending at the next start.
                self.state.in_flight.pop(self.attempt.id, None)
            else:
                await self.dialer.finish(self)

    async def place(self) -> None:
        a = self.attempt
        c = self.state.settings
        answer: StasisStart | None = None
        while answer is None:
            ev = await self.events.get()
            if isinstance(ev, Wakeup):  # the trunk refused the call before it rang
                a.result = CallResult.FAILED
                return
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == self.caller:
                a.result = unanswered_result(ev.cause)
                return
            if isinstance(ev, StasisStart) and ev.channel.id == self.caller:
                answer = ev
        self.answered = True
        self.answered_loop_time = asyncio.get_running_loop().time()
        a.answered_at = self.now()
        a.amd_status = answer.args[2] if len(answer.args) > 2 else None
        if answered_result(a.amd_status) is CallResult.MACHINE:
            a.result = CallResult.MACHINE
            if c.on_machine == "message":
                await self.play(await self.service.say(list(c.machine_message)), interruptible=False)
            return
        a.live_answer = True
        self.customer = await self.service.store.customer_by_phone(self.lead.phone)
        self.it.customer_id = self.customer.id if self.customer else None
        await self.service.store.create_interaction(self.it)
        self.it.record(self.now(), "dialer_answered", campaign=c.name, amd=a.amd_status, attempt=a.id)
        a.interaction_id = self.it.id
        window = c.connect_window_s - (AMD_AFTER_GREETING_S if c.amd and a.amd_status != "NOAMD" else 0.0)
        deadline = asyncio.get_running_loop().time() + max(0.3, window)
        if await self.to_agent_within(deadline):
            a.result = CallResult.CONNECTED
            a.agent_id = self.agent_on_call
            self.connected_loop_time = asyncio.get_running_loop().time()
            await self.dialer.store.save_dial_attempt(a)  # reports see it while the call is on
            await self.follow_transfer(await self.watch_connected())
            return
        await self.abandon()

    async def to_agent_within(self, deadline: float) -> bool:
        """Offer the customer to an agent as a top-tier call; True once an agent is talking."""
        c = self.state.settings
        loop = asyncio.get_running_loop()
        self.it.enqueue(self.now(), c.queue, Tier.TOP.value, f"campaign:{c.name}")
        waiting = WaitingInteraction(
            id=self.it.id,
            queue=c.queue,
            queued_at=self.it.queued_at or self.now(),
            tier=Tier.TOP,
            data={"ani": self.it.ani, "campaign": c.name, **self.lead.attributes},
        )
        ticket = self.routing.enqueue(waiting)
        await asyncio.wait([ticket.decided], timeout=max(0.0, deadline - loop.time()))
        if not ticket.decided.done():
            self.routing.withdraw(self.it.id)
            return False
        if ticket.decided.cancelled():
            return False
        decision = ticket.decided.result()
        winner = await self.ring_agents(
            decision, c.queue, hold_caller=False, within_s=max(0.5, deadline - loop.time())
        )
        if winner is None:
            return False
        await self.bridge(winner)
        return True

    async def abandon(self) -> None:
        """No agent in time: the identifying message, then goodbye. Counted; the number locked out."""
        a = self.attempt
        a.result = CallResult.ABANDONED
        a.abandoned = True
        a.message_started_at = self.now()
        self.it.record(self.now(), "abandoned_by_dialer", campaign=self.state.settings.name)
        with contextlib.suppress(CallerGone):
            await self.play(await self.service.say(list(self.state.settings.message)), interruptible=False)
        self.it.end(self.now(), Outcome.ABANDONED, ended_by="system")


def eligible_if_ready(agent: Agent, probe: WaitingInteraction, cfg: QueueConfig, now: datetime) -> bool:
    """Could this agent take the campaign's calls when free (membership, groups, skills)?"""
    if agent.routable:
        return eligible(agent, probe, cfg, now)[0]
    in_queue = not cfg.members or agent.id in cfg.members
    in_group = not cfg.groups or bool(agent.groups & cfg.groups)
    return (
        in_queue
        and in_group
        and all(agent.skills.get(n.skill, 0) >= n.min_level for n in cfg.required_skills)
    )


class PreviewCall(DialerCall):
    """A preview call: the agent who looked at the customer is rung first, then the customer.
    The agent hears the customer's phone ring; no AMD (a person is listening already)."""

    decision: Decision | None = None

    async def place(self) -> None:
        a, c = self.attempt, self.state.settings
        assert self.decision is not None
        self.answered = True  # our side is live from the agent's answer: clean up as a call
        await self.service.store.create_interaction(self.it)
        self.it.record(self.now(), "preview_call", campaign=c.name, attempt=a.id)
        self.it.enqueue(self.now(), c.queue, Tier.TOP.value, f"preview:{c.name}")
        agent_channel = await self.ring_agents(self.decision, c.queue, hold_caller=False)
        if agent_channel is None:
            self.agent_missed = True
            self.it.end(self.now(), Outcome.NO_AGENT, ended_by="agent")
            return
        ringback = f"pb-{uuid.uuid4()}"
        with contextlib.suppress(PbxError):
            await self.ari.play(agent_channel, "tone:ring;tonezone=us", ringback)
        await self.dialer.dial_customer(self, amd=False)
        while True:
            ev = await self.events.get()
            if isinstance(ev, Wakeup):
                a.result = CallResult.FAILED
                break
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == self.caller:
                a.result = unanswered_result(ev.cause)
                break
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == agent_channel:
                await self.ari.hangup(self.caller)
                self.agent_missed = True
                self.it.end(self.now(), Outcome.NO_AGENT, ended_by="agent")
                return
            if isinstance(ev, StasisStart) and ev.channel.id == self.caller:
                a.answered_at = self.now()
                a.live_answer = True
                a.result = CallResult.CONNECTED
                a.agent_id = self.agent_on_call
                self.connected_loop_time = asyncio.get_running_loop().time()
                await self.ari.stop_playback(ringback)
                await self.bridge(agent_channel)
                await self.dialer.store.save_dial_attempt(a)
                await self.follow_transfer(await self.watch_connected())
                return
        self.it.record(self.now(), "customer_unreached", result=a.result.value if a.result else None)
        self.it.end(self.now(), Outcome.CUSTOMER_UNREACHED, ended_by="system")
