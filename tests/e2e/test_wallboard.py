"""The wallboard in Chromium while real callers wait, give up and are answered; its figures
equal the same figures computed by SQL from the event log. Agents are listed by state with their
Not Ready reason and a time in state that counts up in the page, in English and Mandarin.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.calls import call_in, ended, register_agent
from tests.support.event_log import WALLBOARD_SQL
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

STACK_CONFIG = {
    "web": {"users": [{"username": "lead", "name": "Lee Lead", "role": "supervisor"}]},
    "supervision": {"short_abandon_s": 1},
}


def seconds(clock: str | None) -> int:
    """The page's time in state ("1:05", "1:02:03") in seconds."""
    total = 0
    for part in (clock or "").strip().split(":"):
        total = total * 60 + int(part)
    return total


def board(stack: Stack) -> dict[str, Any]:
    status, body = stack.api("GET", "/api/wallboard")
    assert status == 200, body
    return dict(body)


def test_the_wallboard_follows_real_calls_live_and_agrees_with_the_event_log(
    stack: Stack, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path, artifacts: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = artifacts / "wallboard"
    shots.mkdir(parents=True, exist_ok=True)
    agent = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 15, "agent 1001 ready")
    assert stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "break"})[0] == 200

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US", viewport={"width": 1280, "height": 800}).new_page()
            page.goto(stack.web_url + "/wallboard")
            page.fill("#username", "lead")
            page.fill("#password", str(stack.secrets["panel_passwords"]["lead"]))
            page.click("#sign-in")
            page.goto(stack.web_url + "/wallboard")
            expect(page).to_have_url(re.compile(r"/wallboard$"))
            expect(page.locator("#live")).to_have_attribute("data-live", "true")
            waiting = page.locator('#wallboard tr[data-queue="general"] [data-field="waiting"]')
            expect(waiting).to_have_text("0")
            # The agent on a break is listed with the reason, and the time on it counts up.
            alice = page.locator('#wallboard-agents tr[data-agent-id="1001"]')
            expect(alice.locator('[data-field="name"]')).to_have_text("Alice Wang")
            expect(alice.locator('[data-field="state"]')).to_have_text("Not Ready")
            expect(alice.locator('[data-field="reason"]')).to_have_text("Break")
            time_cell = alice.locator('[data-field="time"]')
            expect(time_cell).to_have_text(re.compile(r"^\d+:\d\d$"))
            started = seconds(time_cell.text_content())
            eventually(lambda: seconds(time_cell.text_content()) > started, 5, "the time on a break grows")
            break_since = time_cell.get_attribute("data-since")
            expect(page.locator('#wallboard-agents tr[data-agent-id="1002"]')).to_have_count(0)  # logged out

            # A caller waits (the only agent is on a break): the tile shows it without a reload.
            first, it1 = call_in(lab, stack, "13800000061", tones[0], tmp_path / "c1.wav")
            stack.wait_event(it1["id"], "answered_by_ivr", timeout=10)
            first.send_dtmf("1")
            expect(waiting).to_have_text("1", timeout=5000)
            page.screenshot(path=str(shots / "wallboard-en-waiting.png"))
            # Gives up once past the 1 s short-abandon threshold (the board's own longest wait).
            eventually(
                lambda: board(stack)["queues"]["general"]["longest_wait_s"] >= 1.5, 10, "a wait past 1.5 s"
            )
            first.hangup()
            assert ended(stack, it1["id"])["outcome"] == "abandoned"
            expect(waiting).to_have_text("0", timeout=5000)
            expect(page.locator('#wallboard tr[data-queue="general"] [data-field="abandoned"]')).to_have_text(
                "1", timeout=5000
            )
            # No one answered in target today: the tile is red (under 60%, the default threshold).
            expect(page.locator('#wallboard tr[data-queue="general"]')).to_have_class("bad")

            # The agent is back and answers the next caller.
            assert stack.api("POST", "/api/agents/1001/state", {"state": "ready"})[0] == 200
            second, it2 = call_in(lab, stack, "13800000062", tones[0], tmp_path / "c2.wav")
            stack.wait_event(it2["id"], "answered_by_ivr", timeout=10)
            second.send_dtmf("1")
            leg = agent.wait_incoming(timeout=15)
            leg.answer(play=tones[1], loop=True)
            stack.wait_event(it2["id"], "connected", timeout=10)
            expect(page.locator('#wallboard tr[data-queue="general"] [data-field="answered"]')).to_have_text(
                "1", timeout=5000
            )
            expect(alice.locator('[data-field="state"]')).to_have_text("On a call", timeout=5000)
            expect(alice.locator('[data-field="reason"]')).to_have_text("")
            second.hangup()
            ended(stack, it2["id"])
            # Off for lunch after the call: the list follows live, the time starting again.
            eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent 1001 ready again")
            assert (
                stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "lunch"})[0]
                == 200
            )
            expect(alice.locator('[data-field="reason"]')).to_have_text("Lunch", timeout=5000)
            (listed,) = [a for a in board(stack)["agent_list"] if a["id"] == "1001"]
            assert listed["since"] != break_since  # counted from the start of lunch, not of the break
            expect(time_cell).to_have_attribute("data-since", listed["since"])

            zh = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
            zh.add_cookies(page.context.cookies())  # type: ignore[arg-type]  # the same session
            big = zh.new_page()
            big.goto(stack.web_url + "/wallboard?lang=zh&big=1")
            expect(big.locator("h1")).to_have_text("实时看板")
            big_alice = big.locator('#wallboard-agents tr[data-agent-id="1001"]')
            expect(big_alice.locator('[data-field="state"]')).to_have_text("未就绪")
            expect(big_alice.locator('[data-field="reason"]')).to_have_text("午餐")
            big_time = big_alice.locator('[data-field="time"]')
            started = seconds(big_time.text_content())
            eventually(
                lambda: seconds(big_time.text_content()) > started, 5, "the time grows on the big screen"
            )
            big.screenshot(path=str(shots / "wallboard-zh-big.png"))
            page.screenshot(path=str(shots / "wallboard-en.png"))

            # The day's interval report: the chart is drawn and the table holds the two calls.
            page.goto(stack.web_url + "/reports?minutes=60")
            expect(page.locator("#report-chart")).to_have_attribute("data-drawn", "true")
            page.screenshot(path=str(shots / "report-en.png"))
            table = [
                [c.strip() for c in row]
                for row in page.locator("#report tbody tr").evaluate_all(
                    "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
                )
            ]
        finally:
            chromium.close()

    # The board's figures for today equal the event log's, to the call.
    rows = {r[0]: r[1:] for r in stack.query(WALLBOARD_SQL, "1 second")}
    today = board(stack)["queues"]["general"]["today"]
    offered, answered, abandoned, short = rows["general"]
    assert (today["offered"], today["answered"], today["abandoned"], today["short_abandoned"]) == (
        offered,
        answered,
        abandoned,
        short,
    )
    assert (offered, answered, abandoned) == (2, 1, 1)

    # The report, as JSON, as CSV (Python's csv module) and on the page, says the same.
    status, report = stack.api("GET", "/api/reports/interval?minutes=60")
    assert status == 200, report
    totals = {k: sum(r[k] for r in report["rows"]) for k in ("offered", "answered", "abandoned")}
    assert totals == {"offered": 2, "answered": 1, "abandoned": 1}
    req = urllib.request.Request(stack.web_url + "/api/reports/interval?minutes=60&format=csv")
    req.add_header("Authorization", f"Bearer {stack.secrets['api_token']}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/csv")
        csv_rows = list(csv.DictReader(io.StringIO(resp.read().decode())))
    assert [{k: r[k] for k in ("queue", "offered", "answered", "abandoned")} for r in csv_rows] == [
        {k: str(r[k]) for k in ("queue", "offered", "answered", "abandoned")} for r in report["rows"]
    ]
    assert [[row[1], row[2], row[3], row[5]] for row in table] == [
        [r["queue"], str(r["offered"]), str(r["answered"]), str(r["abandoned"])] for r in report["rows"]
    ]


def test_an_agent_gets_403_on_the_wallboard(stack: Stack) -> None:
    import json
    import urllib.error
    import urllib.request

    login = json.dumps({"username": "1002", "password": stack.secrets["panel_passwords"]["1002"]}).encode()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    req = urllib.request.Request(
        stack.web_url + "/login", data=login, headers={"Content-Type": "application/json"}, method="POST"
    )
    with opener.open(req, timeout=5) as resp:
        assert resp.status == 200
    for path in ("/wallboard", "/panel/api/wallboard"):
        with pytest.raises(urllib.error.HTTPError) as err:
            opener.open(stack.web_url + path, timeout=5)
        assert err.value.code == 403, path
