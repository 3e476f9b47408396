"""Calls keep flowing when an agent does not answer and when Asterisk itself dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.audio import tone_seconds
from tests.support.calls import AGENT_TONE_HZ, call_in, ended, register_agent
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


def test_a_planned_restart_hands_over_without_dropping_the_call(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    """`python -m app restart` (SIGHUP) and SIGTERM from a service manager: the call stays up,
    each side still hears the other, the same Asterisk serves on, and the app follows the call to
    its end. The Not Ready agent stays Not Ready."""
    stack.api("POST", "/api/agents/1001/state", {"state": "ready"})
    agent = register_agent(lab, stack, "1001")
    register_agent(lab, stack, "1002")
    eventually(lambda: stack.agent_state("1002")["device_registered"], 10, "1002 registered")
    stack.api("POST", "/api/agents/1002/state", {"state": "not_ready", "reason": "lunch"})
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent 1001 ready")
    call, it = call_in(lab, stack, "13800138105", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    answered = agent.wait_incoming(timeout=15)
    answered.answer(play=tones[1], record=tmp_path / "agent.wav", loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    asterisk = stack.asterisk_pids()
    pid = stack.proc.pid if stack.proc else None

    result = subprocess.run(
        [sys.executable, "-m", "app", "restart", "--config", str(stack.config_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DATABASE_URL": stack.db_url,
            "LIANLUO_ASTERISK_PREFIX": str(stack.asterisk_prefix),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "serves again" in result.stdout
    assert stack.proc is not None and stack.proc.pid == pid and stack.proc.poll() is None, (
        "restarted in place"
    )
    stack.wait_event(it["id"], "recovered", timeout=15)
    assert stack.asterisk_pids() == asterisk and not call.is_disconnected

    # SIGTERM: the same hand-over, and the process exits for its service manager to start it.
    assert stack.proc is not None
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(30) == 0
    assert stack.asterisk_pids() == asterisk and not call.is_disconnected
    stack.start()
    eventually(
        lambda: [k for k, _ in stack.events(it["id"])].count("recovered") == 2, 15, "the second hand-over"
    )
    assert stack.agent_state("1001")["state"] == "on_call"
    lunch = stack.agent_state("1002")
    assert (lunch["state"], lunch["not_ready_reason"]) == ("not_ready", "lunch")

    status, body = stack.api("POST", f"/api/calls/{it['id']}/hold")
    assert status == 200, body  # the controls work on the call taken over
    stack.api("POST", f"/api/calls/{it['id']}/resume")
    call.hangup()
    row = ended(stack, it["id"])
    assert row["outcome"] == "completed" and row["agent_id"] == "1001"
    assert tone_seconds(call.recording(), AGENT_TONE_HZ) > 2.0, "the caller heard the agent throughout"
    stack.api("POST", "/api/agents/1002/state", {"state": "ready"})


def test_ctrl_c_ends_the_calls_it_says_it_ends_and_stops_everything(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    stack.api("POST", "/api/agents/1001/state", {"state": "ready"})
    agent = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent 1001 ready")
    call, it = call_in(lab, stack, "13800138106", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    agent.wait_incoming(timeout=15).answer(play=tones[1], loop=True)
    stack.wait_event(it["id"], "connected", timeout=10)
    try:
        assert stack.stop() == 0  # SIGINT, what Ctrl-C sends
        assert "Stopping: ending 1 call(s) in progress." in stack.tail(200)
        assert stack.asterisk_pids() == []
        call.wait_disconnected(timeout=10)
        row = stack.interaction_row("id = %s", it["id"])
        assert row["outcome"] == "dropped", row
        assert dict(stack.events(it["id"]))["ended"]["reason"] == "the center was stopped"
        states = stack.query("SELECT state FROM agents WHERE id = '1001'")
        assert states == [("logged_out",)], "a stopped center logs its agents out"
    finally:
        stack.start()
