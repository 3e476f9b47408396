"""Voicemail: the caller leaves a message instead of waiting; it becomes work.

Asterisk records (ARI channel recording, beep, # to finish, silence and length limits);
we fetch the file over ARI into <var_dir>/voicemail, write a row, e-mail it with the
audio attached, and, when the center can dial out, make it a callback that keeps the
caller's place in line. The caller may hang up at any time: what was recorded is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from pathlib import Path

from app.adapters.ari import AriClient
from app.adapters.db import Store
from app.adapters.mail import MailError, send_mail
from app.config import Settings
from app.domain.callback import Callback, CallbackSource, valid_phone
from app.domain.interaction import Interaction
from app.domain.voicemail import Voicemail, email_subject, worth_keeping
from app.errors import AppError, PbxError
from app.flows.callbacks import CallbackService
from app.flows.inbound import Clock

log = logging.getLogger(__name__)


class VoicemailService:
    def __init__(
        self,
        ari: AriClient,
        store: Store,
        settings: Settings,
        callbacks: CallbackService | None,
        var_dir: Path,
        clock: Clock,
    ) -> None:
        self.ari = ari
        self.store = store
        self.settings = settings
        self.callbacks = callbacks
        self.dir = var_dir / "voicemail"
        self.clock = clock
        self._deliveries: set[asyncio.Task[None]] = set()

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
        if not worth_keeping(duration_s, len(audio)):
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
        if self.callbacks is not None and queue is not None and valid_phone(it.ani):
            try:
                cb = await self.callbacks.request(
                    phone=it.ani,
                    queue=queue,
                    source=CallbackSource.VOICEMAIL,
                    place_at=it.queued_at,
                    tier=it.tier,
                    customer_id=it.customer_id,
                    origin_interaction_id=it.id,
                    data={"voicemail_id": vm_id},
                    hold=True,
                    require_offer=False,
                )
                vm.callback_id = cb.id
            except AppError as exc:
                log.info("voicemail %s: no callback task: %s", vm_id, exc.message)
        await self.store.create_voicemail(vm)
        log.info("voicemail %s from %s kept (%s s, %d bytes)", vm_id, it.ani, duration_s, len(audio))
        if self.settings.voicemail.email_to:
            task = asyncio.create_task(self._email(vm), name=f"voicemail-mail-{vm_id}")
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return vm, cb

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
