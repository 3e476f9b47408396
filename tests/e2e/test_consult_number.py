"""Consulting a number outside (issue 13, item 5): real Asterisk, real SIP phones.

A caller enters their account in the IVR and reaches Alice; Alice consults a number outside
from her call box in Chromium (a pjsua phone on 127.0.0.2 behind the carrier plays the outside
party). The outside party's
INVITE carries the call's data (X-Lianluo-Interaction, X-Lianluo-Data) like an agent's phone;
Alice talks with them while the caller holds, clicks Complete, and the caller and the outside party
hear each other (each plays its own tone, found in the other's recording).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.support.audio import read_wav, tone_seconds, write_tone
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, sign_in
from tests.support.calls import CALLER_TONE_HZ, call_in, ended, register_agent
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import Stack, eventually, free_sip_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

ALICE_HZ = 1330
OUTSIDE_HZ = 620
ACCOUNT = "62220001"
OUTSIDE = "13900000007"
CARRIER_PORT = free_sip_port()  # a phone here is the outside world
FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-consult-flows-"))
(FLOWS / "main.yaml").write_text(
    json.dumps(
        {
            "name": "main",
            "default": True,
            "start": "account",
            "operator": "general",
            "nodes": {
                "account": {
                    "type": "collect",
                    "into": "account",
                    "prompt": {"text": "Your account number, then the pound key.", "lang": "en"},
                    "min_digits": 4,
                    "max_digits": 12,
                    "timeout_s": 10,
                    "next": "general",
                },
                "general": {"type": "queue", "queue": "general"},
            },
        }
    )
)
STACK_CONFIG = {
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{CARRIER_PORT}", "caller_id": "7000"},
    "routing": {"transfer_numbers": ["139"]},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0}],
    "ivr": {"flows": str(FLOWS), "connecting": []},
}


def heard_from(path: Path, start: float, hz: float) -> float:
    """Seconds of a tone in a recording from `start` (seconds into it) to its end."""
    samples, rate = read_wav(path)
    return tone_seconds((samples[int(start * rate) :], rate), hz)


def test_an_agent_consults_a_number_outside_which_gets_the_calls_data_then_completes(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    outside = lab.phone("127.0.0.2", port=CARRIER_PORT)
    alice = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    caller, it = call_in(lab, stack, "13700000171", tones[0], tmp_path / "caller.wav")
    started = time.monotonic() - 0.1  # the caller's recording starts with the answer
    iid = str(it["id"])
    stack.wait_event(iid, "answered_by_ivr", timeout=10)
    caller.send_dtmf(ACCOUNT + "#")
    assert stack.wait_event(iid, "collected", timeout=20)["value"] == ACCOUNT
    alice_leg = alice.wait_incoming(timeout=15)
    assert parse_qs(alice_leg.header("X-Lianluo-Data") or "") == {"account": [ACCOUNT]}
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", ALICE_HZ, 90), loop=True)
    stack.wait_event(iid, "connected", timeout=10)

    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US", viewport={"width": 1100, "height": 900}).new_page()
            sign_in(page, stack, "1001")
            expect(page.locator("#call")).to_be_visible()
            page.fill("#call-number", "13800000000")  # not an allowed prefix: refused, in the box
            page.click("#call-consult")
            expect(page.locator("#call-message")).to_contain_text("not allowed")
            page.fill("#call-number", OUTSIDE)
            page.click("#call-consult")
            expect(page.locator("#call-consult-status")).to_contain_text(f"Ringing {OUTSIDE}")
            consult_from_the_box(stack, page, outside, caller, alice_leg, iid, started, tmp_path)
        finally:
            chromium.close()


def consult_from_the_box(
    stack: Stack,
    page: Any,
    outside: Phone,
    caller: Call,
    alice_leg: Call,
    iid: str,
    started: float,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    far = outside.wait_incoming(timeout=15)
    assert (far.invite or "").splitlines()[0].startswith(f"INVITE sip:{OUTSIDE}@")
    assert far.header("X-Lianluo-Interaction") == iid
    assert parse_qs(far.header("X-Lianluo-Data") or "") == {"account": [ACCOUNT]}
    assert far.header("X-Lianluo-Consult") == "1001"
    assert far.header("X-Lianluo-Queue") is None, "a carrier leg carries the call's data, no more"
    far.answer(
        play=write_tone(tmp_path / "outside.wav", OUTSIDE_HZ, 90), record=tmp_path / "far.wav", loop=True
    )
    stack.wait_event(iid, "consult_answered", timeout=10)
    expect(page.locator("#call-consult-status")).to_contain_text(f"{OUTSIDE} is on the line")
    # Consulting: Alice and the outside party talk; the caller holds.
    far_from = far.rx_audio_seconds()
    far.wait_rx_audio(far_from + 2.5, timeout=15)
    assert not caller.is_disconnected, "the caller waits while Alice consults"

    page.click("#call-complete")
    alice_leg.wait_disconnected(timeout=10)
    caller_at = time.monotonic() - started
    far_at = far.rx_audio_seconds()
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3, timeout=15)
    far.wait_rx_audio(far_at + 3, timeout=15)
    far.hangup()
    caller.wait_disconnected(timeout=10)
    done = ended(stack, iid)
    assert done["outcome"] == "completed"
    kinds = [k for k, _ in stack.events(iid)]
    for kind in ("control_consult", "consult_answered", "control_complete", "transferred"):
        assert kind in kinds, kind
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice free again")

    far_audio, rate = read_wav(far.recording())
    consulting = far_audio[int(far_from * rate) : int(far_at * rate)]
    assert tone_seconds((consulting, rate), ALICE_HZ) > 1.5, "the outside party heard Alice while consulting"
    assert heard_from(far.recording(), far_at, CALLER_TONE_HZ) > 2.0, "the outside party heard the caller"
    assert heard_from(caller.recording(), caller_at, OUTSIDE_HZ) > 2.0, "the caller heard the outside party"
    assert heard_from(caller.recording(), caller_at + 0.5, ALICE_HZ) < 0.3, "Alice had left the call"
