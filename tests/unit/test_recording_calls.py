"""Call recording in the call scripts, against the fake PBX and a fake MixMonitor (no Asterisk,
no database): when the recording starts and on which channel, what hold, pause and transfer do
to it, the row written when Asterisk closes the file, the sweep, and the retention job."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shlex
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.adapters.recording_store import RecordingRow
from app.bus import Bus
from app.calls.conversation import Dialing
from app.calls.line import Line
from app.calls.recovery import Recovery
from app.calls.runtime import Runtime
from app.calls.switchboard import Switchboard
from app.calls.writer import InteractionWriter
from app.config import AgentSettings, IvrSettings, PromptText, QueueSettings, Settings
from app.domain.agent_state import AgentState
from app.domain.interaction import Outcome
from app.domain.outbound import DialPlan, OutboundPolicy
from app.domain.recording import Kept, Mode, RecordingPolicy, Rule
from app.errors import AppError, PbxError
from app.inbound.calls import InboundCalls
from app.inbound.flow_files import classic_flow
from app.inbound.waiting import InboundRoom
from app.recording import files
from app.recording.service import RecordingService, Take
from app.routing.desk import RoutingService
from tests.support.fake_center import FakeVoice
from tests.support.fake_pbx import FakePbx, FakeStore, now
from tests.unit.test_call_scripts import Center, restart_app

CONSENT = "sound:consent"
# One stereo sample frame as MixMonitor's D option writes it: the caller 1000, the center -1000.
FRAME = (1000).to_bytes(2, "little", signed=True) + (-1000).to_bytes(2, "little", signed=True)


@dataclass
class FakeTape:
    """MixMonitor as the service drives it: a raw file per start, mutes, and Asterisk closing
    the file (the marker) when the test says the caller's channel is gone."""

    started: list[tuple[str, str, str]] = field(default_factory=list)  # channel, path, options
    mutes: list[tuple[str, bool]] = field(default_factory=list)
    commands: dict[str, str] = field(default_factory=dict)  # channel -> command
    stopped: list[str] = field(default_factory=list)
    refuse: bool = False

    async def mix_monitor(self, channel: str, path: str, options: str, command: str = "") -> None:
        if self.refuse:
            raise PbxError("MixMonitor refused")
        self.started.append((channel, path, options))
        self.commands[channel] = command
        # Two seconds of interleaved stereo: the caller's samples 1000, the center's -1000.
        await asyncio.to_thread(Path(path).write_bytes, FRAME * 16000)

    async def mix_monitor_mute(self, channel: str, on: bool) -> None:
        self.mutes.append((channel, on))

    async def stop_mix_monitor(self, channel: str) -> None:
        self.stopped.append(channel)
        self.close(channel)  # Asterisk closes the file as it stops

    def close(self, channel: str) -> None:
        """Asterisk closed the file and ran the command (`touch <marker>`)."""
        argv = shlex.split(self.commands[channel])
        assert argv[0] == "touch"
        Path(argv[1]).touch()


@dataclass
class FakeRows:
    rows: dict[str, RecordingRow] = field(default_factory=dict)
    deleted_ids: dict[str, str] = field(default_factory=dict)

    async def add(self, row: RecordingRow) -> bool:
        if any((r.interaction_id, r.part) == (row.interaction_id, row.part) for r in self.rows.values()):
            return False
        self.rows[row.id] = row
        return True

    async def kept(self) -> list[tuple[Kept, str]]:
        return [
            (Kept(r.id, r.started_at, r.retention_days), r.path)
            for r in self.rows.values()
            if r.id not in self.deleted_ids
        ]

    async def deleted(self, recording_id: str, at: datetime, reason: str) -> None:
        self.deleted_ids[recording_id] = reason


@dataclass
class Rec:
    c: Center
    service: RecordingService
    tape: FakeTape
    rows: FakeRows
    directory: Path

    async def talking(self, agent_id: str = "1001") -> tuple[str, str, str]:
        """`Center.talking`, and then until the recorder has had its say (it is asked between the
        agent's answer and the conversation taking requests)."""
        caller, iid, leg = await self.c.talking(agent_id)
        decided = ("recording_started", "recording_skipped", "recording_failed")

        def settled() -> bool:
            call = self.c.board.call(iid)
            conv = getattr(call, "conversation", None)
            kinds = set(self.c.store.kinds(iid)) | {e.kind for e in (call.it.pending if call else [])}
            return bool(conv is not None and conv.active and kinds & set(decided))

        await self.c.until(settled, "the recorder's decision and the conversation running")
        return caller, iid, leg

    async def row_of(self, iid: str) -> RecordingRow:
        row: RecordingRow = await self.c.until(
            lambda: next(
                (r for r in self.rows.rows.values() if r.interaction_id == iid and r.part == "conversation"),
                None,
            ),
            f"the recording row of {iid}",
        )
        return row


