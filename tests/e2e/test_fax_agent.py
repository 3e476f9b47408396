"""Fax from the agent's call box, in Chromium, with a second Asterisk as the customer's fax machine.

An agent signed in to the panel takes a customer's call on the desk phone (pjsua). During the
call the box "Send by fax" shows the catalogue's titles and the caller's number; a number abroad
is refused beside the form by the outbound policy; a text file named .pdf is refused and nothing
is queued; then a catalogue document and an uploaded 2-page PDF go to the caller's number. The
customer hangs up; on the last-call card the job turns "delivered" live, the fax machine has
received cover + 1 + 2 pages (the uploaded pages compared with their source), and the call's
journey holds the job. Another agent asking to fax for that call gets 403.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.adapters.fax_pages import tiff_pages
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, sign_in
from tests.support.calls import ended, register_agent
from tests.support.fax_machine import FaxMachine, raster_pages, similarity, without_header
from tests.support.sip_phone import PhoneLab
from tests.support.stack import REPO, Stack, eventually

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect  # noqa: E402  (typed names, once the skip has passed)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.long,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

FORM = REPO / "config" / "fax" / "repair-form.pdf"  # 1 page
CALLER = "01055550140"  # the customer's number: their fax machine answers it (through the carrier)
SIMILAR = 0.95  # as tests/e2e/test_fax.py: Dice coefficient of black pixels at fine resolution
MACHINE = FaxMachine(Path(tempfile.mkdtemp(prefix="lianluo-fax-agent-machine-")))
STACK_CONFIG = {
    # RTP ports of its own: other test stacks on this machine use 30000-31999 and 36000-36999.
    "asterisk": {"rtp_start": 37000, "rtp_end": 37499},
    "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li"}],
    "queues": [{"name": "general", "strategy": "longest_idle", "ring_timeout_s": 20, "wrap_up_s": 120}],
    "ivr": {"connecting": [], "menu": [{"digit": "1", "queue": "general"}]},
    "carrier": {"outbound_contact": MACHINE.contact, "caller_id": "7000"},
    "fax": {
        "station_id": "+86 10 7000",
        "job_retry_after_s": 3,
        "job_ring_s": 15,
        "documents": [{"code": "102", "en": "the repair form", "zh": "维修申请表", "pdf": str(FORM)}],
    },
}


@pytest.fixture(scope="module")
def machine(stack: Stack) -> Iterator[FaxMachine]:
    MACHINE.start(stack.sip_port)
    try:
        yield MACHINE
    finally:
        MACHINE.stop()


def two_page_pdf(path: Path) -> Path:
    program = "%!PS\n/Helvetica-Bold findfont 36 scalefont setfont\n" + "".join(
        f"70 700 moveto (Quotation page {n}) show {n * 60} 150 {n * 60 + 180} 300 rectfill showpage\n"
        for n in (1, 2)
    )
    path.with_suffix(".ps").write_text(program)
    gs = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sPAPERSIZE=a4", "-sDEVICE=pdfwrite"]
    subprocess.run([*gs, f"-sOutputFile={path}", str(path.with_suffix(".ps"))], check=True)
    return path


def test_an_agent_faxes_a_document_and_an_uploaded_pdf_to_the_caller(
    stack: Stack,
    machine: FaxMachine,
    lab: PhoneLab,
    tones: tuple[Path, Path],
    tmp_path: Path,
    artifacts: Path,
) -> None:
    upload = two_page_pdf(tmp_path / "quotation.pdf")
    not_pdf = tmp_path / "notes.pdf"
    not_pdf.write_text("These are my notes, not a PDF.\n")
    caller_tone, agent_tone = tones
    shots = artifacts / "fax-agent"
    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US", viewport={"width": 1100, "height": 1200}).new_page()
            sign_in(page, stack, "1001")
            desk = register_agent(lab, stack, "1001")
            expect(page.locator("#state")).to_have_attribute("data-state", "ready")

            # -- the customer calls and the agent answers on the desk phone --------------------
            customer = lab.phone("127.0.0.2", user=CALLER)
            call = customer.call(
                f"sip:7000@127.0.0.1:{stack.sip_port}", play=caller_tone, record=tmp_path / "c.wav", loop=True
            )
            call.wait_confirmed(timeout=10)
            it = eventually(lambda: stack.interaction("ani = %s", CALLER), 10, "the call's interaction")
            stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
            call.send_dtmf("1")
            desk.wait_incoming(timeout=15).answer(play=agent_tone, loop=True)
            pop = page.locator("#pop")
            expect(pop).to_have_attribute("data-phase", "on_call")
            box = page.locator("#fax-box")
            expect(box).to_be_visible()
            expect(box).to_contain_text("the repair form")
            expect(page.locator("#fax-number")).to_have_value(CALLER)  # the caller's number, editable

            # -- refusals, beside the form: the policy, then a file that is no PDF ---------------
            page.fill("#fax-number", "+12025550100")
            page.check("#fax-box input[value='102']")
            page.click("#fax-send")
            expect(page.locator("#fax-error")).to_contain_text("international")
            page.fill("#fax-number", CALLER)
            page.set_input_files("#fax-pdf", str(not_pdf))
            page.click("#fax-send")
            expect(page.locator("#fax-error")).to_contain_text("only PDF files")
            assert stack.query("SELECT count(*) FROM fax_jobs") == [(0,)]  # nothing queued

            # -- the document and the 2-page upload, during the call --------------------------
            page.set_input_files("#fax-pdf", str(upload))
            page.check("#fax-box input[value='102']")
            page.click("#fax-send")
            expect(page.locator("#fax-note")).to_have_text(f"Queued: 102, quotation.pdf to {CALLER}.")
            job = page.locator("#fax-jobs li").first
            expect(job).to_contain_text("102, quotation.pdf")
            page.screenshot(path=str(shots / "1-queued-on-call.png"), full_page=True)

            # -- another agent may not fax for Alice's call -------------------------------------
            other = chromium.new_context(locale="en-US").new_page()
            sign_in(other, stack, "1002")
            refused = other.evaluate(
                """async ([id, number]) => {
                  const body = new FormData();
                  body.append("number", number);
                  body.append("documents", "102");
                  const csrf = document.querySelector('meta[name="csrf-token"]').content;
                  const url = "/panel/api/interactions/" + id + "/faxes";
                  const sent = await fetch(url, { method: "POST", body, headers: { "X-CSRF-Token": csrf } });
                  const listed = await fetch(url);
                  return [sent.status, (await sent.json()).message, listed.status];
                }""",
                [str(it["id"]), CALLER],
            )
            assert refused[0] == 403 and "calls they handled" in refused[1] and refused[2] == 403, refused

            # -- the customer hangs up: the last-call card follows the job to its end -----------
            call.hangup()
            ended(stack, it["id"])
            expect(page.locator("#pop-title")).to_have_text("Last call")
            expect(box).to_be_visible()
            done = machine.done(CALLER, timeout=300)
            assert done["status"] == "SUCCESS" and done["pages"] == "4", (done, stack.tail())
            expect(job.locator(".fax-status")).to_have_text("delivered", timeout=30_000)
            expect(job).to_contain_text("4 of 4 pages")
            page.screenshot(path=str(shots / "2-delivered-last-call.png"), full_page=True)
        finally:
            chromium.close()

    received = machine.received(CALLER)
    assert tiff_pages(received) == 4  # cover + the form + the two uploaded pages
    pages = raster_pages(received, tmp_path / "received")
    source = raster_pages(upload, tmp_path / "source")
    pairs = zip(pages[2:], source, strict=True)
    scores = [similarity(without_header(got, want), want) for got, want in pairs]
    print(f"fax from the call box: page similarity of the upload {scores}")
    assert all(s >= SIMILAR for s in scores), scores

    rows = stack.query(
        "SELECT status, interaction_id, agent_id, created_by, pages_sent, pages_expected FROM fax_jobs"
    )
    assert len(rows) == 1 and rows[0][0] == "sent", rows
    assert str(rows[0][1]) == str(it["id"]) and rows[0][2:] == ("1001", "agent:1001", 4, 4), rows
    kinds = [kind for kind, _ in stack.events(it["id"])]
    assert "fax_job_queued" in kinds and "fax_job_finished" in kinds, kinds
    finished = next(data for kind, data in stack.events(it["id"]) if kind == "fax_job_finished")
    assert finished["status"] == "sent" and finished["pages"] == 4, finished
