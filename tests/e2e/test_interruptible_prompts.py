"""Prompts give way to a caller's key, on the real stack: a caller who presses a key in the
middle of a message hears the next prompt start at once (measured in their own recording), and
the key is not lost (it answers the menu that follows); a notice marked `interruptible: false`
is heard whole, and the key pressed over it counts once it has ended; a key pressed during
"please hold" in the queue is the queue's (here: a callback), not dropped.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from app.config import PromptText
from tests.support.audio import best_match, duration, find_reference, heard_in_parts
from tests.support.calls import HEARD, ended, prompt_wav
from tests.support.sip_phone import Call, PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

NOTICE = PromptText(
    "Welcome to Lianluo. Our opening hours have changed: we are now open from eight in the morning"
    " until ten at night, every day of the week, including public holidays."
)
LEGAL = PromptText("Your call is handled under our privacy policy, which you can read on our web site.")
MENU = PromptText("For billing, press 1. For anything else, press 2.")
THANKS = PromptText("Thank you. Your choice is noted. Goodbye.")
HOLD = PromptText("Please hold while we find someone to take your call. To be called back instead, press 1.")
FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-interrupt-flows-"))
MENU_NODES = f"""
  menu:
    type: menu
    prompt: {{text: "{MENU.text}", lang: en}}
    options: {{"1": thanks, "2": thanks}}
    timeout_s: 5
  thanks: {{type: hangup, outcome: self_service, prompt: {{text: "{THANKS.text}", lang: en}}}}
  agent: {{type: queue, queue: general}}
"""
(FLOWS / "main.yaml").write_text(
    f"""
name: main
default: true
start: notice
operator: agent
nodes:
  notice: {{type: play, next: menu, prompt: {{text: "{NOTICE.text}", lang: en}}}}
{MENU_NODES}""",
    encoding="utf-8",
)
(FLOWS / "legal.yaml").write_text(
    f"""
name: legal
dnis: ["7001"]
start: legal
operator: agent
nodes:
  legal:
    type: play
    next: menu
    interruptible: false
    prompt: {{text: "{LEGAL.text}", lang: en}}
{MENU_NODES}""",
    encoding="utf-8",
)
(FLOWS / "queue.yaml").write_text(
    """
name: queue
dnis: ["7002"]
start: agent
nodes:
  agent: {type: queue, queue: general}
