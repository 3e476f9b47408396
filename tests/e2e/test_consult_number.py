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

from app.config import PromptText
from tests.support.audio import duration, read_wav, tone_seconds, write_tone
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, sign_in
from tests.support.calls import CALLER_TONE_HZ, call_in, ended, prompt_wav, register_agent
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import Stack, eventually, free_sip_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

ALICE_HZ = 1330
OUTSIDE_HZ = 620
ACCOUNT = "62220001"
ASK_ACCOUNT = "Your account number, then the pound key."
OUTSIDE = "13900000007"
TRIES = 50
CARRIER_PORT = free_sip_port()  # a phone here is the outside world
FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-consult-flows-"))
(FLOWS / "main.yaml").write_text(
    json.dumps(
        {
            "name": "main",
            "default": True,
            "start": "menu",
            "operator": "general",
            "nodes": {
                "menu": {
                    "type": "menu",
                    "prompt": {"text": "For your account, press 2. Otherwise, press 1.", "lang": "en"},
                    "options": {"1": "general", "2": "account"},
                    "timeout_s": 10,
                },
                "account": {
                    "type": "collect",
                    "into": "account",
                    "prompt": {"text": ASK_ACCOUNT, "lang": "en"},
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
    "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li"}],
    # The carrier here is meant to carry the call's data; the timing test consults the same
    # number TRIES times.
    "outbound": {"per_number": {"per_hour": 500, "per_day": 5000}, "call_data": True},
    "queues": [{"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0}],
    "ivr": {"flows": str(FLOWS), "connecting": []},
}


def enter_account(stack: Stack, caller: Call, iid: str) -> None:
    """The caller picks "account" in the menu, hears the question out, then types it."""
    caller.send_dtmf("2")
    stack.wait_event(iid, "dtmf", timeout=10)
    heard = caller.rx_audio_seconds()
    asked = prompt_wav(PromptText(ASK_ACCOUNT, "en"))
    eventually(asked.exists, 20, "the question synthesised")
    caller.wait_rx_audio(heard + duration(asked), timeout=duration(asked) + 15)
    caller.send_dtmf(ACCOUNT + "#")


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
    enter_account(stack, caller, iid)
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def test_how_fast_a_consulted_number_rings_beside_a_consulted_agent(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    """Consult -> the outside party's INVITE (the outbound policy, the call's data, the carrier
    trunk), beside a consultation of an agent's desk phone on the same call, TRIES tries each,
    alternating."""
    outside = lab.phone("127.0.0.2", port=CARRIER_PORT)
    alice = register_agent(lab, stack, "1001")
    bob = register_agent(lab, stack, "1002")
    eventually(
        lambda: all(stack.agent_state(a)["state"] == "ready" for a in ("1001", "1002")), 10, "both ready"
    )
    caller, it = call_in(lab, stack, "13700000172", tones[0], tmp_path / "caller.wav")
    iid = str(it["id"])
    stack.wait_event(iid, "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")  # no account: the timing needs none
    alice.wait_incoming(timeout=15).answer(play=tones[1], loop=True)
    stack.wait_event(iid, "connected", timeout=10)

    def consult(target: str) -> None:
        status, result = stack.api("POST", f"/api/calls/{iid}/consult", {"target": target})
        assert status == 200, result

    def cancel() -> None:
        """The consultation ends, as the event log says: each try waits for the one before to be
        over (a pjsua lab closes a call's sockets only some 500 ms later, and runs out of them
        when calls come faster than that)."""
        ended_before = sum(1 for k, _ in stack.events(iid) if k == "consult_ended")
        status, result = stack.api("POST", f"/api/calls/{iid}/cancel", {})
        assert status == 200, result
        eventually(
            lambda: sum(1 for k, _ in stack.events(iid) if k == "consult_ended") > ended_before,
            10,
            "the consultation's end in the event log",
        )

    number_ms: list[float] = []
    agent_ms: list[float] = []
    for _ in range(TRIES):
        asked = time.monotonic()
        consult(f"number:{OUTSIDE}")
        far = outside.wait_incoming(timeout=10)
        number_ms.append((time.monotonic() - asked) * 1000)
        assert far.header("X-Lianluo-Interaction") == iid and far.header("X-Lianluo-Data") is None
        cancel()
        far.wait_disconnected(timeout=10)

        asked = time.monotonic()
        consult("agent:1002")
        leg = bob.wait_incoming(timeout=10)
        agent_ms.append((time.monotonic() - asked) * 1000)
        cancel()
        leg.wait_disconnected(timeout=10)
        eventually(lambda: stack.agent_state("1002")["state"] == "ready", 10, "Bob ready")
    caller.hangup()
    ended(stack, iid)
    lines = [
        f"{name}: p50 {percentile(v, 50):.0f} ms, p95 {percentile(v, 95):.0f} ms (n={len(v)})"
        for name, v in (
            ("consult a number -> its INVITE arrives", number_ms),
            ("consult an agent -> their phone rings", agent_ms),
        )
    ]
    print("\n" + "\n".join(lines))
    assert percentile(number_ms, 95) < 1000, lines
