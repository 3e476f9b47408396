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
from datetime import datetime
from enum import StrEnum

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
    mode: str  # in / on_call
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
