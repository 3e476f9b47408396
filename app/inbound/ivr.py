"""Walking an IVR flow on a live call: play, listen (keys or speech), collect, look up, branch.

The rules (which node next, whether input is valid, which branch) are in
app/domain/ivr_flow.py; this module does the talking to Asterisk and PostgreSQL for one
call, through the runtime's `Call`. Every step lands in the interaction's events, and
whatever the caller entered travels with the call to the agent who answers.
"""

from __future__ import annotations

import io
import time
import uuid
import wave
from collections.abc import Awaitable, Callable, Mapping, Sequence

from app.adapters.speech import Recognizer
from app.calls.events import CallerGone
from app.calls.session import Call
from app.calls.voice import Voice
from app.domain.interaction import Outcome
from app.domain.ivr_flow import (
    CallFacts,
    Flow,
    Node,
    after_attempts,
    ask_again,
    branch_target,
    fill,
    input_problem,
    menu_target,
    word_target,
)
from app.domain.prompt import PromptText, known_language, language_for_key
from app.errors import PbxError

# A flow that loops without ever waiting for the caller would spin forever: stop it.
MAX_STEPS = 200
# Where a replayed call stops (app/domain/replay.py): the outcome is known there.
REPLAY_STOPS = ("queue", "voicemail", "fax")
_HANGUP_OUTCOMES = {
    "self_service": Outcome.SELF_SERVICE,
    "closed": Outcome.CLOSED,
    "blocked": Outcome.BLOCKED,
    "no_input": Outcome.NO_INPUT,
}

Lookup = Callable[[str, str], Awaitable[Mapping[str, str] | None]]  # (lookup name, key) -> fields
ToQueue = Callable[[Call, str, dict[str, int], str], Awaitable[None]]  # (call, queue, skills, reason)
ToVoicemail = Callable[[Call, str | None], Awaitable[None]]
ToFax = Callable[[Call, Node], Awaitable[None]]  # fax-on-demand (app/fax/); the call ends there


