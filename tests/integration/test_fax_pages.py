"""Fax pages with the real tools: Ghostscript (PDF to TIFF-F), tiffcp, tiff2pdf; the catalogue."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from app.adapters.fax_pages import FaxPages, FaxPagesError, tiff_pages
from app.config import load_settings
from app.domain.fax import cover_postscript
from app.fax.catalogue import build_catalogue

REPO = Path(__file__).resolve().parents[2]
SHEET = REPO / "config" / "fax" / "wm100-product-sheet.pdf"
FORM = REPO / "config" / "fax" / "repair-form.pdf"

pytestmark = pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript is not installed")


def first_page_geometry(tiff: Path) -> dict[int, int]:
    """The first directory's width (256), compression (259) and x resolution (282, numerator)."""
    data = tiff.read_bytes()
    end = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(f"{end}I", data[4:8])
    (count,) = struct.unpack(f"{end}H", data[offset : offset + 2])
    out: dict[int, int] = {}
    for i in range(count):
        tag, kind, _, value = struct.unpack(f"{end}HHII", data[offset + 2 + i * 12 : offset + 14 + i * 12])
        if kind == 3:  # SHORT, stored in the first two bytes of the value field
            value = struct.unpack(f"{end}H", data[offset + 10 + i * 12 : offset + 12 + i * 12])[0]
        if kind == 5:  # RATIONAL: value is an offset
            value = struct.unpack(f"{end}I", data[value : value + 4])[0]
        out[tag] = value
    return out


async def test_a_pdf_becomes_fine_fax_pages_once(tmp_path: Path) -> None:
    pages = FaxPages(tmp_path / "cache", "a4")
    tiff, count = await pages.convert(SHEET)
    assert count == 2 == tiff_pages(tiff)
    geometry = first_page_geometry(tiff)
    assert geometry[256] == 1728  # fax page width
    assert geometry[259] == 3  # CCITT Group 3
    assert geometry[282] == 204  # fine resolution, 204 x 196
    # The same content under another name is not converted again.
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(SHEET.read_bytes())
    assert (await pages.convert(copy))[0] == tiff
    assert len(list((tmp_path / "cache").glob("*.tif"))) == 1


async def test_letter_paper_is_also_1728_dots_wide(tmp_path: Path) -> None:
    tiff, _ = await FaxPages(tmp_path, "letter").convert(FORM)
    assert first_page_geometry(tiff)[256] == 1728


async def test_not_a_pdf_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_text("hello")
    with pytest.raises(FaxPagesError, match="not a PDF"):
        await FaxPages(tmp_path).convert(bad)
    with pytest.raises(FaxPagesError, match="cannot read"):
        await FaxPages(tmp_path).convert(tmp_path / "missing.pdf")


async def test_cover_and_documents_join_into_one_fax_and_back_to_pdf(tmp_path: Path) -> None:
    pages = FaxPages(tmp_path / "cache")
    sheet, _ = await pages.convert(SHEET)
    form, _ = await pages.convert(FORM)
    program = cover_postscript(["Fax from test", "Date: today"], "a4")
    cover = await pages.page_from_postscript(program, tmp_path / "cover.tif")
    assert tiff_pages(cover) == 1
    assert await pages.join([cover, sheet, form], tmp_path / "fax.tif") == 4
    await pages.to_pdf(tmp_path / "fax.tif", tmp_path / "fax.pdf")
    assert (tmp_path / "fax.pdf").read_bytes().startswith(b"%PDF")


async def test_a_missing_pdf_is_a_config_error_for_that_document_only(tmp_path: Path) -> None:
    shutil.copy(SHEET, tmp_path / "sheet.pdf")
    config = tmp_path / "center.yaml"
    config.write_text(
        "fax:\n  documents:\n"
        "    - {code: '101', en: Sheet, pdf: sheet.pdf}\n"
        "    - {code: '102', en: Gone, pdf: gone.pdf}\n"
    )
    settings = load_settings(config)
    catalogue, problems = await build_catalogue(settings, FaxPages(tmp_path / "cache"))
    assert [d.code for d in catalogue.documents] == ["101"]
    assert catalogue.documents[0].pages == 2
    assert len(problems) == 1
    assert problems[0].details == {"file": str(config), "line": 4, "field": "fax.documents[1].pdf"}
    assert "gone.pdf" in problems[0].message
