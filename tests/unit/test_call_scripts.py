"""The call scripts against a fake PBX (tests/support/fake_pbx.py): no Asterisk, no database.

The runtime, the inbound call kind and the routing desk are the real ones; only Asterisk and
PostgreSQL are played by fakes. Each test drives the world (a caller arrives, presses a key, a
phone rings out, an agent answers or asks for a control) and checks what a person would notice:
whose phone rang, who talks with whom, what the record says, what state each agent is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.adapters.ari import ChannelUserevent
from app.bus import Bus
from app.calls.conversation import ControlError, Dialing
from app.calls.events import ControlRequest
from app.calls.line import Line
from app.calls.recovery import Recovery
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.config import AgentSettings, IvrSettings, PromptText, QueueSettings, Settings, SmtpSettings
from app.domain.admission import Admission, CallLimits, Limit
from app.domain.agent_state import AgentState
from app.domain.fax import Fax
from app.domain.interaction import Outcome, Phase
from app.domain.ivr_flow import FlowSet
from app.domain.outbound import DialPlan, OutboundPolicy
from app.fax.inbound import FaxReceiver
from app.fax.session import CONTEXT as FAX_CONTEXT
from app.fax.session import REPORT as FAX_REPORT
from app.inbound.calls import InboundCalls
from app.inbound.flow_files import classic_flow
from app.inbound.waiting import InboundRoom
from app.routing.desk import RoutingService
from tests.support.fake_center import CenterLookups, FakeVoice
from tests.support.fake_pbx import FakePbx, FakeStore, now


class SlowVoice(FakeVoice):
    """Texts said at call time take until the test lets them (a synthesis not cached yet)."""

    def __init__(self) -> None:
        self.slow = False  # the menu's prompts are cached
        self.synthesised = asyncio.Event()
        self.asked = 0

    async def say(self, texts: Any, lang: str | None = None) -> list[str]:
        if self.slow:
            self.asked += 1
            await self.synthesised.wait()
        return await super().say(texts, lang)


@dataclass
class Center(CenterLookups):
    pbx: FakePbx
    store: FakeStore
    desk: RoutingService
    board: Switchboard
    writer: InteractionWriter
    line: Line
    recovery: Recovery
    inbound: InboundCalls

    async def caller_in_line(self, ani: str = "13800000001") -> tuple[str, str]:
        """A caller dials in and presses 1 (general): (their channel, interaction id)."""
        caller = self.pbx.caller_arrives(ani)
        it = await self.until(lambda: self.interaction_of(caller), "the interaction")
        await self.until(lambda: "prompt_played" in self.store.kinds(it.id), "the menu")
        self.pbx.press(caller, "1")
        await self.until(lambda: "queued" in self.store.kinds(it.id), "the caller in line")
        return caller, it.id

    async def talking(self, agent_id: str = "1001") -> tuple[str, str, str]:
        """A caller connected to `agent_id`: (caller channel, interaction id, agent channel)."""
        caller, iid = await self.caller_in_line()
        leg = await self.rings(agent_id)
        self.pbx.pick_up(leg)
        await self.until(lambda: "connected" in self.store.kinds(iid), "the conversation")
        return caller, iid, leg

    async def control(self, iid: str, action: str, target: str | None = None) -> dict[str, Any]:
        return await self.conversation(iid).control(ControlRequest(action, "test", target=target))


@contextlib.asynccontextmanager
async def center(
    agents: tuple[str, ...] = ("1001", "1002"),
    wrap_up_s: float = 0.0,
    ready: bool = True,
    voice: Any = None,
    limits: CallLimits | None = None,
    digit_timeout_s: float = 10,
    flows: FlowSet | None = None,
    languages: tuple[str, ...] = ("en",),
    customers: Any = None,
    replay_secret: str = "",
) -> AsyncIterator[Center]:
    settings = Settings(
        agents=tuple(AgentSettings(a, f"Agent {a}") for a in agents),
        queues=(QueueSettings("general", ring_timeout_s=5, wrap_up_s=wrap_up_s),),
        ivr=IvrSettings(digit_timeout_s=digit_timeout_s, connecting=(PromptText("Please hold."),)),
    )
    pbx, store, bus = FakePbx(), FakeStore(), Bus()
    desk = RoutingService(settings, store, now, bus)
    await desk.start()
    writer = InteractionWriter(store, bus)
    writer.start()
    board = Switchboard(pbx)
    line = Line(desk, Dialing("carrier", "7000", "Test center", ("139",)))
    voice = voice or FakeVoice()
    room = InboundRoom(desk, voice, settings.ivr, None, None)
    runtime = Runtime(pbx, writer, board, now, OutboundPolicy(DialPlan()))
    inbound = InboundCalls(
        runtime=runtime,
        desk=desk,
        line=line,
        room=room,
        voice=voice,
        flows=flows or FlowSet({"main": classic_flow(settings)}),
        customers=customers or store.customer_by_phone,
        lookup=store.self_service,
        recognizer=None,
        voicemail=None,
        default_queue="general",
        admission=Admission(limits) if limits else None,
        languages=languages,
        replay_secret=replay_secret,
    )
    recovery = Recovery(runtime=runtime, store=store, desk=desk, app_name="lianluo")
    recovery.register("inbound", inbound.resume)
    board.on_connect(recovery.reconcile)
    events = asyncio.create_task(board.run())
    await board.ready.wait()
    for agent_id in agents:
        desk.device_changed(agent_id, True)  # registered: logged in
        desk.set_state(agent_id, "ready" if ready else "not_ready", None if ready else "break")
    c = Center(pbx, store, desk, board, writer, line, recovery, inbound)
    try:
        yield c
    finally:
        await board.stop_calls()
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await writer.stop(timeout=1)
        await desk.stop()


async def test_a_caller_who_says_nothing_hears_so_at_each_try_and_then_reaches_a_person() -> None:
    async with center(agents=("1001",), digit_timeout_s=0.1) as c:
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        leg = await c.rings("1001")
        heard = [uris for ch, uris in c.pbx.played if ch == caller]
        assert heard.count(("said:Sorry, I didn't hear you.",)) == 3, heard
        await c.until(lambda: c.store.kinds(it.id).count("no_input") == 3, "three silent tries recorded")
        c.pbx.pick_up(leg)
        await c.until(lambda: "connected" in c.store.kinds(it.id), "the conversation")
        c.pbx.hang_up(caller)
        assert await c.outcome(it.id) is Outcome.COMPLETED


async def test_a_key_pressed_over_i_didnt_hear_you_is_the_answer() -> None:
    async with center(agents=("1001",), digit_timeout_s=0.1) as c:
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.hold_playbacks = True  # "I didn't hear you" plays until a key stops it
        await c.until(lambda: (caller, ("said:Sorry, I didn't hear you.",)) in c.pbx.played, "told so")
        c.pbx.press(caller, "1")
        await c.rings("1001")
        await c.until(lambda: "menu_choice" in c.store.kinds(it.id), "the choice recorded")
        assert c.store.kinds(it.id).count("no_input") == 1


async def test_a_phone_that_rings_out_passes_the_call_to_the_next_agent() -> None:
    async with center() as c:
        caller, iid = await c.caller_in_line()
        first = await c.until(
            lambda: c.pbx.ringing("PJSIP/1001") or c.pbx.ringing("PJSIP/1002"), "a phone to ring"
        )
        silent = c.pbx.legs[first].endpoint.removeprefix("PJSIP/")
        other = "1002" if silent == "1001" else "1001"
        c.pbx.hang_up(first, cause=19)  # no answer
        leg = await c.rings(other)
        c.pbx.pick_up(leg)
        await c.until(lambda: "connected" in c.store.kinds(iid), "the conversation")
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(leg) is not None
        assert c.state(silent) is AgentState.NOT_READY  # a silent agent is not rung again
        assert c.desk.agents[silent].not_ready_reason == "no answer"
        assert c.state(other) is AgentState.ON_CALL
        kinds = c.store.kinds(iid)
        assert kinds.index("ring_ended") < kinds.index("connected")
        c.pbx.hang_up(caller)
        assert await c.outcome(iid) is Outcome.COMPLETED
        assert c.store.rows[iid].agent_id == other
        assert leg not in c.pbx.legs, "the agent's leg ends with the call"
        await c.until(lambda: c.state(other) is AgentState.READY, "the agent free again")


async def test_an_agent_found_while_the_announcement_is_synthesised_rings_at_once() -> None:
    voice = SlowVoice()
    async with center(ready=False, voice=voice) as c:
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        iid = it.id
        await c.until(lambda: "prompt_played" in c.store.kinds(iid), "the menu")
        voice.slow = True
        c.pbx.press(caller, "1")
        await c.until(lambda: voice.asked, "the place in line to be synthesised")
        c.desk.set_state("1001", "ready", None)
        await c.rings("1001")  # while the synthesis still runs
        assert "announced" not in c.store.kinds(iid)


async def test_a_caller_who_hangs_up_while_the_agent_rings_stops_the_ringing() -> None:
    async with center(agents=("1001",)) as c:
        caller, iid = await c.caller_in_line()
        leg = await c.rings("1001")
        await c.until(lambda: caller in c.pbx.moh, "the caller to hear music while the phone rings")
        c.pbx.hang_up(caller)
        assert await c.outcome(iid) is Outcome.ABANDONED
        await c.until(lambda: leg not in c.pbx.legs, "the agent's phone to stop ringing")
        await c.until(lambda: c.state("1001") is AgentState.READY, "the agent Ready again")
        assert c.desk.tickets == {}


async def test_an_agent_who_answers_at_once_costs_no_music_and_no_hang_up_of_their_gone_leg() -> None:
    async with center(agents=("1001",)) as c:
        caller, iid = await c.caller_in_line()
        c.pbx.pick_up(await c.rings("1001"))
        await c.until(lambda: "connected" in c.store.kinds(iid), "the conversation")
        assert not [r for r in c.pbx.requests if r[0] in ("start_moh", "stop_moh")]
        leg = c.conversation(iid).agent
        assert leg is not None
        c.pbx.hang_up(leg.channel_id)  # the agent ends the call
        assert await c.outcome(iid) is Outcome.COMPLETED
        await c.until(lambda: ("hangup", caller) in c.pbx.requests, "the caller hung up")
        assert ("hangup", leg.channel_id) not in c.pbx.requests  # gone already: no request


async def test_a_blind_transfer_to_a_queue_keeps_the_callers_place() -> None:
    async with center(wrap_up_s=30) as c:
        caller, iid, first_leg = await c.talking("1001")
        queued_at = c.store.rows[iid].queued_at
        result = await c.control(iid, "transfer", "queue:general")
        assert result["to"] == "queue:general"
        assert first_leg not in c.pbx.legs and caller in c.pbx.moh
        await c.until(lambda: c.state("1001") is AgentState.WRAP_UP, "the first agent's wrap-up")
        second = await c.rings("1002")
        c.pbx.pick_up(second)
        await c.until(lambda: c.store.rows[iid].agent_id == "1002", "the second agent on the call")
        row = c.store.rows[iid]
        assert row.queued_at == queued_at, "the transfer kept the original place in line"
        assert row.phase is Phase.CONNECTED and caller not in c.pbx.moh
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(second)
        assert "transferred" in c.store.kinds(iid)


async def test_consult_then_complete_hands_the_caller_to_the_second_agent() -> None:
    async with center(wrap_up_s=30) as c:
        caller, iid, first_leg = await c.talking("1001")
        await c.control(iid, "consult", "agent:1002")
        assert caller in c.pbx.moh, "the caller holds while the second agent rings"
        consult_leg = await c.rings("1002")
        assert c.pbx.legs[consult_leg].variables["PJSIP_HEADER(add,X-Lianluo-Consult)"] == "1001"
        c.pbx.pick_up(consult_leg)
        await c.until(lambda: "consult_answered" in c.store.kinds(iid), "the consulted agent")
        assert c.pbx.bridge_of(consult_leg) == c.pbx.bridge_of(first_leg)  # the agents talk
        assert c.pbx.bridge_of(caller) is None
        await c.control(iid, "complete")
        assert first_leg not in c.pbx.legs
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(consult_leg) and caller not in c.pbx.moh
        assert c.conversation(iid).agent_id == "1002"
        await c.until(lambda: c.state("1001") is AgentState.WRAP_UP, "the first agent's wrap-up")
        assert c.state("1002") is AgentState.ON_CALL
        c.pbx.hang_up(consult_leg)  # the second agent ends it
        assert await c.outcome(iid) is Outcome.COMPLETED
        assert caller not in c.pbx.legs


async def test_hold_and_resume() -> None:
    async with center() as c:
        caller, iid, leg = await c.talking("1001")
        bridge = c.pbx.bridge_of(caller)
        await c.control(iid, "hold")
        assert c.pbx.bridge_of(caller) is None and caller in c.pbx.moh
        assert c.pbx.bridge_of(leg) == bridge
        refused = c.control(iid, "hold")
        try:
            await refused
            raise AssertionError("holding twice must be refused")
        except Exception as exc:
            assert "already on hold" in str(exc)
        await c.control(iid, "resume")
        assert c.pbx.bridge_of(caller) == bridge and caller not in c.pbx.moh
        await c.until(lambda: "control_resume" in c.store.kinds(iid), "the resume in the record")
        assert c.store.rows[iid].legs["talk"]["held"] is False


# -- recovery: the app is killed and started again; Asterisk kept the calls ------------------


async def restart_app(c: Center) -> None:
    """What a SIGKILL and a new start amount to for the calls: the old process's tasks are gone
    (nothing of them runs any more), Asterisk keeps its channels, and the new process reconciles
    from PostgreSQL."""
    await c.writer.flush(timeout=2)
    for call in list(c.board.calls()):
        assert call.task is not None
        call.task.cancel()  # a killed process runs no cleanup: keep Asterisk's state as it is
    for call in list(c.board.calls()):
        with contextlib.suppress(asyncio.CancelledError, BaseException):
            await call.task  # type: ignore[misc]
        c.board.remove(call)
    await c.recovery.reconcile(reconnect=False)


async def test_recovery_puts_a_waiting_caller_back_in_their_place_with_their_data() -> None:
    async with center(agents=("1001",), ready=False) as c:
        _, iid = await c.caller_in_line()
        call = c.board.call(iid)
        assert call is not None
        call.it.collected["account"] = "79927398713"
        call.it.skills = {"billing": 3}
        call.save_soon()
        placed = c.store.rows[iid].queued_at
        await restart_app(c)
        await c.until(lambda: iid in c.desk.tickets, "the caller back in line")
        await c.until(lambda: "recovered" in c.store.kinds(iid), "the recovery in the record")
        assert c.store.kinds(iid).count("recovered") == 1
        waiting = c.desk.tickets[iid].waiting
        assert waiting.queued_at == placed and waiting.data["account"] == "79927398713"
        assert {s.skill for s in waiting.required_skills} == {"billing"}


async def test_recovery_follows_a_held_conversation_and_its_controls_still_work() -> None:
    async with center() as c:
        caller, iid, leg = await c.talking("1001")
        await c.control(iid, "hold")
        await restart_app(c)
        conv = await c.until(lambda: getattr(c.board.call(iid), "conversation", None), "the call followed")
        await c.until(lambda: conv.active, "the conversation running again")
        assert conv.held and conv.agent_id == "1001" and caller in c.pbx.moh
        assert c.state("1001") is AgentState.ON_CALL
        await c.control(iid, "resume")
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(leg) is not None
        c.pbx.hang_up(leg)
        assert await c.outcome(iid) is Outcome.COMPLETED


async def test_recovery_closes_a_call_whose_caller_left_and_frees_the_agent() -> None:
    async with center(wrap_up_s=0) as c:
        caller, iid, leg = await c.talking("1001")
        await c.writer.flush(timeout=2)
        for call in list(c.board.calls()):
            assert call.task is not None
            call.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await call.task
            c.board.remove(call)
        c.pbx.hang_up(caller)  # while the app was down: nobody hears it
        await c.recovery.reconcile(reconnect=False)
        assert await c.outcome(iid) is Outcome.LOST
        assert leg not in c.pbx.legs, "the agent is not left alone in the bridge"
        await c.until(lambda: c.state("1001") is AgentState.READY, "the agent free")


async def test_asterisk_restarting_drops_the_calls_it_had_and_frees_their_agents() -> None:
    async with center(wrap_up_s=0) as c:
        _, iid, _ = await c.talking("1001")
        _, waiting_iid = await c.caller_in_line("13800000002")
        c.pbx.restart()
        await c.recovery.reconcile(reconnect=True)
        assert await c.outcome(iid) is Outcome.DROPPED
        assert await c.outcome(waiting_iid) is Outcome.DROPPED
        await c.until(lambda: c.state("1001") is AgentState.READY, "agent 1001 free")
        assert c.desk.tickets == {}, "no dead caller is offered to anyone"
        assert c.state("1002") is AgentState.READY


async def test_a_database_outage_loses_no_event() -> None:
    async with center() as c:
        c.store.down = True
        caller = c.pbx.caller_arrives()
        await c.until(lambda: c.writer.failing_since is not None, "the writer to notice")
        c.store.down = False
        it = await c.until(lambda: c.interaction_of(caller), "the interaction written once back", timeout=8)
        await c.until(lambda: "answered_by_ivr" in c.store.kinds(it.id), "its events")
        assert c.store.kinds(it.id)[:2] == ["arrived", "answered_by_ivr"]


async def test_recovery_walks_the_menu_again_for_a_caller_in_the_ivr() -> None:
    async with center() as c:
        caller = c.pbx.caller_arrives()
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        await restart_app(c)
        await c.until(lambda: "ivr_resumed" in c.store.kinds(it.id), "the menu again")
        c.pbx.press(caller, "1")
        await c.until(lambda: c.pbx.ringing("PJSIP/1001") or c.pbx.ringing("PJSIP/1002"), "an agent's phone")
        assert c.store.kinds(it.id).count("answered_by_ivr") == 1  # answered once, not again


async def test_recovery_keeps_a_conference_going_when_one_agent_leaves() -> None:
    async with center(agents=("1001", "1002", "1003")) as c:
        c.desk.set_state("1003", "not_ready", "break")
        caller, iid, first = await c.talking("1001")
        await c.control(iid, "consult", "agent:1002")
        second = await c.rings("1002")
        c.pbx.pick_up(second)
        await c.until(lambda: "consult_answered" in c.store.kinds(iid), "the consulted agent")
        await c.control(iid, "conference")
        await restart_app(c)
        conv = await c.until(lambda: getattr(c.board.call(iid), "conversation", None), "the call followed")
        await c.until(lambda: conv.active, "the conversation running again")
        assert conv.agent_id == "1001" and list(conv.conference.values()) == ["1002"]
        assert c.state("1001") is AgentState.ON_CALL and c.state("1002") is AgentState.ON_CALL
        c.pbx.hang_up(first)  # the first agent leaves: the other goes on with the caller
        await c.until(lambda: conv.agent_id == "1002", "the second agent in control")
        assert caller in c.pbx.legs
        c.pbx.hang_up(second)
        assert await c.outcome(iid) is Outcome.COMPLETED


async def test_recovery_follows_a_caller_transferred_to_an_outside_number() -> None:
    async with center() as c:
        caller, iid, _ = await c.talking("1001")
        await c.control(iid, "transfer", "number:13900000001")
        outside = await c.until(lambda: c.pbx.ringing("PJSIP/13900000001@carrier"), "the outside number")
        c.pbx.pick_up(outside)
        await c.until(lambda: "external_connected" in c.store.kinds(iid), "the outside party on")
        await restart_app(c)
        await c.until(lambda: c.board.call(iid) is not None, "the call followed")
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(outside) is not None
        c.pbx.hang_up(outside)
        assert await c.outcome(iid) is Outcome.COMPLETED
        assert caller not in c.pbx.legs


async def test_a_prompt_that_ended_while_the_events_were_lost_does_not_hold_the_call() -> None:
    """The ARI websocket drops and comes back (Asterisk did not restart): a prompt that finished
    meanwhile sent its PlaybackFinished to nobody; the call must not wait for it for ever."""
    async with center() as c:
        c.pbx.hold_playbacks = True
        caller = c.pbx.caller_arrives()
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: c.pbx.playing, "the greeting playing")
        c.pbx.playing.clear()  # it ends, and its event is lost with the websocket
        await c.recovery.reconcile(reconnect=True)
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu to go on")
        assert c.store.rows[it.id].phase is Phase.IVR


async def test_a_ringing_phone_the_pbx_lost_is_not_the_agents_no_answer() -> None:
    async with center() as c:
        _, iid = await c.caller_in_line()
        first = await c.until(
            lambda: c.pbx.ringing("PJSIP/1001") or c.pbx.ringing("PJSIP/1002"), "a phone to ring"
        )
        agent = c.pbx.legs[first].endpoint.removeprefix("PJSIP/")
        del c.pbx.legs[first]  # gone from Asterisk while the events were not coming in
        await c.recovery.reconcile(reconnect=True)
        await c.until(lambda: "ring_ended" in c.store.kinds(iid), "the ring to end")
        assert c.state(agent) is AgentState.READY, "not set Not Ready for a phone the PBX lost"
        other = "1002" if agent == "1001" else "1001"
        await c.rings(other)


async def test_a_transfer_to_a_number_outside_the_dial_plan_is_refused_and_never_dialled() -> None:
    async with center() as c:
        caller, iid, leg = await c.talking("1001")
        for target, words in (
            ("number:1390", "not a number this center calls"),  # allowed prefix, not a real number
            ("number:+8821390001", "not allowed here"),  # not an allowed prefix at all
        ):
            try:
                await c.control(iid, "transfer", target)
                raise AssertionError(f"a transfer to {target} must be refused")
            except ControlError as exc:
                assert exc.http_status == 403 and words in exc.message, exc.message
        assert c.pbx.originated("PJSIP/1390") == [] and c.pbx.originated("PJSIP/+882") == []
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(leg) is not None, "the caller stays with the agent"


async def test_a_hostile_caller_id_reaches_no_agent_header_and_no_record() -> None:
    async with center(agents=("1001",)) as c:
        caller, iid = await c.caller_in_line(ani='13800000001\r\nX-Forged: 1"<sip:evil>')
        leg = await c.rings("1001")
        assert c.store.rows[iid].ani == "", "an unusable caller ID is kept as unknown"
        offered = c.pbx.legs[leg]
        shown = offered.channel.caller_number  # what the agent's phone is sent as the caller
        assert "\r" not in shown and "\n" not in shown and "evil" not in shown
        assert all("\r" not in v and "\n" not in v for v in offered.variables.values())
        c.pbx.hang_up(caller)
        assert await c.outcome(iid) is Outcome.ABANDONED


async def test_an_agent_who_answers_and_drops_at_once_ends_a_short_call_not_a_failed_one() -> None:
    async with center(agents=("1001",)) as c:
        caller, iid = await c.caller_in_line()
        leg = await c.rings("1001")
        c.pbx.pick_up(leg)
        c.pbx.hang_up(leg)  # gone before the bridge request reaches the PBX
        assert await c.outcome(iid) is Outcome.COMPLETED
        row = c.store.rows[iid]
        assert row.agent_id == "1001" and "connected" in c.store.kinds(iid)
        assert caller not in c.pbx.legs, "the caller is hung up, as after any agent's hang-up"
        await c.until(lambda: c.state("1001") is AgentState.READY, "the agent free again")


async def test_calls_over_the_source_limit_are_refused_unanswered_each_with_one_closed_interaction() -> None:
    limits = CallLimits(Limit(10, 3, 2), Limit(100, 100, 100), frozenset({"carrier"}))
    async with center(agents=("1001",), limits=limits) as c:
        flood = [c.pbx.caller_arrives(f"1380000000{i}", source="192.0.2.66:5060") for i in range(6)]
        other = c.pbx.caller_arrives("13900000001", source="198.51.100.5:5060")
        await c.until(lambda: all(c.interaction_of(ch) for ch in flood), "an interaction for each")
        its = [it for ch in flood if (it := c.interaction_of(ch)) is not None]
        refused = [it for it in its if it.outcome is Outcome.REFUSED]
        assert len(refused) == 4, "two held at once from that source; the other four refused"
        for it in refused:
            assert await c.outcome(it.id) is Outcome.REFUSED
            assert c.pbx.hangup_reasons[it.caller_channel_id] == "congestion"  # 503
            assert ("answer", it.caller_channel_id) not in c.pbx.requests
            assert c.store.kinds(it.id) == ["arrived", "ended"]
        # Another source is served while the flood goes on.
        it = await c.until(lambda: c.interaction_of(other), "the other source's interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the other caller hears the menu")
        # A held call ending frees its place.
        admitted = [it for it in its if it.outcome is not Outcome.REFUSED]
        c.pbx.hang_up(admitted[0].caller_channel_id)
        assert await c.outcome(admitted[0].id) is Outcome.HUNG_UP_IN_IVR
        late = c.pbx.caller_arrives("13800000009", source="192.0.2.66:5060")
        late_it = await c.until(lambda: c.interaction_of(late), "the late caller's interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(late_it.id), "the late caller is answered")


async def test_a_free_agent_rings_at_once_with_no_please_hold_and_a_waiting_caller_has_it_cut_short() -> None:
    async with center(agents=("1001",), ready=True) as c:
        caller, iid = await c.caller_in_line()
        await c.rings("1001")
        heard = [uris for channel, uris in c.pbx.played if channel == caller]
        assert not any("sound:connecting" in u for u in heard[1:]), "no 'please hold' before ringing"
        assert "announced" not in c.store.kinds(iid)
        c.pbx.hang_up(caller)
        await c.outcome(iid)
    async with center(agents=("1001",), ready=False) as c:
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.hold_playbacks = True  # from now on a prompt plays until it is stopped
        c.pbx.press(caller, "1")
        await c.until(lambda: "queued" in c.store.kinds(it.id), "the caller in line")
        await c.until(lambda: any("sound:connecting" in u for ch, u in c.pbx.played if ch == caller), "hold")
        c.desk.set_state("1001", "ready", None)
        await c.rings("1001")  # the prompt was stopped for the agent found meanwhile
        assert caller not in c.pbx.playing.values(), "'please hold' stopped when the agent was found"


# -- a fax machine on a voice number (fax.detect_on_voice) ---------------------------------------


class Faxes:
    """The fax rows, in memory."""

    def __init__(self) -> None:
        self.saved: list[Fax] = []

    async def save(self, fax: Fax) -> None:
        self.saved.append(dataclasses.replace(fax))

    async def emailed(self, fax_id: str, at: Any, error: str | None) -> None:
        return None


def fax_receiver(c: Center, tmp_path: Path, window_s: float = 20.0) -> tuple[FaxReceiver, Faxes]:
    """The inbound fax reception, listening for fax tones on 7000, handed to the center's calls."""
    faxes = Faxes()
    receiver = FaxReceiver(
        runtime=Runtime(c.pbx, c.writer, c.board, now, OutboundPolicy(DialPlan())),
        store=faxes,  # type: ignore[arg-type]
        pages=None,  # type: ignore[arg-type]  # no page comes in these tests
        in_dir=tmp_path,
        station_id="7000",
        email_to=(),
        smtp=SmtpSettings(),
        tone_dids=("7000",),
        tone_window_s=window_s,
    )
    c.inbound.fax_tone = receiver.after_tone
    return receiver, faxes


