"""A fax machine that calls the main number: heard by its calling tone (CNG) in the IVR.

The second Asterisk plays the customer's fax machine and sends a 3-page fax to the voice number
7000 (`fax.detect_on_voice`): it hears the greeting like anyone, its SendFAX sends the calling
tone, res_fax hears it and the call becomes a fax reception on the same interaction (row, TIFF,
PDF whose pages match the source, e-mail with the PDF). A person calling 7000 meanwhile hears
the greeting from the start and goes on as before.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app.adapters.fax_pages import FaxPages, tiff_pages
from app.config import load_settings
from tests.support.audio import find_reference, heard_in_parts
from tests.support.calls import HEARD, call_in, ended, prompt_wav
from tests.support.fax_machine import (
    NUMBER,
    STATION_ID,
    FaxMachine,
    customer_letter,
    raster_pages,
    similarity,
    without_header,
)
from tests.support.mailbox import Mailbox, serving
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually, free_port

pytestmark = pytest.mark.e2e  # about a minute: not `long`

# As in test_fax.py: Dice coefficient of the black pixels at 204 x 196 dpi (1.0 = the same
# marks; unrelated pages of this kind score about 0.1).
SIMILAR = 0.95
WINDOW_S = 20
SMTP_PORT = free_port()
MACHINE = FaxMachine(Path(tempfile.mkdtemp(prefix="lianluo-fax-cng-machine-")))
STACK_CONFIG = {
    # RTP ports of its own: other test stacks on this machine use 30000-31999 and 36000-36999.
    "asterisk": {"rtp_start": 37000, "rtp_end": 37499},
    "fax": {
        "dids": ["7002"],
        "detect_on_voice": True,
        "detect_window_s": WINDOW_S,
        "email_to": ["faxes@example.com"],
        "smtp": {"host": "127.0.0.1", "port": SMTP_PORT, "sender": "lianluo@example.com"},
    },
}


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with serving(SMTP_PORT) as box:
        yield box


@pytest.fixture(scope="module")
def machine(stack: Stack) -> Iterator[FaxMachine]:
    MACHINE.start(stack.sip_port)
    try:
        yield MACHINE
    finally:
        MACHINE.stop()


def received_row(stack: Stack) -> dict[str, Any] | None:
    keys: tuple[str, ...] = ("interaction_id", "status", "pages", "rate", "ecm", "station_id", "error")
    keys += ("tiff_path", "pdf_path", "number", "email_error")
    rows = stack.query(
        f"SELECT {', '.join(keys)} FROM faxes WHERE direction = 'in' AND emailed_at IS NOT NULL"
    )
    return dict(zip(keys, rows[0], strict=True)) if rows else None


def test_the_voice_numbers_listen_for_a_fax_tone_and_the_agents_line_does_not(stack: Stack) -> None:
    carrier = stack.cli("dialplan show 7000@from-carrier")
    assert f"FAXOPT(faxdetect)=cng,{WINDOW_S}" in carrier, carrier
    assert "faxdetect" not in stack.cli("dialplan show 7000@agents")  # an agent is no fax machine


def test_a_fax_machine_calling_the_main_number_is_heard_and_its_fax_received_and_emailed(
    stack: Stack, machine: FaxMachine, mailbox: Mailbox, tmp_path: Path
) -> None:
    pdf = customer_letter(tmp_path, 3)
    tiff, count = asyncio.run(FaxPages(tmp_path / "cache").convert(pdf))
    assert count == 3
    tag = machine.send("7000", tiff)
    done = machine.done(tag, timeout=300)
    assert done["status"] == "SUCCESS" and done["pages"] == "3", (done, stack.tail())

    row = eventually(lambda: received_row(stack), 60, "the received fax's row, e-mailed")
    assert row["status"] == "ok" and row["pages"] == 3 and row["error"] == "", row
    assert row["number"] == NUMBER and row["station_id"] == STATION_ID and row["email_error"] is None
    stored = Path(row["pdf_path"])
    assert stored.read_bytes().startswith(b"%PDF") and tiff_pages(Path(row["tiff_path"])) == 3
    pages = raster_pages(stored, tmp_path / "stored")
    source = raster_pages(pdf, tmp_path / "source")
    assert len(pages) == 3
    scores = [similarity(without_header(got, want), want) for got, want in zip(pages, source, strict=True)]
    assert all(s >= SIMILAR for s in scores), scores
    assert similarity(without_header(pages[0], source[2]), source[2]) < 0.5  # pages told apart

    mail = mailbox.about(f"Fax from {NUMBER} (3 pages)")
    assert mail is not None, [str(m["Subject"]) for m in mailbox.messages]
    attachment = next(p for p in mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == stored.read_bytes()

    # One interaction: a caller on the voice number, answered by the IVR, then the fax.
    stack.wait_event(row["interaction_id"], "fax_received")
    it = stack.interaction_row("id = %s", row["interaction_id"])
    assert it["outcome"] == "fax" and it["dnis"] == "7000" and it["ani"] == NUMBER, it
    events = stack.events(row["interaction_id"])
    kinds = [kind for kind, _ in events]
    assert kinds.index("answered_by_ivr") < kinds.index("fax_tone_detected") < kinds.index("fax_received")
    tone = dict(events)["fax_tone_detected"]
    assert tone["handed_over"] is True and tone["phase"] == "ivr", tone
    assert not stack.query("SELECT id FROM interactions WHERE id <> %s", row["interaction_id"])
    at: dict[str, datetime] = dict(
        stack.query(
            "SELECT kind, at FROM interaction_events WHERE interaction_id = %s ORDER BY id DESC",
            row["interaction_id"],
        )
    )
    heard_after = round((at["fax_tone_detected"] - at["answered_by_ivr"]).total_seconds(), 2)
    print(
        f"fax to the main number: tone heard {heard_after} s after the answer, rate {row['rate']} bit/s, "
        f"ECM {row['ecm']}, page similarity {scores}"
    )


def test_a_person_on_the_main_number_hears_the_greeting_at_once_and_is_no_fax(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    """The caller plays a steady 1 kHz tone (near the fax tone's 1.1 kHz) the whole time."""
    call, it = call_in(lab, stack, "13800138077", tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "prompt_played", timeout=20)  # the whole greeting went out
    call.hangup()
    call.wait_disconnected(timeout=10)
    row = ended(stack, it["id"])
    english = load_settings(stack.config_path).ivr.greeting[0]
    heard = find_reference(call.recording(), prompt_wav(english))
    # Heard whole: in thirds found in order (a late packet under load read one whole match as 0.36).
    whole = heard_in_parts(call.recording(), prompt_wav(english), halves=2)
    print(f"greeting heard {whole:.2f}, starting {heard.offset:.2f} s into the caller's recording")
    assert whole > HEARD, (whole, heard)
    # The recording starts when the call is answered; the greeting follows at once (the caller's
    # first audio frame, a few tens of milliseconds), nothing is held back to listen first.
    assert heard.offset < 1.0, heard
    kinds = [kind for kind, _ in stack.events(it["id"])]
    assert "fax_tone_detected" not in kinds and row["outcome"] == "hung_up_in_ivr", (kinds, row)
