"""Steps shared by the end-to-end call tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from app.adapters.prompts import Prompt, PromptCache
from app.config import PromptText
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import REPO, Stack, eventually

CALLER_TONE_HZ = 1000
AGENT_TONE_HZ = 440
# Normalised cross-correlation of a prompt inside a recording made through Asterisk:
# ~1.0 when it was heard, ~0.05-0.2 for unrelated audio.
HEARD = 0.5


def prompt_wav(prompt: PromptText) -> Path:
    """The cached audio file the app plays for this prompt (same cache key)."""
    return PromptCache(REPO / "sounds" / "cache").path_for(Prompt(prompt.text, prompt.lang))


def reference(prompt: PromptText) -> Path:
    """The synthesised audio of a prompt, made here if the app never rendered it (a segment in
    a language the caller was not served in, a reading the app should not have used): to look
    for what must not be heard."""
    path = prompt_wav(prompt)
    if not path.exists():
        asyncio.run(PromptCache(REPO / "sounds" / "cache").render(Prompt(prompt.text, prompt.lang)))
    return path


def register_agent(lab: PhoneLab, stack: Stack, agent_id: str) -> Phone:
    phone = lab.phone(
        "127.0.0.1",
        user=agent_id,
        password=stack.agent_password(agent_id),
        registrar=f"127.0.0.1:{stack.sip_port}",
    )
    phone.wait_registered(timeout=10)
    return phone


def no_agent_registered(stack: Stack) -> None:
    eventually(
        lambda: "Contact:  10" not in stack.cli("pjsip show contacts"), 15, "agent phones to unregister"
    )


def call_in(lab: PhoneLab, stack: Stack, ani: str, tone: Path, record: Path) -> tuple[Call, dict[str, Any]]:
    """A caller on the carrier's address dials the main service line."""
    # This call's row, not an earlier call's of the same number: rows are written behind the
    # call, so the new one may not be there yet when the caller hears the answer.
    before = [r[0] for r in stack.query("SELECT id FROM interactions WHERE ani = %s", ani)]
    caller = lab.phone("127.0.0.2", user=ani)
    call = caller.call(f"sip:7000@127.0.0.1:{stack.sip_port}", play=tone, record=record, loop=True)
    call.wait_confirmed(timeout=10)
    it = eventually(
        lambda: stack.interaction("ani = %s AND NOT (id = ANY(%s))", ani, before),
        10,
        f"an interaction for ANI {ani}",
    )
    return call, it


def ended(stack: Stack, interaction_id: object, timeout: float = 20) -> dict[str, Any]:
    return eventually(
        lambda: stack.interaction("id = %s AND ended_at IS NOT NULL", interaction_id),
        timeout,
        f"interaction {interaction_id} to end",
    )
