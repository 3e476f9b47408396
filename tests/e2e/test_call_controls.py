"""Call controls on a live call: hold, keys, consult transfer, blind transfer, conference, hang-up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from tests.support.audio import read_wav, tone_seconds, write_tone
from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import Stack, eventually, free_sip_port

pytestmark = pytest.mark.e2e

# The agents' "voices": tones the hold music does not hold (it has notes at 440 Hz).
ALICE_HZ = 1330
SECOND_AGENT_HZ = 620
CARRIER_PORT = free_sip_port()  # a phone here is the outside world transfers reach
STACK_CONFIG = {
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{CARRIER_PORT}", "caller_id": "7000"},
    "routing": {"transfer_numbers": ["139"]},
    "agents": [
        {"id": "1001", "name": "Alice Wang"},
        {"id": "1002", "name": "Bob Li"},
        {"id": "1003", "name": "Chen Jing"},
    ],
    "queues": [
        {"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0},
        {"name": "billing", "members": ["1003"], "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0},
    ],
    "ivr": {"connecting": [], "greeting": [{"text": "Press 1.", "lang": "en"}]},
}


def control(stack: Stack, it: dict[str, Any], action: str, **body: str) -> dict[str, Any]:
    status, result = stack.api("POST", f"/api/calls/{it['id']}/{action}", body)
    assert status == 200, (action, status, result)
    return cast(dict[str, Any], result)


# When each caller's recording started (media up): positions in it are wall-clock offsets,
# since RTP counters restart whenever Asterisk renegotiates the caller's media.
STARTED: dict[int, float] = {}


def heard(call: Call, start: float, end: float, hz: float) -> float:
    """Seconds of a tone the caller heard between two points of their call."""
    samples, rate = read_wav(call.recording())
    return tone_seconds((samples[int(start * rate) : int(end * rate)], rate), hz)


def both_heard(call: Call, start: float, end: float, tones: tuple[float, float]) -> bool:
    """Both voices at once (a conference): each tone carries real energy in the mix."""
    samples, rate = read_wav(call.recording())
    part = samples[int(start * rate) : int(end * rate)].astype(float)
    spectrum = np.abs(np.fft.rfft(part))
    freqs = np.fft.rfftfreq(len(part), 1 / rate)
    peak = [spectrum[(freqs > hz - 15) & (freqs < hz + 15)].max() for hz in tones]
    return bool(min(peak) > 0.2 * spectrum.max())


def mark(call: Call, seconds: float) -> tuple[float, float]:
    """Let `seconds` of the call go by; (start, end) positions in the caller's recording."""
    start = time.monotonic() - STARTED[id(call)]
    call.wait_rx_audio(call.rx_audio_seconds() + seconds, timeout=seconds + 10)
    return start, time.monotonic() - STARTED[id(call)]


def answer_first_call(
    lab: PhoneLab, stack: Stack, tones: tuple[Path, Path], tmp_path: Path, ani: str
) -> tuple[Phone, Call, Call, dict[str, Any]]:
    alice = register_agent(lab, stack, "1001")
    caller, it = call_in(lab, stack, ani, tones[0], tmp_path / f"{ani}.wav")
    STARTED[id(caller)] = time.monotonic() - 0.1  # call_in returns just after the answer
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    alice_leg = alice.wait_incoming(timeout=15)
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", ALICE_HZ, 60), loop=True)
    stack.wait_event(it["id"], "connected")
    return alice, alice_leg, caller, it


