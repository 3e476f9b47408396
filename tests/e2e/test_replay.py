"""Replay for regression (`python -m app replay`), on the real stack: a caller goes through a
demo-like flow (keys 2 then 2: billing, the billing team) and an agent answers; the call is
recorded. Replayed against the same flow it matches, and nobody's phone rings; after key 2 is
changed to lead to technical support and the flows are reloaded, the replay reports the
difference. Replayed calls are not recorded and end `replayed` where the flow hands them on.
A caller who *said* "billing" is replayed from the IVR recording's caller channel, and the
center hears the word again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.domain.replay import Event, Plan, plan_of
from tests.e2e.test_ivr_flows import spoken
from tests.support.audio import write_tone, write_wav
from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import REPO, Stack, eventually

pytestmark = pytest.mark.e2e

FLOW = """name: main
default: true
start: entry
operator: agent
lists:
  blocked: ["13800000000"]
nodes:
  entry:
    type: branch
    rules:
      - {ani_in: blocked, goto: blocked}
    otherwise: main_menu
  blocked: {type: hangup, outcome: blocked, prompt: {text: "Goodbye."}}
  main_menu:
    type: menu
    prompt: {text: "Welcome to Lianluo. For general questions, press 1. For billing, press 2."}
    options: {"1": general, "2": KEY_TWO}
    words: {billing: billing_menu}
    timeout_s: 6
  billing_menu:
    type: menu
    prompt: {text: "To hear your balance, press 1. To speak with the billing team, press 2."}
    options: {"1": thanks, "2": billing}
    timeout_s: 6
  thanks: {type: hangup, outcome: self_service, prompt: {text: "Thank you for calling. Goodbye."}}
  general: {type: queue, queue: general}
  billing: {type: queue, queue: billing}
  tech: {type: queue, queue: tech}
  agent: {type: queue, queue: general}
"""
FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-replay-flows-"))
(FLOWS / "main.yaml").write_text(FLOW.replace("KEY_TWO", "billing_menu"))
QUEUE = {"ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0}
STACK_CONFIG = {
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": n, **QUEUE} for n in ("general", "billing", "tech")],
    "ivr": {"flows": str(FLOWS), "connecting": []},
    "recording": {"enabled": True, "ivr": True, "default": {"mode": "all", "consent": False}},
    "speech": {"engine": "pocketsphinx"},
}


def replay(stack: Stack, interaction: object, *which: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "replay",
            "--config",
            str(stack.config_path),
            *(which or ("--interaction", str(interaction))),
            "--verbose",
            "--sip-log",
        ],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": stack.db_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def plan(stack: Stack, interaction: object) -> Plan:
    rows = stack.query(
        "SELECT at, kind, data FROM interaction_events WHERE interaction_id = %s ORDER BY id", interaction
    )
    return plan_of([Event(at, kind, data or {}) for at, kind, data in rows])


def keep(artifacts: Path, name: str, run: subprocess.CompletedProcess[str], *more: str) -> None:
    """The command's output (and its --verbose log) beside the other test artifacts."""
    (artifacts / "replay").mkdir(exist_ok=True)
    (artifacts / "replay" / name).write_text("\n".join([run.stdout, run.stderr, *more]))


def replays_of(stack: Stack, interaction: object) -> list[Any]:
    return [
        r[0]
        for r in stack.query(
            "SELECT interaction_id FROM interaction_events WHERE kind = 'replay' AND data->>'of' = %s"
            " ORDER BY id",
            str(interaction).replace("-", ""),
        )
    ]


def test_a_recorded_call_replays_to_a_match_and_a_changed_flow_shows_the_difference(
    stack: Stack, lab: PhoneLab, tmp_path: Path, artifacts: Path
) -> None:
    alice = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    voice = write_tone(tmp_path / "caller.wav", 1000, 60)
    caller, it = call_in(lab, stack, "13700000091", voice, tmp_path / "caller-heard.wav")
    stack.wait_event(it["id"], "recording_started", timeout=10)
    # Into the main menu's prompt, then into the billing menu's: a caller who knows the way.
    caller.wait_rx_audio(caller.rx_audio_seconds() + 1.5, timeout=15)
    caller.send_dtmf("2")
    stack.wait_event(it["id"], "menu_choice", timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 1.0, timeout=15)
    caller.send_dtmf("2")
    alice_leg = alice.wait_incoming(timeout=30)
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", 440, 60), loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 1.0, timeout=15)
    caller.hangup()
    ended(stack, it["id"])
    eventually(
        lambda: stack.query("SELECT 1 FROM recordings WHERE interaction_id = %s AND part = 'ivr'", it["id"]),
        20,
        "the IVR part's recording",
    )
    alice_calls = len(alice.calls)

    started = time.monotonic()
    same = replay(stack, it["id"])
    took = time.monotonic() - started
    assert same.returncode == 0, same.stdout + same.stderr
    lines = same.stdout.splitlines()
    # The path as the caller took it (under load, the second key may come after the billing
    # menu's wait ran out: "no input" first, and the replay does the same).
    found = re.fullmatch(
        rf"{it['id']}  match  (entry > main_menu\[key 2\] > billing_menu\[(no input, )?key 2\] > billing"
        r" => queue billing)",
        lines[0],
    )
    assert found, lines
    path = found.group(1)
    assert lines[-1] == "1 calls replayed: 1 match, 0 differ, 0 errors"
    (first,) = replays_of(stack, it["id"])
    replayed = ended(stack, first)
    assert replayed["outcome"] == "replayed"
    assert len(alice.calls) == alice_calls, "a replay rang the agent"
    # The same keys, as long after their node began as in the recorded call.
    was, now = plan(stack, it["id"]), plan(stack, first)
    offsets = [
        (a.key, a.after_s, b.after_s)
        for v, w in zip(was.visits, now.visits, strict=True)
        for a, b in zip(v.keys, w.keys, strict=True)
    ]
    assert [k for k, _, _ in offsets] == ["2", "2"], offsets
    late = [round(b - a, 3) for _, a, b in offsets]
    keep(
        artifacts,
        "match.txt",
        same,
        f"keys after their node began, recorded vs replayed: {offsets}",
        f"the command took {took:.1f} s",
    )
    assert all(-0.2 < d < 0.3 for d in late), offsets
    assert not stack.query("SELECT 1 FROM recordings WHERE interaction_id = %s", first), (
        "a replay was recorded"
    )
    assert (
        stack.query("SELECT 1 FROM interaction_events WHERE interaction_id = %s AND kind = 'queued'", first)
        == []
    )

    # Key 2 now leads to technical support, reloaded without a restart.
    (FLOWS / "main.yaml").write_text(FLOW.replace("KEY_TWO", "tech"))
    status, body = stack.api("POST", "/api/ivr/reload")
    assert status == 200, body
    changed = replay(stack, it["id"])
    keep(artifacts, "difference.txt", changed)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    out = changed.stdout
    billing_step = path.split(" > ")[2]
    assert f"{it['id']}  DIFFERS at step 3: recorded {billing_step}, replayed tech" in out, out
    assert f"    recorded: {path}" in out, out
    assert "    replayed: entry > main_menu[key 2] > tech => queue tech" in out, out
    assert out.splitlines()[-1] == "1 calls replayed: 0 match, 1 differ, 0 errors"
    assert len(alice.calls) == alice_calls, "a replay rang the agent"


