"""The recording notice on calls we place (callbacks, the dialer's progressive, predictive and
preview calls, agents' nailed-up lines), against the fake PBX: no Asterisk.

What a person would notice: the customer hears the notice in their language once they answer,
as they are joined to the agent, never before the recording started; the agent hears it too
(the same words on their own channel, at the same moment) with their microphone off until it
ends; a machine, a call not recorded, or a rule that says `consent: false` hears nothing of it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.callbacks.attempt import CallbackAttempt
from app.calls.runtime import Runtime
from app.config import CallbackSettings, CampaignSettings, CarrierSettings, PromptText
from app.dialer.calls import DialerCall, PreviewCall, Reach
from app.dialer.nailed import NailedLines
from app.domain.callback import Callback, CallbackSource, RetryPolicy
from app.domain.campaign import CallResult, DialAttempt, Lead
from app.domain.interaction import Interaction, Outcome
from app.domain.outbound import DialPlan, OutboundPolicy
from app.domain.recording import Mode, RecordingPolicy, Rule
from app.domain.routing import Decision
from tests.support.fake_center import FakeVoice
from tests.support.fake_pbx import now
from tests.unit.test_recording_calls import Rec, recording_center

EN, ZH = "sound:consent-en", "sound:consent-zh"
GREETING = (PromptText("Test center calling you back."),)


@contextlib.asynccontextmanager
async def placing(
    tmp_path: Path, policy: RecordingPolicy | None = None
) -> AsyncIterator[tuple[Rec, Runtime]]:
    """The recording test center, with the notice in English and Mandarin, and a runtime for the
    calls we place (recorded by the same service). Playbacks end when the test says so."""
    async with recording_center(tmp_path, policy) as rec:
        rec.service.consent_uris = [
            (PromptText("This call may be recorded.", "en"), EN),
            (PromptText("您的通话可能会被录音。", "zh"), ZH),
        ]
        c = rec.c
        c.pbx.hold_playbacks = True
        runtime = Runtime(c.pbx, c.writer, c.board, now, OutboundPolicy(DialPlan()), recorder=rec.service)
        yield rec, runtime


def notice_played(rec: Rec) -> list[tuple[str, tuple[str, ...]]]:
    return [(where, uris) for where, uris in rec.c.pbx.played if EN in uris or ZH in uris]


def kinds(rec: Rec, call: Any) -> list[str]:
    return list(rec.c.store.kinds(call.it.id)) + [e.kind for e in call.it.pending]


def customer_ringing(rec: Rec) -> str | None:
    """The customer's phone ringing through the carrier trunk."""
    return next(
        (
            cid
            for cid, leg in rec.c.pbx.legs.items()
            if leg.endpoint.endswith("@carrier") and not leg.in_stasis
        ),
        None,
    )


async def notice_ends(rec: Rec) -> None:
    """The notice (the one playback left) plays to its end."""
    rec.c.pbx.finish_playbacks()


# -- callbacks ---------------------------------------------------------------------


def callback_attempt(rec: Rec, runtime: Runtime, language: str | None = None) -> CallbackAttempt:
    cb = Callback(
        str(uuid.uuid4()),
        "13900001111",
        "general",
        place_at=now() - timedelta(minutes=5),
        requested_at=now() - timedelta(minutes=5),
        source=CallbackSource.IVR,
        language=language,
    )
    it = Interaction(
        str(uuid.uuid4()), f"callback-{uuid.uuid4()}", cb.phone, "7000", now(), direction="outbound"
    )
    call = runtime.call(it, "callback")

    async def save(_: Callback) -> None:
        return None

    attempt = CallbackAttempt(
        call,
        cb,
        desk=rec.c.desk,
        line=rec.c.line,
        room=rec.c.inbound.room,
        voice=FakeVoice(),  # type: ignore[arg-type]
        carrier=CarrierSettings(),
        center_name="Test center",
        rules=CallbackSettings(),
        policy=RetryPolicy(),
        save_callback=save,
        languages=("en", "zh"),
        greeting=GREETING,
    )
    rec.c.board.launch(call, attempt.run)
    return attempt


