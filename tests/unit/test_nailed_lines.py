"""Agents' nailed-up outbound lines (app/dialer/nailed.py) against a fake PBX: no Asterisk.

The desk, the switchboard, the runtime and the conversation are the real ones; the test plays
the agent (picks up, hangs up, lets it ring out) and checks what the agent would notice: their
phone called once, the soft tone, their state and its reason, the customer put through.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.bus import Bus
from app.calls.conversation import Dialing
from app.calls.line import Line
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.config import AgentSettings, QueueSettings, Settings
from app.dialer.nailed import HOLD_TONE, NailedLines
from app.domain.agent_state import AgentState
from app.domain.interaction import Interaction
from app.domain.outbound import DialPlan, OutboundPolicy
from app.domain.routing import Tier
from app.routing.desk import RoutingService
from tests.support.fake_center import until
from tests.support.fake_pbx import FakePbx, FakeStore, now


@dataclass
class Floor:
    pbx: FakePbx
    desk: RoutingService
    runtime: Runtime
    lines: NailedLines
    line: Line
    wanted: dict[str, bool]

    def state(self, agent_id: str = "1001") -> AgentState:
        return self.desk.agents[agent_id].state

    def status(self, agent_id: str = "1001") -> Any:
        return self.desk.agents[agent_id].outbound_line


@contextlib.asynccontextmanager
async def floor() -> AsyncIterator[Floor]:
    settings = Settings(
        agents=(AgentSettings("1001", "Agent 1001"),),
        queues=(QueueSettings("general", ring_timeout_s=5, wrap_up_s=0),),
    )
    pbx, store, bus = FakePbx(), FakeStore(), Bus()
    desk = RoutingService(settings, store, now, bus)
    await desk.start()
    writer = InteractionWriter(store, bus)
    writer.start()
    board = Switchboard(pbx)
    runtime = Runtime(pbx, writer, board, now, OutboundPolicy(DialPlan()))
    wanted = {"1001": True}
    lines = NailedLines(runtime, desk, lambda agent: wanted.get(agent.id, False))
    events = asyncio.create_task(board.run())
    await board.ready.wait()
    lines.start()
    f = Floor(pbx, desk, runtime, lines, Line(desk, Dialing("carrier", "7000", "Test", ())), wanted)
    try:
        yield f
    finally:
        await lines.stop()
        await board.stop_calls()
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await writer.stop(timeout=1)
        await desk.stop()


async def line_up(f: Floor) -> str:
    """The agent signs in (phone registered, Ready) and picks up the line's call."""
    f.desk.device_changed("1001", True)
    f.desk.set_state("1001", "ready", None)
    channel = await until(lambda: f.pbx.ringing("PJSIP/1001"), "the agent's phone to ring")
    assert f.status() == "calling"
    f.pbx.pick_up(channel)
    await until(lambda: f.status() == "connected", "the line up")
    return str(channel)


async def test_the_agents_phone_is_called_once_and_waits_in_a_holding_bridge_with_a_soft_tone() -> None:
    async with floor() as f:
        channel = await line_up(f)
        hold = f.pbx.bridge_of(channel)
        assert hold is not None and hold.startswith("hold-1001")
        assert (channel, (HOLD_TONE,)) in f.pbx.played
        assert f.state() is AgentState.READY
        assert len(f.pbx.originated()) == 1


async def test_the_agent_hanging_up_the_line_goes_not_ready_with_the_reason_and_is_not_called_again() -> None:
    async with floor() as f:
        channel = await line_up(f)
        f.pbx.hang_up(channel)
        await until(lambda: f.state() is AgentState.NOT_READY, "the agent Not Ready")
        assert f.desk.agents["1001"].not_ready_reason == "hung up the outbound line"
        assert f.status() is None and f.lines.status("1001") is None
        assert f.pbx.originated() == [], "nothing calls the agent until they go Ready again"
        f.desk.set_state("1001", "ready", None)
        await until(lambda: f.pbx.ringing("PJSIP/1001"), "Ready again: the line is called again")


async def test_a_line_nobody_answers_sets_the_agent_not_ready() -> None:
    async with floor() as f:
        f.desk.device_changed("1001", True)
        channel = await until(lambda: f.pbx.ringing("PJSIP/1001"), "the agent's phone to ring")
        f.pbx.hang_up(channel, cause=19)  # rang out
        await until(lambda: f.state() is AgentState.NOT_READY, "the agent Not Ready")
        assert f.desk.agents["1001"].not_ready_reason == "did not answer the outbound line"


async def test_a_stopped_campaign_lets_the_agent_go_and_they_stay_ready() -> None:
    async with floor() as f:
        channel = await line_up(f)
        f.wanted["1001"] = False
        f.lines.review_all()
        await until(lambda: channel not in f.pbx.legs, "the line hung up")
        await until(lambda: f.status() is None, "no line")
        assert f.state() is AgentState.READY


async def test_a_customer_is_put_through_on_the_line_and_the_line_comes_back_after_the_call() -> None:
    async with floor() as f:
        channel = await line_up(f)
        hold = f.pbx.bridge_of(channel)
        customer = f.pbx.caller_arrives("13800010001")
        it = Interaction(str(uuid.uuid4()), customer, "13800010001", "7000", now(), direction="outbound")
        call = f.runtime.call(it, "dialer")
        it.enqueue(now(), "general", Tier.TOP.value, "campaign:test")
        f.desk.reserve_direct("1001", it.id, "general")
        leg = await f.lines.lend(call, "1001", "general", "campaign:test")
        assert leg is not None and leg.channel_id == channel
        assert f.state() is AgentState.ON_CALL and f.status() == "with_customer"
        assert f.pbx.ringing("PJSIP/1001") is None and len(f.pbx.originated()) == 1, "nothing rang"
        assert await f.lines.lend(call, "1001", "general", "again") is None, "one customer at a time"
        await f.line.conversation(call).join(leg)
        assert f.pbx.bridge_of(customer) == f.pbx.bridge_of(channel) != hold
        await f.line.conversation(call).hang_up_everyone()
        assert channel in f.pbx.legs, "the line outlives the customer's call"
        assert f.pbx.bridge_of(channel) == hold and f.status() == "connected"
        assert f.state() is AgentState.READY  # no wrap-up in this queue