""",
    encoding="utf-8",
)
STACK_CONFIG = {
    "carrier": {"dids": ["7000", "7001", "7002"], "outbound_contact": "sip:127.0.0.2:5999"},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 10,
            "wrap_up_s": 0,
            "announce_every_s": 0,
            "callback": {"offer": True},
        }
    ],
    "ivr": {"flows": str(FLOWS), "connecting": [{"text": HOLD.text, "lang": "en"}]},
}


def dial(
    lab: PhoneLab, stack: Stack, ani: str, dnis: str, tone: Path, record: Path
) -> tuple[Call, dict[str, Any]]:
    caller = lab.phone("127.0.0.2", user=ani)
    call = caller.call(f"sip:{dnis}@127.0.0.1:{stack.sip_port}", play=tone, record=record, loop=True)
    call.wait_confirmed(timeout=10)
    it = eventually(lambda: stack.interaction("ani = %s", ani), 10, f"an interaction for {ani}")
    return call, it


def test_a_key_mid_message_starts_the_next_prompt_at_once_and_answers_the_menu(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    call, it = dial(lab, stack, "13700000201", "7000", tones[0], tmp_path / "caller.wav")
    # Asterisk sends audio (silence included) from the answer on, so the seconds received so
    # far are the caller's recording's clock: the key's place in it.
    start = call.wait_rx_audio(0.2, timeout=10)
    call.wait_rx_audio(start + 2.5, timeout=10)  # well into the message (about 9 s long)
    key_at = call.rx_audio_seconds()
    call.send_dtmf("1")
    call.wait_disconnected(timeout=20)  # "thank you, goodbye": the key chose, no menu heard
    assert ended(stack, it["id"])["outcome"] == "self_service"
    choice = stack.wait_event(it["id"], "menu_choice", timeout=5)
    assert choice == {"menu": "menu", "key": "1", "to": "thanks"}

    heard = call.recording()
    thanks = find_reference(heard, prompt_wav(THANKS))
    assert thanks.score > HEARD, thanks
    assert best_match(heard, prompt_wav(MENU)) < HEARD, "the menu played, though the key answered it"
    gap = thanks.offset - key_at
    print(f"key -> next prompt in the caller's recording: {gap * 1000:.0f} ms")
    # The key's RFC 2833 packets, Asterisk's DTMF end, the stop and the next playback: ~100 ms
    # here. The clock (received seconds) is read just before the key goes: the gap is never
    # negative, and 300 ms is what the issue asks for.
    assert 0 <= gap <= 0.3, f"the next prompt started {gap:.2f} s after the key"
    # The message was cut: far less of it than its length reached the caller.
    notice = find_reference(heard, prompt_wav(NOTICE))
    assert notice.offset < key_at < notice.offset + duration(prompt_wav(NOTICE)) - 2


def test_a_notice_marked_uninterruptible_is_heard_whole_and_the_key_over_it_still_counts(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    call, it = dial(lab, stack, "13700000202", "7001", tones[0], tmp_path / "caller.wav")
    start = call.wait_rx_audio(0.2, timeout=10)
    call.wait_rx_audio(start + 1.5, timeout=10)
    call.send_dtmf("2")
    call.wait_disconnected(timeout=30)
    assert ended(stack, it["id"])["outcome"] == "self_service"
    assert stack.wait_event(it["id"], "menu_choice", timeout=5) == {
        "menu": "menu",
        "key": "2",
        "to": "thanks",
    }
    heard = call.recording()
    legal, thanks = find_reference(heard, prompt_wav(LEGAL)), find_reference(heard, prompt_wav(THANKS))
    # In thirds found in order: a late packet under load read one whole match as 0.45.
    whole = heard_in_parts(heard, prompt_wav(LEGAL), halves=2)
    assert whole > HEARD, f"the notice was not heard whole: {whole:.2f} ({legal})"
    assert thanks.offset >= legal.offset + duration(prompt_wav(LEGAL)) - 0.1, "cut short by the key"
    assert best_match(heard, prompt_wav(MENU)) < HEARD, "the key over the notice was lost"


def test_a_key_during_please_hold_is_the_queues_callback_key(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    # Agent 1001 is logged in (a phone registered) but not free: the caller waits and hears
    # "please hold", and presses the queue's callback key during it.
    agent = lab.phone(
        "127.0.0.1",
        user="1001",
        password=stack.agent_password("1001"),
        registrar=f"127.0.0.1:{stack.sip_port}",
    )
    agent.wait_registered(timeout=10)
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent logged in")
    stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "break"})
    eventually(lambda: stack.agent_state("1001")["state"] == "not_ready", 10, "agent on a break")
    call, it = dial(lab, stack, "13700000203", "7002", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "queued", timeout=10)
    at = call.wait_rx_audio(call.rx_audio_seconds() + 1.5, timeout=10)  # into "please hold"
    pressed = time.monotonic()
    call.send_dtmf("1")
    requested = stack.wait_event(it["id"], "callback_requested", timeout=10)
    print(f"key during 'please hold' -> callback requested after {time.monotonic() - pressed:.2f} s")
    assert requested["number"] == "13700000203"
    call.wait_disconnected(timeout=30)
    assert ended(stack, it["id"])["outcome"] == "callback_requested"
    heard = call.recording()
    hold = find_reference(heard, prompt_wav(HOLD))
    assert hold.offset < at < hold.offset + duration(prompt_wav(HOLD)), "the key came during 'please hold'"
    stack.api("DELETE", f"/api/callbacks/{requested['callback_id']}")
