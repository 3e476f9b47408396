"""The QA desk beyond one recording, on the whole center (PostgreSQL, Asterisk, pjsua, Chromium):

- the QA report page draws its trend chart, and its tables say what their CSV files say, per
  agent and per day, per queue and per week, in English and in Mandarin;
- a caller whom nobody could take leaves a message: in the desk the call's recording (its IVR
  part) is found by the caller's number, marked as having a message, and the message plays
  beside it in the browser (the audio element's time advances); the listen is in the audit log,
  and an agent of another call is refused (and audited).

Screenshots: test-artifacts/panel/qa-report-*.png, qa-desk-voicemail*.png.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from app.adapters.db import Store
from app.adapters.recording_store import EvaluationRow, EvaluationStore, RecordingRow, RecordingStore
from app.domain.interaction import Interaction, Outcome
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.calls import call_in, ended
from tests.support.sip_phone import PhoneLab
from tests.support.stack import REPO, Stack, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

STACK_CONFIG = {
    "timezone": "Asia/Shanghai",
    "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li"}],
    "queues": [
        {"name": "general", "ring_timeout_s": 8, "wrap_up_s": 0, "announce_every_s": 0},
        {"name": "billing", "ring_timeout_s": 8, "wrap_up_s": 0, "announce_every_s": 0},
    ],
    "ivr": {
        "greeting": [{"text": "Press 1.", "lang": "en"}],
        "connecting": [],
        "menu": [{"digit": "1", "queue": "general"}, {"digit": "2", "queue": "billing"}],
    },
    "web": {"users": [{"username": "qa", "name": "Qiu Anna", "role": "qa"}]},
    "recording": {
        "enabled": True,
        "ivr": True,
        "default": {"mode": "all", "retention_days": 30, "consent": False},
        "forms": str(REPO / "config" / "qa_forms"),
    },
}

# Tuesday 2026-12-01, 10:00 in Shanghai.
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def write_evaluations(db_url: str) -> None:
    """Four scored calls: Alice on Tuesday (80) and on Sunday evening UTC, which is Monday in
    Shanghai (60); Bob on Wednesday (0, a critical fail, disputed) and Thursday (100)."""
    pool = AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    try:
        store, recordings, evaluations = Store(pool), RecordingStore(pool), EvaluationStore(pool)
        for agent, queue, at, score, failed, disputed in [
            ("1001", "general", T0, 80.0, (), False),
            ("1001", "general", datetime(2026, 12, 6, 20, 0, tzinfo=UTC), 60.0, (), False),
            ("1002", "billing", T0 + timedelta(days=1), 0.0, ("verified",), True),
            ("1002", "billing", T0 + timedelta(days=2), 100.0, (), False),
        ]:
            it = Interaction(str(uuid.uuid4()), "ch", "13600000001", "7000", at)
            it.queue, it.agent_id = queue, agent
            it.end(at + timedelta(seconds=60), Outcome.COMPLETED)
            await store.write_interactions([(it, True, [])])
            row = RecordingRow(
                str(uuid.uuid4()), it.id, "inbound", queue, None, it.ani, (agent,), at, 60_000,
                2, 8000, 44, "0" * 64, f"x/{it.id}.wav", [], "default", 30,
            )  # fmt: skip
            await recordings.add(row)
            e = EvaluationRow(
                str(uuid.uuid4()), row.id, it.id, agent, "service", {"name": "service"},
                "qa", {}, "", score, failed, at,
            )  # fmt: skip
            await evaluations.add(e)
            if disputed:
                await evaluations.acknowledge(e.id, True, "I did verify them", at + timedelta(hours=1))
    finally:
        await pool.close()


def cells(page: Any, table: str) -> list[list[str]]:
    return list(
        page.locator(f"#{table} tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
    )


def csv_of(page: Any, url: str) -> list[list[str]]:
    response = page.request.get(url)
    assert response.ok and response.headers["content-type"].startswith("text/csv"), url
    return list(csv.reader(io.StringIO(response.text())))[1:]


def test_the_qa_report_page_draws_its_trend_and_its_tables_match_the_csv(
    stack: Stack, artifacts: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    asyncio.run(write_evaluations(stack.db_url))
    shots = artifacts / "panel"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US", viewport={"width": 1400, "height": 900}).new_page()
            sign_in(page, stack, "qa", "/qa")
            page.click("#to-qa-report")
            expect(page.locator("h1")).to_have_text("QA report")
            for by, per, expected in [
                (
                    "agent",
                    "day",
                    [
                        ["2026-12-01", "1001", "1", "80.0", "0", "0"],
                        ["2026-12-02", "1002", "1", "0.0", "1", "1"],
                        ["2026-12-03", "1002", "1", "100.0", "0", "0"],
                        ["2026-12-07", "1001", "1", "60.0", "0", "0"],  # Monday in Shanghai
                    ],
                ),
                (
                    "queue",
                    "week",
                    [
                        ["2026-11-30", "billing", "2", "50.0", "1", "1"],
                        ["2026-11-30", "general", "1", "80.0", "0", "0"],
                        ["2026-12-07", "general", "1", "60.0", "0", "0"],
                    ],
                ),
            ]:
                query = f"by={by}&per={per}&from=2026-11-30&to=2026-12-13"
                page.goto(stack.web_url + f"/qa/report?{query}")
                expect(page.locator("#report-chart")).to_have_attribute("data-drawn", "true")
                datasets = page.evaluate(
                    "() => window.Chart.getChart(document.getElementById('report-chart'))"
                    ".data.datasets.map(d => d.label)"
                )
                keys = sorted({row[1] for row in expected})
                assert datasets == ["evaluations", *[f"{k} mean score" for k in keys]], datasets
                page.screenshot(path=str(shots / f"qa-report-{by}-{per}-en.png"), full_page=True)
                shown = cells(page, "report")
                assert shown == expected, shown
                assert shown == csv_of(page, stack.web_url + f"/panel/api/qa/report?{query}&format=csv")
                totals = cells(page, "totals")
                csv_totals = f"/panel/api/qa/report?{query}&format=csv&table=totals"
                assert totals == csv_of(page, stack.web_url + csv_totals) and len(totals) == len(keys)
                # The CSV links on the page are those files.
                href = page.locator("#csv").get_attribute("href")
                assert href is not None and csv_of(page, stack.web_url + href) == shown

                page.goto(stack.web_url + f"/qa/report?{query}&lang=zh")
                expect(page.locator("h1")).to_have_text("质检报表")
                expect(page.locator("#report-chart")).to_have_attribute("data-drawn", "true")
                expect(page.locator('#report th[data-col="mean_score"]')).to_have_text("平均分")
                assert cells(page, "report") == expected
                page.screenshot(path=str(shots / f"qa-report-{by}-{per}-zh.png"), full_page=True)
                page.goto(stack.web_url + f"/qa/report?{query}&lang=en")
            totals = cells(page, "totals")
            assert totals == [
                ["billing", "2", "50.0", "1", "1", "0.0"],
                ["general", "2", "70.0", "0", "0", "-20.0"],
            ]
            # A period that cannot be read: the default period, and why.
            page.goto(stack.web_url + "/qa/report?from=2026-12-13&to=2026-12-01")
            expect(page.locator("#message")).to_contain_text("ends")
        finally:
            chromium.close()


def get(stack: Stack, username: str, path: str) -> tuple[int, bytes]:
    """A signed-in user's GET without a browser (JSON sign-in, then the session cookie)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    password = str(stack.secrets["panel_passwords"][username])
    body = json.dumps({"username": username, "password": password}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with opener.open(urllib.request.Request(stack.web_url + "/login", body, headers), timeout=10) as resp:
        assert resp.status == 200
    request = urllib.request.Request(stack.web_url + path, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def sign_in(page: Any, stack: Stack, username: str, home: str) -> None:
    """Through the sign-in form, as a person would, landing on `home`."""
    page.goto(stack.web_url + "/login")
    page.fill("#username", username)
    page.fill("#password", str(stack.secrets["panel_passwords"][username]))
    page.click("#sign-in")
    page.wait_for_url(f"**{home}")


def test_a_voicemail_shows_beside_the_calls_recording_and_plays_audited(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path, artifacts: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ani = "13700000091"
    # Nobody is logged in: the caller is asked for a message after the menu.
    call, it = call_in(lab, stack, ani, tones[0], tmp_path / "caller.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf("1")
    stack.wait_event(it["id"], "voicemail_started", timeout=15)
    call.wait_rx_audio(call.rx_audio_seconds() + 9.0, timeout=20)  # the intro, the beep, then talk
    call.send_dtmf("#")
    call.wait_disconnected(timeout=20)
    assert ended(stack, it["id"])["outcome"] == "voicemail"
    vm_rows = eventually(
        lambda: stack.query("SELECT id FROM voicemails WHERE interaction_id = %s", it["id"]), 10, "a message"
    )
    vm_id = str(vm_rows[0][0])
    rec_id = str(
        eventually(
            lambda: stack.query("SELECT id FROM recordings WHERE interaction_id = %s", it["id"]),
            20,
            "the IVR part's recording",
        )[0][0]
    )
    shots = artifacts / "panel"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US", viewport={"width": 1400, "height": 900}).new_page()
            sign_in(page, stack, "qa", "/qa")
            page.fill("#f-ani", ani)
            page.click("#search-go")
            row = page.locator(f'#recordings tr[data-recording-id="{rec_id}"]')
            expect(row).to_contain_text("+ voicemail")
            row.locator("a.play").click()
            expect(page.locator("#player")).to_have_attribute("data-recording-id", rec_id)
            message = page.locator(f'#voicemails li[data-voicemail-id="{vm_id}"] audio')
            expect(message).to_have_count(1)
            message.evaluate("a => a.play()")
            page.wait_for_function(
                f"() => document.querySelector('#voicemails li[data-voicemail-id=\"{vm_id}\"] audio')"
                ".currentTime > 1.0",
                timeout=10_000,
            )
            page.screenshot(path=str(shots / "qa-desk-voicemail-beside-recording.png"), full_page=True)
            desk_url = page.url
            page.goto(desk_url + "&lang=zh")
            expect(page.locator("#voicemails h3")).to_have_text("本通话的留言")
            expect(row).to_contain_text("+ 留言")
            page.screenshot(path=str(shots / "qa-desk-voicemail-beside-recording-zh.png"), full_page=True)
            page.goto(desk_url + "&lang=en")
            # The message in the player itself, at 2x.
            page.locator(f'#voicemails li[data-voicemail-id="{vm_id}"] a.open').click()
            expect(page.locator("#player")).to_have_attribute("data-voicemail-id", vm_id)
            expect(page.locator(f'#call-recordings a[data-recording-id="{rec_id}"]')).to_contain_text("IVR")
            expect(page.locator("#recordings tbody tr")).to_have_count(1)  # the search is kept
            page.evaluate("() => document.getElementById('audio').play()")
            page.wait_for_function("() => document.getElementById('audio').currentTime > 1.0", timeout=10_000)
            page.click('#speeds button[data-rate="2"]')
            assert page.evaluate("() => document.getElementById('audio').playbackRate") == 2
            page.screenshot(path=str(shots / "qa-desk-voicemail-player.png"), full_page=True)
        finally:
            chromium.close()

    # An agent who did not talk on the call is refused; the audit log has each attempt.
    status, _ = get(stack, "1001", f"/panel/api/qa/voicemails/{vm_id}/audio")
    assert status == 403
    audit = stack.query(
        "SELECT username, action, allowed FROM recording_access"
        " WHERE recording_id = %s AND kind = 'voicemail' ORDER BY id",
        vm_id,
    )
    assert ("qa", "listen", True) in audit and ("1001", "listen", False) in audit, audit
    # Over the API: the recording names its call's message, the message its call's recordings.
    status, body = get(stack, "qa", f"/api/recordings?ani={ani}")
    assert status == 200 and [r["voicemails"] for r in json.loads(body)["recordings"]] == [[vm_id]]
    status, body = get(stack, "qa", f"/panel/api/qa/voicemails?ani={ani}")
    assert status == 200 and [(v["id"], v["recordings"]) for v in json.loads(body)["voicemails"]] == [
        (vm_id, [rec_id])
    ]
    status, body = get(stack, "qa", f"/panel/api/qa/voicemails/{vm_id}")
    detail = json.loads(body)
    assert status == 200 and detail["recordings"] == [rec_id]
    assert ("qa", "listen", True) in [(a["username"], a["action"], a["allowed"]) for a in detail["access"]]
