"""Call recording: one stereo file per interaction, from the first agent's answer until the
caller leaves, with its pauses and holds marked; a row per recording once the file is closed;
retention enforced by a job that logs what it deleted.

How: when an agent answers, Asterisk's MixMonitor is started on the *caller's* channel with the
`D` option (interleaved stereo: what the caller says on the left, what the caller hears, i.e.
the center's side, on the right). A MixMonitor is an audiohook on that channel, so it follows
the caller through every bridge change: hold, blind and consult transfer, conference, a transfer
to a number, until the caller's channel ends. Pauses and holds mute it (MixMonitorMute, both
directions): silence in the file, its time line intact, and a span in the metadata.

Asterisk closes the file when the caller's channel goes, then runs MixMonitor's command, which
leaves a marker file: only then is the raw file made a WAV (with its SHA-256) and the row
written. What a recording in progress needs to be finished is on disk beside it (a JSON sidecar),
so a recording survives a restart of the app: the call goes on in Asterisk, and whichever
process sees the end (or the periodic sweep, for a call that ended while no app was running)
finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from app.adapters.recording_store import RecordingRow
from app.calls.ports import Clock
from app.domain.interaction import Interaction
from app.domain.prompt import PromptText, for_caller
from app.domain.recording import (
    Kept,
    RecordingPolicy,
    SpanKind,
    Spans,
    activity_marks,
    expired,
    snap_to_silence,
)
from app.errors import AppError, PbxError
from app.recording import files

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 30.0
# A raw file whose call ended while no app ran has no marker if Asterisk died too; untouched for
# this long, it is finished as it is.
ABANDONED_AFTER_S = 120.0


class Tape(Protocol):
    """MixMonitor over AMI (app/adapters/ami.py)."""

    async def mix_monitor(self, channel: str, path: str, options: str, command: str = "") -> None: ...
    async def mix_monitor_mute(self, channel: str, on: bool) -> None: ...
    async def stop_mix_monitor(self, channel: str) -> None: ...


class Rows(Protocol):
    async def add(self, row: RecordingRow) -> bool: ...
    async def kept(self) -> list[tuple[Kept, str]]: ...
    async def deleted(self, recording_id: str, at: datetime, reason: str) -> None: ...


class NotRecorded(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("call-control", message, {}, 409)


@dataclass
class Take:
    """A recording in progress."""

    interaction_id: str
    recording_id: str
    channel: str
    started_at: datetime
    rule: str
    retention_days: int
    direction: str
    queue: str | None
    campaign: str | None
    ani: str
    agents: list[str] = field(default_factory=list)
    spans: Spans = field(default_factory=Spans)
    ended_at: datetime | None = None
    part: str = "conversation"  # or "ivr"

    @property
    def key(self) -> str:
        """The name of its files: the interaction id, with ".ivr" for the IVR part."""
        return self.interaction_id if self.part == "conversation" else f"{self.interaction_id}.{self.part}"

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "interaction_id": self.interaction_id,
            "recording_id": self.recording_id,
            "channel": self.channel,
            "started_at": self.started_at.isoformat(),
            "rule": self.rule,
            "retention_days": self.retention_days,
            "direction": self.direction,
            "queue": self.queue,
            "campaign": self.campaign,
            "ani": self.ani,
            "agents": self.agents,
            "spans": self.spans.as_list() + self.spans.open_list(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Take:
        return cls(
            interaction_id=str(d["interaction_id"]),
            recording_id=str(d["recording_id"]),
            channel=str(d["channel"]),
            started_at=datetime.fromisoformat(str(d["started_at"])),
            rule=str(d["rule"]),
            retention_days=int(d["retention_days"]),
            direction=str(d["direction"]),
            queue=d.get("queue"),
            campaign=d.get("campaign"),
            ani=str(d.get("ani", "")),
            agents=[str(a) for a in d.get("agents", [])],
            spans=Spans.from_list(d.get("spans", [])),
            ended_at=datetime.fromisoformat(str(d["ended_at"])) if d.get("ended_at") else None,
            part=str(d.get("part", "conversation")),
        )


class RecordingService:
    def __init__(
        self,
        policy: RecordingPolicy,
        tape: Tape,
        rows: Rows,
        directory: Path,
        clock: Clock,
        *,
        retention_check_s: float = 3600.0,
        finish_wait_s: float = 30.0,
        ivr: bool = False,
    ) -> None:
        self.policy = policy
        self.tape = tape
        self.rows = rows
        self.directory = directory
        self.live = directory / ".live"
        self.clock = clock
        self.retention_check_s = retention_check_s
        self.finish_wait_s = finish_wait_s
        self.record_ivr = ivr  # the IVR part too (recording.ivr)
        # (segment, sound URI) per segment, rendered at start (app/bootstrap.py)
        self.consent_uris: list[tuple[PromptText, str]] = []
        self._takes: dict[str, Take] = {}
        self._finishing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self.finished: list[Callable[[RecordingRow], None]] = []  # listeners (tests, later QA)
        # Awaited once the row is written (transcripts queue their job); a failure is logged only.
        self.recorded: list[Callable[[RecordingRow], Awaitable[None]]] = []

    # -- paths ----------------------------------------------------------------------

    def _live_paths(self, key: str) -> tuple[Path, Path, Path]:
        base = str(self.live / key)
        return Path(f"{base}.raw"), Path(f"{base}.done"), Path(f"{base}.json")

    def path_of(self, relative: str) -> Path:
        path = (self.directory / relative).resolve()
        if self.directory.resolve() not in path.parents:
            raise AppError("recording-path", "a recording's path leaves the recordings directory", {}, 500)
        return path

    # -- consent ----------------------------------------------------------------------

    def consent(self, queue: str, lang: str | None = None) -> list[str]:
        """What a caller waiting in `queue` hears about recording (nothing where none is made),
        in their language."""
        if not self.policy.consent(queue):
            return []
        mine = set(for_caller([text for text, _ in self.consent_uris], lang))
        return [uri for text, uri in self.consent_uris if text in mine]

    def notice(self, it: Interaction, campaign: str | None) -> list[str]:
        """What the customer of a call we place (a callback, a campaign's call) hears about
        recording as they are joined to the agent: the notice where this call will be recorded
        and its rule (the campaign's, else the queue's, ...) asks for it, in the call's language."""
        if not self.policy.announced(it.id, queue=it.queue, campaign=campaign, direction=it.direction):
            return []
        mine = set(for_caller([text for text, _ in self.consent_uris], it.language))
        return [uri for text, uri in self.consent_uris if text in mine]

    # -- the runtime's hooks (app/calls/recorder.py) ---------------------------------------

    def _take(self, key: str) -> Take | None:
        take = self._takes.get(key)
        if take is None:  # a call taken over after a restart: its recording is on disk
            data = files.read_json(self._live_paths(key)[2])
            if data is not None and data.get("ended_at") is None:
                take = self._takes[key] = Take.from_json(data)
        return take

    def _offset(self, take: Take) -> float:
        return (self.clock() - take.started_at).total_seconds()

    async def _save(self, take: Take) -> None:
        await asyncio.to_thread(files.write_json, self._live_paths(take.key)[2], take.to_json())

    # The runtime's hooks never fail a call: a recording that goes wrong is logged, the call goes on.

    async def connected(self, it: Interaction, caller_channel: str, campaign: str | None) -> None:
        try:
            await self._connected(it, caller_channel, campaign)
        except Exception:
            log.exception("call %s: recording at the answer failed", it.id)

    async def held(self, it: Interaction, caller_channel: str, on: bool) -> None:
        try:
            await self._held(it, on)
        except Exception:
            log.exception("call %s: recording on %s failed", it.id, "hold" if on else "resume")

    async def ivr(self, it: Interaction, caller_channel: str, state: str) -> None:
        try:
            await self._ivr(it, caller_channel, state)
        except Exception:
            log.exception("call %s: recording the IVR (%s) failed", it.id, state)

    async def over(self, it: Interaction) -> None:
        try:
            await self._over(it)
        except Exception:
            log.exception("call %s: recording's end failed; the sweep finishes it", it.id)

    async def _connected(self, it: Interaction, caller_channel: str, campaign: str | None) -> None:
        take = self._take(it.id)
        if take is not None:  # after a transfer: the same recording goes on
            if it.agent_id and it.agent_id not in take.agents:
                take.agents.append(it.agent_id)
            if take.spans.stop(SpanKind.HOLD, self._offset(take)):
                with contextlib.suppress(PbxError):  # logged; the call goes on
                    await self._mute(take, take.spans.silent)
            await self._save(take)
            return
        if it.id in self._finishing:
            return
        decision = self.policy.decide(it.id, queue=it.queue, campaign=campaign, direction=it.direction)
        if not decision.record:
            it.record(self.clock(), "recording_skipped", rule=decision.source)
            return
        await self._start(
            it, caller_channel, "conversation", decision.source, decision.retention_days, campaign
        )

    def party(self, interaction_id: str, agent_id: str) -> None:
        take = self._takes.get(interaction_id)
        if take is not None and agent_id not in take.agents:
            take.agents.append(agent_id)

    async def _ivr(self, it: Interaction, caller_channel: str, state: str) -> None:
        """The IVR part (where `recording.ivr` is on): from the IVR's answer until the caller
        goes on to a queue or voicemail, or hangs up; paused in flow nodes marked sensitive."""
        key = f"{it.id}.ivr"
        if state == "start":
            if self.record_ivr and self._take(key) is None:
                await self._start(it, caller_channel, "ivr", "ivr", self.policy.default.retention_days, None)
            return
        take = self._take(key)
        if take is None:
            return
        at = self._offset(take)
        if state in ("sensitive", "plain"):
            was_silent = take.spans.silent
            if state == "sensitive":
                take.spans.start(SpanKind.PAUSE, at)
            else:
                take.spans.stop(SpanKind.PAUSE, at)
            if take.spans.silent != was_silent:
                with contextlib.suppress(PbxError):
                    await self._mute(take, take.spans.silent)
                await self._save(take)
            return
        # "end": the caller goes on; the IVR's MixMonitor stops before a conversation's starts.
        self._takes.pop(key, None)
        take.ended_at = self.clock()
        take.spans.close_all(at)
        await self._save(take)
        try:
            await self.tape.stop_mix_monitor(caller_channel)
        except PbxError as exc:
            log.warning("call %s: the IVR's recording would not stop: %s", it.id, exc.message)
        self._spawn(self._finish_when_closed(take))

    async def _start(
        self, it: Interaction, channel: str, part: str, rule: str, retention_days: int, campaign: str | None
    ) -> Take | None:
        """Start a MixMonitor on the caller's channel; its take, or None if Asterisk refused."""
        now = self.clock()
        take = Take(
            interaction_id=it.id,
            recording_id=str(uuid.uuid4()),
            channel=channel,
            started_at=now,
            rule=rule,
            retention_days=retention_days,
            direction=it.direction,
            queue=it.queue,
            campaign=campaign,
            ani=it.ani,
            agents=[it.agent_id] if it.agent_id else [],
            part=part,
        )
        raw, done, meta = self._live_paths(take.key)
        await asyncio.to_thread(self.live.mkdir, parents=True, exist_ok=True)
        await self._save(take)
        try:
            # The command runs once Asterisk has closed the file: the marker says "finished".
            await self.tape.mix_monitor(channel, str(raw), "D", f"touch {shlex.quote(str(done))}")
        except PbxError as exc:
            log.warning("call %s: recording (%s) could not start: %s", it.id, part, exc.message)
            it.record(now, "recording_failed", part=part, reason=exc.message)
            await asyncio.to_thread(files.remove, meta)
            return None
        self._takes[take.key] = take
        it.record(now, "recording_started", recording_id=take.recording_id, rule=rule, part=part)
        log.info("call %s: recording %s started (%s, %s)", it.id, take.recording_id, part, rule)
        return take

    async def _mute(self, take: Take, on: bool) -> None:
        try:
            await self.tape.mix_monitor_mute(take.channel, on)
        except PbxError as exc:
            what = "mute" if on else "unmute"
            log.warning("call %s: recording %s: %s", take.interaction_id, what, exc.message)
            raise

    async def _held(self, it: Interaction, on: bool) -> None:
        take = self._take(it.id)
        if take is None:
            return
        at = self._offset(take)
        was_silent = take.spans.silent
        changed = take.spans.start(SpanKind.HOLD, at) if on else take.spans.stop(SpanKind.HOLD, at)
        if not changed:
            return
        with contextlib.suppress(PbxError):  # the hold itself went through; the log says why not
            if take.spans.silent != was_silent:
                await self._mute(take, take.spans.silent)
        await self._save(take)

    async def paused(self, it: Interaction, caller_channel: str, on: bool, by: str) -> dict[str, object]:
        try:
            return await self._paused(it, on, by)
        except AppError:  # told to the person who asked (PbxError included)
            raise
        except Exception as exc:
            log.exception("call %s: recording %s failed", it.id, "pause" if on else "resume")
            raise AppError("recording", "the recording could not be paused or resumed", {}, 500) from exc

    async def _paused(self, it: Interaction, on: bool, by: str) -> dict[str, object]:
        take = self._take(it.id)
        if take is None:
            raise NotRecorded("this call is not being recorded")
        at = self._offset(take)
        was_silent = take.spans.silent
        if on and not take.spans.start(SpanKind.PAUSE, at):
            raise NotRecorded("the recording is already paused")
        if not on and not take.spans.stop(SpanKind.PAUSE, at):
            raise NotRecorded("the recording is not paused")
        if take.spans.silent != was_silent:
            try:
                await self._mute(take, take.spans.silent)
            except PbxError:
                # Undo the mark: the file says what really happened.
                if on:
                    take.spans.open.pop(SpanKind.PAUSE, None)
                else:
                    take.spans.start(SpanKind.PAUSE, take.spans.done.pop()[1])
                raise
        await self._save(take)
        log.info("call %s: recording %s by %s at %.1f s", it.id, "paused" if on else "resumed", by, at)
        return {"recording_at_s": round(at, 3)}

    def state(self, interaction_id: str) -> dict[str, object] | None:
        take = self._takes.get(interaction_id)
        if take is None:
            return None
        return {"recording": True, "paused": SpanKind.PAUSE in take.spans.open}

    async def _over(self, it: Interaction) -> None:
        take = self._take(it.id)
        if take is None or take.part != "conversation":
            return
        self._takes.pop(it.id, None)
        take.ended_at = it.ended_at or self.clock()
        take.spans.close_all((take.ended_at - take.started_at).total_seconds())
        if it.agent_id and it.agent_id not in take.agents:
            take.agents.append(it.agent_id)
        await self._save(take)
        self._spawn(self._finish_when_closed(take))

    # -- finishing ------------------------------------------------------------------------

    def _spawn(self, step: Any) -> None:
        task = asyncio.create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_when_closed(self, take: Take) -> None:
        _, done, _ = self._live_paths(take.key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.finish_wait_s
        while not done.exists():
            if loop.time() > deadline:
                log.warning(
                    "call %s: Asterisk has not closed recording %s after %.0f s; the sweep will finish it",
                    take.interaction_id,
                    take.recording_id,
                    self.finish_wait_s,
                )
                return
            await asyncio.sleep(0.05)
        try:
            await self.finish(take)
        except Exception:  # a full disk, a file gone: the sweep tries again
            log.exception(
                "call %s: recording %s could not be finished", take.interaction_id, take.recording_id
            )

    async def finish(self, take: Take, attempts: int = 10) -> RecordingRow | None:
        """The file is closed: the WAV, its checksum, the row; then the raw file goes."""
        if take.key in self._finishing:
            return None
        self._finishing.add(take.key)
        try:
            raw, done, meta = self._live_paths(take.key)
            relative = f"{take.started_at:%Y/%m/%d}/{take.key}.wav"
            stored = await asyncio.to_thread(files.raw_to_wav, raw, self.directory / relative)
            row = RecordingRow(
                id=take.recording_id,
                interaction_id=take.interaction_id,
                direction=take.direction,
                queue=take.queue,
                campaign=take.campaign,
                ani=take.ani,
                agents=tuple(take.agents),
                started_at=take.started_at,
                duration_ms=stored.duration_ms,
                channels=files.CHANNELS,
                sample_rate=files.SAMPLE_RATE,
                size_bytes=stored.size_bytes,
                sha256=stored.sha256,
                path=relative,
                spans=self._timeline(take, stored),
                rule=take.rule,
                retention_days=take.retention_days,
                levels={
                    "frame_s": files.LEVEL_FRAME_S,
                    "caller": stored.caller_levels,
                    "center": stored.center_levels,
                },
                part=take.part,
            )
            for attempt in range(attempts):
                try:
                    await self.rows.add(row)
                    break
                except Exception as exc:  # the interaction's row may still be on its way
                    if attempt == attempts - 1:
                        log.warning("recording %s: row not written (%r); the sweep retries", row.id, exc)
                        return None
                    await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
            for step in list(self.recorded):
                try:
                    await step(row)
                except Exception:
                    log.exception("call %s: after recording %s was kept", take.interaction_id, row.id)
            await asyncio.to_thread(files.remove, raw, done, meta)
            log.info(
                "call %s: recording %s kept: %s, %.1f s, %d bytes, sha256 %s",
                take.interaction_id,
                row.id,
                relative,
                row.duration_ms / 1000,
                row.size_bytes,
                row.sha256,
            )
            for listener in list(self.finished):
                listener(row)
            return row
        finally:
            self._finishing.discard(take.key)

    def _timeline(self, take: Take, stored: files.Stored) -> list[dict[str, object]]:
        """Pauses and holds, long silences and overtalk, in time order, in the file's time.

        Spans are marked by the clock from the MixMonitor request; Asterisk writes the first
        frame only once the channel's media flows (at an IVR's answer, most of a second later).
        The file is that much shorter than the wall time, all of it at the start: shift by it."""
        wall = ((take.ended_at or self.clock()) - take.started_at).total_seconds()
        shift = max(0.0, wall - stored.duration_ms / 1000)
        marked = [
            {**s, "start_s": round(max(0.0, float(str(s["start_s"])) - shift), 3),
             "end_s": round(max(0.0, float(str(s["end_s"])) - shift), 3)}
            for s in take.spans.as_list()
        ]  # fmt: skip
        marked = snap_to_silence(marked, stored.caller_levels, stored.center_levels, files.LEVEL_FRAME_S)
        quiet = [(float(str(s["start_s"])), float(str(s["end_s"]))) for s in marked]
        found = activity_marks(stored.caller_levels, stored.center_levels, files.LEVEL_FRAME_S, quiet=quiet)
        return sorted(marked + found, key=lambda s: float(str(s["start_s"])))

    async def sweep(self) -> int:
        """Finish recordings whose calls are over but which no call finished (the app was down
        when the caller left, or the row could not be written then). How many were finished."""
        now = self.clock().timestamp()

        def candidates() -> list[tuple[Path, bool, float]]:
            if not self.live.exists():
                return []
            out = []
            for meta in self.live.glob("*.json"):
                raw = meta.with_suffix(".raw")  # "<id>.ivr.json" -> "<id>.ivr.raw"
                mtime = raw.stat().st_mtime if raw.exists() else 0.0
                out.append((meta, meta.with_suffix(".done").exists(), mtime))
            return out

        count = 0
        for meta, closed, mtime in await asyncio.to_thread(candidates):
            key = meta.stem
            if key in self._finishing or (key in self._takes and not closed):
                continue
            if key in self._takes:  # closed while no step of its call said so (a hang-up in the IVR)
                take = self._takes.pop(key)
                take.ended_at = self.clock()
                take.spans.close_all((take.ended_at - take.started_at).total_seconds())
                await self._save(take)
            if not closed and now - mtime < ABANDONED_AFTER_S:
                continue  # still being written (a call going on) or just closed
            data = await asyncio.to_thread(files.read_json, meta)
            if data is None:
                continue
            take = Take.from_json(data)
            if take.ended_at is None:
                take.ended_at = self.clock()
                take.spans.close_all((take.ended_at - take.started_at).total_seconds())
            if await self.finish(take) is not None:
                count += 1
        return count

    # -- retention ------------------------------------------------------------------------

    async def run_retention(self) -> list[dict[str, object]]:
        """Delete every recording past its retention; each deletion is logged and returned."""
        now = self.clock()
        kept = await self.rows.kept()
        paths = {k.id: p for k, p in kept}
        out: list[dict[str, object]] = []
        for k in expired([k for k, _ in kept], now):
            path = self.path_of(paths[k.id])
            await asyncio.to_thread(files.remove, path)
            reason = f"retention: {k.retention_days} days"
            await self.rows.deleted(k.id, now, reason)
            log.info(
                "retention: deleted recording %s (%s), started %s, kept %d days",
                k.id,
                paths[k.id],
                k.started_at.isoformat(),
                k.retention_days,
            )
            out.append({"id": k.id, "path": paths[k.id], "started_at": k.started_at.isoformat()})
        return out

    async def verify(self, relative: str, sha256: str) -> bool:
        """Whether the file is still what was written (its SHA-256)."""
        return await asyncio.to_thread(files.sha256_of, self.path_of(relative)) == sha256

    # -- the background loop ----------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.live.mkdir, parents=True, exist_ok=True)
        self._loop = asyncio.create_task(self._run(), name="recording-jobs")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_retention = loop.time()
        while True:
            try:
                await self.sweep()
                if loop.time() >= next_retention:
                    next_retention = loop.time() + self.retention_check_s
                    await self.run_retention()
            except Exception:
                log.exception("recording jobs failed; trying again later")
            await asyncio.sleep(SWEEP_EVERY_S)

    async def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
