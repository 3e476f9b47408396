"""The first call end to end: real SIP phones, our Asterisk, our ARI app, PostgreSQL.

What a person would notice is what we assert: the caller heard the greeting (found in
the caller's recorded audio), the agent's phone rang with the caller's number, each side
heard the other's tone, and the interaction with its journey is in the database.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.adapters.prompts import Prompt, PromptCache
from app.config import PromptText, load_settings
from tests.support.audio import best_match, tone_seconds, write_tone
from tests.support.sip_phone import Call, PhoneLab
from tests.support.stack import REPO, Stack, eventually, write_config

pytestmark = pytest.mark.e2e

CALLER_TONE_HZ = 1000
AGENT_TONE_HZ = 440
# Normalised cross-correlation of a prompt inside a pjsua2 recording: ~0.8 when it was
# heard, ~0.2 for unrelated audio (../shared/test-peers.md).
HEARD = 0.5


def prompt_wav(prompt: PromptText) -> Path:
    return PromptCache(REPO / "sounds" / "cache").path_for(Prompt(prompt.text, prompt.lang))


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, db_url: str, asterisk_prefix: Path, artifacts: Path
) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("first-call")
    settings = write_config(d / "center.yaml", d / "var")
    s = Stack(d / "center.yaml", d / "var", db_url, asterisk_prefix, artifacts / "first-call.log", settings)
    s.start()
    yield s
    assert s.stop() == 0, s.tail()
    assert s.asterisk_pids() == [], "Asterisk still running after the app stopped"


@pytest.fixture
def lab(artifacts: Path, request: pytest.FixtureRequest) -> Iterator[PhoneLab]:
    log_dir = artifacts / "pjsua" / request.node.name
    log_dir.mkdir(parents=True, exist_ok=True)
    with PhoneLab(log_dir=log_dir) as lab:
        yield lab


@pytest.fixture
def tones(tmp_path: Path) -> tuple[Path, Path]:
    caller, agent = tmp_path / "caller-tone.wav", tmp_path / "agent-tone.wav"
    write_tone(caller, CALLER_TONE_HZ, 60)
    write_tone(agent, AGENT_TONE_HZ, 60)
    return caller, agent


def no_agent_registered(stack: Stack) -> None:
    def check() -> bool:
        out = subprocess.run(
            [
                str(stack.asterisk_prefix / "sbin/asterisk"),
                "-C",
                str(stack.var_dir / "asterisk/main/etc/asterisk.conf"),
                "-rx",
                "pjsip show contacts",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return "Contact:  10" not in out

    eventually(check, 15, "agent phones to be unregistered")


def call_in(lab: PhoneLab, stack: Stack, ani: str, tone: Path, record: Path) -> tuple[Call, dict]:
    caller = lab.phone("127.0.0.2", user=ani)
    call = caller.call(f"sip:7000@127.0.0.1:{stack.sip_port}", play=tone, record=record, loop=True)
    call.wait_confirmed(timeout=10)
    it = eventually(lambda: stack.interaction("ani = %s", ani), 10, f"an interaction for ANI {ani}")
    return call, it


def ended(stack: Stack, interaction_id: object, timeout: float = 20) -> dict:
    return eventually(
        lambda: stack.interaction("id = %s AND ended_at IS NOT NULL", interaction_id),
        timeout,
        f"interaction {interaction_id} to end",
    )


def test_health_page_reports_every_part(stack: Stack) -> None:
    status, body = stack.health()
    assert status == 200, body
    assert body["status"] == "ok"
    for part in ("asterisk", "ari", "ami", "database"):
        assert body[part]["ok"] is True, (part, body)
    assert body["ari"]["version"].startswith("22.")


def test_caller_presses_1_and_talks_to_agent(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    ani = "13800138001"
    stack.query("INSERT INTO customers (name, phone) VALUES ('Wang Fang', %s)", ani)
    agent = lab.phone(
        "127.0.0.1",
        user="1001",
        password=stack.agent_password("1001"),
        registrar=f"127.0.0.1:{stack.sip_port}",
    )
    agent.wait_registered(timeout=10)

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
    assert best_match(caller_wav, prompt_wav(english)) > HEARD, "caller did not hear the English greeting"
    assert best_match(caller_wav, prompt_wav(mandarin)) > HEARD, "caller did not hear the Mandarin greeting"
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
    assert best_match(call.recording(), prompt_wav(no_agent)) > HEARD, (
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