@contextlib.asynccontextmanager
async def recording_center(
    tmp_path: Path, policy: RecordingPolicy | None = None, flow: Any = None, ivr: bool = False
) -> AsyncIterator[Rec]:
    agents = ("1001", "1002")
    settings = Settings(
        agents=tuple(AgentSettings(a, f"Agent {a}") for a in agents),
        queues=(QueueSettings("general", ring_timeout_s=5, wrap_up_s=30),),
        ivr=IvrSettings(digit_timeout_s=10, connecting=(PromptText("Please hold."),)),
    )
    pbx, store, bus = FakePbx(), FakeStore(), Bus()
    tape, rows = FakeTape(), FakeRows()
    policy = policy or RecordingPolicy()
    service = RecordingService(policy, tape, rows, tmp_path / "rec", now, finish_wait_s=5, ivr=ivr)
    service.consent_uris = [(PromptText("This call may be recorded."), CONSENT)]
    await service.start()
    desk = RoutingService(settings, store, now, bus)
    await desk.start()
    writer = InteractionWriter(store, bus)
    writer.start()
    board = Switchboard(pbx)
    line = Line(desk, Dialing("carrier", "7000", "Test center", ("139",)))
    voice: Any = FakeVoice()
    room = InboundRoom(desk, voice, settings.ivr, None, None, service.consent)
    runtime = Runtime(pbx, writer, board, now, OutboundPolicy(DialPlan()), recorder=service)
    inbound = InboundCalls(
        runtime=runtime,
        desk=desk,
        line=line,
        room=room,
        voice=voice,
        flows=FlowSetOf(settings, flow),
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
    for agent_id in agents:
        desk.device_changed(agent_id, True)
        desk.set_state(agent_id, "ready", None)
    c = Center(pbx, store, desk, board, writer, line, recovery, inbound)
    try:
        yield Rec(c, service, tape, rows, tmp_path / "rec")
    finally:
        await board.stop_calls()
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)
        await writer.stop(timeout=1)
        await desk.stop()
        await service.stop()


def FlowSetOf(settings: Settings, flow: Any = None) -> Any:
    from app.domain.ivr_flow import FlowSet

    return FlowSet({"main": flow or classic_flow(settings)})


