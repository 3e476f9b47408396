"""Replay recorded calls against the running center's flows, for regression
(`python -m app replay`; README, "Replaying recorded calls").

For each recorded call: a SIP caller calls the center as the carrier would (from the carrier's
address, to the same number, with the same caller number, through the same admission rules),
marked as a replay by a signed header; in each flow node it plays the caller's audio of that
node from the IVR recording and sends the same keys at the same times after the node was
entered (app/domain/replay.py); the center stops a replay where its flow hands the caller on
(no agent rings) and counts it in no report. Then the two paths and outcomes are compared.
"""

from __future__ import annotations

import array
import asyncio
import ipaddress
import logging
import secrets
import socket
import tempfile
import time
import uuid
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.adapters.sip_caller import KEY_S, CallerLeg, SipCaller
from app.domain.replay import (
    HEADER,
    Event,
    Journey,
    Plan,
    Verdict,
    due,
    journey_of,
    plan_of,
    render,
    sign,
)
from app.replay.store import Recorded, ReplayStore

log = logging.getLogger(__name__)

ANSWER_S = 10.0  # the center answers a caller at once
MARKED_S = 5.0  # the replay marker is seen before the first prompt ends
NODE_S = 60.0  # the longest a node may take to come in the replayed call (a long prompt, retries)
ENDED_S = 15.0  # the replayed call's `ended` event is written soon after it ends
TOKEN_S = 600  # a replay marker is good for this long


@dataclass(frozen=True)
class Target:
    """Where and as whom to call."""

    host: str  # the center's SIP address
    port: int
    dids: tuple[str, ...]
    carrier: tuple[str, ...]  # carrier.match: the addresses the center takes as the carrier
    secret: str  # the center's API token: signs the replay marker
    recordings: Path  # recording.directory


def caller_address(match: Sequence[str], bindable: Callable[[str], bool]) -> str | None:
    """The first single address of carrier.match this machine can send from (a network
    cannot be called from as such)."""
    for entry in match:
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            continue
        if bindable(str(address)):
            return str(address)
    return None


