"""Fax rules: reading a session's result, choosing documents, the cover page, the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.adapters.asterisk_instance import did_extensions, fax_detect_option
from app.adapters.fax_store import job_view
from app.bus import Bus, FaxJobChanged
from app.config import load_settings
from app.domain.access import Principal, Role
from app.domain.fax import (
    AttemptOutcome,
    Catalogue,
    Fax,
    FaxDocument,
    FaxJob,
    FaxStatus,
    JobRules,
    JobStatus,
    UploadedDocument,
    choose,
    cover_lines,
    cover_postscript,
    email_subject,
    fax_result,
    job_refusal,
    keyed_number_problem,
    may_fax_for,
    unanswered,
    upload_name,
    upload_problem,
)
from app.domain.ivr_flow import Flow, Node, check_flow
from app.errors import ConfigError
from app.fax.agent import FaxBoxWatch
from app.panel.live import LiveHub

SHEET = FaxDocument("101", "the product sheet", "产品说明", 2, "/x/a.tif")
FORM = FaxDocument("102", "the repair form (v2)", "", 1, "/x/b.tif")
CATALOGUE = Catalogue((SHEET, FORM))


def test_a_whole_fax_is_ok() -> None:
    r = fax_result(
        {"status": "SUCCESS", "error": "NO_ERROR", "pages": "4", "rate": "14400", "ecm": "yes"}
        | {"remote": "86 10"},
        expected_pages=4,
    )
    assert (r.status, r.pages, r.rate, r.ecm, r.error, r.remote_station) == (
        FaxStatus.OK,
        4,
        14400,
        True,
        "",
        "86 10",
    )


def test_a_fax_cut_halfway_is_partial_with_the_pages_that_went() -> None:
    r = fax_result({"status": "FAILED", "error": "HANGUP", "statusstr": "Far end hung up", "pages": "2"})
    assert r.status is FaxStatus.PARTIAL and r.pages == 2
    assert r.error == "HANGUP: Far end hung up"


def test_a_success_with_fewer_pages_than_meant_is_partial() -> None:
    r = fax_result({"status": "SUCCESS", "pages": "3"}, expected_pages=4)
    assert r.status is FaxStatus.PARTIAL and r.error == "3 of 4 pages sent"


def test_no_session_at_all_is_a_failure_that_says_so() -> None:
    r = fax_result({})
    assert r.status is FaxStatus.FAILED and r.pages == 0 and r.rate is None and r.ecm is None
    assert "hung up first" in r.error


def test_choosing_documents_by_code() -> None:
    assert choose(CATALOGUE, [], "101", 5) == SHEET
    assert choose(CATALOGUE, [], "999", 5) == "unknown code"
    assert choose(CATALOGUE, [SHEET], "101", 5) == "already chosen"
    assert choose(CATALOGUE, [SHEET], "102", 1) == "too many documents"
    assert choose(CATALOGUE, [], "1*", 5) == "not a code"


def test_the_cover_page_names_center_date_documents_and_pages() -> None:
    lines = cover_lines("Lianluo demo", datetime(2026, 12, 3, 9, 30, tzinfo=UTC), [SHEET, FORM])
    assert lines[0] == "Fax from Lianluo demo"
    assert "2026-12-03 09:30 UTC" in lines[1]
    assert "Pages: 4 including this cover page" in lines
    assert any("101" in line and "the product sheet" in line and "2 pages" in line for line in lines)
    program = cover_postscript(lines, "a4")
    assert "[595 842]" in program and "showpage" in program
    assert "\\(v2\\)" in program  # parentheses escaped in PostScript strings
    assert cover_postscript(["传真 fax"], "letter").count("( fax)") == 1  # no CJK glyphs: dropped


def test_a_partial_fax_says_so_in_the_mail_subject() -> None:
    fax = Fax("f", "in", "in", "13800000001", datetime.now(UTC), "partial", pages=2, error="HANGUP")
    assert email_subject(fax) == "PARTIAL fax from 13800000001 (2 pages received: HANGUP)"
    fax.status = FaxStatus.OK.value
    assert email_subject(fax) == "Fax from 13800000001 (2 pages)"


def test_a_flow_may_have_a_fax_node() -> None:
    flow = Flow("f", "start", {"start": Node(type="fax")})
    check_flow(flow, set())


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "center.yaml"
    p.write_text(text)
    return p


def test_fax_documents_keep_the_line_of_their_pdf(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path, "fax:\n  documents:\n    - code: '7'\n      en: A\n      pdf: a.pdf\n  dids: ['72']\n"
        )
    )
    assert s.fax.documents[0].line == 5
    assert s.fax.dids == ("72",)


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        (
            "fax:\n  documents:\n    - {code: '1', en: A, pdf: a}\n    - {code: '1', en: B, pdf: b}\n",
            4,
            "fax.documents[1].code",
            "twice",
        ),
        ("fax:\n  documents:\n    - {code: 'A1', en: A, pdf: a.pdf}\n", 3, "fax.documents[0].code", "keypad"),
        ("fax:\n  documents:\n    - {code: '1', en: A}\n", 3, "fax.documents[0].pdf", "required"),
        ("carrier:\n  dids: ['7000']\nfax:\n  dids: ['7000']\n", 4, "fax.dids[0]", "voice number"),
        ("fax:\n  paper: a3\n", 2, "fax.paper", "expected one of"),
        ("fax:\n  detect_on_voice: true\n  detect_window_s: 2\n", 3, "fax.detect_window_s", "between 3"),
        ("fax:\n  job_lines: 0\n", 2, "fax.job_lines", "between 1 and 60"),
        (
            "carrier:\n  dids: ['7000']\nfax:\n  detect_dids: ['7002']\n",
            4,
            "fax.detect_dids[0]",
            "not a voice",
        ),
        ("fax:\n  email_to: [nobody]\n", 2, "fax.email_to[0]", "not an e-mail"),
        ("fax:\n  numbers: ['010']\n", 2, "fax.numbers[0]", "need carrier.outbound_contact"),
        (
            "carrier: {outbound_contact: 'sip:127.0.0.2:5062'}\nfax:\n  numbers: ['01x']\n",
            3,
            "fax.numbers[0]",
            "a number prefix",
        ),
    ],
)
def test_bad_fax_config_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    assert err.value.details == {"file": str(tmp_path / "center.yaml"), "line": line, "field": field}
    assert words in err.value.message


def test_the_voice_numbers_listen_for_a_fax_tone_when_asked_and_only_from_the_carrier(tmp_path: Path) -> None:
    off = load_settings(write(tmp_path, "carrier:\n  dids: ['7000', '7001']\n"))
    assert off.fax.detected_on(off.carrier.dids) == ()
    assert "faxdetect" not in did_extensions(off.carrier.dids, fax_detect_option(off))
    s = load_settings(
        write(
            tmp_path,
            "carrier:\n  dids: ['7000', '7001']\n"
            "fax:\n  detect_on_voice: true\n  detect_dids: ['7001']\n  detect_window_s: 15\n",
        )
    )
    assert s.fax.detected_on(s.carrier.dids) == ("7001",)
    assert fax_detect_option(s) == "cng,15"
    plan = did_extensions(s.carrier.dids, fax_detect_option(s), s.fax.detected_on(s.carrier.dids))
    assert plan.splitlines() == [
        "exten => 7000,1,Gosub(lianluo-inbound,s,1(7000))",
        " same => n,Hangup()",
        "exten => 7001,1,Set(FAXOPT(faxdetect)=cng,15)",
        " same => n,Gosub(lianluo-inbound,s,1(7001))",
        " same => n,Hangup()",
    ]
    every = load_settings(
        write(tmp_path, "carrier:\n  dids: ['7000', '7001']\nfax:\n  detect_on_voice: true\n")
    )
    assert every.fax.detected_on(every.carrier.dids) == ("7000", "7001")
    # Only the tone, with T.38 too: a T.38 switch heard by res_fax's detector would be swallowed.
    t38 = load_settings(write(tmp_path, "fax:\n  detect_on_voice: true\n  t38: true\n"))
    assert fax_detect_option(t38) == "cng,20"


T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
RULES = JobRules(max_attempts=3, retry_after_s=300, daily_limit=2)


def test_a_busy_fax_is_tried_again_after_the_pause_then_sent() -> None:
    job = FaxJob("j", "01012345678", ("101",), T0)
    job.after_attempt(AttemptOutcome.BUSY, "busy (User busy)", T0, RULES)
    assert (job.status, job.attempts, job.next_attempt_at) == ("queued", 1, T0 + timedelta(seconds=300))
    assert job.last_error == "busy (User busy)"
    job.after_attempt(AttemptOutcome.SENT, "", T0 + timedelta(minutes=5), RULES)
    assert (job.status, job.attempts, job.next_attempt_at, job.last_error) == ("sent", 2, None, "")


def test_a_job_gives_up_after_its_attempts() -> None:
    job = FaxJob("j", "01012345678", ("101",), T0)
    for outcome in (AttemptOutcome.NO_ANSWER, AttemptOutcome.FAILED, AttemptOutcome.BUSY):
        job.after_attempt(outcome, "", T0, RULES)
    assert (job.status, job.attempts, job.finished_at, job.last_error) == ("failed", 3, T0, "busy")


def test_a_limited_try_does_not_count_and_a_refused_number_ends_the_job() -> None:
    job = FaxJob("j", "01012345678", ("101",), T0)
    job.after_attempt(AttemptOutcome.LIMITED, "hourly limit", T0, RULES)
    assert (job.status, job.attempts) == ("queued", 0)
    job.after_attempt(AttemptOutcome.REFUSED, "not in the dial plan", T0, RULES)
    assert (job.status, job.attempts) == ("refused", 0)


def test_hang_up_causes_of_an_unanswered_fax_call() -> None:
    assert unanswered(17) is AttemptOutcome.BUSY
    assert unanswered(19) is AttemptOutcome.NO_ANSWER and unanswered(None) is AttemptOutcome.NO_ANSWER
    assert unanswered(34) is AttemptOutcome.FAILED


def test_one_number_gets_so_many_fax_jobs_a_day() -> None:
    assert job_refusal(1, RULES) is None
    assert "2 faxes queued today" in (job_refusal(2, RULES) or "")


def test_a_keyed_fax_number_must_start_with_an_allowed_prefix() -> None:
    assert keyed_number_problem("01055550100", ["0105555"]) is None
    assert keyed_number_problem("02099999999", ["0105555"]) == "not an allowed prefix"
    assert keyed_number_problem("0105", ["0105"]) == "not a phone number"
    assert keyed_number_problem("", ["0"]) == "not a phone number"


def test_only_a_finished_job_may_be_sent_again() -> None:
    assert [s.value for s in JobStatus if s.finished] == ["sent", "failed", "refused"]
    assert not JobStatus.QUEUED.finished and not JobStatus.SENDING.finished  # would go twice


# -- faxes from the agent's call box --------------------------------------------------------

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("head", "size", "problem"),
    [
        (b"%PDF-1.7\n", 1000, None),
        (b"%PDF-", 10 * MB, None),  # exactly the cap
        (b"%PDF-1.4", 10 * MB + 1, "larger than 10 MB"),
        (b"", 0, "empty"),
        (b"hello wo", 11, "only PDF"),
        (b"\x89PNG\r\n\x1a\n", 500, "only PDF"),
        (b"%PDF", 4, "only PDF"),  # too short to be one
        (b" %PDF-1.4", 100, "only PDF"),  # the magic must come first
    ],
)
def test_an_upload_must_be_a_pdf_within_the_cap(head: bytes, size: int, problem: str | None) -> None:
    found = upload_problem(head, size, 10 * MB)
    assert found is None if problem is None else problem in (found or ""), found


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("offer.pdf", "offer.pdf"),
        ("C:\\Users\\li\\Our offer (v2).pdf", "Our offer (v2).pdf"),
        ("../../etc/passwd", "passwd"),
        ("报价单.pdf", "报价单.pdf"),
        ('a"b<script>.pdf', "a_b_script_.pdf"),
        ("", "document.pdf"),
        (None, "document.pdf"),
        ("...", "document.pdf"),
        ("x" * 200 + ".pdf", "x" * 76 + ".pdf"),
    ],
)
def test_an_uploaded_files_name_is_cleaned(given: str | None, kept: str) -> None:
    assert upload_name(given) == kept


def test_only_the_agents_who_handled_a_call_and_supervisors_fax_to_its_caller() -> None:
    alice = Principal("1001", Role.AGENT, "1001")
    bob = Principal("1002", Role.AGENT, "1002")
    lead = Principal("lead", Role.SUPERVISOR, None)
    qa = Principal("qa", Role.QA, None)
    expert = Principal("2001", Role.EXPERT, "2001")
    handled = frozenset({"1001", "2001"})
    assert may_fax_for(alice, handled, holds_it=False)
    assert may_fax_for(expert, handled, holds_it=False)  # consulted on the call: talked with the caller
    assert not may_fax_for(bob, handled, holds_it=False)
    assert may_fax_for(bob, frozenset(), holds_it=True)  # on it now, not yet written down
    assert may_fax_for(lead, frozenset(), holds_it=False)
    assert not may_fax_for(qa, handled, holds_it=True)
    assert not may_fax_for(Principal("x", Role.AGENT, None), handled, holds_it=True)


def test_a_job_sends_its_documents_then_its_uploads() -> None:
    upload = UploadedDocument("offer.pdf", 2, "/var/fax/cache/abc.tif", "/var/fax/uploads/u.pdf")
    job = FaxJob("j", "010", ("101", "102"), datetime(2026, 1, 1, tzinfo=UTC), uploads=(upload,))
    assert job.contents == ["101", "102", "offer.pdf"]
    doc = upload.as_document()
    assert (doc.title_en, doc.pages, doc.tiff) == ("offer.pdf", 2, "/var/fax/cache/abc.tif")
    assert "  PDF  offer.pdf  (2 pages)" in cover_lines("Center", datetime(2026, 1, 1, tzinfo=UTC), [doc])


def test_the_upload_limits_are_checked_in_the_config(tmp_path: Path) -> None:
    config = tmp_path / "center.yaml"
    config.write_text("fax:\n  max_upload_mb: 0\n")
    with pytest.raises(ConfigError, match=r"fax\.max_upload_mb"):
        load_settings(config)
    config.write_text("fax:\n  max_upload_pages: 500\n")
    with pytest.raises(ConfigError, match=r"fax\.max_upload_pages"):
        load_settings(config)
    config.write_text("fax:\n  max_upload_mb: 2.5\n")
    assert load_settings(config).fax.max_upload_mb == 2.5


def test_a_jobs_progress_goes_to_the_panels_of_the_agent_who_sent_it_only() -> None:
    hub = LiveHub(lambda agent: {"id": agent.id})
    alice, bob = (hub.subscribe(frozenset({a}), a.encode()) for a in ("1001", "1002"))
    lead = hub.subscribe(None, b"lead")
    bus = Bus()
    bus.subscribe(FaxJobChanged, FaxBoxWatch(hub).job_changed)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    job = FaxJob("j1", "010", ("102",), at, interaction_id="i1", agent_id="1001", status="sent", pages_sent=2)
    bus.publish(FaxJobChanged(job))
    bus.publish(FaxJobChanged(FaxJob("j2", "010", ("102",), at)))  # from the desk: no call box follows it
    message = alice.queue.get_nowait()
    assert message["type"] == "fax_job" and message["job"]["status"] == "sent"
    assert message["job"] == {**job_view(job), "created_at": at.isoformat()}
    assert alice.queue.empty() and bob.queue.empty() and lead.queue.empty()