async def test_the_recording_starts_at_the_answer_on_the_callers_channel_and_is_kept_with_its_checksum(
    tmp_path: Path,
) -> None:
    async with recording_center(tmp_path) as r:
        c = r.c
        caller, iid, _ = await r.talking("1001")
        started = [(ch, opts) for ch, _, opts in r.tape.started]
        assert started == [(caller, "D")], "once, on the caller's channel, in stereo"
        await c.until(lambda: "recording_started" in c.store.kinds(iid), "the recording started event")
        assert any(CONSENT in uris for ch, uris in c.pbx.played if ch == caller), "the caller heard consent"
        assert r.service.state(iid) == {"recording": True, "paused": False}
        c.pbx.hang_up(caller)
        await c.outcome(iid)
        assert not r.rows.rows, "no row before Asterisk has closed the file"
        r.tape.close(caller)
        row = await r.row_of(iid)
        wav = r.directory / row.path
        assert hashlib.sha256(wav.read_bytes()).hexdigest() == row.sha256
        assert row.size_bytes == wav.stat().st_size
        with wave.open(str(wav)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
            frames = w.readframes(w.getnframes())
        assert frames[:4] == FRAME
        assert (row.channels, row.duration_ms, row.agents, row.ani) == (2, 2000, ("1001",), "13800000001")
        assert (row.rule, row.retention_days, row.queue) == ("default", 90, "general")
        # The waveform: each side's level per 100 ms (samples of 1000: about 0.031).
        assert len(row.levels["caller"]) == len(row.levels["center"]) == 20
        assert row.levels["caller"][0] == row.levels["center"][0] == round(1000 / 32768, 4)
        assert [s["kind"] for s in row.spans] == ["overtalk"], "both sides at once the whole time"
        live = r.directory / ".live"
        await c.until(lambda: not list(live.iterdir()), "the raw file and its sidecar gone after the row")


async def test_a_free_agents_phone_rings_during_the_consent_and_the_bridge_waits_for_its_end(
    tmp_path: Path,
) -> None:
    async with recording_center(tmp_path) as r:
        c = r.c
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.hold_playbacks = True  # from now on a prompt plays until the test ends it
        c.pbx.press(caller, "1")
        leg = await c.rings("1001")
        consent = [pb for pb, ch in c.pbx.playing.items() if ch == caller]
        assert consent and c.pbx.played[-1] == (caller, (CONSENT,)), "the phone rings during the consent"
        c.pbx.pick_up(leg)
        await c.until(lambda: getattr(c.board.call(it.id), "conversation", None), "the agent's answer")
        assert c.pbx.bridge_of(caller) is None, "the caller hears the consent whole first"
        c.pbx.finish_playbacks()
        await c.until(lambda: "connected" in c.store.kinds(it.id), "the conversation")
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(leg) is not None
        assert not any("sound:connecting" in u for ch, u in c.pbx.played if ch == caller)
        c.pbx.hang_up(caller)
        assert await c.outcome(it.id) is Outcome.COMPLETED


async def test_a_caller_who_waits_hears_the_consent_then_please_hold(tmp_path: Path) -> None:
    async with recording_center(tmp_path) as r:
        c = r.c
        for agent_id in ("1001", "1002"):
            c.desk.set_state(agent_id, "not_ready", "break")
        caller = c.pbx.caller_arrives("13800000001")
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: "prompt_played" in c.store.kinds(it.id), "the menu")
        c.pbx.hold_playbacks = True
        c.pbx.press(caller, "1")
        await c.until(lambda: c.pbx.played[-1] == (caller, (CONSENT,)), "the consent")
        c.pbx.finish_playbacks()
        await c.until(lambda: any("sound:connecting" in u for ch, u in c.pbx.played if ch == caller), "hold")
        heard = [uris for ch, uris in c.pbx.played if ch == caller]
        assert heard.index((CONSENT,)) < next(i for i, u in enumerate(heard) if "sound:connecting" in u)
        c.desk.set_state("1001", "ready", None)
        leg = await c.rings("1001")
        c.pbx.finish_playbacks()
        c.pbx.pick_up(leg)
        await c.until(lambda: "connected" in c.store.kinds(it.id), "the conversation")
        c.pbx.hang_up(caller)
        assert await c.outcome(it.id) is Outcome.COMPLETED


async def test_hold_and_pause_silence_the_recording_and_are_marked(tmp_path: Path) -> None:
    async with recording_center(tmp_path) as r:
        c = r.c
        caller, iid, leg = await r.talking("1001")
        result = await c.control(iid, "pause_recording")
        assert "recording_at_s" in result
        assert r.tape.mutes == [(caller, True)]
        assert c.conversation(iid).view()["recording"] == {"recording": True, "paused": True}
        with pytest.raises(AppError, match="already paused"):
            await c.control(iid, "pause_recording")
        await c.control(iid, "hold")
        assert r.tape.mutes == [(caller, True)], "already silent: no second mute"
        await c.control(iid, "resume_recording")
        assert r.tape.mutes == [(caller, True)], "still on hold: still silent"
        await c.control(iid, "resume")
        assert r.tape.mutes == [(caller, True), (caller, False)]
        await c.until(lambda: "control_pause_recording" in c.store.kinds(iid), "the pause in the record")
        c.pbx.hang_up(leg)  # the agent ends the call
        await c.outcome(iid)
        r.tape.close(caller)
        row = await r.row_of(iid)
        marked = [s for s in row.spans if s["kind"] in ("pause", "hold")]
        assert [s["kind"] for s in marked] == ["pause", "hold"]
        for s in marked:
            assert 0 <= float(s["start_s"]) <= float(s["end_s"])