class IvrWalker:
    """Walks one flow on one call; what happens after a queue or voicemail node is the caller's
    (inbound's) business, given as `to_queue` and `to_voicemail`."""

    def __init__(
        self,
        voice: Voice,
        recognizer: Recognizer | None,
        lookup: Lookup,
        to_queue: ToQueue,
        to_voicemail: ToVoicemail,
        to_fax: ToFax | None = None,
        languages: tuple[str, ...] = ("en",),
    ) -> None:
        self.voice = voice
        self.languages = languages  # the center's, the first its default
        self.recognizer = recognizer
        self.lookup_fields = lookup
        self.to_queue = to_queue
        self.to_voicemail = to_voicemail
        self.to_fax = to_fax

    async def walk(self, call: Call, flow: Flow) -> None:
        """Run the flow from its start until the call reaches a queue, voicemail or hang-up."""
        it = call.it
        it.record(call.now(), "flow", name=flow.name)
        name: str | None = flow.start
        language_asked = False
        for _ in range(MAX_STEPS):
            if name is None:
                await self.goodbye(call, Outcome.NO_INPUT)
                return
            node = flow.nodes[name]
            # Asked just before the first node that talks with the caller: a branch decides
            # unheard, and a caller hung up on at once (a blocked number) is not asked first.
            if not language_asked and node.type not in ("branch", "hangup"):
                language_asked = True
                await self.choose_language(call, flow)
            # Each node entered is an event: the path a replay compares, and the moment its keys
            # are timed from (app/domain/replay.py).
            where = {"queue": node.queue} if node.queue else {}
            it.record(call.now(), "node", name=name, type=node.type, **where)
            call.save_soon()  # written behind, at once: a replay waits for it to time its keys
            await call.recorder.ivr(it, call.caller, "sensitive" if node.sensitive else "plain")
            if node.type == "menu":
                name = await self.menu(call, flow, name, node)
            elif node.type == "collect":
                name = await self.collect(call, flow, node)
            elif node.type == "lookup":
                name = await self.lookup(call, flow, node)
            elif node.type == "branch":
                name = self.branch(call, flow, name, node)
            elif node.type == "play":
                await self.say(call, node, node.prompt)
                name = node.next
            elif node.type in REPLAY_STOPS and it.legs.get("replay"):
                await self.replay_stops(call, node)
                return
            elif node.type == "queue":
                call.drop_typed_ahead()
                await self.to_queue(call, node.queue or "", dict(node.skills), f"flow:{flow.name}:{name}")
                return
            elif node.type == "voicemail":
                call.drop_typed_ahead()
                await self.to_voicemail(call, node.queue)
                return
            elif node.type == "fax":
                if self.to_fax is None:
                    raise RuntimeError("a flow leads to fax, but fax is not configured")
                call.drop_typed_ahead()
                await self.to_fax(call, node)
                return
            else:  # hangup
                await self.say(call, node, node.prompt)
                await self.goodbye(call, _HANGUP_OUTCOMES[node.outcome], played=True)
                return
        call.log.error(
            "flow %s ran %d steps without waiting for the caller; ending the call", flow.name, MAX_STEPS
        )
        await self.goodbye(call, Outcome.FAILED)

    @staticmethod
    async def replay_stops(call: Call, node: Node) -> None:
        """A replayed call (app/replay/) ends where the flow hands the caller on: its outcome is
        known, and no agent is rung, no message left, no fax sent."""
        call.drop_typed_ahead()
        await call.recorder.ivr(call.it, call.caller, "end")
        call.it.end(call.now(), Outcome.REPLAYED, stopped_at=node.type, queue=node.queue)
        call.save_soon()
        await call.hang_up()

    async def choose_language(self, call: Call, flow: Flow) -> None:
        """Settle the caller's language before the first prompt (app/domain/prompt.py has the
        order): every prompt after this plays in it alone. A caller taken up again after a
        restart keeps theirs."""
        it = call.it
        if it.language is not None:
            return
        step = flow.language
        preference = call.customer.language if call.customer is not None else None
        choice = known_language(self.languages, preference, it.dnis, step.by_dnis)
        if choice is None and step.prompt and len(self.languages) > 1:  # one language: nothing to ask
            # The one prompt in every language: the caller cannot understand a choice otherwise.
            key = await call.play(await self.voice.say(list(step.prompt)), interruptible=True)
            if key is None:
                key = await call.wait_digit(step.timeout_s)
            choice = language_for_key(key, step.keys, self.languages, self.languages[0])
            if choice is not None and key is not None:
                call.serve_in(choice, key=key)
                return
        if choice is None:
            return  # no step: prompts play as written
        call.serve_in(choice)

    async def say(self, call: Call, node: Node, prompt: Sequence[PromptText]) -> None:
        """A node's prompt that asks nothing (a message, a self-service answer): a key stops it
        unless the node says `interruptible: false`, and in both cases answers the next menu or
        entry (`Call.typed_ahead`), as a caller who knows the way types ahead."""
        uris = await self.voice.say(list(prompt), call.it.language)
        await call.play(uris, interruptible=node.interruptible, keep_key=True)

    async def goodbye(self, call: Call, outcome: Outcome, played: bool = False) -> None:
        if not played:
            await call.play(self.voice.fixed_in("goodbye", call.it.language), interruptible=False)
        call.it.end(call.now(), outcome, ended_by="system")
        await call.hang_up()

    async def menu(self, call: Call, flow: Flow, name: str, node: Node) -> str | None:
        it = call.it
        uris = await self.voice.say(list(node.prompt), call.it.language)
        invalid = await self.voice.say(list(node.invalid or flow.invalid), call.it.language)
        silence = Silence(self, call, flow, node)
        typed_ahead = call.typed_ahead()
        for attempt in range(1, node.attempts + 1):
            silence.try_starts()
            digit = typed_ahead or await self.ask(call, node, uris)
            typed_ahead = None
            phrase: str | None = None
            if digit is None:
                it.record(call.now(), "prompt_played", prompt=name, attempt=attempt)
                call.save_soon()
                if node.words and self.recognizer is not None:
                    digit, phrase = await self.listen(call, node)
                else:
                    digit = await call.wait_digit(node.timeout_s)
            if digit is not None:
                silence.answered()
                it.digit(call.now(), digit)
                call.save_soon()
                target = menu_target(flow, node, digit)
                if target is not None:
                    it.record(call.now(), "menu_choice", menu=name, key=digit, to=target)
                    return target
                it.record(call.now(), "invalid_input", digit=digit, attempt=attempt)
                # A caller who knows the menu presses again over "not valid": that key counts.
                typed_ahead = await call.play(invalid, interruptible=True)
                continue
            if phrase is not None:
                silence.answered()
                target = word_target(node, phrase)
                if target is not None:
                    it.record(call.now(), "menu_choice", menu=name, word=phrase, to=target)
                    return target
            again, typed_ahead = await silence.unanswered(attempt)
            if not again:
                break
        # A key over the last "I didn't hear you" still counts, if it leads somewhere.
        target = menu_target(flow, node, typed_ahead) if typed_ahead is not None else None
        if typed_ahead is not None and target is not None:
            it.digit(call.now(), typed_ahead)
            it.record(call.now(), "menu_choice", menu=name, key=typed_ahead, to=target)
            return target
        return after_attempts(flow, node)

    @staticmethod
    async def ask(call: Call, node: Node, uris: list[str]) -> str | None:
        """A menu's or entry's prompt: the key that stops it, or None. A node marked
        `interruptible: false` plays whole; a key pressed meanwhile is the answer, at its end
        (`wait_digit` finds it first)."""
        if node.interruptible:
            return await call.play(uris, interruptible=True)
        await call.play(uris, interruptible=False, keep_key=True)
        return None

    async def listen(self, call: Call, node: Node) -> tuple[str | None, str | None]:
        """Record what the caller says (a key ends it at once); (key pressed, phrase heard)."""
        recognizer = self.recognizer
        assert recognizer is not None
        name = f"listen-{uuid.uuid4()}"
        keys: list[str] = []

        def key(digit: str) -> bool:
            keys.append(digit)
            return False  # the recording stops on any key by itself (terminate_on="any")

        finished, caller_left = await call.record(
            name,
            max_duration_s=max(2, round(node.timeout_s)),
            max_silence_s=2,
            terminate_on="any",
            beep=False,
            on_key=key,
        )
        if caller_left:
            await call.pbx.delete_stored_recording(name)
            raise CallerGone()
        if keys or finished is None:
            await call.pbx.delete_stored_recording(name)
            return (keys[0] if keys else None), None
        try:
            audio = await call.pbx.stored_recording(name)
        except PbxError as exc:
            call.log.warning("could not fetch what the caller said: %s", exc)
            return None, None
        finally:
            await call.pbx.delete_stored_recording(name)
        pcm, rate = _pcm(audio)
        heard = await recognizer.recognize(pcm, rate, list(node.words))
        call.it.record(
            call.now(),
            "speech",
            heard=heard.text,
            phrase=heard.phrase,
            confidence=round(heard.confidence, 3),
            engine=heard.engine,
            decode_ms=round(heard.decode_ms),
        )
        return None, heard.phrase

    async def collect(self, call: Call, flow: Flow, node: Node) -> str | None:
        """Digits into a named field, checked; the caller is told and asked again when wrong."""
        it = call.it
        field = node.into or "value"
        uris = await self.voice.say(list(node.prompt), call.it.language)
        invalid = await self.voice.say(list(node.invalid or flow.invalid), call.it.language)
        silence = Silence(self, call, flow, node)
        typed_ahead = call.typed_ahead()
        for attempt in range(1, node.attempts + 1):
            silence.try_starts()
            keyed: list[tuple[str, float]] = []
            digits = await self.gather(call, uris, node, typed_ahead, keyed)
            typed_ahead = None
            if digits is None:  # not a key
                again, typed_ahead = await silence.unanswered(attempt)
                if not again:
                    break
                continue
            silence.answered()
            problem = input_problem(node, digits)
            # When each key came (and which, outside a sensitive node): a replay sends them again.
            keys = _keys_before(keyed, node.sensitive)
            if problem is None:
                it.collect(call.now(), field, digits, **keys)
                call.save_soon()
                return node.next
            it.record(call.now(), "invalid_entry", field=field, reason=problem, attempt=attempt, **keys)
            call.save_soon()
            if attempt < node.attempts:
                # A caller who knows the drill types again over "not valid": their first key counts.
                typed_ahead = await call.play(invalid, interruptible=True)
        return after_attempts(flow, node)

    async def gather(
        self,
        call: Call,
        uris: list[str],
        node: Node,
        first: str | None = None,
        keyed: list[tuple[str, float]] | None = None,
    ) -> str | None:
        """Keys until #, the longest length, or a pause of timeout_s (the prompt is skipped when
        the caller already started typing); None when no key came at all. `keyed` receives each
        key with when it came (time.monotonic())."""
        keyed = [] if keyed is None else keyed
        digits = ""
        if first is None:
            first = await self.ask(call, node, uris)
        if first is None:
            first = await call.wait_digit(node.timeout_s)
            if first is None:
                return None
        keyed.append((first, time.monotonic()))
        if first == "#":
            return digits
        digits += first
        while len(digits) < node.max_digits:
            key = await call.wait_digit(node.timeout_s)
            if key is not None:
                keyed.append((key, time.monotonic()))
            if key is None or key == "#":
                break
            digits += key
        return digits

    async def lookup(self, call: Call, flow: Flow, node: Node) -> str | None:
        key = call.it.collected.get(node.key or "", "")
        found = await self.lookup_fields(node.lookup or "", key) if key else None
        call.it.record(call.now(), "self_service", lookup=node.lookup, key=key, found=found is not None)
        call.save_soon()
        if found is None:
            return node.not_found or flow.operator
        await self.say(call, node, fill(node.prompt, dict(found), node.value_labels))
        return node.next

    @staticmethod
    def branch(call: Call, flow: Flow, name: str, node: Node) -> str | None:
        customer = call.customer
        facts = CallFacts(
            ani=call.it.ani,
            customer_known=customer is not None,
            customer_vip=customer is not None and (customer.vip or customer.tier == "top"),
            now=call.now(),
            collected=call.it.collected,
        )
        target = branch_target(flow, node, facts)
        call.it.record(call.now(), "branch", node=name, to=target)
        return target


