"""Fax: the document catalogue, the cover page, and what a fax session's result means.

Pure: no I/O, no asyncio. The catalogue is what callers may ask for by keypad code; a
document whose PDF could not be turned into fax pages is not in it (the rest still is). A
fax session's result arrives from Asterisk as text fields (FAXSTATUS, FAXPAGES, ...); here it
becomes a `FaxResult` whose `status` says whether every page went (`ok`), some did
(`partial`) or none did (`failed`): a partial fax is reported as such, never as a success.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain.access import AGENT_ROLES, SUPERVISING_ROLES, Principal

# Fine resolution (T.4): 204 x 196 dots per inch; every page is 1728 dots wide.
FINE_DPI = (204, 196)
CODE = re.compile(r"[0-9]{1,8}")


@dataclass(frozen=True)
class FaxDocument:
    """A catalogue entry that is ready to send: its fax pages exist."""

    code: str
    title_en: str
    title_zh: str
    pages: int
    tiff: str  # the converted pages (TIFF-F), by content hash


@dataclass(frozen=True)
class Catalogue:
    documents: tuple[FaxDocument, ...] = ()

    def get(self, code: str) -> FaxDocument | None:
        return next((d for d in self.documents if d.code == code), None)

    def __len__(self) -> int:
        return len(self.documents)


class FaxStatus(StrEnum):
    OK = "ok"  # every page went
    PARTIAL = "partial"  # some pages went, then the session failed
    FAILED = "failed"  # no page went


@dataclass(frozen=True)
class FaxResult:
    status: FaxStatus
    pages: int  # pages transferred
    rate: int | None  # bits per second, the last negotiated
    ecm: bool | None
    error: str  # empty when ok
    remote_station: str
    resolution: str = ""

    @property
    def ok(self) -> bool:
        return self.status is FaxStatus.OK


def fax_result(fields: Mapping[str, str], expected_pages: int | None = None) -> FaxResult:
    """Read Asterisk's fax variables (as the dialplan reports them, lower-case keys: status,
    error, pages, rate, remote, ecm, resolution, statusstr).

    An empty status means the session never ran (the caller hung up first). A sender that knows
    how many pages it meant to send (`expected_pages`) calls a success with fewer pages partial."""
    status = fields.get("status", "").strip().upper()
    pages = _int(fields.get("pages")) or 0
    rate = _int(fields.get("rate"))
    ecm_text = fields.get("ecm", "").strip().lower()
    ecm = True if ecm_text in ("yes", "1", "true") else False if ecm_text in ("no", "0", "false") else None
    error = fields.get("error", "").strip()
    detail = fields.get("statusstr", "").strip()
    if status == "SUCCESS" and (expected_pages is None or pages >= expected_pages):
        verdict, error = FaxStatus.OK, ""
    else:
        verdict = FaxStatus.PARTIAL if pages > 0 else FaxStatus.FAILED
        if not error or error == "NO_ERROR":
            error = detail or ("no fax session (hung up first)" if not status else status.lower())
        elif detail and detail.lower() != error.lower():
            error = f"{error}: {detail}"
        if status == "SUCCESS" and expected_pages is not None:
            error = f"{pages} of {expected_pages} pages sent"
    return FaxResult(
        status=verdict,
        pages=pages,
        rate=rate,
        ecm=ecm,
        error=error,
        remote_station=fields.get("remote", "").strip(),
        resolution=fields.get("resolution", "").strip(),
    )


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else None


# -- choosing documents ------------------------------------------------------------------


def choose(catalogue: Catalogue, chosen: Sequence[FaxDocument], code: str, limit: int) -> FaxDocument | str:
    """The document a caller's keyed `code` names, or why it cannot be added (said to the log)."""
    if not CODE.fullmatch(code):
        return "not a code"
    doc = catalogue.get(code)
    if doc is None:
        return "unknown code"
    if any(d.code == code for d in chosen):
        return "already chosen"
    if len(chosen) >= limit:
        return "too many documents"
    return doc


def keyed_number_problem(number: str, prefixes: Sequence[str]) -> str | None:
    """Why a fax number a caller keyed is refused (said to the log), or None. Only numbers that
    start with one of the center's prefixes are taken; the outbound policy is asked after this."""
    if not number.isdigit() or not 5 <= len(number) <= 20:
        return "not a phone number"
    if not any(number.startswith(p) for p in prefixes):
        return "not an allowed prefix"
    return None


# -- the cover page ----------------------------------------------------------------------