async def test_a_blind_transfer_keeps_one_recording_with_both_agents(tmp_path: Path) -> None:
    async with recording_center(tmp_path) as r:
        c = r.c
        caller, iid, _ = await r.talking("1001")
        await c.control(iid, "transfer", "queue:general")
        assert r.tape.mutes == [(caller, True)], "the caller waits on hold: silence"
        await c.until(lambda: c.state("1001") is AgentState.WRAP_UP, "the first agent's wrap-up")
        second = await c.rings("1002")
        c.pbx.pick_up(second)
        await c.until(lambda: c.store.rows[iid].agent_id == "1002", "the second agent on the call")
        assert len(r.tape.started) == 1, "the same recording goes on"
        assert r.tape.mutes[-1] == (caller, False)
        c.pbx.hang_up(caller)
        await c.outcome(iid)
        r.tape.close(caller)
        row = await r.row_of(iid)
        assert row.agents == ("1001", "1002")
        assert [s["kind"] for s in row.spans if s["kind"] != "overtalk"] == ["hold"]


async def test_a_queue_that_records_nothing_starts_no_recording_and_refuses_a_pause(tmp_path: Path) -> None:
    policy = RecordingPolicy(queues={"general": Rule(Mode.NONE)})
    async with recording_center(tmp_path, policy) as r:
        c = r.c
        _, iid, _ = await r.talking("1001")
        assert r.tape.started == []
        assert not any(CONSENT in uris for _, uris in c.pbx.played), "no consent where nothing is recorded"
        await c.until(lambda: "recording_skipped" in c.store.kinds(iid), "the recording skipped event")
        with pytest.raises(AppError, match="not being recorded") as refused:
            await c.control(iid, "pause_recording")
        assert refused.value.http_status == 409
        assert c.conversation(iid).view()["recording"] is None


async def test_a_refused_mixmonitor_leaves_the_call_going(tmp_path: Path) -> None:
    async with recording_center(tmp_path) as r:
        r.tape.refuse = True
        c = r.c
        caller, iid, leg = await r.talking("1001")
        await c.until(lambda: "recording_failed" in c.store.kinds(iid), "the recording failed event")
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(leg)


async def test_the_sweep_finishes_a_recording_whose_call_ended_while_no_app_ran(tmp_path: Path) -> None:
    async with recording_center(tmp_path) as r:
        live = r.directory / ".live"
        take = Take(
            interaction_id="6b1f0c1e-0000-4000-8000-000000000001",
            recording_id="6b1f0c1e-0000-4000-8000-0000000000aa",
            channel="caller-x",
            started_at=now() - timedelta(minutes=5),
            rule="default",
            retention_days=90,
            direction="inbound",
            queue="general",
            campaign=None,
            ani="13800000009",
            agents=["1001"],
        )
        files.write_json(live / f"{take.interaction_id}.json", take.to_json())
        (live / f"{take.interaction_id}.raw").write_bytes(b"\0" * 32000)
        (live / f"{take.interaction_id}.done").touch()
        await r.service.sweep()  # (the service's own loop may have been first)
        row = await r.c.until(lambda: r.rows.rows.get(take.recording_id), "the swept recording's row")
        assert row.duration_ms == 1000 and row.agents == ("1001",)
        await r.c.until(lambda: not list(live.iterdir()), "the raw file and its sidecar gone after the row")
        assert await r.service.sweep() == 0


async def test_retention_deletes_expired_recordings_and_logs_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with recording_center(tmp_path) as r:
        for i, (age_days, keep) in enumerate(((100, 90), (10, 90), (4000, 0))):
            rel = f"old/{i}.wav"
            (r.directory / "old").mkdir(parents=True, exist_ok=True)
            (r.directory / rel).write_bytes(b"RIFF")
            r.rows.rows[f"r{i}"] = RecordingRow(
                f"r{i}", f"i{i}", "inbound", "general", None, "1", ("1001",),
                now() - timedelta(days=age_days), 1000, 2, 8000, 4, "x", rel, [], "default", keep,
            )  # fmt: skip
        with caplog.at_level(logging.INFO, logger="app.recording.service"):
            deleted = await r.service.run_retention()
        assert [d["id"] for d in deleted] == ["r0"]
        assert not (r.directory / "old/0.wav").exists()
        assert (r.directory / "old/1.wav").exists() and (r.directory / "old/2.wav").exists()
        assert r.rows.deleted_ids == {"r0": "retention: 90 days"}
        assert any("retention: deleted recording r0" in m for m in caplog.messages)