class Silence:
    """A caller's silence at one menu or entry: "I didn't hear you" after each unanswered try,
    and whether to ask again (`ask_again`: a silent caller goes on in time)."""

    def __init__(self, walker: IvrWalker, call: Call, flow: Flow, node: Node) -> None:
        self.walker, self.call, self.flow, self.node = walker, call, flow, node
        self.since: float | None = None  # when the first unanswered try began
        self.try_began = 0.0

    def try_starts(self) -> None:
        self.try_began = time.monotonic()
        if self.since is None:
            self.since = self.try_began

    def answered(self) -> None:
        self.since = None

    async def unanswered(self, attempt: int) -> tuple[bool, str | None]:
        """Record the silence and say so: (ask again?, a key the caller pressed over "I didn't
        hear you", which answers the next try and is never lost)."""
        call = self.call
        call.it.record(call.now(), "no_input", attempt=attempt)
        call.save_soon()
        said = await self.walker.voice.say(list(self.node.no_input or self.flow.no_input), call.it.language)
        key = await call.play(said, interruptible=True)
        if key is not None:
            return True, key
        now = time.monotonic()
        silent_s, last_try_s = now - (self.since or self.try_began), now - self.try_began
        return ask_again(self.node, attempt, silent_s, last_try_s, self.flow.no_input_limit_s), None


def _keys_before(keyed: list[tuple[str, float]], sensitive: bool) -> dict[str, object]:
    """An entry's keys for its event: how long before the event each came, and which ones
    (not in a sensitive node: the collected value is all that is kept of those)."""
    now = time.monotonic()
    out: dict[str, object] = {"keys_before_s": [round(now - at, 3) for _, at in keyed]}
    if not sensitive:
        out["keys"] = "".join(k for k, _ in keyed)
    return out


def _pcm(wav_bytes: bytes) -> tuple[bytes, int]:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        return w.readframes(w.getnframes()), w.getframerate()
