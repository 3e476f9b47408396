"""A queue that offers with a preview (`queues[i].offer`): each chosen agent sees the call in their
panel with Accept and Reject before their phone rings. Fake PBX and store; the runtime, the
inbound call kind, the routing desk and the previews registry are the real ones."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.bus import Bus
from app.calls.conversation import Dialing
from app.calls.line import Line
from app.calls.offers import OfferError, Previews
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.config import AgentSettings, IvrSettings, PromptText, QueueOfferSettings, QueueSettings, Settings
from app.domain.agent_state import AgentState
from app.domain.interaction import Outcome
from app.domain.ivr_flow import FlowSet
from app.domain.outbound import DialPlan, OutboundPolicy
from app.inbound.calls import InboundCalls
from app.inbound.flow_files import classic_flow
from app.inbound.waiting import InboundRoom
from app.routing.desk import RoutingService
from tests.support.fake_center import CenterLookups, FakeVoice
from tests.support.fake_pbx import FakePbx, FakeStore, now

AGENTS = ("1001", "1002", "1003")


@dataclass
class Center(CenterLookups):
    pbx: FakePbx
    store: FakeStore
    desk: RoutingService
    board: Switchboard
    previews: Previews
    pushed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def caller_in_line(self, ani: str = "13800000001") -> tuple[str, str]:
        caller = self.pbx.caller_arrives(ani)
        it = await self.until(lambda: self.interaction_of(caller), "the interaction")
        await self.until(lambda: "prompt_played" in self.store.kinds(it.id), "the menu")
        self.pbx.press(caller, "1")
        await self.until(lambda: "queued" in self.store.kinds(it.id), "the caller in line")
        return caller, it.id

    async def offered(self, agent_id: str) -> dict[str, Any]:
        """The card shown in this agent's panel now."""
        return dict(await self.until(lambda: self.previews.holding(agent_id), f"a preview for {agent_id}"))

    def closed(self, agent_id: str) -> list[str]:
        return [m["verdict"] for a, m in self.pushed if a == agent_id and m["type"] == "expert_offer_closed"]

    def offer_events(self, iid: str) -> list[tuple[str, str]]:
        return [
            (e.kind, str(e.data.get("agent_id")))
            for e in self.store.events.get(iid, [])
            if e.kind.startswith("queue_offer")
        ]


@contextlib.asynccontextmanager
async def center(offer_s: float = 5.0) -> AsyncIterator[Center]:
    settings = Settings(
        agents=tuple(AgentSettings(a, f"Agent {a}") for a in AGENTS),
        queues=(
            QueueSettings(
                "general",
                strategy="linear",
                members=AGENTS,
                ring_timeout_s=5,
                wrap_up_s=0,
                offer=QueueOfferSettings(accept=True, offer_s=offer_s, no_response_reason="not at desk"),
            ),
        ),
        ivr=IvrSettings(connecting=(PromptText("Please hold."),)),
    )
    pbx, store, bus = FakePbx(), FakeStore(), Bus()
    desk = RoutingService(settings, store, now, bus)
    await desk.start()
    writer = InteractionWriter(store, bus)
    writer.start()
    board = Switchboard(pbx)
    pushed: list[tuple[str, dict[str, Any]]] = []

    def push(agent_id: str, message: dict[str, Any]) -> int:
        pushed.append((agent_id, message))
        return 1

    previews = Previews(push)
    line = Line(desk, Dialing("carrier", "7000", "Test center", ()), None, previews)
    voice: Any = FakeVoice()
    room = InboundRoom(desk, voice, settings.ivr, None, None)
    runtime = Runtime(pbx, writer, board, now, OutboundPolicy(DialPlan()))
    InboundCalls(
        runtime=runtime,
        desk=desk,
        line=line,
        room=room,
        voice=voice,
        flows=FlowSet({"main": classic_flow(settings)}),
        customers=store.customer_by_phone,
        lookup=store.self_service,
        recognizer=None,
        voicemail=None,
        default_queue="general",
    )
    events = asyncio.create_task(board.run())
    await board.ready.wait()
    for agent_id in AGENTS:
        desk.device_changed(agent_id, True)
        desk.set_state(agent_id, "ready", None)
    c = Center(pbx=pbx, store=store, desk=desk, board=board, previews=previews, pushed=pushed)
    try:
        yield c
    finally:
        await board.stop_calls()
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await writer.stop(timeout=1)
        await desk.stop()