def test_a_spoken_answer_is_played_back_from_the_recording_and_heard_again(
    stack: Stack, lab: PhoneLab, tmp_path: Path, artifacts: Path
) -> None:
    (FLOWS / "main.yaml").write_text(FLOW.replace("KEY_TWO", "billing_menu"))
    status, body = stack.api("POST", "/api/ivr/reload")
    assert status == 200, body
    quiet = write_wav(tmp_path / "quiet.wav", np.zeros(8000 * 30))
    caller, it = call_in(lab, stack, "13700000092", quiet, tmp_path / "caller-heard.wav")
    eventually(
        lambda: any(
            k == "prompt_played" and d.get("prompt") == "main_menu" for k, d in stack.events(it["id"])
        ),
        20,
        "the main menu's prompt to end",
    )
    caller.play(spoken("billing", tmp_path / "billing.wav"))
    heard = stack.wait_event(it["id"], "speech", timeout=20)
    assert heard["phrase"] == "billing", heard
    stack.wait_event(it["id"], "menu_choice", timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 1.0, timeout=15)
    caller.send_dtmf("2")
    stack.wait_event(it["id"], "queued", timeout=15)
    caller.hangup()
    ended(stack, it["id"])
    eventually(
        lambda: stack.query("SELECT 1 FROM recordings WHERE interaction_id = %s AND part = 'ivr'", it["id"]),
        20,
        "the IVR part's recording",
    )

    again = replay(stack, it["id"])
    keep(artifacts, "spoken.txt", again)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{it['id']}  match  entry > main_menu[said billing] > billing_menu[" in again.stdout, again.stdout
    (first,) = replays_of(stack, it["id"])
    said = [d for k, d in stack.events(first) if k == "speech"]
    assert [d["phrase"] for d in said] == ["billing"], said

    # Every recorded call of the day, with the flow as it was: both callers of this module match,
    # and the replays themselves are never replayed.
    today = replay(stack, None, "--since", date.today().isoformat(), "--limit", "10")
    keep(artifacts, "since.txt", today)
    assert today.returncode == 0, today.stdout + today.stderr
    assert today.stdout.splitlines()[-1] == "2 calls replayed: 2 match, 0 differ, 0 errors", today.stdout


def test_a_forged_replay_marker_makes_an_ordinary_call(stack: Stack, lab: PhoneLab, tmp_path: Path) -> None:
    """Anyone on the carrier's side can send the header: without the center's signature the
    call is an ordinary one (queued, counted), not a hidden replay."""
    (FLOWS / "main.yaml").write_text(FLOW.replace("KEY_TWO", "billing_menu"))
    assert stack.api("POST", "/api/ivr/reload")[0] == 200
    phone = lab.phone("127.0.0.2", user="13700000093")
    forged = f"{'0' * 32}.9999999999.ab12.{'f' * 32}"
    call = phone.call(
        f"sip:7000@127.0.0.1:{stack.sip_port}",
        play=write_tone(tmp_path / "caller.wav", 1000, 30),
        loop=True,
        headers={"X-Lianluo-Replay": forged},
    )
    call.wait_confirmed(timeout=10)
    it = eventually(lambda: stack.interaction("ani = %s", "13700000093"), 10, "the caller's interaction")
    stack.wait_event(it["id"], "node", timeout=10)
    call.send_dtmf("1")  # general questions
    stack.wait_event(it["id"], "queued", timeout=20)
    assert "replay" not in [k for k, _ in stack.events(it["id"])]
    # The header reached the center, which refused it (said in its log).
    assert f"call {it['id']}: a replay marker that is not valid here" in stack.log_path.read_text()
    call.hangup()
    assert ended(stack, it["id"])["outcome"] != "replayed"