def fax_session_of(c: Center, channel_id: str) -> tuple[Any, ...] | None:
    return next((r for r in c.pbx.requests if r[0] == "continue" and r[1] == channel_id), None)


async def test_a_fax_tone_heard_in_the_menu_turns_the_same_call_into_a_fax_reception(tmp_path: Path) -> None:
    async with center(agents=("1001",)) as c:
        _, faxes = fax_receiver(c, tmp_path)
        caller = c.pbx.caller_arrives("13800000009")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.fax_tone_heard(caller)
        session = await c.until(lambda: fax_session_of(c, caller), "ReceiveFAX on the caller's channel")
        assert session[2:4] == (FAX_CONTEXT, "receive") and session[4]["LIANLUO_FAX_STATION"] == "7000"
        tone = next(e for e in c.store.events[it.id] if e.kind == "fax_tone_detected")
        assert tone.data == {"handed_over": True, "phase": "ivr"}
        await c.until(lambda: faxes.saved and faxes.saved[0].status == "receiving", "the fax row")
        assert faxes.saved[0].interaction_id == it.id and faxes.saved[0].number == "13800000009"
        report = {"status": "FAILED", "error": "the far end hung up", "pages": "0"}
        c.pbx.queue.put_nowait(ChannelUserevent(c.pbx.legs[caller].channel, FAX_REPORT, report))
        assert await c.outcome(it.id) is Outcome.FAX
        assert "fax_received" in c.store.kinds(it.id) and "ended" in c.store.kinds(it.id)
        assert c.store.rows[it.id].legs["kind"] == "faxin"
        assert [i for i in c.store.rows if i != it.id] == []  # one call, one interaction
        assert not c.pbx.ringing("PJSIP/1001"), "nobody's phone rings for a fax machine"


