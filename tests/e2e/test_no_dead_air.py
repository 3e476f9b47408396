"""No dead air before a person answers (issue 17, item 1): from the moment the center answers
until the agent picks up, the caller hears something (a prompt, the recording notice, the ring of
the agent's phone) except while it is their turn to press a key.

The center is set up like the demo: a menu, every call recorded with the notice in English and
Mandarin, an idle agent who picks up the way a person does, after a few rings. What counts is the
caller's own recording: no quiet stretch longer than 1 s outside their turn.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio import read_wav, write_tone, write_wav
from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

MENU = "For general questions, press 1."
AGENT_HZ = 700
FRAME_S = 0.02
LONGEST_QUIET_S = 1.0
STACK_CONFIG = {
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": "general", "ring_timeout_s": 20, "wrap_up_s": 0, "announce_every_s": 0}],
    "ivr": {"greeting": [{"text": MENU, "lang": "en"}], "menu": [{"digit": "1", "queue": "general"}]},
    "recording": {
        "enabled": True,
        "default": {"mode": "all", "retention_days": 30},
        "consent_prompt": [
            {"text": "This call may be recorded for quality and training.", "lang": "en"},
            {"text": "您的通话可能会被录音，用于服务质量和培训。", "lang": "zh"},
        ],
    },
}


def quiet_stretches(
    samples: np.ndarray, rate: int, start_s: float, end_s: float
) -> list[tuple[float, float]]:
    """(start, length) in seconds of each stretch with nothing to hear between start_s and end_s."""
    frame = round(FRAME_S * rate)
    part = samples[round(start_s * rate) : round(end_s * rate)]
    n = len(part) // frame
    rms = np.sqrt(np.mean(part[: n * frame].reshape(n, frame) ** 2, axis=1))
    heard = [*(rms > 0.003).tolist(), True]
    found, began = [], None
    for i, h in enumerate(heard):
        if not h and began is None:
            began = i
        elif h and began is not None:
            found.append((start_s + began * FRAME_S, (i - began) * FRAME_S))
            began = None
    return found


@pytest.mark.parametrize("picks_up_after_s", [3.0, 14.0])
def test_the_caller_hears_no_dead_air_until_the_agent_answers(
    stack: Stack, lab: PhoneLab, tmp_path: Path, picks_up_after_s: float
) -> None:
    """Picked up within the notice (3 s) and well after it (14 s: the notice is about 9 s)."""
    alice = register_agent(lab, stack, "1001")
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(8000 * 60))
    caller, it = call_in(lab, stack, f"1370000009{int(picks_up_after_s) % 10}", quiet, tmp_path / "heard.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    assert caller.confirmed_at is not None
    # Times on the caller's recording, which runs on the wall clock from the answer (Asterisk
    # sends no audio while it plays nothing: the received audio's own count would skip those).
    heard_from = caller.confirmed_at

    def now() -> float:
        return time.monotonic() - heard_from

    stack.wait_event(it["id"], "prompt_played", timeout=15)  # the menu has ended: the caller's turn
    turn_starts = now()
    time.sleep(1.0)  # the caller takes a second to press 1
    key_at = now()
    caller.send_dtmf("1")
    ringing = alice.wait_incoming(timeout=10)
    rang_at = now()
    time.sleep(picks_up_after_s)  # a person picking up after some rings
    answered_at = now()
    ringing.answer(play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 30), loop=True)
    stack.wait_event(it["id"], "connected", timeout=15)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3, timeout=30)
    caller.hangup()
    caller.wait_disconnected(timeout=10)
    ended(stack, it["id"])

    rows = stack.query(
        "SELECT kind, at FROM interaction_events WHERE interaction_id = %s ORDER BY id", it["id"]
    )
    print("\n".join(f"  {(at - rows[0][1]).total_seconds():6.2f} {kind}" for kind, at in rows))
    samples, rate = read_wav(caller.recording())
    dead = [
        (at, length)
        for at, length in quiet_stretches(samples, rate, 0.3, answered_at)
        # The caller's turn: the quiet after the menu's last word until their key.
        if length > LONGEST_QUIET_S
        and not (at <= key_at and turn_starts <= at + length <= key_at + LONGEST_QUIET_S)
    ]
    print(
        f"\npicked up {picks_up_after_s:.0f} s after ringing: key at {key_at:.2f} s, phone rang at"
        f" {rang_at:.2f} s, answered at {answered_at:.2f} s; quiet stretches over"
        f" {LONGEST_QUIET_S} s outside the caller's turn: {dead}"
    )
    assert dead == [], f"dead air (start s, length s): {dead}"
