"""The caller's wait: where they stand, told on entry and again as the line moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import PromptText
from tests.support.audio import heard_whole
from tests.support.calls import HEARD, call_in, ended, prompt_wav, register_agent
from tests.support.sip_phone import Call, PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

POSITION = "You are number {position} in line."
STACK_CONFIG = {
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": "general", "ring_timeout_s": 8, "wrap_up_s": 2, "announce_every_s": 4}],
    "ivr": {
        "greeting": [{"text": "Press 1.", "lang": "en"}],
        "connecting": [],
        "position": [{"text": POSITION, "lang": "en"}],
        "menu": [{"digit": "1", "queue": "general"}],
    },
}


def queue_up(
    lab: PhoneLab, stack: Stack, ani: str, tone: Path, tmp_path: Path
) -> tuple[Call, dict[str, Any]]:
    call, it = call_in(lab, stack, ani, tone, tmp_path / f"{ani}.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "queued", timeout=10)
    return call, it


def announced(stack: Stack, it: dict[str, Any], position: int) -> bool:
    return any(k == "announced" and d["position"] == position for k, d in stack.events(it["id"]))


def test_waiting_callers_hear_their_place_and_it_moves_up(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    agent = register_agent(lab, stack, "1001")
    first, first_it = queue_up(lab, stack, "13700000001", tones[0], tmp_path)
    talking = agent.wait_incoming(timeout=15)
    talking.answer(play=tones[1], loop=True)
    stack.wait_event(first_it["id"], "connected")

    # A caller who gives up while waiting is recorded as abandoned.
    quitter, quitter_it = queue_up(lab, stack, "13700000004", tones[0], tmp_path)
    quitter.hangup()
    assert ended(stack, quitter_it["id"])["outcome"] == "abandoned"

    # Two more callers wait behind the busy agent, in arrival order.
    second, second_it = queue_up(lab, stack, "13700000002", tones[0], tmp_path)
    third, third_it = queue_up(lab, stack, "13700000003", tones[0], tmp_path)
    eventually(lambda: announced(stack, second_it, 1), 15, "caller 2 told they are next")
    eventually(lambda: announced(stack, third_it, 2), 15, "caller 3 told they are second")

    talking.hangup()  # the agent frees up after wrap-up: caller 2 is connected, caller 3 moves up
    agent.wait_incoming(timeout=15).answer(play=tones[1], loop=True)
    stack.wait_event(second_it["id"], "connected")
    eventually(lambda: announced(stack, third_it, 1), 15, "caller 3 told they are next now")

    # The agent had their after-call work time before the next caller rang.
    # The database is shared by the whole test session: only this test's states count.
    states = stack.query(
        "SELECT to_state, at FROM agent_state_events WHERE agent_id = '1001' AND at >= %s ORDER BY at, id",
        stack.interaction_row("id = %s", first_it["id"])["arrived_at"],
    )
    wrap = next(at for state, at in states if state == "wrap_up")
    back = next(at for state, at in states if state == "ready" and at > wrap)
    assert (back - wrap).total_seconds() >= 2.0
    assert stack.interaction_row("id = %s", second_it["id"])["answered_at"] > back
    third.wait_rx_audio(third.rx_audio_seconds() + 3.0, timeout=10)  # let the announcement play out

    for call in (first, second, third):
        if not call.is_disconnected:
            call.hangup()
    for it in (first_it, second_it, third_it):
        ended(stack, it["id"])
    heard = third.recording()
    for position in (2, 1):
        prompt = prompt_wav(PromptText(POSITION.format(position=position)))
        assert heard_whole(heard, prompt) > HEARD, f"caller 3 did not hear 'number {position}'"
