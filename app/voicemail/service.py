"""Voicemail: the caller leaves a message instead of waiting; it becomes work.

`leave` is the step a call takes: the intro, a beep, and Asterisk records (ARI channel
recording, # to finish, silence and length limits) until the caller is done or hangs up; what
was said before a hang-up is kept. `keep` fetches the file over ARI into <var_dir>/voicemail,
writes a row, e-mails it with the audio attached, and, when the center can dial out, makes it a
callback that keeps the caller's place in line. A message being recorded when the app stops is
taken over after the restart (`resume`): Asterisk goes on recording meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import uuid
import wave
from collections.abc import Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from app.adapters.db import Store
from app.adapters.mail import MailError, send_mail
from app.callbacks.service import CallbackService
from app.calls.events import CallerGone
from app.calls.ports import Clock, Pbx
from app.calls.session import Call
from app.calls.voice import Voice
from app.config import QueueSettings, Settings
from app.domain.callback import Callback, CallbackSource
from app.domain.interaction import Interaction, Outcome
from app.domain.voicemail import (
    MIN_MESSAGE_S,
    MIN_VOICE_S,
    Voicemail,
    email_subject,
    voice_seconds,
    worth_keeping,
)
from app.errors import AppError, PbxError

log = logging.getLogger(__name__)


class VoicemailService:
    def __init__(
        self,
        pbx: Pbx,
        store: Store,
        settings: Settings,
        callbacks: CallbackService | None,
        voice: Voice,
        var_dir: Path,
        clock: Clock,
    ) -> None:
        self.ari = pbx
        self.store = store
        self.settings = settings
        self.callbacks = callbacks
        self.voice = voice
        self.queues: Mapping[str, QueueSettings] = {q.name: q for q in settings.queues}
        self.dir = var_dir / "voicemail"
        self.clock = clock
        self._deliveries: set[asyncio.Task[None]] = set()

    def offered(self, queue: str | None) -> bool:
        """Does this queue take messages?"""
        q = self.queues.get(queue or "")
        return q is not None and q.voicemail.offer

    def key(self, queue: str) -> str | None:
        """The key that leaves a message while waiting in this queue, if it offers that."""
        q = self.queues.get(queue)
        return q.voicemail.key if q is not None and q.voicemail.offer else None

    def when_no_agent(self, queue: str | None) -> bool:
        """Does a caller whom nobody could answer get voicemail here? Yes unless the queue says
        `when_no_agent: false`, whether or not it offers a key for it while waiting."""
        q = self.queues.get(queue or "")
        return q is not None and q.voicemail.when_no_agent

    # -- the call's step ------------------------------------------------------

    async def leave(self, call: Call, queue: str | None) -> None:
        """Record a message; it is kept even if the caller hangs up instead of pressing #. The
        call ends here."""
        q = self.queues.get(queue or "")
        if q is None:
            raise AppError("voicemail-error", f"no queue {queue!r} for a message", {}, 500)
        await call.music(False)
        call.it.record(call.now(), "voicemail_started", queue=q.name)
        call.save_soon()
        # A key skips to the tone (as callers expect of a voicemail greeting); it is used up
        # here, so it does not end the message it was meant to start.
        await call.play(self.voice.fixed_in("voicemail_intro", call.it.language), interruptible=True)
        name = f"vm-{call.it.id}"
        call.it.legs["voicemail"] = {"recording": name, "queue": q.name}
        call.save_soon()
        finished, caller_left = await call.record(
            name, max_duration_s=q.voicemail.max_s, max_silence_s=q.voicemail.max_silence_s
        )
        await self._finish(call, name, q.name, finished.duration_s if finished else None, caller_left)

    async def resume(self, call: Call) -> None:
        """After a restart: the message the caller was leaving. Asterisk went on recording; wait
        for it to finish if it still runs, then keep what there is."""
        saved = call.it.legs.get("voicemail") or {}
        name, queue = str(saved.get("recording", f"vm-{call.it.id}")), saved.get("queue")
        call.it.record(call.now(), "voicemail_resumed", recording=name)
        call.save_soon()  # the record says at once that the message is followed again
        # Its events come to this call before its state is read: a recording that ends in between
        # is not waited for in vain.
        call.route(name, channel=False)
        live = await call.pbx.live_recording(name)
        duration: float | None = None
        caller_left = call.caller in call.gone
        if live is not None and live.state in ("queued", "recording", "paused"):
            q = self.queues.get(str(queue))
            finished, caller_left = await call.wait_recording(name, (q.voicemail.max_s if q else 600) + 15)
            duration = finished.duration_s if finished else None
        call.unroute(name)
        await self._finish(call, name, str(queue) if queue else None, duration, caller_left)

    async def _finish(
        self, call: Call, name: str, queue: str | None, duration_s: float | None, caller_left: bool
    ) -> None:
        call.it.legs.pop("voicemail", None)
        # The interaction must be on disk before the voicemail row that refers to it.
        await call.save()
        kept = await self.keep(call.it, name, duration_s, queue)
        if kept is None:
            call.it.record(call.now(), "voicemail_empty")
            if not caller_left:
                with contextlib.suppress(CallerGone):
                    await call.play(
                        self.voice.fixed_in("voicemail_empty", call.it.language), interruptible=False
                    )
            call.it.end(call.now(), Outcome.ABANDONED if caller_left else Outcome.NO_INPUT, ended_by="caller")
        else:
            vm, cb = kept
            if cb is not None and self.callbacks is not None:
                callbacks = self.callbacks
                # It joins the line once this call is over: the agent never rings a busy customer.
                call.cleanup.callback(callbacks.release, cb)
            call.it.record(
                call.now(),
                "voicemail_left",
                voicemail_id=vm.id,
                duration_s=vm.duration_s,
                callback_id=vm.callback_id,
            )
            call.it.end(call.now(), Outcome.VOICEMAIL, ended_by="caller")
        call.save_soon()
        if not caller_left:
            if kept is not None:
                refused = self.callbacks is not None and self.callbacks.refusal(call.it.ani) is not None
                saved = "voicemail_saved_no_callback" if refused else "voicemail_saved"
                with contextlib.suppress(CallerGone):
                    await call.play(self.voice.fixed_in(saved, call.it.language), interruptible=False)
            await call.hang_up()

    # -- keeping it -----------------------------------------------------------

    async def keep(
        self, it: Interaction, recording: str, duration_s: float | None, queue: str | None
    ) -> tuple[Voicemail, Callback | None] | None:
        """Keep a finished recording as a voicemail, with its callback task (held until the
        call is over). None if there was nothing worth keeping."""
        try:
            audio = await self.ari.stored_recording(recording)
        except PbxError as exc:
            log.warning("voicemail %s: recording unavailable: %s", recording, exc)
            return None
        if duration_s is None:
            duration_s = _duration(audio)
        q = self.queues.get(queue or "")
        rules = q.voicemail if q is not None else None
        voice = _voice(audio)
        if not worth_keeping(
            duration_s,
            len(audio),
            voice,
            min_s=rules.min_s if rules else MIN_MESSAGE_S,
            min_voice_s=rules.min_voice_s if rules else MIN_VOICE_S,
        ):
            log.info("voicemail %s: no message (%s s, %s s of voice): not kept", recording, duration_s, voice)
            await self.ari.delete_stored_recording(recording)
            return None
        cb: Callback | None = None
        vm_id = str(uuid.uuid4())
        path = self.dir / f"{vm_id}.wav"
        await asyncio.to_thread(_write_private, path, audio)
        await self.ari.delete_stored_recording(recording)
        vm = Voicemail(
            id=vm_id,
            interaction_id=it.id,
            phone=it.ani,
            queue=queue,
            customer_id=it.customer_id,
            recorded_at=self.clock(),
            duration_s=duration_s,
            file_path=str(path),
            size_bytes=len(audio),
        )
        made: list[Callback] = []  # a retry after an outage must not make a second callback
        try:
            cb = await self._rows(vm, it, queue, made)
        except Exception as exc:  # the database is away: the message is on disk, its rows follow
            log.warning("voicemail %s kept on disk; its rows wait for the database: %s", vm_id, exc)
            self._in_background(self._rows_later(vm, it, queue, made), f"voicemail-rows-{vm_id}")
            return vm, None
        log.info("voicemail %s from %s kept (%s s, %d bytes)", vm_id, it.ani, duration_s, len(audio))
        self._deliver(vm)
        return vm, cb

    async def _rows(
        self, vm: Voicemail, it: Interaction, queue: str | None, made: list[Callback]
    ) -> Callback | None:
        """The voicemail's row, and the callback that makes it work when the center can dial out."""
        if (
            not made
            and self.callbacks is not None
            and queue is not None
            and self.callbacks.refusal(it.ani) is None
        ):
            try:
                made.append(
                    await self.callbacks.request(
                        phone=it.ani,
                        queue=queue,
                        source=CallbackSource.VOICEMAIL,
                        place_at=it.queued_at,
                        tier=it.tier,
                        customer_id=it.customer_id,
                        origin_interaction_id=it.id,
                        data={"voicemail_id": vm.id},
                        hold=True,
                        require_offer=False,
                        language=it.language,
                    )
                )
            except AppError as exc:
                log.info("voicemail %s: no callback task: %s", vm.id, exc.message)
        vm.callback_id = made[0].id if made else None
        await self.store.create_voicemail(vm)
        return made[0] if made else None

    async def _rows_later(
        self, vm: Voicemail, it: Interaction, queue: str | None, made: list[Callback]
    ) -> None:
        backoff = 1.0
        for _ in range(120):  # about an hour of trying, then it is for a person to see in the log
            await asyncio.sleep(backoff)
            try:
                cb = await self._rows(vm, it, queue, made)
            except Exception as exc:
                backoff = min(backoff * 2, 30.0)
                log.info("voicemail %s: rows still waiting: %s", vm.id, exc)
                continue
            if cb is not None and self.callbacks is not None:
                self.callbacks.release(cb)  # the call is long over
            log.info("voicemail %s: rows written after the outage", vm.id)
            self._deliver(vm)
            return
        log.error("voicemail %s: rows never written; the audio is %s", vm.id, vm.file_path)

    def _deliver(self, vm: Voicemail) -> None:
        if self.settings.voicemail.email_to:
            self._in_background(self._email(vm), f"voicemail-mail-{vm.id}")

    def _in_background(self, step: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(step, name=name)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _email(self, vm: Voicemail) -> None:
        cfg = self.settings.voicemail
        when = vm.recorded_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        body = (
            f"{self.settings.center_name}: a caller left a message.\n\n"
            f"From: {vm.phone or 'unknown'}\nQueue: {vm.queue or '-'}\nWhen: {when}\n"
            f"Length: {vm.duration_s if vm.duration_s is not None else '?'} s\n"
            f"Callback task: {vm.callback_id or 'none (cannot dial out)'}\n"
            f"Voicemail id: {vm.id}\n"
        )
        try:
            await send_mail(
                cfg.smtp,
                cfg.email_to,
                email_subject(vm.phone, vm.queue, vm.duration_s),
                body,
                Path(vm.file_path),
            )
            await self.store.voicemail_emailed(vm.id, self.clock(), None)
            log.info("voicemail %s e-mailed to %s", vm.id, ", ".join(cfg.email_to))
        except MailError as exc:
            log.warning("voicemail %s: %s", vm.id, exc.message)
            with contextlib.suppress(Exception):
                await self.store.voicemail_emailed(vm.id, None, exc.message)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let e-mails already on their way finish."""
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=timeout)


def _voice(wav: bytes) -> float | None:
    """Seconds of voice in a message; None when it is not a 16-bit WAV we can read."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                return None
            return voice_seconds(w.readframes(w.getnframes()), w.getframerate())
    except (wave.Error, EOFError):
        return None


def _duration(wav: bytes) -> float | None:
    """The length of a WAV file Asterisk did not give one for (a recording taken over)."""
    try:
        with wave.open(io.BytesIO(wav)) as w:
            return round(float(w.getnframes()) / float(w.getframerate()), 3)
    except (wave.Error, EOFError, ZeroDivisionError):
        return None


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.chmod(0o640)
    tmp.replace(path)


def voicemail_view(vm: Voicemail) -> dict[str, object]:
    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t is not None else None

    return {
        "id": vm.id,
        "interaction_id": vm.interaction_id,
        "phone": vm.phone,
        "queue": vm.queue,
        "customer_id": vm.customer_id,
        "recorded_at": iso(vm.recorded_at),
        "duration_s": vm.duration_s,
        "size_bytes": vm.size_bytes,
        "status": vm.status,
        "callback_id": vm.callback_id,
        "emailed_at": iso(vm.emailed_at),
        "email_error": vm.email_error,
    }