async def test_a_caller_who_hangs_up_in_the_menu_is_no_fax_and_is_closed_at_once(tmp_path: Path) -> None:
    async with center() as c:
        fax_receiver(c, tmp_path)
        caller = c.pbx.caller_arrives()
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.hang_up(caller)
        # Within the default 3 s of `until`: the hang-up's own events answer the question, the
        # call does not wait the 2 s a fax machine's channel has to come back.
        assert await c.outcome(it.id) is Outcome.HUNG_UP_IN_IVR
        assert fax_session_of(c, caller) is None and "fax_tone_detected" not in c.store.kinds(it.id)


async def test_a_fax_tone_whose_call_had_let_the_channel_go_is_received_on_a_call_of_its_own(
    tmp_path: Path,
) -> None:
    async with center() as c:
        fax_receiver(c, tmp_path)
        caller = c.pbx.caller_arrives("13800000009")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.inbound.fax_tone = None  # the voice call does not wait for it
        c.pbx.fax_tone_heard(caller)
        assert await c.outcome(it.id) is Outcome.HUNG_UP_IN_IVR
        await c.until(lambda: fax_session_of(c, caller), "ReceiveFAX on the channel")
        fax_it = next(i for i in c.store.rows.values() if i.id != it.id)
        assert fax_it.legs["kind"] == "faxin" and fax_it.dnis == "7000" and fax_it.ani == "13800000009"
        tone = next(e for e in c.store.events[fax_it.id] if e.kind == "fax_tone_detected")
        assert tone.data == {"handed_over": False}