def can_bind(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
    except OSError:
        return False
    return True


class Replayer:
    def __init__(
        self,
        store: ReplayStore,
        caller: SipCaller,
        target: Target,
        grace_s: float = 8.0,
        clock: Callable[[], float] = time.time,
        poll_s: float = 0.05,
    ) -> None:
        self.store = store
        self.caller = caller
        self.target = target
        self.grace_s = grace_s  # the replay hangs up when nothing new happened for this long
        self.clock = clock
        self.poll_s = poll_s

    async def replay(self, rec: Recorded) -> Verdict:
        events = await self.store.events(rec.id)
        recorded = journey_of(events)
        if rec.dnis not in self.target.dids:
            return Verdict(rec.id, recorded, None, f"{rec.dnis} is no longer one of carrier.dids")
        recording = await self.store.ivr_recording(rec.id)
        plan = plan_of(events, recording.started_at if recording else None)
        if not plan.visits:
            return Verdict(rec.id, recorded, None, "; ".join(plan.problems))
        notes = list(plan.problems)
        if rec.source and rec.source != self.caller.bind_ip:
            notes.append(f"recorded from {rec.source}, replayed from {self.caller.bind_ip}")
        with tempfile.TemporaryDirectory(prefix="lianluo-replay-") as scratch:
            audio: list[Path | None] = [None] * len(plan.visits)
            if recording is None:
                notes.append("no IVR recording: keys only, no caller audio")
            else:
                wav = self.target.recordings / recording.path
                try:
                    audio = await asyncio.to_thread(caller_audio, wav, plan, Path(scratch))
                except (OSError, wave.Error, ValueError) as exc:
                    notes.append(f"the IVR recording could not be read ({exc}): keys only")
            return await self._call(rec, recorded, plan, audio, notes)

    async def _call(
        self, rec: Recorded, recorded: Journey, plan: Plan, audio: list[Path | None], notes: list[str]
    ) -> Verdict:
        nonce = secrets.token_hex(8)
        token = sign(
            self.target.secret, uuid.UUID(rec.id).hex, rec.ani, rec.dnis, int(self.clock()) + TOKEN_S, nonce
        )
        uri = f"sip:{rec.dnis}@{self.target.host}:{self.target.port}"
        leg = await self.caller.call(uri, rec.ani, {HEADER: token})
        try:
            if not await answered(leg, ANSWER_S):
                return Verdict(
                    rec.id, recorded, None, f"the center did not answer (SIP {leg.status} {leg.reason})"
                )
            new_id = await self._marked(nonce, leg)
            if new_id is None:
                await leg.hang_up()
                return Verdict(
                    rec.id,
                    recorded,
                    None,
                    "the center did not take the call as a replay (hung up at once): does it run with"
                    " this configuration's var_dir (its api_token signs the marker)?",
                )
            notes += await self._drive(new_id, leg, plan, audio)
            if not leg.ended.is_set():
                await leg.hang_up()
            events = await self._ended(new_id)
            if events is None:
                return Verdict(
                    rec.id, recorded, None, f"the replayed call {new_id} did not end within {ENDED_S:.0f} s"
                )
            return Verdict(rec.id, recorded, journey_of(events), None, (f"replayed as {new_id}", *notes))
        finally:
            if not leg.ended.is_set():
                await leg.hang_up()

    async def _marked(self, nonce: str, leg: CallerLeg) -> str | None:
        deadline = time.monotonic() + MARKED_S
        while time.monotonic() < deadline and not leg.ended.is_set():
            found = await self.store.replayed(nonce)
            if found is not None:
                return found
            await asyncio.sleep(self.poll_s)
        return None

    async def _drive(self, new_id: str, leg: CallerLeg, plan: Plan, audio: list[Path | None]) -> list[str]:
        """Walk the plan on the replayed call: each node as it comes, its audio and its keys;
        stop driving where the path differs. Hang up as the caller did, or when nothing new
        happened for grace_s."""
        notes: list[str] = []
        nodes_seen = 0
        entered = self.clock()
        for i, visit in enumerate(plan.visits):
            node = await self._node(new_id, nodes_seen, leg, NODE_S)
            if node is None:
                break
            nodes_seen += 1
            entered = node.at.timestamp()
            if node.data.get("name") != visit.node:
                notes.append(f"the path differs from node {node.data.get('name')}: no more input sent")
                break
            segment = audio[i]
            log.info(
                "replay %s: in %s %.2f s after it began; playing %s; keys %s",
                new_id,
                visit.node,
                self.clock() - entered,
                segment.name if segment else "nothing",
                " ".join(f"{k.key}@{k.after_s}" for k in visit.keys) or "none",
            )
            if segment is not None:
                await leg.play(segment)
            for when, key in due(entered, visit.keys, self.clock(), lead_s=KEY_S):
                if await self._until(when, leg):
                    return notes
                await leg.keys(key)
        else:
            if plan.hangup_after_s is not None:
                if not await self._until(entered + plan.hangup_after_s, leg):
                    await leg.hang_up()
                return notes
        # The center goes on (a hang-up prompt, a stop at a queue): wait, while nodes come.
        while not leg.ended.is_set():
            node = await self._node(new_id, nodes_seen, leg, self.grace_s)
            if node is None:
                if not leg.ended.is_set():
                    notes.append(f"nothing new for {self.grace_s:.0f} s: the replay hung up")
                    await leg.hang_up()
                break
            nodes_seen += 1
        return notes

    async def _node(self, new_id: str, seen: int, leg: CallerLeg, timeout: float) -> Event | None:
        """The replayed call's next node entered (after `seen` of them), or None when the call
        ended or none came in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = [e for e in await self.store.events(new_id) if e.kind == "node"]
            if len(nodes) > seen:
                return nodes[seen]
            if leg.ended.is_set():
                return None
            await asyncio.sleep(self.poll_s)
        return None

    async def _until(self, when: float, leg: CallerLeg) -> bool:
        """Wait until `when` (the clock's seconds); True if the call ended meanwhile."""
        try:
            await asyncio.wait_for(leg.ended.wait(), max(0.0, when - self.clock()))
        except TimeoutError:
            return False
        return True

    async def _ended(self, new_id: str) -> list[Event] | None:
        deadline = time.monotonic() + ENDED_S
        while time.monotonic() < deadline:
            events = await self.store.events(new_id)
            if any(e.kind == "ended" for e in events):
                return events
            await asyncio.sleep(self.poll_s * 4)
        return None


async def answered(leg: CallerLeg, timeout: float) -> bool:
    """Whether the center answered the call within `timeout` (False at once if it refused it)."""
    waits = [asyncio.ensure_future(leg.answered.wait()), asyncio.ensure_future(leg.ended.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return leg.answered.is_set()


def caller_audio(wav_path: Path, plan: Plan, out: Path) -> list[Path | None]:
    """The caller's channel (the left one) of the IVR recording, cut per node of the plan into
    mono WAV files; None where a node's part is silent or empty. CPU and disk work: run it in a
    worker thread."""
    with wave.open(str(wav_path)) as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        if width != 2:
            raise ValueError(f"{wav_path.name}: {8 * width}-bit audio, expected 16-bit")
        samples = array.array("h", w.readframes(w.getnframes()))
    caller = samples[0::channels]
    paths: list[Path | None] = []
    for i, visit in enumerate(plan.visits):
        if visit.audio is None:
            paths.append(None)
            continue
        start, end = visit.audio
        part = caller[int(start * rate) : len(caller) if end == float("inf") else int(end * rate)]
        if len(part) < rate // 5 or max((abs(s) for s in part), default=0) < 64:
            paths.append(None)  # nothing said (a sensitive node is digital silence)
            continue
        path = out / f"{i:03d}-{visit.node}.wav"
        with wave.open(str(path), "wb") as o:
            o.setnchannels(1)
            o.setsampwidth(2)
            o.setframerate(rate)
            o.writeframes(part.tobytes())
        paths.append(path)
    return paths


async def run_replays(
    store: ReplayStore,
    caller: SipCaller,
    target: Target,
    calls: Sequence[Recorded],
    grace_s: float,
    say: Callable[[str], None],
) -> list[Verdict]:
    """Replay each call in turn (one at a time: the second starts when the first ended), saying
    each verdict as it comes."""
    replayer = Replayer(store, caller, target, grace_s)
    verdicts: list[Verdict] = []
    for rec in calls:
        try:
            verdict = await replayer.replay(rec)
        except Exception as exc:  # one call's failure is its line; the others still run
            log.exception("replaying %s failed", rec.id)
            verdict = Verdict(rec.id, journey_of([]), None, f"{type(exc).__name__}: {exc}")
        verdicts.append(verdict)
        for line in render_lines(verdict):
            say(line)
    return verdicts


def render_lines(verdict: Verdict) -> list[str]:
    """A match is one line; a difference or an error also says what the replay noticed."""
    lines = render(verdict)
    return lines if verdict.match else lines + [f"    note: {n}" for n in verdict.notes]
