"""PDFs uploaded to fax: read from a multipart form without holding it in memory, checked,
converted with the catalogue's converter and kept under <var_dir>/fax/uploads.

The checks, in order, each before the next costs anything: who is asking (the form's CSRF
token comes before its file, so a stranger's file is never written), the size cap
(`fax.max_upload_mb`, counted while the file streams in), the first bytes (a PDF starts with
`%PDF-`, whatever its name or declared type), then Ghostscript itself (it must make fax pages
of it, at most `fax.max_upload_pages`). Any refusal is a 400 (413 past the size cap) naming the
reason, and the file is removed: nothing is queued from a bad upload.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDict

from app.adapters.fax_pages import FaxPages, FaxPagesError
from app.domain.fax import UploadedDocument, upload_name, upload_problem
from app.errors import AppError
from app.web.auth import CSRF_HEADER
from app.web.http import BadRequest, clean_text, form_body, unreadable

log = logging.getLogger(__name__)

FILE_FIELD = "pdf"
# A fax form's text fields: a number, a CSRF token, a few document codes.
MAX_FIELDS = 64
MAX_FIELD_BYTES = 4096
CHUNK = 64 * 1024
# Ghostscript runs on uploads at once: more wait their turn (each takes a core for a moment, and
# a burst of uploads must not starve the calls' audio).
CONVERSIONS_AT_ONCE = 2


class UploadTooLarge(AppError):
    def __init__(self, message: str, limit: int) -> None:
        super().__init__("payload-too-large", message, {"limit": limit}, 413)


@dataclass
class FaxForm:
    """A posted fax form: its text fields, and the uploaded file (still to be converted)."""

    fields: MultiDict[str] = field(default_factory=MultiDict)
    file: Path | None = None  # a temporary file, removed by `FaxUploads.accept` or `discard`
    filename: str = ""

    def discard(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
            self.file = None


Authorize = Callable[[Mapping[str, object]], Awaitable[object]]


class FaxUploads:
    def __init__(self, pages: FaxPages, directory: Path, max_mb: float, max_pages: int) -> None:
        self.pages = pages
        self.directory = directory
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.max_pages = max_pages
        self._converting = asyncio.Semaphore(CONVERSIONS_AT_ONCE)

    async def read_form(self, request: web.Request, authorize: Authorize) -> FaxForm:
        """The fax form, multipart (with a file) or plain. `authorize` is called once with the
        text fields read before the file (the CSRF token among them), before a byte of the file
        is kept; it raises to refuse."""
        if request.content_type != "multipart/form-data":
            plain = await form_body(request)
            await authorize(plain)
            fields: MultiDict[str] = MultiDict((k, v) for k, v in plain.items() if isinstance(v, str))
            return FaxForm(fields)
        form = FaxForm()
        authorized = False
        if CSRF_HEADER in request.headers:  # the panel's script: who is asking is known before the body
            await authorize(form.fields)
            authorized = True
        try:
            reader = await request.multipart()
        except (ValueError, AssertionError) as exc:
            raise BadRequest(f"the form cannot be read: {exc}") from exc
        try:
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    raise BadRequest("a fax form has no nested multipart parts")
                name = clean_text(part.name or "", "a form field's name")
                if len(form.fields) >= MAX_FIELDS:
                    raise BadRequest(f"a fax form has at most {MAX_FIELDS} fields")
                if name == FILE_FIELD and part.filename is not None:
                    if form.file is not None:
                        raise BadRequest("upload one PDF at a time")
                    if not authorized:
                        await authorize(form.fields)
                        authorized = True
                    await self._receive(part, form)
                    continue
                raw = bytearray()  # a chunk may hold less than the part: read to its end
                while chunk := await part.read_chunk(MAX_FIELD_BYTES + 1 - len(raw)):
                    raw += chunk
                    if len(raw) > MAX_FIELD_BYTES:
                        raise BadRequest(f"form field {name} is longer than {MAX_FIELD_BYTES} bytes")
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BadRequest(f"form field {name} is not valid UTF-8") from exc
                form.fields.add(name, clean_text(value, f"form field {name}"))
        except RequestPayloadError as exc:
            form.discard()
            raise unreadable(exc) from exc
        except (ValueError, LookupError, AssertionError, RuntimeError) as exc:
            # A part without its headers, a body not split by its boundary, an encoding aiohttp
            # does not know: the sender's mistake, not ours.
            form.discard()
            raise BadRequest(f"the form cannot be read: {exc}") from exc
        except BaseException:
            form.discard()
            raise
        if not authorized:
            await authorize(form.fields)
        return form

    async def _receive(self, part: BodyPartReader, form: FaxForm) -> None:
        """The file to a temporary place, refused as soon as it is too large or no PDF."""
        # Browsers and HTTP clients percent-encode what a quoted filename cannot hold.
        form.filename = upload_name(unquote(part.filename or ""))
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        path = self.directory / f"{uuid.uuid4()}.part"
        form.file = path
        size, head = 0, b""
        with await asyncio.to_thread(path.open, "wb") as out:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if len(head) < 8:
                    head = (head + chunk)[:8]
                if size > self.max_bytes:
                    raise UploadTooLarge(upload_problem(head, size, self.max_bytes) or "", self.max_bytes)
                if len(head) >= 5 and (problem := upload_problem(head, size, self.max_bytes)):
                    raise BadRequest(f"{form.filename}: {problem}")
                await asyncio.to_thread(out.write, chunk)
        if size == 0 and not part.filename:
            form.discard()  # the form's file field left empty: no upload
            return
        problem = upload_problem(head, size, self.max_bytes)
        if problem is not None:
            raise BadRequest(f"{form.filename or 'the file'}: {problem}")

    async def accept(self, form: FaxForm) -> UploadedDocument | None:
        """The form's file as fax pages, or None when it has none. Refused (BadRequest, the file
        removed) when Ghostscript cannot make pages of it or it has too many."""
        if form.file is None:
            return None
        kept = form.file.with_suffix(".pdf")
        await asyncio.to_thread(form.file.replace, kept)
        form.file = kept
        try:
            async with self._converting:
                tiff, pages = await self.pages.convert(kept)
        except FaxPagesError as exc:
            log.warning("upload %s (%s) refused: %s", kept.name, form.filename, exc)
            form.discard()
            raise BadRequest(
                f"{form.filename}: Ghostscript cannot read this PDF (damaged, protected or empty)"
            ) from exc
        if pages > self.max_pages:
            form.discard()
            most = f"at most {self.max_pages} may be faxed (fax.max_upload_pages)"
            raise BadRequest(f"{form.filename}: {pages} pages; {most}")
        log.info("upload %s (%s): %d fax page(s)", kept.name, form.filename, pages)
        return UploadedDocument(form.filename, pages, str(tiff), str(kept))
