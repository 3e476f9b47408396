"""Asking an expert during a call, against the fake PBX (tests/support/fake_pbx.py).

The runtime, the inbound call kind, the routing desk and the experts service are the real ones.
Each test checks what a person would notice: whose panel shows the preview (and what it says),
whose phone rings and when, who talks with whom, each expert's state, and the journey's events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.adapters.db import Customer
from app.bus import Bus
from app.calls.conversation import ControlError, Dialing, ExpertOffer
from app.calls.events import ControlRequest
from app.calls.line import Line
from app.calls.recovery import Recovery
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.config import AgentSettings, IvrSettings, PromptText, QueueSettings, Settings
from app.domain.agent_state import AgentState
from app.domain.experts import Directory, Expert, ExpertGroup
from app.domain.interaction import Outcome
from app.domain.ivr_flow import FlowSet
from app.domain.outbound import DialPlan, OutboundPolicy
from app.errors import AppError
from app.experts.service import ExpertService
from app.inbound.calls import InboundCalls
from app.inbound.flow_files import classic_flow
from app.inbound.waiting import InboundRoom
from app.routing.desk import RoutingService
from tests.support.fake_center import CenterLookups, FakeVoice
from tests.support.fake_pbx import FakePbx, FakeStore, now

AGENT = "1001"
X, Y = "1101", "1102"  # experts with a panel (agent accounts)
OUTSIDE = "13912340001"  # an expert on an outside number


@dataclass
class Center(CenterLookups):
    pbx: FakePbx
    store: FakeStore
    desk: RoutingService
    board: Switchboard
    experts: ExpertService
    pushed: list[tuple[str, dict[str, Any]]]
    writer: InteractionWriter
    recovery: Recovery

    async def talking(self) -> tuple[str, str, str]:
        """A caller (who pressed 1) talks with agent 1001: (caller, interaction id, agent leg)."""
        caller = self.pbx.caller_arrives("13800000001")
        it = await self.until(lambda: self.interaction_of(caller), "the interaction")
        await self.until(lambda: "prompt_played" in self.store.kinds(it.id), "the menu")
        self.pbx.press(caller, "1")
        leg = await self.rings(AGENT)
        self.pbx.pick_up(leg)
        await self.until(lambda: "connected" in self.store.kinds(it.id), "the conversation")
        return caller, it.id, leg

    async def ask(self, iid: str, target: str, note: str = "", blind: bool = False) -> dict[str, Any]:
        conv = self.conversation(iid)
        the_ask = await self.experts.ask_for(conv.call, target, ("front",))
        req = ControlRequest("expert", "1001", target=target, note=note, blind=blind, ask=the_ask)
        return await conv.control(req)

    def previews(self, agent_id: str) -> list[dict[str, Any]]:
        return [m["offer"] for a, m in self.pushed if a == agent_id and m["type"] == "expert_offer"]

    def closed(self, agent_id: str) -> list[str]:
        return [m["verdict"] for a, m in self.pushed if a == agent_id and m["type"] == "expert_offer_closed"]

    async def preview(self, agent_id: str, count: int = 1) -> dict[str, Any]:
        await self.until(lambda: len(self.previews(agent_id)) >= count, f"{agent_id}'s preview")
        return self.previews(agent_id)[count - 1]

    def expert_events(self, iid: str) -> list[str]:
        return [k for k in self.store.kinds(iid) if k.startswith("expert_")]


def directory(offer_s: float = 5.0, outside: bool = False) -> Directory:
    experts = [
        Expert("x", "Xu", {"mortgage": 9}, ("mortgage",), agent_id=X),
        Expert("y", "Yang", {"mortgage": 8}, ("mortgage",), agent_id=Y),
    ]
    if outside:
        experts.append(
            Expert(
                "z", "Zhou", {"mortgage": 5}, ("mortgage",), number=OUTSIDE, max_calls=1, email="zhou@branch"
            )
        )
    return Directory(tuple(experts), (ExpertGroup("mortgage", offer_s, "mortgage", ("front",)),))


class FakeLinks:
    def __init__(self) -> None:
        self.rows: dict[bytes, tuple[dict[str, Any], Any]] = {}

    async def create_link(
        self,
        token_hash: bytes,
        interaction_id: str,
        expert_id: str,
        preview: dict[str, Any],
        created_at: Any,
        expires_at: Any,
    ) -> None:
        self.rows[token_hash] = (preview, expires_at)

    async def open_link(self, token_hash: bytes, now: Any) -> dict[str, Any] | None:
        row = self.rows.pop(token_hash, None)
        return row[0] if row is not None and now < row[1] else None


async def own_expert_is_yang(customer_id: int) -> str | None:
    return "y" if customer_id == 42 else None


@contextlib.asynccontextmanager
async def center(offer_s: float = 5.0, outside: bool = False, key_s: float = 5.0) -> AsyncIterator[Center]:
    agents = (
        AgentSettings(AGENT, "Alice", groups=("front",)),
        AgentSettings(X, "Xu"),
        AgentSettings(Y, "Yang"),
    )
    settings = Settings(
        agents=agents,
        queues=(QueueSettings("general", ring_timeout_s=5, wrap_up_s=0, members=(AGENT,)),),
        ivr=IvrSettings(digit_timeout_s=10, connecting=(PromptText("Please hold."),)),
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

    mails: list[tuple[tuple[str, ...], str, str]] = []

    async def mail(to: tuple[str, ...], subject: str, body: str) -> None:
        mails.append((to, subject, body))

    async def say(texts: Any) -> list[str]:
        return [f"said:{t.lang}:{t.text}" for t in texts]

    experts = ExpertService(
        directory(offer_s, outside),
        desk,
        now,
        push=push,
        own_expert=own_expert_is_yang,
        number_ring_s=20,
        say=say,
        center_name="Test center",
        key_s=key_s,
        links=FakeLinks(),
        mail=mail,
        link_base="http://panel.test",
    )
    experts.mails = mails  # type: ignore[attr-defined]  # what was e-mailed, for the tests
    line = Line(desk, Dialing("carrier", "7000", "Test center", ("139",)), experts)
    voice: Any = FakeVoice()
    runtime = Runtime(pbx, writer, board, now, OutboundPolicy(DialPlan()))
    inbound = InboundCalls(
        runtime=runtime,
        desk=desk,
        line=line,
        room=InboundRoom(desk, voice, settings.ivr, None, None),
        voice=voice,
        flows=FlowSet({"main": classic_flow(settings)}),
        customers=store.customer_by_phone,
        lookup=store.self_service,
        recognizer=None,
        voicemail=None,
        default_queue="general",
    )
    recovery = Recovery(runtime=runtime, store=store, desk=desk, app_name="lianluo")
    recovery.register("inbound", inbound.resume)
    board.on_connect(recovery.reconcile)
    events = asyncio.create_task(board.run())
    await board.ready.wait()
    for agent_id in (AGENT, X, Y):
        desk.device_changed(agent_id, True)
        desk.set_state(agent_id, "ready", None)
    try:
        yield Center(pbx, store, desk, board, experts, pushed, writer, recovery)
    finally:
        await board.stop_calls()
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await writer.stop(timeout=1)
        await desk.stop()


async def test_the_preview_comes_before_any_phone_rings_and_accept_rings_the_expert() -> None:
    async with center() as c:
        caller, iid, agent_leg = await c.talking()
        c.conversation(iid).call.it.collected["account"] = "6222001234"  # entered in the IVR
        result = await c.ask(iid, "group:mortgage", note="asks about early repayment")
        assert result["state"] == "offering"
        assert caller in c.pbx.moh, "the caller holds while the expert decides"
        preview = await c.preview(X)  # the best level first
        assert preview["note"] == "asks about early repayment"
        assert preview["ivr"]["digits"] == "1" and preview["ivr"]["collected"] == {"account": "6222001234"}
        assert preview["customer"]["ani"] == "13800000001"
        assert "best level (mortgage 9)" in preview["reason"] and preview["offer_s"] == 5.0
        assert c.pbx.ringing(f"PJSIP/{X}") is None, "no phone rings before the expert accepts"
        assert c.state(X) is AgentState.RESERVED  # no queue call reaches them meanwhile
        assert c.conversation(iid).view()["asking"]["expert"] == "Xu"
        c.experts.reply(preview["offer_id"], "accept", X, X)
        expert_leg = await c.rings(X)
        variables = c.pbx.legs[expert_leg].variables
        assert variables["PJSIP_HEADER(add,X-Lianluo-Expert)"] == "x"
        assert variables["LIANLUO_NOTE"] == "asks about early repayment"
        assert variables["PJSIP_HEADER(add,X-Lianluo-Data)"] == "account=6222001234"  # the IVR's data travels
        assert c.closed(X) == ["accept"]
        c.pbx.pick_up(expert_leg)
        await c.until(lambda: "expert_connected" in c.store.kinds(iid), "the expert on the line")
        assert c.pbx.bridge_of(expert_leg) == c.pbx.bridge_of(agent_leg) is not None  # agent and expert talk
        assert c.state(X) is AgentState.ON_CALL
        await c.conversation(iid).control(ControlRequest("complete", "1001"))
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(expert_leg) and caller not in c.pbx.moh
        assert c.conversation(iid).agent_id == X
        assert c.expert_events(iid) == [
            "expert_asked",
            "expert_offered",
            "expert_accepted",
            "expert_ringing",
            "expert_connected",
        ]
        c.pbx.hang_up(caller)
        assert await c.outcome(iid) is Outcome.COMPLETED
        await c.until(lambda: c.state(X) is AgentState.READY, "the expert free again")


async def test_a_rejection_offers_the_call_to_the_next_expert() -> None:
    async with center() as c:
        _, iid, _ = await c.talking()
        await c.ask(iid, "group:mortgage", note="n")
        first = await c.preview(X)
        with pytest.raises(AppError):
            c.experts.reply(first["offer_id"], "accept", Y, Y)  # not theirs: refused
        c.experts.reply(first["offer_id"], "reject", X, X)
        second = await c.preview(Y)
        assert second["note"] == "n"
        await c.until(lambda: c.state(X) is AgentState.READY, "the rejecting expert free")
        assert c.closed(X) == ["reject"]
        assert c.pbx.ringing(f"PJSIP/{X}") is None and c.pbx.ringing(f"PJSIP/{Y}") is None
        c.experts.reply(second["offer_id"], "accept", Y, Y)
        await c.rings(Y)
        journey = ["expert_asked", "expert_offered", "expert_rejected", "expert_offered", "expert_accepted"]
        await c.until(lambda: c.expert_events(iid)[:5] == journey, "the journey of the offers")


async def test_a_silent_expert_is_set_not_ready_and_the_next_is_offered_the_call() -> None:
    async with center(offer_s=0.3) as c:
        caller, iid, _ = await c.talking()
        await c.ask(iid, "group:mortgage")
        await c.preview(X)
        await c.preview(Y)  # X's time ran out
        assert c.state(X) is AgentState.NOT_READY
        assert c.desk.agents[X].not_ready_reason == "no response"
        assert c.closed(X) == ["timeout"]
        # Y is silent too: nobody else; the caller is back with the agent.
        await c.until(lambda: "expert_none" in c.store.kinds(iid), "nobody left to offer")
        assert c.state(Y) is AgentState.NOT_READY
        await c.until(lambda: caller not in c.pbx.moh, "the caller back with the agent")
        assert c.conversation(iid).asking is None and not c.conversation(iid).held
        assert c.expert_events(iid) == [
            "expert_asked",
            "expert_offered",
            "expert_timeout",
            "expert_offered",
            "expert_timeout",
            "expert_none",
        ]


async def test_an_outside_expert_is_dialled_through_the_outbound_policy_and_blind_hands_the_caller_over() -> (
    None
):
    async with center(outside=True) as c:
        for expert in (X, Y):
            c.desk.set_state(expert, "not_ready", "meeting")
        caller, iid, agent_leg = await c.talking()
        c.conversation(iid).call.it.collected["account"] = "6222"  # entered in the IVR
        result = await c.ask(iid, "group:mortgage", note="branch question", blind=True)
        assert result["state"] == "ringing"  # no panel: ringing their number is the offer
        leg = await c.rings(f"PJSIP/{OUTSIDE}@carrier")
        assert c.pbx.legs[leg].variables["LIANLUO_NOTE"] == "branch question"
        assert c.experts.status(c.experts.directory.experts[2]).presence.value == "busy"
        c.pbx.pick_up(leg)
        summary = await c.until(
            lambda: [u for ch, u in c.pbx.played if ch == leg], "the summary to the expert"
        )
        assert summary[0] == (
            "said:en:This is Test center. Alice asks for your help with a caller."
            " Customer: 1 3 8 0 0 0 0 0 0 0 1. The caller entered account: 6 2 2 2."
            " Note from the agent: branch question."
            " Press 1 to take the call, or 2 to decline.",
        )
        assert caller in c.pbx.moh and agent_leg in c.pbx.legs, "nothing changes before the expert's key"
        links = await c.until(
            lambda: [e.data for e in c.store.events[iid] if e.kind == "expert_link"],
            "the link in the journey",
        )
        link = links[0]
        assert str(link["url"]).startswith("http://panel.test/experts/link/")
        token = str(link["url"]).rsplit("/", 1)[1]
        mails = c.experts.mails  # type: ignore[attr-defined]
        await c.until(lambda: mails, "the link e-mailed")
        assert mails[0][0] == ("zhou@branch",) and str(link["url"]) in mails[0][2]
        seen = await c.experts.open_link(token)
        assert (
            seen is not None
            and seen["note"] == "branch question"
            and seen["ivr"]["collected"] == {"account": "6222"}
        )
        assert await c.experts.open_link(token) is None, "one look only"
        assert await c.experts.open_link("x" * 32) is None
        c.pbx.press(leg, "1")
        await c.until(lambda: "expert_blind_completed" in c.store.kinds(iid), "the blind hand-over")
        assert agent_leg not in c.pbx.legs, "blind: the agent dropped off when the expert answered"
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(leg) is not None
        c.pbx.hang_up(leg)
        assert await c.outcome(iid) is Outcome.COMPLETED
        assert c.experts.outside["z"].calls == set()


async def test_a_refused_outside_number_is_never_dialled_and_the_ask_fails_cleanly() -> None:
    async with center(outside=True) as c:
        for expert in (X, Y):
            c.desk.set_state(expert, "not_ready", "meeting")
        c.experts.directory = Directory(
            (Expert("z", "Zhou", {"mortgage": 5}, ("mortgage",), number="0088213900001"),),
            c.experts.directory.groups,
        )
        caller, iid, _ = await c.talking()
        with pytest.raises(ControlError, match="no expert for group:mortgage can take the call now"):
            await c.ask(iid, "group:mortgage")
        assert not [leg for leg in c.pbx.legs.values() if "@carrier" in leg.endpoint]
        await c.until(lambda: "outbound_refused" in c.store.kinds(iid), "the refusal on the record")
        assert caller not in c.pbx.moh, "the caller is back with the agent"


async def test_an_agent_outside_the_allowed_groups_is_refused() -> None:
    async with center() as c:
        _, iid, _ = await c.talking()
        conv = c.conversation(iid)
        with pytest.raises(AppError, match="may be asked only by front") as err:
            await c.experts.ask_for(conv.call, "group:mortgage", ("back",))
        assert err.value.http_status == 403
        with pytest.raises(AppError) as unknown:
            await c.experts.ask_for(conv.call, "group:nope", ("front",))
        assert unknown.value.http_status == 404


async def test_the_caller_hanging_up_during_the_preview_frees_the_expert() -> None:
    async with center() as c:
        caller, iid, _ = await c.talking()
        await c.ask(iid, "group:mortgage")
        await c.preview(X)
        c.pbx.hang_up(caller)
        await c.outcome(iid)
        await c.until(lambda: c.state(X) is AgentState.READY, "the expert free again")
        assert c.closed(X) == ["cancel"]
        assert len(c.experts.previews) == 0


async def test_the_agent_can_cancel_while_the_expert_previews() -> None:
    async with center() as c:
        caller, iid, _ = await c.talking()
        await c.ask(iid, "group:mortgage")
        await c.preview(X)
        await c.conversation(iid).control(ControlRequest("cancel", "1001"))
        assert caller not in c.pbx.moh
        await c.until(lambda: c.state(X) is AgentState.READY, "the expert free again")
        await c.until(lambda: "expert_cancelled" in c.store.kinds(iid), "the cancel on the record")


async def test_a_vip_customers_own_expert_is_offered_the_call_first() -> None:
    async with center() as c:
        _, iid, _ = await c.talking()
        c.conversation(iid).call.customer = Customer(42, "Wang Xiaoming", True, "top", 0.0)
        await c.ask(iid, "group:mortgage")
        own = await c.preview(Y)  # Xu has the better level, Yang is the customer's own
        assert own["reason"] == "the customer's own expert"
        assert own["customer"] == {
            "ani": "13800000001",
            "name": "Wang Xiaoming",
            "tier": "medium",
            "vip": True,
        }
        assert c.previews(X) == []
        c.experts.reply(own["offer_id"], "reject", Y, Y)
        await c.preview(X)  # then the group


async def test_an_outside_expert_who_presses_2_or_nothing_passes_the_call_on() -> None:
    async with center(outside=True, key_s=0.3) as c:
        c.desk.set_state(Y, "not_ready", "meeting")
        c.experts.directory = Directory(
            (
                *c.experts.directory.experts,
                Expert("w", "Wu", {"mortgage": 1}, ("mortgage",), number="13912340002"),
            ),
            c.experts.directory.groups,
        )
        caller, iid, _ = await c.talking()
        await c.ask(iid, "group:mortgage")
        first = await c.preview(X)
        c.experts.reply(first["offer_id"], "reject", X, X)
        zhou = await c.rings(f"PJSIP/{OUTSIDE}@carrier")
        c.pbx.pick_up(zhou)
        await c.until(lambda: "expert_answered" in c.store.kinds(iid), "Zhou hearing the summary")
        c.pbx.press(zhou, "2")
        wu = await c.rings("PJSIP/13912340002@carrier")
        assert zhou not in c.pbx.legs, "declining hangs up"
        c.pbx.pick_up(wu)  # Wu listens and presses nothing
        await c.until(lambda: "expert_none" in c.store.kinds(iid), "nobody left")
        assert wu not in c.pbx.legs
        await c.until(lambda: caller not in c.pbx.moh, "the caller back with the agent")
        keys = [
            (k, d.get("expert_id"), d.get("key"), d.get("by"))
            for k, d in ((e.kind, e.data) for e in c.store.events[iid])
            if k in ("expert_key", "expert_declined")
        ]
        assert keys == [
            ("expert_key", "z", "2", None),
            ("expert_declined", "z", None, "key"),
            ("expert_key", "w", None, None),
            ("expert_declined", "w", None, "no key"),
        ]
        assert c.experts.outside["z"].calls == set() and c.experts.outside["w"].calls == set()


async def test_the_summary_is_in_the_experts_own_language() -> None:
    async with center(outside=True) as c:
        _, iid, _ = await c.talking()
        call = c.conversation(iid).call
        call.it.collected["account"] = "6222"
        zh = Expert("z", "Zhou", {"mortgage": 5}, ("mortgage",), languages=("zh", "en"), number=OUTSIDE)
        c.experts.directory = Directory((zh,), c.experts.directory.groups)
        offer = ExpertOffer("o1", "z", "Zhou", "asked by name", 15.0, number=OUTSIDE)
        text = c.experts.summary_text(call, offer, "提前还款")
        assert text.lang == "zh"
        assert text.text == (
            "这里是Test center。Alice请您协助一位来电客户。客户：1 3 8 0 0 0 0 0 0 0 1。"
            "account：6 2 2 2。坐席备注：提前还款。接听请按1，拒绝请按2。"
        )


async def test_an_offer_being_previewed_when_the_app_restarts_sets_the_expert_free() -> None:
    async with center() as c:
        caller, iid, agent_leg = await c.talking()
        await c.ask(iid, "group:mortgage")
        await c.preview(X)
        assert c.state(X) is AgentState.RESERVED
        await c.writer.flush(timeout=2)
        assert c.store.rows[iid].legs["talk"]["asking"] == ["x", X], "saved for the next start"
        for call in list(c.board.calls()):  # the old process's calls stop; Asterisk keeps them
            assert call.task is not None
            call.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await call.task
            c.board.remove(call)
        if c.state(X) is not AgentState.RESERVED:  # a SIGKILL runs no cleanup: the new start's desk
            c.desk.reserve_direct(X, iid)  # holds the expert as its history says
        await c.recovery.reconcile(reconnect=False)
        await c.until(lambda: c.board.call(iid) is not None, "the call followed")
        await c.until(lambda: c.state(X) is AgentState.READY, "the expert free again")
        assert caller in c.pbx.moh, "the caller still holds, with the agent"
        await c.until(lambda: c.conversation(iid).active, "the conversation taken up again")
        await c.conversation(iid).control(ControlRequest("resume", "1001"))
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(agent_leg) is not None
