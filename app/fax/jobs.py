"""Outbound fax jobs: a fax to a number, sent through the carrier, tried until it goes.

A job is a row in `fax_jobs`; each try is a call of its own (kind `faxjob`, an outbound
interaction) placed with `legs.dial_out` for the purpose `fax`, so the outbound policy decides
first. The far end answers, the channel enters our app, and the cover page and documents go with
SendFAX (app/fax/session.py); the try's result (pages, rate, ECM, error) is a `faxes` row. A busy,
unanswered or failed try is tried again after the pause, up to the configured attempts; a number
the policy never allows ends the job as refused. One number gets at most so many jobs a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time
from pathlib import Path

from app.adapters.ari import ChannelDestroyed, StasisStart
from app.adapters.fax_pages import FaxPages
from app.adapters.fax_store import FaxStore
from app.calls.events import DialFailed, PbxLost
from app.calls.legs import OutboundRefused, call_data, dial_out
from app.calls.runtime import Runtime
from app.calls.session import Call
from app.domain.fax import (
    AttemptOutcome,
    Catalogue,
    Fax,
    FaxJob,
    FaxResult,
    FaxStatus,
    JobRules,
    JobStatus,
    UploadedDocument,
    job_refusal,
    unanswered,
)
from app.domain.interaction import Interaction, Outcome
from app.domain.outbound import Purpose
from app.errors import AppError
from app.fax.ondemand import compose_fax
from app.fax.session import send_fax

log = logging.getLogger(__name__)

KIND = "faxjob"
POLL_S = 2.0


class FaxJobRefused(AppError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__("fax-job-refused", message, {}, status)


class FaxJobs:
    def __init__(
        self,
        *,
        runtime: Runtime,
        store: FaxStore,
        pages: FaxPages,
        catalogue: Catalogue,
        rules: JobRules,
        out_dir: Path,
        trunk: str,
        center_name: str,
        presented_number: str,
        station_id: str,
        paper: str,
        ring_s: float,
        can_dial: bool,
        changed: Callable[[FaxJob], None] = lambda job: None,
        lines: int = 2,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.pages = pages
        self.catalogue = catalogue
        self.rules = rules
        self.out_dir = out_dir
        self.trunk = trunk
        self.center_name = center_name
        self.presented_number = presented_number
        self.station_id = station_id
        self.paper = paper
        self.ring_s = ring_s
        self.can_dial = can_dial
        self.changed = changed  # told of every change of a job (the bus: the agent's call box)
        self.lines = lines  # jobs on the line at the same time (fax.job_lines)
        self.built_at = runtime.clock()  # before this run took any call
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}

    # -- queueing ---------------------------------------------------------------

    def check(self, number: str, codes: Sequence[str], uploads: int = 0) -> None:
        """Refuse (FaxJobRefused) what no job may be: nothing to send, an unknown document, a
        number the center may not fax. Cheap: asked before an upload is converted too."""
        if not self.can_dial:
            raise FaxJobRefused("faxes to numbers need carrier.outbound_contact", 409)
        if not codes and not uploads:
            raise FaxJobRefused("choose at least one document or upload a PDF")
        unknown = [c for c in codes if self.catalogue.get(c) is None]
        if unknown:
            raise FaxJobRefused(f"documents must be catalogue codes, got {unknown!r}")
        refusal = self.runtime.outbound.check(number, Purpose.FAX, self.trunk, self.runtime.clock())
        if refusal is not None and refusal.reason.lasting:
            raise FaxJobRefused(refusal.detail, 403)

    async def queue(
        self,
        number: str,
        codes: list[str],
        by: str,
        *,
        uploads: Sequence[UploadedDocument] = (),
        interaction_id: str | None = None,
        agent_id: str | None = None,
    ) -> FaxJob:
        """A new job, checked: known documents, a number the center may fax, the daily limit.
        Sent from a call (`interaction_id`), the call's journey says so."""
        now = self.runtime.clock()
        self.check(number, codes, len(uploads))
        midnight = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
        limit = job_refusal(await self.store.jobs_since(number, midnight), self.rules)
        if limit is not None:
            raise FaxJobRefused(limit, 429)
        job = FaxJob(
            str(uuid.uuid4()),
            number,
            tuple(codes),
            now,
            next_attempt_at=now,
            created_by=by,
            interaction_id=interaction_id,
            agent_id=agent_id,
            uploads=tuple(uploads),
        )
        await self.store.save_job(job)
        log.info("fax job %s: %s to %s, queued by %s", job.id, ",".join(job.contents), number, by)
        if interaction_id is not None:
            await self.store.journey_event(
                interaction_id,
                now,
                "fax_job_queued",
                {
                    "job_id": job.id,
                    "number": number,
                    "documents": job.contents,
                    "agent_id": agent_id,
                    "by": by,
                },
            )
        self._changed(job)
        self._wake.set()
        return job

    def _changed(self, job: FaxJob) -> None:
        self.changed(dataclasses.replace(job))

    async def resend(self, job_id: str, by: str) -> FaxJob:
        """The finished job's documents to its number again, as a new job (the old one keeps its
        history); checked as any new job is."""
        try:
            uuid.UUID(job_id)
        except ValueError:
            raise FaxJobRefused(f"no fax job {job_id}", 404) from None
        old = await self.store.job(job_id)
        if old is None:
            raise FaxJobRefused(f"no fax job {job_id}", 404)
        if not JobStatus(old.status).finished:
            raise FaxJobRefused(f"job {job_id} is not finished: it will be tried", 409)
        return await self.queue(
            old.number,
            list(old.documents),
            by,
            uploads=old.uploads,
            interaction_id=old.interaction_id,
            agent_id=old.agent_id,  # the call box it was sent from follows the new one too
        )

    # -- the loop ---------------------------------------------------------------

    async def start(self) -> None:
        closed = await self.store.close_unfinished(self.built_at, self.runtime.clock())
        if closed:
            log.warning("%d fax session(s) cut by a stop: kept as failed, result unknown", closed)
        requeued = await self.store.requeue_sending()
        if requeued:
            log.info("%d fax job(s) cut by a stop go back in line", requeued)
        self._loop = asyncio.create_task(self._run(), name="fax-jobs")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()
            self._wake.clear()
            free = self.lines - len(self._running)
            if free <= 0:
                continue
            try:
                due = await self.store.due_jobs(self.runtime.clock(), free + len(self._running))
            except Exception as exc:  # the database is away: the jobs wait for it
                log.warning("could not read due fax jobs: %s", exc)
                continue
            for job in due:
                if job.id in self._running or len(self._running) >= self.lines:
                    continue
                task = asyncio.create_task(self._attempt(job), name=f"fax-job-{job.id}")
                self._running[job.id] = task
                task.add_done_callback(functools.partial(self._done, job.id))

    def _done(self, job_id: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("fax job %s: attempt failed: %r", job_id, task.exception())
        self._running.pop(job_id, None)
        self._wake.set()

    async def _attempt(self, job: FaxJob) -> None:
        job.status = JobStatus.SENDING.value
        await self.store.save_job(job)
        self._changed(job)
        now = self.runtime.clock()
        it = Interaction(
            str(uuid.uuid4()),
            f"faxjob-{uuid.uuid4()}",
            ani=job.number,
            dnis=self.presented_number,
            arrived_at=now,
            direction="outbound",
        )
        it.legs["kind"] = KIND
        call = self.runtime.call(it, KIND)
        call.caller_placed = False  # the far end's leg exists once we dial it
        outcome: list[tuple[AttemptOutcome, str]] = []

        async def script() -> None:
            outcome.append(await self._try(call, job))

        task = self.runtime.board.launch(
            call, lambda: call.run(script, when_caller_leaves=lambda _: Outcome.FAX, caller_is="customer")
        )
        # Cancelled (the app stops): the job stays `sending` and goes back in line at the next start.
        await task
        result, error = (
            outcome[0] if outcome else (AttemptOutcome.FAILED, str(it.outcome or "attempt failed"))
        )
        job.after_attempt(result, error, self.runtime.clock(), self.rules)
        await self.store.save_job(job)
        self._changed(job)
        if job.interaction_id is not None and JobStatus(job.status).finished:
            await self._journey_result(job)
        log.info(
            "fax job %s try %d to %s: %s%s; job %s",
            job.id,
            job.attempts,
            job.number,
            result.value,
            f" ({error})" if error else "",
            job.status,
        )

    async def _journey_result(self, job: FaxJob) -> None:
        """The call the job was sent from learns how it ended (never fatal to the job)."""
        assert job.interaction_id is not None
        try:
            await self.store.journey_event(
                job.interaction_id,
                self.runtime.clock(),
                "fax_job_finished",
                {
                    "job_id": job.id,
                    "status": job.status,
                    "pages": job.pages_sent,
                    "of": job.pages_expected,
                    "attempts": job.attempts,
                    "error": job.last_error,
                },
            )
        except Exception as exc:  # the database is away: the job's own row says it all the same
            log.warning(
                "fax job %s: could not add its result to interaction %s: %s", job.id, job.interaction_id, exc
            )

    async def _try(self, call: Call, job: FaxJob) -> tuple[AttemptOutcome, str]:
        it = call.it
        it.record(call.now(), "fax_job_attempt", job_id=job.id, attempt=job.attempts + 1, number=job.number)
        call.create()
        await call.save()  # the fax row refers to the interaction
        docs = [d for c in job.documents if (d := self.catalogue.get(c)) is not None]
        docs += [u.as_document() for u in job.uploads]
        fax = Fax(
            id=str(uuid.uuid4()),
            direction="out",
            mode="job",
            number=job.number,
            started_at=call.now(),
            status="sending",
            interaction_id=it.id,
            documents=tuple(job.contents),
            job_id=job.id,
        )
        tiff = await compose_fax(
            self.pages, self.out_dir, self.center_name, self.paper, fax, docs, call.now(), job.number
        )
        await self.store.save(fax)
        outcome, result = await self._send(call, job, fax, tiff)
        fax.finish(result, call.now())
        job.pages_sent, job.pages_expected = result.pages, fax.pages_expected
        it.legs.pop("fax", None)
        it.record(
            call.now(),
            "fax_job_result",
            job_id=job.id,
            fax_id=fax.id,
            outcome=outcome.value,
            pages=result.pages,
            of=fax.pages_expected,
            rate=result.rate,
            ecm=result.ecm,
            error=result.error,
        )
        if not call.ended:
            it.end(call.now(), Outcome.FAX, ended_by="system")
        call.save_soon()
        await self.store.save(fax)
        if call.caller_placed and call.caller not in call.gone:
            await call.hang_up()
        return outcome, result.error

    async def _send(self, call: Call, job: FaxJob, fax: Fax, tiff: Path) -> tuple[AttemptOutcome, FaxResult]:
        def failed(error: str) -> FaxResult:
            return FaxResult(FaxStatus.FAILED, 0, None, None, error, "")

        try:
            placed = await dial_out(
                call,
                number=job.number,
                trunk=self.trunk,
                purpose=Purpose.FAX,
                kind=KIND,
                channel_id=call.caller,
                caller_id=f'"{self.center_name}" <{self.presented_number}>',
                timeout_s=self.ring_s,
                variables={**call_data(call), "LIANLUO_FAX_JOB": job.id},
            )
        except OutboundRefused as refused:
            lasting = refused.refusal.reason.lasting
            outcome = AttemptOutcome.REFUSED if lasting else AttemptOutcome.LIMITED
            return outcome, failed(refused.refusal.detail)
        if placed is None:
            return AttemptOutcome.FAILED, failed("the call could not be placed")
        cause = await self._wait_answer(call)
        if cause is not None:
            outcome = unanswered(cause[0])
            return outcome, failed(f"{outcome.value} ({cause[1]})")
        result = await send_fax(
            call, tiff, station_id=self.station_id, header=self.center_name, pages=fax.pages_expected or 0
        )
        return (AttemptOutcome.SENT if result.ok else AttemptOutcome.FAILED), result

    async def _wait_answer(self, call: Call) -> tuple[int | None, str] | None:
        """None once the far end answers (its channel enters our app), else (cause, why)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ring_s + 10
        # Not next_event: the far end's leg is this call's "caller", and it ending unanswered is
        # a result here, not the end of the script.
        while (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    ev = await call.events.get()
            except TimeoutError:
                break
            if isinstance(ev, StasisStart) and ev.channel.id == call.caller:
                return None
            if isinstance(ev, ChannelDestroyed) and ev.channel.id == call.caller:
                call.gone.add(call.caller)
                return ev.cause, ev.cause_txt or f"cause {ev.cause}"
            if isinstance(ev, DialFailed) and ev.channel_id == call.caller:
                return -1, ev.reason  # never rang: a failure, not an unanswered call
            if isinstance(ev, PbxLost) and call.caller in ev.channel_ids:
                call.gone |= ev.channel_ids
                return -1, ev.why or "lost by the PBX"
        await call.hang_up()
        return 19, "no answer (timeout)"
