"""The first call end to end: real SIP phones, our Asterisk, our ARI app, PostgreSQL.

What a person would notice is what we assert: the caller heard the greeting (found in
the caller's recorded audio), the agent's phone rang with the caller's number, each side
heard the other's tone, and the interaction with its journey is in the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_settings
from tests.support.audio import heard_whole, tone_seconds
from tests.support.calls import (
    AGENT_TONE_HZ,
    CALLER_TONE_HZ,
    HEARD,
    call_in,
    ended,
    no_agent_registered,
    prompt_wav,
    register_agent,
)
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

# The stack's defaults, but a queue that says "call again later" when nobody is logged in
# (voicemail.when_no_agent: false), as two tests here follow; the default, a message, is in
# test_caller_defaults.py and test_voicemail.py.
STACK_CONFIG = {
    "queues": [
        {
            "name": "general",
            "strategy": "longest_idle",
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
            "voicemail": {"when_no_agent": False},
        }
    ]
}


def test_health_page_reports_every_part(stack: Stack) -> None:
    status, body = stack.health()
    assert status == 200, body
    assert body["status"] == "ok"
    for part in ("asterisk", "ari", "ami", "database"):
        assert body[part]["ok"] is True, (part, body)
    assert body["ari"]["version"].startswith("22.")


def test_the_run_log_holds_no_secret(stack: Stack) -> None:
    """The banner says where the passwords are, never what they are: run logs are kept and shared."""
    log = stack.log_path.read_text(errors="replace")
    assert "Lianluo is running" in log and "secrets.yaml" in log
    secrets = stack.secrets
    for name, value in (
        *((f"agent {a}", p) for a, p in secrets["agent_passwords"].items()),
        *((f"panel user {u}", p) for u, p in secrets["panel_passwords"].items()),
        ("the API token", secrets["api_token"]),
        ("the ARI password", secrets["ari_password"]),
        ("the AMI password", secrets["ami_password"]),
    ):
        assert str(value) not in log, f"the password of {name} is in the run log"
    assert (stack.var_dir / "secrets.yaml").stat().st_mode & 0o077 == 0, "secrets.yaml is readable by others"


def test_caller_presses_1_and_talks_to_agent(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    ani = "13800138001"
    stack.query("INSERT INTO customers (name, phone) VALUES ('Wang Fang', %s)", ani)
    agent = register_agent(lab, stack, "1001")

    call, it = call_in(lab, stack, ani, tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "prompt_played", timeout=20)  # the whole greeting went out
    call.send_dtmf("1")

    ringing = agent.wait_incoming(timeout=15)
    assert ani in ringing.remote_uri, ringing.remote_uri  # the agent sees who is calling
    assert ringing.header("X-Lianluo-Interaction") == str(it["id"])
    ringing.answer(play=tones[1], record=tmp_path / "agent.wav", loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)

    # Let both directions carry a few seconds of audio before hanging up.
    ringing.wait_rx_audio(3.0, timeout=15)
    caller_heard_before = call.rx_audio_seconds()
    call.wait_rx_audio(caller_heard_before + 3.0, timeout=15)
    call.hangup()
    call.wait_disconnected(timeout=10)
    ringing.wait_disconnected(timeout=10)

    row = ended(stack, it["id"])
    caller_wav, agent_wav = call.recording(), ringing.recording()
    english, mandarin = load_settings(stack.config_path).ivr.greeting
    assert heard_whole(caller_wav, prompt_wav(english)) > HEARD, "caller did not hear the English greeting"
    assert heard_whole(caller_wav, prompt_wav(mandarin)) > HEARD, "caller did not hear the Mandarin greeting"
    assert tone_seconds(caller_wav, AGENT_TONE_HZ) >= 1.5, "caller did not hear the agent"
    assert tone_seconds(agent_wav, CALLER_TONE_HZ) >= 1.5, "agent did not hear the caller"
    assert tone_seconds(agent_wav, AGENT_TONE_HZ) < 0.5, "agent heard their own tone"

    assert row["dnis"] == "7000"
    assert row["ivr_digits"] == "1"
    assert row["agent_id"] == "1001"
    assert row["outcome"] == "completed"
    assert row["customer_id"] is not None
    assert row["answered_at"] is not None and row["queued_at"] is not None
    assert 0 < row["queue_wait_ms"] < 15_000
    kinds = [k for k, _ in stack.events(it["id"])]
    for step in (
        "arrived",
        "answered_by_ivr",
        "prompt_played",
        "dtmf",
        "queued",
        "offered",
        "connected",
        "ended",
    ):
        assert step in kinds, (step, kinds)
    assert kinds.index("queued") < kinds.index("offered") < kinds.index("connected") < kinds.index("ended")


def test_no_agent_logged_in_caller_hears_so(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    no_agent_registered(stack)
    ani = "13800138002"
    call, it = call_in(lab, stack, ani, tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "prompt_played", timeout=20)
    call.send_dtmf("1")
    call.wait_disconnected(timeout=30)  # the center hangs up after the message

    row = ended(stack, it["id"])
    assert row["outcome"] == "no_agent"
    assert row["agent_id"] is None
    no_agent = load_settings(stack.config_path).ivr.no_agent[0]
    assert heard_whole(call.recording(), prompt_wav(no_agent)) > HEARD, (
        "caller did not hear the no-agent message"
    )
    kinds = [k for k, _ in stack.events(it["id"])]
    assert "no_agent_available" in kinds


def test_app_killed_during_ivr_takes_the_call_up_again(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    no_agent_registered(stack)
    ani = "13800138003"
    call, it = call_in(lab, stack, ani, tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)

    stack.kill()
    assert stack.asterisk_pids(), "Asterisk must outlive the app"
    assert not call.is_disconnected, "the caller must stay connected while the app is down"
    stack.start()

    stack.wait_event(it["id"], "recovered", timeout=15)
    stack.wait_event(it["id"], "ivr_resumed", timeout=15)
    # The caller is in the menu again: pressing 1 works (no agents: the no-agent message).
    call.send_dtmf("1")
    call.wait_disconnected(timeout=40)
    row = ended(stack, it["id"])
    assert row["outcome"] == "no_agent"


def test_caller_leaving_while_app_is_down_is_recorded(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    ani = "13800138004"
    call, it = call_in(lab, stack, ani, tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    stack.kill()
    call.hangup()
    call.wait_disconnected(timeout=10)
    stack.start()
    row = ended(stack, it["id"], timeout=15)
    assert row["outcome"] == "lost"
    data = dict(stack.events(it["id"]))["ended"]
    assert "app was down" in data["reason"]
