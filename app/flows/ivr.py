"""Walking an IVR flow on a live call: play, listen (keys or speech), collect, look up, branch.

The rules (which node next, whether input is valid, which branch) are in
app/domain/ivr_flow.py; this module does the talking to Asterisk and PostgreSQL for one
call, through the call's CallSession. Every step lands in the interaction's events, and
whatever the caller entered travels with the call to the agent who answers.
"""

from __future__ import annotations

import io
import uuid
import wave
from typing import TYPE_CHECKING

from app.adapters.ari import ChannelDtmfReceived, RecordingFailed, RecordingFinished
from app.domain.interaction import Outcome
from app.domain.ivr_flow import (
    CallFacts,
    Flow,
    Node,
    after_attempts,
    branch_target,
    fill,
    input_problem,
    menu_target,
    word_target,
)
from app.domain.routing import SkillRequirement
from app.errors import PbxError

if TYPE_CHECKING:
    from app.flows.inbound import CallSession

# A flow that loops without ever waiting for the caller would spin forever: stop it.
MAX_STEPS = 200
_HANGUP_OUTCOMES = {
    "self_service": Outcome.SELF_SERVICE,
    "closed": Outcome.CLOSED,
    "blocked": Outcome.BLOCKED,
    "no_input": Outcome.NO_INPUT,
}


async def walk(session: CallSession, flow: Flow) -> None:
    """Run the flow from its start until the call reaches a queue, voicemail or hang-up."""
    it = session.it
    it.record(session.now(), "flow", name=flow.name)
    name: str | None = flow.start
    for _ in range(MAX_STEPS):
        if name is None:
            await goodbye(session, Outcome.NO_INPUT)
            return
        node = flow.nodes[name]
        if node.type == "menu":
            name = await menu(session, flow, name, node)
        elif node.type == "collect":
            name = await collect(session, flow, node)
        elif node.type == "lookup":
            name = await lookup(session, flow, node)
        elif node.type == "branch":
            name = branch(session, flow, name, node)
        elif node.type == "play":
            await session.play(await session.service.say(list(node.prompt)), interruptible=False)
            name = node.next
        elif node.type == "queue":
            skills = tuple(SkillRequirement(skill, level) for skill, level in node.skills.items())
            await session.to_agent(node.queue or "", skills, reason=f"flow:{flow.name}:{name}")
            return
        elif node.type == "voicemail":
            await session.leave_voicemail(node.queue)
            return
        else:  # hangup
            await session.play(await session.service.say(list(node.prompt)), interruptible=False)
            await goodbye(session, _HANGUP_OUTCOMES[node.outcome], played=True)
            return
    session.log.error(
        "flow %s ran %d steps without waiting for the caller; ending the call", flow.name, MAX_STEPS
    )
    await goodbye(session, Outcome.FAILED)


async def goodbye(session: CallSession, outcome: Outcome, played: bool = False) -> None:
    if not played:
        await session.play(session.service.prompts["goodbye"], interruptible=False)
    session.it.end(session.now(), outcome, ended_by="system")
    await session.ari.hangup(session.caller)


async def menu(session: CallSession, flow: Flow, name: str, node: Node) -> str | None:
    it = session.it
    uris = await session.service.say(list(node.prompt))
    invalid = await session.service.say(list(node.invalid or flow.invalid))
    for attempt in range(1, node.attempts + 1):
        digit = await session.play(uris, interruptible=True)
        phrase: str | None = None
        if digit is None:
            it.record(session.now(), "prompt_played", prompt=name, attempt=attempt)
            session.save_soon()
            if node.words and session.service.recognizer is not None:
                digit, phrase = await listen(session, node)
            else:
                digit = await session.wait_digit(node.timeout_s)
        if digit is not None:
            it.digit(session.now(), digit)
            session.save_soon()
            target = menu_target(flow, node, digit)
            if target is not None:
                it.record(session.now(), "menu_choice", menu=name, key=digit, to=target)
                return target
            it.record(session.now(), "invalid_input", digit=digit, attempt=attempt)
            await session.play(invalid, interruptible=False)
            continue
        if phrase is not None:
            target = word_target(node, phrase)
            if target is not None:
                it.record(session.now(), "menu_choice", menu=name, word=phrase, to=target)
                return target
        it.record(session.now(), "no_input", attempt=attempt)
        session.save_soon()
    return after_attempts(flow, node)


