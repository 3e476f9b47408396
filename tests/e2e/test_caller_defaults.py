"""Caller-friendly defaults on the real stack: a caller who says nothing is told so and reaches a
person in time; a queue nobody is logged in to takes a message; silence is not a message.

Each check is what the caller would notice: the prompt found in the audio their phone recorded,
the agent's phone ringing, and no voicemail or callback left behind for a silent line.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.config import PromptText
from tests.support.audio import heard_whole, write_wav
from tests.support.calls import HEARD, call_in, ended, prompt_wav, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually, free_sip_port

pytestmark = pytest.mark.e2e

MENU = "For general questions, press 1. For technical support, press 2."
NOT_HEARD = "Sorry, I didn't hear you."
NOBODY = "Sorry, nobody can take your call right now."
EMPTY = "Sorry, we did not hear a message. Goodbye."
STACK_CONFIG = {
    # The center can dial out: a message it kept would become a callback.
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{free_sip_port()}"},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [
        {"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0},
        # Nobody has the skill, and it offers no key for messages: still, no caller is sent away.
        {"name": "tech", "skills": [{"skill": "tech", "min_level": 4}], "wrap_up_s": 0},
    ],
    "ivr": {
        "greeting": [{"text": MENU, "lang": "en"}],
        "connecting": [],
        "no_input": [{"text": NOT_HEARD, "lang": "en"}],
        "no_agent_voicemail": [{"text": NOBODY, "lang": "en"}],
        "voicemail_empty": [{"text": EMPTY, "lang": "en"}],
        "menu": [{"digit": "1", "queue": "general"}, {"digit": "2", "queue": "tech"}],
        "digit_timeout_s": 6,
        "attempts": 3,
    },
}


def silence(path: Path, seconds: float) -> Path:
    return write_wav(path, np.zeros(round(seconds * 8000)))


def test_a_caller_who_says_nothing_hears_so_and_reaches_a_person_within_30_s(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    alice = register_agent(lab, stack, "1001")
    quiet = silence(tmp_path / "quiet.wav", 60)
    caller, it = call_in(lab, stack, "13700000081", quiet, tmp_path / "heard.wav")
    assert caller.confirmed_at is not None
    # The menu (about 5 s), 6 s for a key and "I didn't hear you" (2 s) make a try of about 13 s:
    # a third would end past 30 s, so the caller goes to a person after the second.
    left = 30.0 - (time.monotonic() - caller.confirmed_at)
    ringing = alice.wait_incoming(timeout=left)
    ringing.answer()
    stack.wait_event(it["id"], "connected", timeout=10)
    kinds = [k for k, _ in stack.events(it["id"])]
    assert kinds.count("no_input") == 2, kinds
    caller.hangup()
    caller.wait_disconnected(timeout=10)
    assert heard_whole(caller.recording(), prompt_wav(PromptText(NOT_HEARD))) > HEARD, "not told so"
    row = ended(stack, it["id"])
    assert (row["agent_id"], row["outcome"]) == ("1001", "completed")


def test_a_queue_nobody_serves_takes_a_message_and_silence_is_not_kept(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    quiet = silence(tmp_path / "quiet.wav", 60)
    caller, it = call_in(lab, stack, "13700000082", quiet, tmp_path / "heard.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("2")
    stack.wait_event(it["id"], "voicemail_started", timeout=20)
    # The intro, the beep, and then three seconds of a silent line before the caller gives up.
    caller.wait_rx_audio(caller.rx_audio_seconds() + 9.0, timeout=20)
    caller.send_dtmf("#")
    stack.wait_event(it["id"], "voicemail_empty", timeout=20)
    caller.wait_disconnected(timeout=20)
    heard = caller.recording()
    assert heard_whole(heard, prompt_wav(PromptText(NOBODY))) > HEARD, "not told that nobody can answer"
    assert heard_whole(heard, prompt_wav(PromptText(EMPTY))) > HEARD, "not told that no message was heard"
    row = ended(stack, it["id"])
    assert row["outcome"] == "no_input"
    assert stack.query("SELECT id FROM voicemails WHERE interaction_id = %s", it["id"]) == []
    assert eventually(
        lambda: stack.query("SELECT count(*) FROM callbacks WHERE origin_interaction_id = %s", it["id"]),
        5,
        "the callback count",
    ) == [(0,)]