async def test_a_callbacks_customer_hears_the_greeting_then_the_notice_with_the_agent_listening_muted(
    tmp_path: Path,
) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        attempt = callback_attempt(rec, runtime, language="zh")
        call = attempt.call
        agent = await c.rings("PJSIP/1001")
        c.pbx.pick_up(agent)
        await c.until(lambda: (agent, ("sound:callback_whisper",)) in c.pbx.played, "the agent's whisper")
        await notice_ends(rec)  # the whisper
        customer = await c.until(lambda: customer_ringing(rec), "the customer's phone")
        c.pbx.pick_up(customer)
        await c.until(lambda: [pb for pb, ch in c.pbx.playing.items() if ch == customer], "the greeting")
        assert c.pbx.bridge_of(customer) is None, "the greeting is the customer's alone"
        assert not notice_played(rec), "nothing of the notice yet"
        assert len(c.pbx.playing) == 1
        c.pbx.finish_playbacks()  # the greeting
        await c.until(lambda: notice_played(rec), "the notice")
        bridge = c.pbx.bridge_of(customer)
        assert bridge is not None and c.pbx.bridge_of(agent) == bridge, "joined at once: no dead air"
        assert notice_played(rec) == [(customer, (ZH,)), (agent, (ZH,))], "both, in their language"
        assert agent in c.pbx.muted, "the agent cannot talk over it"
        assert rec.tape.started and rec.tape.started[0][0] == customer, "recorded from before the notice"
        await c.until(lambda: "recording_notice" in kinds(rec, call), "the notice in the record")
        await notice_ends(rec)
        await c.until(lambda: agent not in c.pbx.muted, "the agent's microphone on again")
        assert kinds(rec, call).index("recording_started") < kinds(rec, call).index("recording_notice")
        c.pbx.hang_up(customer)
        rec.tape.close(customer)  # Asterisk closes the file
        assert await c.outcome(call.it.id) is Outcome.COMPLETED


async def test_a_callback_queue_that_records_nothing_plays_no_notice(tmp_path: Path) -> None:
    policy = RecordingPolicy(queues={"general": Rule(Mode.NONE)})
    async with placing(tmp_path, policy) as (rec, runtime):
        c = rec.c
        attempt = callback_attempt(rec, runtime)
        agent = await c.rings("PJSIP/1001")
        c.pbx.pick_up(agent)
        await c.until(lambda: c.pbx.playing, "the whisper")
        await notice_ends(rec)
        customer = await c.until(lambda: customer_ringing(rec), "the customer's phone")
        c.pbx.pick_up(customer)
        await c.until(lambda: customer in c.pbx.playing.values(), "the greeting")
        await notice_ends(rec)
        await c.until(lambda: c.pbx.bridge_of(customer) == c.pbx.bridge_of(agent) is not None, "joined")
        await c.until(lambda: "recording_skipped" in kinds(rec, attempt.call), "the recorder's decision")
        assert not notice_played(rec) and agent not in c.pbx.muted
        c.pbx.hang_up(customer)


# -- the dialer --------------------------------------------------------------------


class Attempts:
    """What a dialer call asks of the database: the customer (none known), its attempt's row."""

    def __init__(self, rec: Rec) -> None:
        self.rec = rec
        self.saved: list[DialAttempt] = []

    async def customer_by_phone(self, phone: str) -> None:
        return None

    async def save_dial_attempt(self, attempt: DialAttempt) -> None:
        self.saved.append(attempt)


def dialer_call(
    rec: Rec,
    runtime: Runtime,
    *,
    campaign: str = "renewals",
    language: str | None = None,
    lines: NailedLines | None = None,
    preview: bool = False,
) -> DialerCall:
    settings = CampaignSettings(campaign, "general", connect_window_s=3.0)
    lead = Lead(1, "13900002222", language=language)
    attempt = DialAttempt(str(uuid.uuid4()), campaign, 1, lead.phone, "carrier", now())
    it = Interaction(str(uuid.uuid4()), f"dial-{attempt.id}", lead.phone, "7000", now(), direction="outbound")
    call = runtime.call(it, "dialer")
    kind = PreviewCall if preview else DialerCall
    dc = kind(
        call,
        settings,
        lead,
        attempt,
        line=rec.c.line,
        room=rec.c.inbound.room,
        voice=FakeVoice(),  # type: ignore[arg-type]
        reach=Reach("Test center", "7000", ("en", "zh")),
        store=Attempts(rec),  # type: ignore[arg-type]
        lines=lines,
    )
    if isinstance(dc, PreviewCall):
        rec.c.desk.reserve_direct("1001", it.id, "general")
        dc.decision = Decision(it.id, "general", ("1001",), "preview")
    rec.c.board.launch(call, dc.run)
    return dc


async def placed_and_answered(rec: Rec, dc: DialerCall, amd: str = "HUMAN") -> str:
    c = rec.c
    await dc.dial_customer(amd=True)
    customer = await c.until(lambda: customer_ringing(rec), "the customer's phone")
    c.pbx.pick_up(customer, "dialer", dc.attempt.id, amd)
    return str(customer)


