"""Transcripts of recorded calls, made after the call by a bounded pool of workers.

When a recording's row is written (app/recording/service.py ``finish``), a job is queued in
PostgreSQL (migration 028), so a job outlives the app that queued it. ``workers`` asyncio tasks
each take the oldest due job, hand the file to the :class:`~app.adapters.transcriber.Transcriber`
(which decodes in niced worker processes: nothing runs on the event loop, and the calls keep
the CPU first), group each side's words into lines (:mod:`app.domain.transcript`) and store them.
A failed attempt is retried later (``JobRules``); a job whose worker died with its app is taken
up again once its lease ends. How far behind it is (jobs waiting, the oldest one's wait) is read
every ``poll_s`` and shown on /metrics and in the QA desk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from app.adapters.recording_store import RecordingRow
from app.adapters.transcriber import Sides, Transcriber
from app.adapters.transcript_store import Job
from app.domain.transcript import Backlog, JobRules, Line, group_lines

log = logging.getLogger(__name__)


class Jobs(Protocol):
    """The queue and the lines (app/adapters/transcript_store.py)."""

    async def queue(self, recording_id: str, at: datetime) -> bool: ...
    async def queue_missing(self, since: datetime, at: datetime) -> int: ...
    async def claim(self, now: datetime, lease_s: float) -> Job | None: ...
    async def renew(self, recording_id: str, now: datetime) -> None: ...
    async def save(
        self, recording_id: str, lines: list[Line], engine: str, audio_s: float, cpu_s: float, now: datetime
    ) -> None: ...
    async def failed(
        self, recording_id: str, error: str, retry_at: datetime | None, now: datetime
    ) -> None: ...
    async def backlog(self, now: datetime) -> Backlog: ...


@dataclass(frozen=True)
class TranscriptOptions:
    workers: int = 1
    pause_s: float = 0.8  # a longer pause between two words of one side starts a new line
    rules: JobRules = field(default_factory=JobRules)
    poll_s: float = 2.0  # how often idle workers look for due jobs (a queued job wakes one at once)
    catch_up_s: float = 86400.0  # at start, recordings this recent with no job get one


def lines_of(sides: Sides, pause_s: float) -> list[Line]:
    return group_lines("caller", sides.caller, pause_s) + group_lines("center", sides.center, pause_s)


class Transcripts:
    def __init__(
        self,
        jobs: Jobs,
        transcriber: Transcriber,
        path_of: Callable[[str], Path],
        clock: Callable[[], datetime],
        options: TranscriptOptions | None = None,
    ) -> None:
        self.jobs = jobs
        self.transcriber = transcriber
        self.path_of = path_of
        self.clock = clock
        self.options = options or TranscriptOptions()
        self.behind = Backlog(0, 0.0)  # the latest reading, for /metrics and the QA desk
        self.done = 0  # jobs finished by this process
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def recorded(self, row: RecordingRow) -> None:
        """A recording's row is written: queue its transcript."""
        if await self.jobs.queue(row.id, self.clock()):
            log.info("call %s: transcript of recording %s queued", row.interaction_id, row.id)
            self._wake.set()

    async def run_one(self) -> bool:
        """Take the oldest due job and do it; False if none was due."""
        now = self.clock()
        job = await self.jobs.claim(now, self.options.rules.lease_s)
        if job is None:
            return False
        heartbeat = asyncio.create_task(self._renew(job.recording_id), name="transcripts-lease")
        try:
            sides = await self.transcriber.transcribe_recording(self.path_of(job.path))
        except Exception as exc:  # a file gone, a worker crashed: tried again later, or given up
            wait = self.options.rules.retry_after_s(job.attempts)
            retry_at = self.clock() + timedelta(seconds=wait) if wait is not None else None
            await self.jobs.failed(job.recording_id, f"{type(exc).__name__}: {exc}", retry_at, self.clock())
            log.warning(
                "transcript of recording %s failed (attempt %d): %r; %s",
                job.recording_id,
                job.attempts,
                exc,
                f"again in {wait:.0f} s" if wait is not None else "given up",
            )
            return True
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        lines = lines_of(sides, self.options.pause_s)
        await self.jobs.save(job.recording_id, lines, sides.engine, sides.audio_s, sides.cpu_s, self.clock())
        self.done += 1
        log.info(
            "transcript of recording %s: %d lines (%d caller words, %d center words), %.1f s of audio"
            " per side in %.1f s CPU",
            job.recording_id,
            len(lines),
            len(sides.caller),
            len(sides.center),
            sides.audio_s,
            sides.cpu_s,
        )
        return True

    async def _renew(self, recording_id: str) -> None:
        while True:
            await asyncio.sleep(self.options.rules.heartbeat_s)
            try:
                await self.jobs.renew(recording_id, self.clock())
            except Exception:  # the database away for a moment: the next beat tries again
                log.warning("transcript of recording %s: its lease could not be renewed", recording_id)

    async def _worker(self, index: int) -> None:
        while True:
            try:
                while await self.run_one():
                    pass
            except Exception:  # the database away: the next round tries again
                log.exception("transcript worker %d: the queue could not be read", index)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_s)

    async def _watch(self) -> None:
        while True:
            try:
                self.behind = await self.jobs.backlog(self.clock())
            except Exception:
                log.exception("transcripts: the backlog could not be read")
            await asyncio.sleep(self.options.poll_s)

    async def start(self) -> None:
        now = self.clock()
        missing = await self.jobs.queue_missing(now - timedelta(seconds=self.options.catch_up_s), now)
        if missing:
            log.info("transcripts: %d recent recordings had no job; queued", missing)
        self._tasks = [asyncio.create_task(self._watch(), name="transcripts-backlog")]
        self._tasks += [
            asyncio.create_task(self._worker(i), name=f"transcripts-{i}") for i in range(self.options.workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
