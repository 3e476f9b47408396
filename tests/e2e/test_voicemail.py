"""Voicemail: a message instead of a wait, kept as a file and a row, e-mailed, made a callback task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import PromptText
from tests.support.audio import best_match, heard_whole, tone_seconds
from tests.support.calls import CALLER_TONE_HZ, HEARD, call_in, ended, prompt_wav, register_agent
from tests.support.mailbox import Mailbox, serving
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually, free_port, free_sip_port

pytestmark = pytest.mark.e2e

SMTP_PORT = free_port()
INTRO = "Leave your message after the tone, then press the pound key."
SAVED = "Your message is saved. Goodbye."
NOT_CALLABLE = "Your message is saved. We cannot call you back at this number."
OFFER = "To leave a message, press {key}."
STACK_CONFIG = {
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{free_sip_port()}"},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 8,
            "wrap_up_s": 1,
            "announce_every_s": 4,
            "voicemail": {"offer": True, "key": "2", "max_s": 30, "max_silence_s": 5},
        }
    ],
    "ivr": {
        "greeting": [{"text": "Press 1.", "lang": "en"}],
        "connecting": [],
        "position": [{"text": "You are number {position} in line.", "lang": "en"}],
        "voicemail_offer": [{"text": OFFER, "lang": "en"}],
        "voicemail_intro": [{"text": INTRO, "lang": "en"}],
        "voicemail_saved": [{"text": SAVED, "lang": "en"}],
        "voicemail_saved_no_callback": [{"text": NOT_CALLABLE, "lang": "en"}],
        "menu": [{"digit": "1", "queue": "general"}],
    },
    "voicemail": {
        "email_to": ["supervisors@example.com"],
        "smtp": {"host": "127.0.0.1", "port": SMTP_PORT, "sender": "lianluo@example.com"},
    },
}


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with serving(SMTP_PORT) as box:
        yield box


def voicemail_of(stack: Stack, interaction_id: Any) -> dict[str, Any] | None:
    rows = stack.query(
        "SELECT id, phone, queue, duration_s, file_path, callback_id, emailed_at, email_error"
        " FROM voicemails WHERE interaction_id = %s",
        interaction_id,
    )
    keys = ("id", "phone", "queue", "duration_s", "file_path", "callback_id", "emailed_at", "email_error")
    return dict(zip(keys, rows[0], strict=True)) if rows else None


def test_no_agent_caller_leaves_a_message_that_becomes_work(
    stack: Stack, lab: PhoneLab, mailbox: Mailbox, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    # Nobody is logged in: instead of "call again later", the caller is asked for a message.
    call, it = call_in(lab, stack, "13700000031", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "voicemail_started", timeout=10)
    call.wait_rx_audio(call.rx_audio_seconds() + 9.0, timeout=20)  # the intro, the beep, then talk
    call.send_dtmf("#")
    call.wait_disconnected(timeout=20)
    assert ended(stack, it["id"])["outcome"] == "voicemail"
    heard = call.recording()
    assert heard_whole(heard, prompt_wav(PromptText(INTRO))) > HEARD, "the caller was not asked for a message"
    assert heard_whole(heard, prompt_wav(PromptText(SAVED))) > HEARD, "the caller was not told it was saved"

    vm = voicemail_of(stack, it["id"])
    assert vm is not None and vm["phone"] == "13700000031" and vm["queue"] == "general"
    audio = Path(vm["file_path"])
    assert audio.is_file() and audio.parent == stack.var_dir / "voicemail"
    # What the caller "said" (their 1 kHz tone) is in the message.
    assert tone_seconds(audio, CALLER_TONE_HZ) > 3.0

    mail = eventually(lambda: mailbox.about("13700000031"), 20, "the voicemail e-mail")
    assert mail["To"] == "supervisors@example.com"
    attachments = list(mail.iter_attachments())
    assert len(attachments) == 1 and attachments[0].get_content_type() == "audio/wav"
    assert attachments[0].get_content() == audio.read_bytes()
    assert eventually(lambda: (voicemail_of(stack, it["id"]) or {})["emailed_at"], 10, "emailed_at set")

    # It is work now: a callback task in the caller's place, pointing at the message.
    rows = stack.query("SELECT source, status, phone, data FROM callbacks WHERE id = %s", vm["callback_id"])
    assert rows and rows[0][:3] == ("voicemail", "waiting", "13700000031")
    assert rows[0][3]["voicemail_id"] == str(vm["id"])
    status, listed = stack.api("GET", "/api/voicemails?new=1")
    assert status == 200 and str(vm["id"]) in [v["id"] for v in listed]
    assert stack.api("DELETE", f"/api/callbacks/{vm['callback_id']}")[0] == 200  # not dialled in this test


def test_a_message_from_a_number_outside_the_dial_plan_is_kept_but_never_called_back(
    stack: Stack, lab: PhoneLab, mailbox: Mailbox, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    # Toll fraud as it was tried: a carrier call whose caller ID is an international dial string
    # leaves a message with nobody logged in, so that an agent's answer dials that number.
    hostile = "9011441234567"
    call, it = call_in(lab, stack, hostile, tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "voicemail_started", timeout=10)
    call.wait_rx_audio(call.rx_audio_seconds() + 9.0, timeout=20)
    call.send_dtmf("#")
    call.wait_disconnected(timeout=20)
    assert ended(stack, it["id"])["outcome"] == "voicemail"
    heard = call.recording()
    told = best_match(heard, prompt_wav(PromptText(NOT_CALLABLE)))
    assert told > HEARD, "the caller was not told that we cannot call back"
    # The usual "saved" prompt starts with the same words: it matches the heard audio only in part.
    assert best_match(heard, prompt_wav(PromptText(SAVED))) < told
    vm = voicemail_of(stack, it["id"])
    assert vm is not None and vm["phone"] == hostile and vm["callback_id"] is None  # kept, no task
    assert stack.query("SELECT id FROM callbacks WHERE phone = %s", hostile) == []
    # Nor through the API, nor to an international premium range.
    for number in (hostile, "+88212345678"):
        status, body = stack.api("POST", "/api/callbacks", {"phone": number, "queue": "general"})
        assert status == 403 and "number" in body["message"], body
    assert stack.query("SELECT id FROM callbacks WHERE phone IN (%s, %s)", hostile, "+88212345678") == []
    eventually(lambda: mailbox.about(hostile), 20, "the voicemail e-mail")  # the message is still work


def test_waiting_caller_presses_2_and_hangs_up_mid_message(
    stack: Stack, lab: PhoneLab, mailbox: Mailbox, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    agent = register_agent(lab, stack, "1001")
    busy, busy_it = call_in(lab, stack, "13700000032", tones[0], tmp_path / "busy.wav")
    stack.wait_event(busy_it["id"], "answered_by_ivr", timeout=10)
    busy.send_dtmf("1")
    agent.wait_incoming(timeout=15).answer(play=tones[1], loop=True)
    stack.wait_event(busy_it["id"], "connected")

    call, it = call_in(lab, stack, "13700000033", tones[0], tmp_path / "waiting.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "announced", timeout=15)
    call.wait_rx_audio(call.rx_audio_seconds() + 4.0, timeout=10)  # the offer is heard out
    call.send_dtmf("2")
    stack.wait_event(it["id"], "voicemail_started", timeout=10)
    call.wait_rx_audio(call.rx_audio_seconds() + 8.0, timeout=20)
    call.hangup()  # no '#': what was said is kept all the same
    assert ended(stack, it["id"])["outcome"] == "voicemail"
    assert heard_whole(call.recording(), prompt_wav(PromptText(OFFER.format(key="2")))) > HEARD
    vm = eventually(lambda: voicemail_of(stack, it["id"]), 10, "the voicemail row")
    assert tone_seconds(Path(vm["file_path"]), CALLER_TONE_HZ) > 1.5
    eventually(lambda: mailbox.about("13700000033"), 20, "the second e-mail")
    stack.api("DELETE", f"/api/callbacks/{vm['callback_id']}")
    busy.hangup()
    ended(stack, busy_it["id"])