def test_hold_keys_and_consult_transfer(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    _alice, alice_leg, caller, it = answer_first_call(lab, stack, tones, tmp_path, "13700000061")
    talking = mark(caller, 2.0)

    control(stack, it, "hold")
    caller.wait_rx_audio(caller.rx_audio_seconds() + 0.5)
    on_hold = mark(caller, 3.0)
    result = control(stack, it, "resume")
    assert result["call"]["held"] is False
    caller.wait_rx_audio(caller.rx_audio_seconds() + 0.5)
    resumed = mark(caller, 2.0)

    control(stack, it, "dtmf", digits="42")
    assert caller.wait_dtmf(2, timeout=10) == "42", "the caller's phone got the agent's keys"

    # Consult: the caller holds while Bob is asked, then stays with Bob.
    bob_tone = write_tone(tmp_path / "bob.wav", SECOND_AGENT_HZ, 60)
    bob = register_agent(lab, stack, "1002")
    eventually(lambda: stack.agent_state("1002")["state"] == "ready", 10, "Bob ready")
    assert control(stack, it, "consult", target="agent:1002")["state"] == "ringing"
    bob_leg = bob.wait_incoming(timeout=15)
    assert bob_leg.header("X-Lianluo-Consult") == "1001"
    bob_leg.answer(play=bob_tone, loop=True)
    stack.wait_event(it["id"], "consult_answered", timeout=10)
    alice_leg.wait_rx_audio(alice_leg.rx_audio_seconds() + 1.0)
    control(stack, it, "complete")
    alice_leg.wait_disconnected(timeout=10)
    with_bob = mark(caller, 2.0)
    assert stack.agent_state("1001")["state"] == "ready", "Alice is free again"
    assert stack.agent_state("1002")["state"] == "on_call"

    caller.hangup()
    done = ended(stack, it["id"])
    assert done["agent_id"] == "1002" and done["outcome"] == "completed"
    kinds = [k for k, _ in stack.events(it["id"])]
    for kind in (
        "control_hold",
        "control_resume",
        "control_dtmf",
        "control_consult",
        "consult_answered",
        "transferred",
        "control_complete",
    ):
        assert kind in kinds, kind

    assert heard(caller, *talking, ALICE_HZ) > 1.5, "the caller heard Alice before the hold"
    assert heard(caller, *on_hold, ALICE_HZ) < 0.3, "the caller heard Alice while on hold"
    assert heard(caller, *resumed, ALICE_HZ) > 1.5, "the caller did not hear Alice after resume"
    assert heard(caller, *with_bob, SECOND_AGENT_HZ) > 1.5, "the caller did not hear Bob after the transfer"
    assert heard(caller, *with_bob, ALICE_HZ) < 0.3, "Alice was still on the line"


def test_blind_transfer_to_a_queue_then_a_conference(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    alice, alice_leg, caller, it = answer_first_call(lab, stack, tones, tmp_path, "13700000062")
    assert stack.api("POST", f"/api/calls/{it['id']}/transfer", {"target": "queue:nope"})[0] == 400
    assert stack.api("POST", f"/api/calls/{it['id']}/consult", {"target": "agent:1003"})[0] == 409, (
        "Chen is not signed in: the consultation is refused and the call goes on"
    )
    assert stack.api("POST", f"/api/calls/{it['id']}/transfer", {"target": "queue:billing"})[0] == 409, (
        "nobody is logged in to billing yet: the caller stays with Alice"
    )
    chen = register_agent(lab, stack, "1003")  # the billing queue's only member
    chen_tone = write_tone(tmp_path / "chen.wav", SECOND_AGENT_HZ, 60)
    eventually(lambda: stack.agent_state("1003")["state"] == "ready", 10, "Chen ready")
    control(stack, it, "transfer", target="queue:billing")
    alice_leg.wait_disconnected(timeout=10)
    chen_leg = chen.wait_incoming(timeout=20)
    chen_leg.answer(play=chen_tone, loop=True)
    eventually(
        lambda: stack.interaction_row("id = %s", it["id"])["agent_id"] == "1003", 10, "Chen on the call"
    )
    queued = [d for k, d in stack.events(it["id"]) if k == "queued"]
    assert queued[-1]["queue"] == "billing" and queued[-1]["reason"] == "transfer"

    # Chen brings Alice back in: all three talk.
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    control(stack, it, "consult", target="agent:1001")
    alice_again = alice.wait_incoming(timeout=15)
    alice_again.answer(play=write_tone(tmp_path / "alice.wav", ALICE_HZ, 60), loop=True)
    stack.wait_event(it["id"], "consult_answered", timeout=10)
    result = control(stack, it, "conference")
    assert result["call"]["conference"] == ["1001"]
    caller.wait_rx_audio(caller.rx_audio_seconds() + 0.5)
    together = mark(caller, 2.5)

    alice_again.hangup()  # Alice leaves; Chen and the caller go on
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice free")
    control(stack, it, "hangup")
    caller.wait_disconnected(timeout=10)
    done = ended(stack, it["id"])
    assert done["outcome"] == "completed" and done["agent_id"] == "1003"
    # The recording is complete once the call is over.
    assert both_heard(caller, *together, (ALICE_HZ, SECOND_AGENT_HZ)), "the caller did not hear both agents"
    eventually(lambda: stack.agent_state("1003")["state"] == "ready", 10, "Chen free")


def test_blind_transfer_to_an_allowed_number_through_the_carrier(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    outside = lab.phone("127.0.0.2", port=CARRIER_PORT)
    _alice, alice_leg, caller, it = answer_first_call(lab, stack, tones, tmp_path, "13700000063")
    refused = stack.api("POST", f"/api/calls/{it['id']}/transfer", {"target": "number:13800000000"})
    assert refused[0] == 403 and "not allowed" in refused[1]["message"], refused
    control(stack, it, "transfer", target="number:13900000001")
    alice_leg.wait_disconnected(timeout=10)
    far = outside.wait_incoming(timeout=15)
    assert (far.invite or "").splitlines()[0].startswith("INVITE sip:13900000001@")
    assert far.from_user == "7000", "the outside party sees the center's number"
    far.answer(play=write_tone(tmp_path / "outside.wav", SECOND_AGENT_HZ, 30), loop=True)
    stack.wait_event(it["id"], "external_connected", timeout=10)
    with_outside = mark(caller, 2.0)
    far.hangup()
    caller.wait_disconnected(timeout=10)
    done = ended(stack, it["id"])
    assert done["outcome"] == "completed"
    assert heard(caller, *with_outside, SECOND_AGENT_HZ) > 1.5, "the caller did not reach the outside number"
    assert stack.agent_state("1001")["state"] == "ready", "Alice went on to the next call"