def cover_lines(center: str, now: datetime, documents: Sequence[FaxDocument], to: str = "") -> list[str]:
    """What the cover page says, line by line: who sends, when, what follows and how many pages."""
    pages = sum(d.pages for d in documents)
    lines = [f"Fax from {center}", f"Date: {now.strftime('%Y-%m-%d %H:%M %Z').strip()}"]
    if to:
        lines.append(f"To: {to}")
    lines += [
        f"Pages: {pages + 1} including this cover page",
        "",
        "Documents:",
    ]
    lines += [f"  {d.code}  {d.title_en}  ({d.pages} page{'s' if d.pages != 1 else ''})" for d in documents]
    return lines


def cover_postscript(lines: Sequence[str], paper: str) -> str:
    """A one-page PostScript program printing `lines` (Latin text; other scripts are dropped,
    the standard fonts have no CJK glyphs)."""
    width, height = (595, 842) if paper == "a4" else (612, 792)
    out = [
        "%!PS-Adobe-3.0",
        f"<< /PageSize [{width} {height}] >> setpagedevice",
        "/Helvetica-Bold findfont 26 scalefont setfont",
    ]
    y = height - 90
    for i, line in enumerate(lines):
        if i == 1:
            out.append("/Helvetica findfont 16 scalefont setfont")
        out.append(f"60 {y} moveto ({_ps_text(line)}) show")
        y -= 40 if i == 0 else 24
    out += ["3 setlinewidth", f"60 {y} moveto {width - 60} {y} lineto stroke", "showpage", ""]
    return "\n".join(out)


def _ps_text(text: str) -> str:
    ascii_only = text.encode("ascii", "ignore").decode()
    return ascii_only.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


# -- the record of one fax ----------------------------------------------------------------


@dataclass
class Fax:
    """One fax session, sent or received, as the `faxes` table keeps it."""

    id: str
    direction: str  # in / out
    mode: str  # in / on_call / job
    number: str
    started_at: datetime
    status: str  # sending / receiving, then a FaxStatus
    interaction_id: str | None = None
    documents: tuple[str, ...] = ()
    pages_expected: int | None = None
    pages: int = 0
    rate: int | None = None
    ecm: bool | None = None
    station_id: str = ""
    error: str = ""
    tiff_path: str | None = None
    pdf_path: str | None = None
    finished_at: datetime | None = None
    job_id: str | None = None

    def finish(self, result: FaxResult, at: datetime) -> None:
        self.status = result.status.value
        self.pages = result.pages
        self.rate = result.rate
        self.ecm = result.ecm
        self.station_id = result.remote_station
        self.error = result.error
        self.finished_at = at


def email_subject(fax: Fax) -> str:
    """The subject of a received fax's e-mail: who sent it, how many pages, and whether all came."""
    sender = fax.number or "an unknown number"
    pages = f"{fax.pages} page{'s' if fax.pages != 1 else ''}"
    if fax.status == FaxStatus.OK:
        return f"Fax from {sender} ({pages})"
    what = "PARTIAL" if fax.status == FaxStatus.PARTIAL else "FAILED"
    return f"{what} fax from {sender} ({pages} received: {fax.error or 'no reason given'})"


# -- outbound fax jobs --------------------------------------------------------------------


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for its next attempt
    SENDING = "sending"  # an attempt is on the line
    SENT = "sent"
    FAILED = "failed"  # out of attempts
    REFUSED = "refused"  # the outbound policy will never allow the number

    @property
    def finished(self) -> bool:
        """Nothing more will be tried: the only jobs that may be sent again (a job still to be
        tried would fax the same twice)."""
        return self in (JobStatus.SENT, JobStatus.FAILED, JobStatus.REFUSED)


class AttemptOutcome(StrEnum):
    SENT = "sent"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # answered, but the fax did not (all) go; or the line failed
    LIMITED = "limited"  # a call limit of the outbound policy: a later try may pass
    REFUSED = "refused"  # the number is outside what the center may call


_BUSY_CAUSES = frozenset({17})
_NO_ANSWER_CAUSES = frozenset({0, 18, 19, 21})


def unanswered(cause: int | None) -> AttemptOutcome:
    """What a Q.850 hang-up cause of a call that never answered means for the job."""
    if cause in _BUSY_CAUSES:
        return AttemptOutcome.BUSY
    if cause is None or cause in _NO_ANSWER_CAUSES:
        return AttemptOutcome.NO_ANSWER
    return AttemptOutcome.FAILED


