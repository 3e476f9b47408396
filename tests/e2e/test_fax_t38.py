"""Fax over T.38: the same fax machine (a second Asterisk), now offering T.38 as the carrier does.

Both sides offer T.38 on the trunk (`fax.t38`); the fax session switches the call from G.711 to
T.38 (UDPTL) by re-INVITE. Checked on both fax services: a document sent back on the caller's
call, and a fax received on the fax number. test_fax.py covers the same with G.711 only.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.adapters.fax_pages import FaxPages, tiff_pages
from app.domain.fax import FaxDocument
from app.fax.ondemand import chosen_prompt
from tests.support.fax_machine import (
    FIRST_KEYS_S,
    NUMBER,
    FaxMachine,
    after,
    raster_pages,
    similarity,
    without_header,
)
from tests.support.stack import REPO, Stack, eventually

pytestmark = pytest.mark.e2e

SHEET = REPO / "config" / "fax" / "wm100-product-sheet.pdf"
FORM = REPO / "config" / "fax" / "repair-form.pdf"
SIMILAR = 0.95
FLOWS = Path(tempfile.mkdtemp(prefix="lianluo-fax-t38-flows-"))
(FLOWS / "main.yaml").write_text(
    "name: main\ndefault: true\ndnis: ['7000']\nstart: fax\nnodes:\n  fax: {type: fax, timeout_s: 8}\n"
)
MACHINE = FaxMachine(Path(tempfile.mkdtemp(prefix="lianluo-fax-t38-machine-")), t38=True)
STACK_CONFIG = {
    # RTP ports of its own: other test stacks on this machine use 30000-30999.
    "asterisk": {"rtp_start": 36500, "rtp_end": 36999},
    "ivr": {"flows": str(FLOWS)},
    "fax": {
        "dids": ["7002"],
        "t38": True,
        "documents": [{"code": "101", "en": "the product sheet", "pdf": str(SHEET)}],
    },
}


@pytest.fixture(scope="module")
def machine(stack: Stack) -> Iterator[FaxMachine]:
    MACHINE.start(stack.sip_port)
    try:
        yield MACHINE
    finally:
        MACHINE.stop()


def t38_sessions(machine: FaxMachine) -> int:
    """Fax sessions the machine completed over T.38 (its `fax show stats`)."""
    stats = machine.cli("fax show stats")
    section = stats.split("Spandsp T.38", 1)[1] if "Spandsp T.38" in stats else ""
    m = re.search(r"Success\s*:\s*(\d+)", section)
    return int(m.group(1)) if m else 0


def fax_row(stack: Stack, where: str) -> dict[str, Any] | None:
    keys = ("status", "pages", "rate", "ecm", "pdf_path", "number")
    rows = stack.query(f"SELECT {', '.join(keys)} FROM faxes WHERE {where}")
    return dict(zip(keys, rows[0], strict=True)) if rows else None


def test_a_document_goes_back_on_the_call_over_t38(stack: Stack, machine: FaxMachine, tmp_path: Path) -> None:
    before = t38_sessions(machine)
    chosen = chosen_prompt(FaxDocument("101", "the product sheet", "", pages=2, tiff=""))
    tag = machine.ask_for_documents("7000", [(FIRST_KEYS_S, "101#"), (after(chosen), "#")])
    done = machine.done(tag, timeout=240)
    assert done["status"] == "SUCCESS" and done["pages"] == "3", (done, stack.tail())
    assert t38_sessions(machine) == before + 1
    row = eventually(lambda: fax_row(stack, "direction = 'out' AND status <> 'sending'"), 30, "the row")
    assert row["status"] == "ok" and row["pages"] == 3, row
    pages = raster_pages(machine.received(tag), tmp_path / "received")
    source = raster_pages(SHEET, tmp_path / "sheet")
    scores = [
        similarity(without_header(got, want), want) for got, want in zip(pages[1:], source, strict=True)
    ]
    print(f"T.38 on-call fax: rate {row['rate']}, ECM {row['ecm']}, similarity {scores}")
    assert all(s >= SIMILAR for s in scores), scores


def test_a_fax_to_the_fax_number_arrives_over_t38(stack: Stack, machine: FaxMachine, tmp_path: Path) -> None:
    before = t38_sessions(machine)
    tiff, _ = asyncio.run(FaxPages(tmp_path / "cache").convert(FORM))
    tag = machine.send("7002", tiff)
    done = machine.done(tag, timeout=180)
    assert done["status"] == "SUCCESS", (done, stack.tail())
    assert t38_sessions(machine) == before + 1
    row = eventually(lambda: fax_row(stack, "direction = 'in' AND status <> 'receiving'"), 30, "the row")
    assert row["status"] == "ok" and row["pages"] == 1 and row["number"] == NUMBER, row
    assert tiff_pages(tiff) == 1
    page = raster_pages(Path(row["pdf_path"]), tmp_path / "stored")[0]
    form = raster_pages(FORM, tmp_path / "form")[0]
    score = similarity(without_header(page, form), form)
    print(f"T.38 inbound fax: rate {row['rate']}, ECM {row['ecm']}, similarity {score}")
    assert score >= SIMILAR