async def test_a_recording_goes_on_across_a_restart_of_the_app(tmp_path: Path) -> None:
    async with recording_center(tmp_path) as r:
        c = r.c
        caller, iid, leg = await r.talking("1001")
        await c.control(iid, "hold")
        await restart_app(c)
        r.service._takes.clear()  # a new process: nothing of the recording in memory, all on disk
        conv = await c.until(lambda: getattr(c.board.call(iid), "conversation", None), "the call followed")
        await c.until(lambda: conv.active, "the conversation running again")
        await c.control(iid, "resume")
        assert r.tape.mutes == [(caller, True), (caller, False)], "the hold's silence ends after the restart"
        assert len(r.tape.started) == 1, "Asterisk kept recording: nothing is started again"
        c.pbx.hang_up(leg)
        await c.outcome(iid)
        r.tape.close(caller)
        row = await r.row_of(iid)
        assert [s["kind"] for s in row.spans if s["kind"] != "overtalk"] == ["hold"]
        assert row.agents == ("1001",)


async def test_the_ivr_part_is_its_own_recording_paused_in_a_sensitive_node(tmp_path: Path) -> None:
    from app.domain.ivr_flow import Flow, Node

    flow = Flow(
        name="main",
        start="card",
        default=True,
        nodes={
            "card": Node(
                type="collect", prompt=(PromptText("Card number?"),), into="card", min_digits=4,
                max_digits=4, next="thanks", sensitive=True,
            ),
            "thanks": Node(type="play", prompt=(PromptText("Thank you."),), next="q"),
            "q": Node(type="queue", queue="general"),
        },
    )  # fmt: skip
    async with recording_center(tmp_path, flow=flow, ivr=True) as r:
        c = r.c
        caller = c.pbx.caller_arrives()
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: r.tape.mutes == [(caller, True)], "the IVR recording paused in the card node")
        assert r.tape.started[0][1].endswith(f"{it.id}.ivr.raw")
        for digit in "4111":
            c.pbx.press(caller, digit)
        await c.until(lambda: r.tape.mutes == [(caller, True), (caller, False)], "on again after it")
        await c.until(lambda: r.tape.stopped == [caller], "the IVR part stopped at the queue")
        ivr_row = await c.until(
            lambda: next((x for x in r.rows.rows.values() if x.part == "ivr"), None), "the IVR part's row"
        )
        assert ivr_row.interaction_id == it.id and ivr_row.agents == () and ivr_row.rule == "ivr"
        pauses = [s for s in ivr_row.spans if s["kind"] == "pause"]
        assert len(pauses) == 1 and float(pauses[0]["end_s"]) >= float(pauses[0]["start_s"])
        leg = await c.rings("1001")
        c.pbx.pick_up(leg)
        await c.until(lambda: len(r.tape.started) == 2, "the conversation's own recording")
        assert r.tape.started[1][1].endswith(f"{it.id}.raw")
        c.pbx.hang_up(caller)
        await c.outcome(it.id)
        r.tape.close(caller)
        row = await r.row_of(it.id)
        assert row.part == "conversation" and row.agents == ("1001",)


async def test_a_caller_who_hangs_up_in_the_ivr_leaves_an_ivr_part_the_sweep_keeps(tmp_path: Path) -> None:
    from app.domain.ivr_flow import Flow, Node

    flow = Flow(
        name="main",
        start="card",
        default=True,
        nodes={
            "card": Node(
                type="collect", prompt=(PromptText("Card number?"),), into="card", min_digits=4,
                max_digits=4, next="q", sensitive=True,
            ),
            "q": Node(type="queue", queue="general"),
        },
    )  # fmt: skip
    async with recording_center(tmp_path, flow=flow, ivr=True) as r:
        c = r.c
        caller = c.pbx.caller_arrives()
        it = await c.until(lambda: c.interaction_of(caller), "the interaction")
        await c.until(lambda: r.tape.mutes == [(caller, True)], "paused in the card node")
        c.pbx.hang_up(caller)
        await c.outcome(it.id)
        r.tape.close(caller)  # Asterisk closes the file with the channel
        await r.service.sweep()
        row = await c.until(lambda: next(iter(r.rows.rows.values()), None), "the IVR part's row")
        assert row.part == "ivr" and [s["kind"] for s in row.spans if s["kind"] == "pause"] == ["pause"]