async def test_reject_then_timeout_then_accept_in_the_routing_order() -> None:
    async with center(offer_s=0.5) as c:
        caller, iid = await c.caller_in_line()
        card = await c.offered("1001")
        assert card["kind"] == "queue" and card["customer"]["ani"] == "13800000001"
        assert card["ivr"]["digits"] == "1" and "linear" in card["reason"]
        assert not c.pbx.ringing("PJSIP/1001"), "no phone rings before Accept"
        assert caller in c.pbx.moh, "the caller hears the queue's music while the agent reads"
        c.previews.reply(card["offer_id"], "reject", "1001", "1001")
        card = await c.offered("1002")  # 1002 says nothing: the offer runs out
        await c.until(lambda: c.state("1002") is AgentState.NOT_READY, "the silent agent Not Ready")
        assert c.desk.agents["1002"].not_ready_reason == "not at desk"
        assert c.state("1001") is AgentState.READY, "a rejecting agent is free for other callers"
        card = await c.offered("1003")
        c.previews.reply(card["offer_id"], "accept", "1003", "1003")
        leg = await c.rings("1003")
        c.pbx.pick_up(leg)
        await c.until(lambda: "connected" in c.store.kinds(iid), "the conversation")
        assert c.offer_events(iid) == [
            ("queue_offered", "1001"),
            ("queue_offer_rejected", "1001"),
            ("queue_offered", "1002"),
            ("queue_offer_timeout", "1002"),
            ("queue_offered", "1003"),
            ("queue_offer_accepted", "1003"),
        ]
        assert (c.closed("1001"), c.closed("1002"), c.closed("1003")) == (["reject"], ["timeout"], ["accept"])
        c.pbx.hang_up(caller)
        assert await c.outcome(iid) is Outcome.COMPLETED


async def test_an_agent_who_rejected_is_never_offered_that_caller_again() -> None:
    async with center(offer_s=5) as c:
        c.desk.set_state("1002", "not_ready", "break")
        c.desk.set_state("1003", "not_ready", "break")
        _, iid = await c.caller_in_line()
        card = await c.offered("1001")
        c.previews.reply(card["offer_id"], "reject", "1001", "1001")
        await c.until(lambda: c.state("1001") is AgentState.READY, "free again")
        c.desk.kick()
        for _ in range(5):  # several routing passes: 1001 is the only one Ready
            await asyncio.sleep(0.1)
            c.desk.dispatch_now()
        assert c.previews.holding("1001") is None
        assert c.offer_events(iid).count(("queue_offered", "1001")) == 1
        c.desk.set_state("1002", "ready", None)
        await c.offered("1002")


async def test_the_caller_hanging_up_during_the_preview_frees_the_agent() -> None:
    async with center() as c:
        caller, iid = await c.caller_in_line()
        await c.offered("1001")
        c.pbx.hang_up(caller)
        assert await c.outcome(iid) is Outcome.ABANDONED
        await c.until(lambda: c.state("1001") is AgentState.READY, "the agent free again")
        assert c.closed("1001") == ["cancel"] and len(c.previews) == 0
        assert ("queue_offer_cancelled", "1001") in c.offer_events(iid)


async def test_only_the_agent_offered_may_answer_and_only_accept_or_reject() -> None:
    async with center() as c:
        await c.caller_in_line()
        card = await c.offered("1001")
        with pytest.raises(OfferError) as err:
            c.previews.reply(card["offer_id"], "accept", "1002", "1002")
        assert err.value.http_status == 404
        with pytest.raises(OfferError) as err:
            c.previews.reply(card["offer_id"], "timeout", "1001", "1001")
        assert err.value.http_status == 400
        assert c.previews.holding("1001") is not None