async def listen(session: CallSession, node: Node) -> tuple[str | None, str | None]:
    """Record what the caller says (a key ends it at once); (key pressed, phrase heard)."""
    recognizer = session.service.recognizer
    assert recognizer is not None
    name = f"listen-{uuid.uuid4()}"
    session.service.watch(name, session)
    digit: str | None = None
    finished = False
    try:
        await session.ari.record(
            session.caller,
            name,
            max_duration_s=max(2, round(node.timeout_s)),
            max_silence_s=2,
            terminate_on="any",
            beep=False,
        )
        while not finished:
            ev = await session.next_event(node.timeout_s + 5)
            if ev is None:
                break
            if isinstance(ev, ChannelDtmfReceived) and ev.channel.id == session.caller:
                digit = ev.digit
            elif isinstance(ev, RecordingFinished | RecordingFailed) and ev.name == name:
                finished = True
    finally:
        session.service.unwatch(name)
    if digit is not None or not finished:
        await session.ari.delete_stored_recording(name)
        return digit, None
    try:
        audio = await session.ari.stored_recording(name)
    except PbxError as exc:
        session.log.warning("could not fetch what the caller said: %s", exc)
        return None, None
    finally:
        await session.ari.delete_stored_recording(name)
    pcm, rate = _pcm(audio)
    heard = await recognizer.recognize(pcm, rate, list(node.words))
    session.it.record(
        session.now(),
        "speech",
        heard=heard.text,
        phrase=heard.phrase,
        confidence=round(heard.confidence, 3),
        engine=heard.engine,
        decode_ms=round(heard.decode_ms),
    )
    return None, heard.phrase


def _pcm(wav_bytes: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


async def collect(session: CallSession, flow: Flow, node: Node) -> str | None:
    """Digits into a named field, checked; the caller is told and asked again when they are wrong."""
    it = session.it
    field = node.into or "value"
    uris = await session.service.say(list(node.prompt))
    invalid = await session.service.say(list(node.invalid or flow.invalid))
    typed_ahead: str | None = None
    for attempt in range(1, node.attempts + 1):
        digits = await gather(session, uris, node, typed_ahead)
        typed_ahead = None
        problem = input_problem(node, digits)
        if problem is None:
            session.collected[field] = digits
            it.record(session.now(), "collected", field=field, value=digits)
            session.save_soon()
            return node.next
        it.record(session.now(), "invalid_entry", field=field, reason=problem, attempt=attempt)
        session.save_soon()
        if attempt < node.attempts:
            # A caller who knows the drill types again over "not valid": their first key counts.
            typed_ahead = await session.play(invalid, interruptible=True)
    return after_attempts(flow, node)


async def gather(session: CallSession, uris: list[str], node: Node, first: str | None = None) -> str:
    """Keys until #, the longest length, or a pause of timeout_s (the prompt is skipped when
    the caller already started typing)."""
    digits = ""
    if first is None:
        first = await session.play(uris, interruptible=True)
    if first is not None:
        if first == "#":
            return digits
        digits += first
    while len(digits) < node.max_digits:
        key = await session.wait_digit(node.timeout_s)
        if key is None or key == "#":
            break
        digits += key
    return digits


async def lookup(session: CallSession, flow: Flow, node: Node) -> str | None:
    key = session.collected.get(node.key or "", "")
    store = session.service.store
    found = await store.self_service(node.lookup or "", key) if key else None
    session.it.record(session.now(), "self_service", lookup=node.lookup, key=key, found=found is not None)
    session.save_soon()
    if found is None:
        return node.not_found or flow.operator
    await session.play(await session.service.say(list(fill(node.prompt, found))), interruptible=False)
    return node.next


def branch(session: CallSession, flow: Flow, name: str, node: Node) -> str | None:
    customer = session.customer
    facts = CallFacts(
        ani=session.it.ani,
        customer_known=customer is not None,
        customer_vip=customer is not None and (customer.vip or customer.tier == "top"),
        now=session.now(),
        collected=session.collected,
    )
    target = branch_target(flow, node, facts)
    session.it.record(session.now(), "branch", node=name, to=target)
    return target
