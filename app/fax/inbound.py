"""Inbound fax: a fax number's call is answered by ReceiveFAX; the pages are kept as TIFF and
PDF under <var_dir>/fax/in, with a `faxes` row, and e-mailed with the PDF attached.

A fax machine that calls a voice number is heard by its calling tone (CNG) while in the IVR
(fax.detect_on_voice): Asterisk takes the channel out of Stasis and brings it back as
`faxtone,<DNIS>`; the voice call hands it over here (`after_tone`) and the same interaction
goes on as a fax reception, with a `fax_tone_detected` event.

A reception that fails part-way keeps the pages that came, is stored as `partial` (or `failed`
with none) and is e-mailed as such: nothing is dropped silently.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path

from app.adapters.ari import Channel
from app.adapters.fax_pages import FaxPages, FaxPagesError, tiff_pages
from app.adapters.fax_store import FaxStore
from app.adapters.mail import MailError, send_mail
from app.calls.runtime import Runtime
from app.calls.session import Call
from app.config import SmtpSettings
from app.domain.caller_id import caller_number
from app.domain.fax import Fax, FaxStatus, email_subject, fax_result
from app.domain.interaction import Interaction, Outcome
from app.fax.session import fax_session

log = logging.getLogger(__name__)

KIND = "faxin"
# A channel on which Asterisk heard a fax tone comes back into Stasis with this first argument.
TONE_KIND = "faxtone"
# It comes back through the dialplan alone, right after its StasisEnd (the same millisecond
# here); a caller who hangs up shows that sooner.
BACK_IN_STASIS_S = 2.0
# A reception longer than this is cut: 30 pages at a slow rate.
RECEIVE_TIMEOUT_S = 30 * 60.0


class FaxReceiver:
    def __init__(
        self,
        *,
        runtime: Runtime,
        store: FaxStore,
        pages: FaxPages,
        in_dir: Path,
        station_id: str,
        email_to: tuple[str, ...],
        smtp: SmtpSettings,
        tone_dids: tuple[str, ...] = (),
        tone_window_s: float = 0.0,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.pages = pages
        self.in_dir = in_dir
        self.station_id = station_id
        self.email_to = email_to
        self.smtp = smtp
        # Voice numbers where Asterisk listens for a fax tone, and for how long after arrival.
        self.tone_dids = tone_dids
        self.tone_window_s = tone_window_s
        runtime.board.on_stasis(KIND, self.arrived)
        # A fax tone's channel whose voice call no longer held it: received on a call of its own.
        runtime.board.on_stasis(TONE_KIND, self.arrived)

    async def arrived(self, channel: Channel, args: tuple[str, ...]) -> None:
        dnis = args[1] if len(args) > 1 else channel.exten
        it = Interaction(
            str(uuid.uuid4()),
            channel.id,
            ani=caller_number(channel.caller_number),
            dnis=dnis,
            arrived_at=self.runtime.clock(),
        )
        it.legs["kind"] = KIND
        call = self.runtime.call(it, KIND)
        tone = bool(args) and args[0] == TONE_KIND
        self.runtime.board.launch(call, lambda: call.run(lambda: self.receive(call, channel, tone)))

    async def receive(self, call: Call, channel: Channel, tone: bool = False) -> None:
        it = call.it
        it.record(it.arrived_at, "arrived", channel=channel.name, fax=True)
        if tone:
            # Heard on a voice number whose call had already let the channel go.
            it.record(it.arrived_at, "fax_tone_detected", handed_over=False)
        call.create()
        await self.reception(call)

    async def after_tone(self, call: Call) -> bool:
        """A voice call's caller left Stasis: if Asterisk heard a fax tone on its line (the
        channel comes back as `faxtone`), receive the fax on this same call and interaction and
        say True; False when the caller simply left."""
        it = call.it
        if it.dnis not in self.tone_dids:
            return False
        # res_fax stops listening `window` seconds after the call arrived; a moment later no
        # tone can have moved the channel.
        if (call.now() - it.arrived_at).total_seconds() > self.tone_window_s + 2.0:
            return False
        if not await call.back_in_stasis(TONE_KIND, BACK_IN_STASIS_S):
            return False
        it.record(call.now(), "fax_tone_detected", handed_over=True, phase=it.phase.value)
        it.legs["kind"] = KIND  # from now on a fax reception, after a restart too
        call.save_soon()
        await call.recorder.ivr(it, call.caller, "end")  # the IVR part of a recording, if any
        call.log.info("a fax machine's tone on %s: receiving a fax", it.dnis)
        await self.reception(call)
        return True

    async def reception(self, call: Call) -> None:
        """Receive the fax on the call's channel (in Stasis); keep, record and e-mail what came."""
        it = call.it
        await call.save()  # the fax row refers to the interaction
        self.in_dir.mkdir(parents=True, exist_ok=True)
        fax_id = str(uuid.uuid4())
        fax = Fax(
            id=fax_id,
            direction="in",
            mode="in",
            number=it.ani,
            started_at=call.now(),
            status="receiving",
            interaction_id=it.id,
            tiff_path=str(self.in_dir / f"{fax_id}.tif"),
        )
        await self.store.save(fax)
        call.log.info("receiving a fax from %s on %s", it.ani or "unknown", it.dnis)
        tiff = self.in_dir / f"{fax_id}.tif"
        fields = await fax_session(
            call, "receive", tiff, station_id=self.station_id, header="", timeout_s=RECEIVE_TIMEOUT_S
        )
        result = fax_result(fields or {})
        fax.finish(result, call.now())
        await self.keep_pages(fax, tiff)
        it.legs.pop("fax", None)
        it.record(
            call.now(),
            "fax_received",
            fax_id=fax.id,
            status=fax.status,
            pages=fax.pages,
            rate=fax.rate,
            ecm=fax.ecm,
            station_id=fax.station_id,
            error=fax.error,
        )
        it.end(call.now(), Outcome.FAX, ended_by="caller")
        call.save_soon()
        await self.store.save(fax)
        call.log.info(
            "fax from %s: %s, %d page(s) at %s bit/s%s",
            it.ani or "unknown",
            fax.status,
            fax.pages,
            fax.rate,
            f" ({fax.error})" if fax.error else "",
        )
        await self.email(fax, call.now())

    async def keep_pages(self, fax: Fax, tiff: Path) -> None:
        """The pages on disk decide what came: a failed session with pages in the file is partial."""
        on_disk = tiff_pages(tiff)
        if on_disk == 0:
            fax.tiff_path = None
            if fax.status != FaxStatus.FAILED:
                fax.status, fax.error = FaxStatus.FAILED.value, fax.error or "no page was stored"
            return
        if fax.status == FaxStatus.FAILED:
            fax.status = FaxStatus.PARTIAL.value
        fax.pages = max(fax.pages, on_disk) if fax.status != FaxStatus.OK else on_disk
        pdf = tiff.with_suffix(".pdf")
        try:
            await self.pages.to_pdf(tiff, pdf)
            fax.pdf_path = str(pdf)
        except FaxPagesError as exc:
            log.error("fax %s: could not make its PDF: %s", fax.id, exc)
            fax.error = f"{fax.error}; no PDF: {exc}" if fax.error else f"no PDF: {exc}"

    async def email(self, fax: Fax, now: datetime) -> None:
        if not self.email_to:
            return
        lines = [
            f"From: {fax.number or 'unknown'} (station id {fax.station_id or 'none'})",
            f"Received: {fax.started_at:%Y-%m-%d %H:%M:%S %Z}",
            f"Result: {fax.status}, {fax.pages} page(s)" + (f", {fax.rate} bit/s" if fax.rate else ""),
        ]
        if fax.error:
            lines.append(f"Problem: {fax.error}")
        attachment = Path(fax.pdf_path) if fax.pdf_path else None
        try:
            await send_mail(
                self.smtp,
                self.email_to,
                email_subject(fax),
                "\n".join(lines) + "\n",
                attachment,
                ("application", "pdf"),
            )
        except MailError as exc:
            log.error("fax %s: %s", fax.id, exc.message)
            await self.store.emailed(fax.id, None, exc.message)
            return
        await self.store.emailed(fax.id, now, None)
