"""The IVR part of a recorded call, on the real stack: with `recording.ivr`, the caller's time in
the IVR is a recording of its own, linked to the same interaction, silent while the flow is in
a node marked `sensitive` (a card number keyed in), and the conversation with the agent is the
usual second file."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_recording import AGENT_HZ, CALLER_HZ, part, rms, stereo
from tests.support.audio import tone_seconds, write_tone
from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-rec-flows-"))
(FLOWS / "main.yaml").write_text(
    """name: main
default: true
start: welcome
operator: agent
nodes:
  welcome:
    type: play
    prompt: {text: "Welcome to the card line."}
    next: card
  card:
    type: collect
    into: card
    prompt: {text: "Enter your card number, then press pound."}
    min_digits: 4
    max_digits: 16
    timeout_s: 8
    sensitive: true
    next: thanks
  thanks:
    type: play
    prompt: {text: "Thank you. Please hold for an agent. Thank you again for calling."}
    next: agent
  agent: {type: queue, queue: general}
"""
)
STACK_CONFIG = {
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0}],
    "ivr": {"flows": str(FLOWS), "connecting": []},
    "recording": {"enabled": True, "ivr": True, "default": {"mode": "all", "consent": False}},
}


def test_the_ivr_part_is_kept_and_silent_in_the_sensitive_node(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    alice = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    voice = write_tone(tmp_path / "caller.wav", CALLER_HZ, 90)
    caller, it = call_in(lab, stack, "13700000081", voice, tmp_path / "caller-heard.wav")
    started = stack.wait_event(it["id"], "recording_started", timeout=10)
    assert started["part"] == "ivr"
    # After "welcome" and into the card prompt, the caller keys the card number.
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3.0, timeout=15)
    caller.send_dtmf("4111#")
    stack.wait_event(it["id"], "collected", timeout=15)
    alice_leg = alice.wait_incoming(timeout=30)
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3.0, timeout=15)
    caller.hangup()
    ended(stack, it["id"])

    def both_parts() -> list[tuple[Any, ...]] | None:
        found = stack.query(
            "SELECT part, path, sha256, spans, agents FROM recordings WHERE interaction_id = %s"
            " ORDER BY started_at",
            it["id"],
        )
        return found if len(found) == 2 else None

    rows = eventually(both_parts, 20, "both parts' rows")
    (ivr_part, ivr_path, ivr_sha, ivr_spans, ivr_agents), (talk_part, talk_path, _, _, talk_agents) = rows
    assert (ivr_part, talk_part) == ("ivr", "conversation")
    assert ivr_agents == [] and talk_agents == ["1001"]
    ivr_file = stack.var_dir / "recordings" / ivr_path
    assert hashlib.sha256(ivr_file.read_bytes()).hexdigest() == ivr_sha
    pauses = [s for s in ivr_spans if s["kind"] == "pause"]
    assert len(pauses) == 1, ivr_spans
    pause = pauses[0]
    left, right, rate = stereo(ivr_file)
    before = (0.2, float(pause["start_s"]) - 0.2)
    inside = (float(pause["start_s"]) + 0.3, float(pause["end_s"]) - 0.3)
    after = (float(pause["end_s"]) + 0.3, len(left) / rate - 0.2)
    assert before[1] - before[0] > 0.4 and inside[1] - inside[0] > 0.5 and after[1] - after[0] > 1.0, (
        ivr_spans
    )
    assert tone_seconds(part(left, rate, *before), CALLER_HZ) > 0.6 * (before[1] - before[0])
    assert rms(part(right, rate, *before)[0]) > 0.01, "the welcome prompt is on the center's side"
    for side in (left, right):
        assert rms(part(side, rate, *inside)[0]) < 1e-3, (
            "the sensitive node is silence",
            ivr_spans,
            len(left) / rate,
        )
    assert tone_seconds(part(left, rate, *after), CALLER_HZ) > 0.6 * (after[1] - after[0])
    assert rms(part(right, rate, *after)[0]) > 0.01, "the thank-you prompt is on the center's side"
    talk_left, talk_right, _ = stereo(stack.var_dir / "recordings" / talk_path)
    whole = (0.3, len(talk_left) / rate - 0.3)
    assert tone_seconds(part(talk_right, rate, *whole), AGENT_HZ) > 0.6 * (whole[1] - whole[0])
    assert tone_seconds(part(talk_left, rate, *whole), CALLER_HZ) > 0.6 * (whole[1] - whole[0])
