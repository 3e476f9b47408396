"""Fax pages on disk: PDFs turned into TIFF-F with Ghostscript, received TIFFs into PDFs.

TIFF-F here is what every fax stack reads: bilevel, CCITT Group 3, 1728 dots wide, fine
resolution (204 x 196 dpi), one page per TIFF directory. Ghostscript's `tiffg3` device makes
it (its AdjustWidth puts A4 and Letter pages at 1728 dots); libtiff's `tiffcp` joins a cover
page and documents into one file for one fax, and `tiff2pdf` makes a received fax readable.
Conversions are cached by content hash: the same PDF is converted once, whatever its name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
from pathlib import Path

from app.adapters.parent_death import dies_with_us
from app.domain.fax import FINE_DPI

log = logging.getLogger(__name__)

# Part of the cache key: a change to how pages are made must not reuse old pages.
RECIPE = "gs-tiffg3-fine-1"
PAPER = {"a4": "a4", "letter": "letter"}


class FaxPagesError(Exception):
    """A document could not be made into fax pages (or a fax into a PDF)."""


def tiff_pages(path: Path) -> int:
    """How many pages (image directories) a TIFF holds; 0 for a file that is not a TIFF."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return 0
    end = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(f"{end}I", data[4:8])
    pages = 0
    seen: set[int] = set()
    while offset and offset not in seen and offset + 2 <= len(data):
        seen.add(offset)
        (count,) = struct.unpack(f"{end}H", data[offset : offset + 2])
        nxt = offset + 2 + count * 12
        if nxt + 4 > len(data):
            break
        pages += 1
        (offset,) = struct.unpack(f"{end}I", data[nxt : nxt + 4])
    return pages


async def _run(*argv: str, timeout: float = 60.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=dies_with_us(),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise FaxPagesError(f"{argv[0]} took longer than {timeout:.0f} s") from None
    text = out.decode(errors="replace").strip()
    if proc.returncode != 0:
        raise FaxPagesError(f"{argv[0]} failed ({proc.returncode}): {text[-400:]}")
    return text


class FaxPages:
    def __init__(self, cache_dir: Path, paper: str = "a4") -> None:
        self.cache_dir = cache_dir
        self.paper = PAPER[paper]

    def _gs(self, source: Path, out: Path) -> list[str]:
        return [
            "gs",
            "-q",
            "-dSAFER",
            "-dBATCH",
            "-dNOPAUSE",
            "-sDEVICE=tiffg3",
            f"-r{FINE_DPI[0]}x{FINE_DPI[1]}",
            f"-sPAPERSIZE={self.paper}",
            "-dFIXEDMEDIA",
            "-dPDFFitPage",
            f"-sOutputFile={out}",
            str(source),
        ]

    async def convert(self, pdf: Path) -> tuple[Path, int]:
        """The PDF's fax pages (cached by content) and their count. Raises FaxPagesError for a
        file that is missing, unreadable, not a PDF, or has no pages."""
        try:
            data = await asyncio.to_thread(pdf.read_bytes)
        except OSError as exc:
            raise FaxPagesError(f"cannot read {pdf}: {exc.strerror}") from exc
        if not data.startswith(b"%PDF"):
            raise FaxPagesError(f"{pdf} is not a PDF file")
        digest = hashlib.sha256(data + f"|{RECIPE}|{self.paper}".encode()).hexdigest()[:24]
        out = self.cache_dir / f"{digest}.tif"
        if out.exists():
            pages = tiff_pages(out)
            if pages:
                return out, pages
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.tif")
        await _run(*self._gs(pdf, tmp))
        pages = tiff_pages(tmp)
        if pages == 0:
            tmp.unlink(missing_ok=True)
            raise FaxPagesError(f"Ghostscript made no pages from {pdf}")
        tmp.replace(out)
        log.info("converted %s to %d fax page(s): %s", pdf, pages, out.name)
        return out, pages

    async def page_from_postscript(self, program: str, out: Path) -> Path:
        """One page (a cover page) from a PostScript program."""
        out.parent.mkdir(parents=True, exist_ok=True)
        source = out.with_suffix(".ps")
        await asyncio.to_thread(source.write_text, program, "ascii")
        try:
            await _run(*self._gs(source, out))
        finally:
            source.unlink(missing_ok=True)
        if tiff_pages(out) == 0:
            raise FaxPagesError("Ghostscript made no cover page")
        return out

    @staticmethod
    async def join(parts: list[Path], out: Path) -> int:
        """One multi-page TIFF from several; its page count."""
        out.parent.mkdir(parents=True, exist_ok=True)
        await _run("tiffcp", *map(str, parts), str(out))
        return tiff_pages(out)

    @staticmethod
    async def preview(pdf: Path, png: Path) -> None:
        """The first page as a small grey PNG, for a list on a page (40 dpi: about 330 x 470)."""
        png.parent.mkdir(parents=True, exist_ok=True)
        tmp = png.with_suffix(".tmp.png")
        await _run(
            "gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pnggray", "-r40",
            "-dFirstPage=1", "-dLastPage=1", f"-sOutputFile={tmp}", str(pdf),
        )  # fmt: skip
        tmp.replace(png)

    @staticmethod
    async def to_pdf(tiff: Path, pdf: Path) -> None:
        """A received fax as a PDF, page for page (each at the fax's own resolution)."""
        await _run("tiff2pdf", "-o", str(pdf), str(tiff))