@dataclass(frozen=True)
class JobRules:
    max_attempts: int = 3
    retry_after_s: float = 300.0
    daily_limit: int = 5  # jobs a day to one number


@dataclass(frozen=True)
class UploadedDocument:
    """A PDF someone uploaded to fax (not from the catalogue), made into fax pages."""

    name: str  # the file's name as uploaded (cleaned), shown on the cover page and the panels
    pages: int
    tiff: str  # its fax pages (TIFF-F, cached by content like the catalogue's)
    pdf: str  # the upload as it came, kept under <var_dir>/fax/uploads

    def as_document(self) -> FaxDocument:
        """The upload as the cover page and the composer see a document (it has no code)."""
        return FaxDocument("PDF", self.name, self.name, self.pages, self.tiff)


@dataclass
class FaxJob:
    """A fax to send to a number: attempts until it goes, or the rules say stop."""

    id: str
    number: str
    documents: tuple[str, ...]
    created_at: datetime
    status: str = JobStatus.QUEUED.value
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""
    finished_at: datetime | None = None
    created_by: str = ""
    # Sent from an agent's call box: the call it belongs to and who sent it (migration 024).
    interaction_id: str | None = None
    agent_id: str | None = None
    uploads: tuple[UploadedDocument, ...] = ()
    pages_sent: int = 0  # the last try's pages that went (cover included)
    pages_expected: int | None = None  # the last try's pages in all

    @property
    def contents(self) -> list[str]:
        """What the job sends, as people read it: catalogue codes, then the uploaded files' names."""
        return [*self.documents, *(u.name for u in self.uploads)]

    def after_attempt(self, outcome: AttemptOutcome, error: str, now: datetime, rules: JobRules) -> None:
        """Count the attempt (a refused or limited one places no call and counts not) and decide
        what comes next: done, another try after the pause, or give up."""
        if outcome not in (AttemptOutcome.LIMITED, AttemptOutcome.REFUSED):
            self.attempts += 1
        self.last_error = "" if outcome is AttemptOutcome.SENT else error or outcome.value
        if outcome is AttemptOutcome.SENT:
            self.status, self.next_attempt_at, self.finished_at = JobStatus.SENT.value, None, now
        elif outcome is AttemptOutcome.REFUSED:
            self.status, self.next_attempt_at, self.finished_at = JobStatus.REFUSED.value, None, now
        elif self.attempts >= rules.max_attempts:
            self.status, self.next_attempt_at, self.finished_at = JobStatus.FAILED.value, None, now
        else:
            self.status = JobStatus.QUEUED.value
            self.next_attempt_at = now + timedelta(seconds=rules.retry_after_s)


def job_refusal(number_jobs_today: int, rules: JobRules) -> str | None:
    """Why one more job to a number may not be queued today, or None."""
    if number_jobs_today >= rules.daily_limit:
        return f"this number has had {rules.daily_limit} faxes queued today (the limit)"
    return None


# -- faxes sent from the agent's call box ----------------------------------------------------

PDF_MAGIC = b"%PDF-"
# What is kept of an uploaded file's name: it is shown on panels and printed on the cover page.
_NAME_UNSAFE = re.compile(r"[^\w .()+-]+")


def upload_problem(head: bytes, size: int, max_bytes: int) -> str | None:
    """Why an uploaded file is refused before anything reads it further, or None: it must be a
    PDF (its first bytes say so, whatever its name or declared type) and within the size cap.
    Whether Ghostscript can read it is checked after (the converter)."""
    if size == 0:
        return "the file is empty"
    if size > max_bytes:
        return f"the file is larger than {max_bytes // (1024 * 1024)} MB (fax.max_upload_mb)"
    if not head.startswith(PDF_MAGIC):
        return "only PDF files can be faxed (this file does not start as a PDF does)"
    return None


def upload_name(filename: str | None) -> str:
    """An uploaded file's name as shown and printed: no directories, no odd characters, short."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _NAME_UNSAFE.sub("_", base).strip(" ._") or "document.pdf"
    return cleaned[-80:]


def may_fax_for(who: Principal, handled_by: frozenset[str], holds_it: bool) -> bool:
    """Who may fax documents to a call's customer from the panel: an agent who handled the
    interaction (talked with the caller, `handled_by`) or is on it now (`holds_it`: the desk
    knows before the interaction's row says so), and supervisors. Other agents may not: the
    caller's number is theirs only through the call."""
    if who.role in SUPERVISING_ROLES:
        return True
    if who.role not in AGENT_ROLES or who.agent_id is None:
        return False
    return holds_it or who.agent_id in handled_by
