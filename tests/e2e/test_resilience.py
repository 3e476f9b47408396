"""Calls keep flowing when an agent does not answer and when Asterisk itself dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import REPO, Stack, eventually

pytestmark = pytest.mark.e2e


def test_unanswered_agent_is_skipped_and_the_next_agent_gets_the_call(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    phones = {agent_id: register_agent(lab, stack, agent_id) for agent_id in ("1001", "1002")}
    call, it = call_in(lab, stack, "13800138101", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "prompt_played", timeout=20)
    call.send_dtmf("1")

    # Whoever rings first lets it ring out; the call must then go to the other agent.
    silent_id = eventually(
        lambda: next((a for a, p in phones.items() if p.calls), None), 15, "an agent to ring"
    )
    other_id = next(a for a in phones if a != silent_id)
    silent = phones[silent_id].wait_incoming(timeout=1)
    ring_timeout = stack.settings["queues"][0]["ring_timeout_s"]
    answering = phones[other_id].wait_incoming(timeout=ring_timeout + 10)
    assert silent.is_disconnected, "the unanswered phone must stop ringing before the next one rings"
    answering.answer(play=tones[1], record=tmp_path / "agent.wav", loop=True)

    connected = stack.wait_event(it["id"], "connected", timeout=10)
    assert connected["agent_id"] == other_id
    failed = stack.wait_event(it["id"], "offer_failed", timeout=1)
    assert failed["agent_id"] == silent_id
    call.hangup()
    row = ended(stack, it["id"])
    assert row["agent_id"] == other_id
    assert row["outcome"] == "completed"
    # The caller waited through the whole unanswered ring, and that is what queue wait says.
    assert row["queue_wait_ms"] >= ring_timeout * 1000
    # The silent agent is set Not Ready so the next caller does not ring them again.
    silent_state = stack.agent_state(silent_id)
    assert silent_state["state"] == "not_ready", silent_state
    assert silent_state["not_ready_reason"] == "no answer"


def test_asterisk_killed_is_restarted_and_takes_calls_again(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    [old_pid] = stack.asterisk_pids()
    os.kill(old_pid, signal.SIGKILL)

    def recovered() -> bool:
        status, body = stack.health()
        return status == 200 and body["asterisk"]["restarts"] >= 1 and old_pid not in stack.asterisk_pids()

    eventually(recovered, 60, "Lianluo to restart Asterisk and report healthy")
    call, it = call_in(lab, stack, "13800138102", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.hangup()
    assert ended(stack, it["id"])["outcome"] == "hung_up_in_ivr"


def test_second_app_for_the_same_instance_is_refused_and_disturbs_nothing(stack: Stack) -> None:
    before = stack.asterisk_pids()
    restarts_before = stack.health()[1]["asterisk"]["restarts"]
    result = subprocess.run(
        [sys.executable, "-m", "app", "run", "--config", str(stack.config_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "DATABASE_URL": stack.db_url,
            "LIANLUO_ASTERISK_PREFIX": str(stack.asterisk_prefix),
        },
    )
    assert result.returncode == 1
    assert "already running" in result.stderr, result.stderr
    status, body = stack.health()
    assert status == 200 and body["asterisk"]["restarts"] == restarts_before, body
    assert stack.asterisk_pids() == before


def test_caller_hanging_up_as_the_agent_answers_leaves_the_agent_free(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    stack.api("POST", "/api/agents/1001/state", {"state": "ready"})
    agent = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent 1001 ready")
    call, it = call_in(lab, stack, "13800138103", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    ringing = agent.wait_incoming(timeout=15)
    ringing.answer(play=tones[1], loop=True)
    call.hangup()  # races the bridge being built
    ended(stack, it["id"])
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent 1001 ready again")