async def test_a_campaign_call_joins_the_agent_at_once_and_plays_the_notice_to_both(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        dc = dialer_call(rec, runtime, language="zh")
        customer = await placed_and_answered(rec, dc)
        agent = await c.rings("PJSIP/1001")
        assert not notice_played(rec), "no notice while nobody is there to talk after it"
        c.pbx.pick_up(agent)
        await c.until(lambda: notice_played(rec), "the notice")
        bridge = c.pbx.bridge_of(customer)
        assert bridge is not None and c.pbx.bridge_of(agent) == bridge
        assert notice_played(rec) == [(customer, (ZH,)), (agent, (ZH,))]
        assert agent in c.pbx.muted
        await c.until(lambda: dc.attempt.result is CallResult.CONNECTED, "connected: not an abandoned call")
        await notice_ends(rec)
        await c.until(lambda: agent not in c.pbx.muted, "the agent's microphone on again")
        c.pbx.hang_up(customer)
        rec.tape.close(customer)  # Asterisk closes the file
        assert await c.outcome(dc.call.it.id) is Outcome.COMPLETED


async def test_a_machine_gets_no_notice(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        dc = dialer_call(rec, runtime)
        dc.campaign = CampaignSettings("renewals", "general", on_machine="message")
        customer = await placed_and_answered(rec, dc, amd="MACHINE")
        await c.until(lambda: c.pbx.playing, "the machine message")
        assert [uris for ch, uris in c.pbx.played if ch == customer] == [
            tuple(f"said:{t.text}" for t in dc.campaign.machine_message)
        ]
        await notice_ends(rec)
        await c.until(lambda: dc.call.it.outcome is Outcome.CUSTOMER_UNREACHED, "the machine call over")
        assert not notice_played(rec) and not rec.tape.started


async def test_a_campaign_whose_rule_says_consent_false_plays_no_notice(tmp_path: Path) -> None:
    policy = RecordingPolicy(campaigns={"renewals": Rule(Mode.ALL, consent=False)})
    async with placing(tmp_path, policy) as (rec, runtime):
        c = rec.c
        dc = dialer_call(rec, runtime)
        customer = await placed_and_answered(rec, dc)
        agent = await c.rings("PJSIP/1001")
        c.pbx.pick_up(agent)
        await c.until(lambda: rec.tape.started, "recorded all the same")
        assert c.pbx.bridge_of(customer) == c.pbx.bridge_of(agent)
        assert not notice_played(rec) and agent not in c.pbx.muted
        c.pbx.hang_up(customer)
        rec.tape.close(customer)  # Asterisk closes the file


async def test_the_agent_acting_during_the_notice_stops_it_and_has_their_microphone(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        dc = dialer_call(rec, runtime)
        await placed_and_answered(rec, dc)
        agent = await c.rings("PJSIP/1001")
        c.pbx.pick_up(agent)
        await c.until(lambda: notice_played(rec), "the notice")
        conv = c.conversation(dc.call.it.id)
        await c.until(lambda: conv.active, "the conversation taking requests")
        assert conv.view()["notice"] is True
        await c.control(dc.call.it.id, "hold")
        assert agent not in c.pbx.muted and not conv.view()["notice"]
        assert not c.pbx.playing, "the notice stopped, for both"


async def test_a_preview_call_plays_the_notice_once_the_customer_answers(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        dc = dialer_call(rec, runtime, preview=True)
        agent = await c.rings("PJSIP/1001")
        c.pbx.pick_up(agent)
        customer = await c.until(lambda: customer_ringing(rec), "the customer's phone")
        assert not notice_played(rec)
        c.pbx.pick_up(customer, "dialer", dc.attempt.id, "NOAMD")
        await c.until(lambda: notice_played(rec), "the notice")
        assert notice_played(rec) == [(customer, (EN,)), (agent, (EN,))]
        assert c.pbx.bridge_of(customer) == c.pbx.bridge_of(agent) is not None
        assert agent in c.pbx.muted
        c.pbx.hang_up(customer)
        rec.tape.close(customer)  # Asterisk closes the file


# -- nailed-up lines ---------------------------------------------------------------


async def test_on_a_nailed_line_the_notice_plays_and_the_line_goes_back_unmuted(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        lines = NailedLines(runtime, c.desk, lambda agent: agent.id == "1001")
        lines.start()
        try:
            c.desk.set_state("1002", "not_ready", "break")  # the customer can only go to 1001
            c.desk.set_state("1001", "not_ready", "break")
            c.desk.set_state("1001", "ready", None)
            line = await c.until(lambda: c.pbx.ringing("PJSIP/1001"), "the agent's line called")
            c.pbx.pick_up(line)
            await c.until(lambda: lines.status("1001") == "connected", "the line up")
            hold = c.pbx.bridge_of(line)
            c.pbx.finish_playbacks()  # the line's soft tone
            dc = dialer_call(rec, runtime, lines=lines)
            customer = await placed_and_answered(rec, dc)
            await c.until(lambda: notice_played(rec), "the notice")
            bridge = c.pbx.bridge_of(customer)
            assert c.pbx.bridge_of(line) == bridge != hold, "put through on the line: nothing rang"
            assert notice_played(rec) == [(customer, (EN,)), (line, (EN,))] and line in c.pbx.muted
            c.pbx.hang_up(customer)  # the customer leaves during the notice
            rec.tape.close(customer)  # Asterisk closes the file
            await c.until(lambda: c.pbx.bridge_of(line) == hold, "the line back in its holding bridge")
            await c.until(lambda: line not in c.pbx.muted, "and the agent heard again on it")
        finally:
            await lines.stop()
