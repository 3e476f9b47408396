"""Every report page and the staffing page in Chromium on the whole center (its own start-up
wiring, PostgreSQL, Asterisk): a day written into the center's tables is shown in each page's
chart and table, and each table says what its CSV (read with Python's csv module) says, in
English and in Mandarin. Screenshots under artifacts/reports/."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.report_day import DAY, write_day
from tests.support.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

STACK_CONFIG = {
    "web": {"users": [{"username": "lead", "name": "Lee Lead", "role": "supervisor"}]},
    "timezone": "Asia/Shanghai",
}

# page, its CSV (the first table's), and the Mandarin title
PAGES = [
    (f"/reports/queues?from={DAY}", f"/panel/api/reports/queues?from={DAY}&to={DAY}&format=csv", "队列报表"),
    (f"/reports/agents?from={DAY}", f"/panel/api/reports/agents?from={DAY}&to={DAY}&format=csv", "坐席报表"),
    (f"/reports/ivr?from={DAY}", f"/panel/api/reports/ivr?from={DAY}&to={DAY}&format=csv", "语音导航报表"),
    (f"/reports/work?from={DAY}", f"/panel/api/reports/work?from={DAY}&to={DAY}&format=csv", "回拨与留言"),
    (
        f"/reports/campaigns?from={DAY}",
        f"/panel/api/reports/campaigns?from={DAY}&to={DAY}&format=csv",
        "外呼活动",
    ),
    (
        f"/staffing?date={DAY}&forecast=2026-12-07&weeks=1&volume=200",
        f"/panel/api/reports/staffing?date={DAY}&minutes=30&format=csv",
        "人员配置",
    ),
]


def test_each_report_page_draws_its_chart_and_its_table_matches_the_csv(
    stack: Stack, artifacts: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    asyncio.run(write_day(stack.db_url))
    shots = artifacts / "reports"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = chromium.new_context(locale="en-US", viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(stack.web_url + "/reports")
            page.fill("#username", "lead")
            page.fill("#password", str(stack.secrets["panel_passwords"]["lead"]))
            page.click("#sign-in")
            page.goto(stack.web_url + "/reports")
            expect(page).to_have_url(re.compile(r"/reports$"))
            # The interval report: its chart, and the agents' side against its CSV.
            page.goto(stack.web_url + f"/reports?date={DAY}&minutes=60")
            expect(page.locator("#report-chart")).to_have_attribute("data-drawn", "true")
            page.screenshot(path=str(shots / "reports-interval-en.png"), full_page=True)
            shown = page.locator("#agents tbody tr").evaluate_all(
                "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
            )
            response = page.request.get(
                stack.web_url + f"/panel/api/reports/interval?date={DAY}&minutes=60&format=csv&table=agents"
            )
            rows = [[r[0][11:16], *r[1:]] for r in list(csv.reader(io.StringIO(response.text())))[1:]]
            assert shown == rows and len(rows) == 2, (shown, rows)

            for path, csv_path, title_zh in PAGES:
                name = path.split("?")[0].strip("/").replace("/", "-")
                page.goto(stack.web_url + path)
                expect(page.locator("#report-chart")).to_have_attribute("data-drawn", "true")
                page.screenshot(path=str(shots / f"{name}-en.png"), full_page=True)
                shown = page.locator("#report tbody tr").evaluate_all(
                    "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
                )
                response = page.request.get(stack.web_url + csv_path)
                assert response.ok and response.headers["content-type"].startswith("text/csv"), csv_path
                rows = list(csv.reader(io.StringIO(response.text())))[1:]
                if name == "staffing":  # the page shows each interval's time of day
                    rows = [[r[0][11:16], *r[1:]] for r in rows]
                    expect(page.locator("#forecast-chart")).to_have_attribute("data-drawn", "true")
                assert shown == rows and rows, (path, shown, rows)

                page.goto(stack.web_url + path + "&lang=zh")
                expect(page.locator("h1")).to_have_text(title_zh)
                expect(page.locator("#report-chart")).to_have_attribute("data-drawn", "true")
                page.screenshot(path=str(shots / f"{name}-zh.png"), full_page=True)
                page.goto(stack.web_url + path + "&lang=en")  # back to English for the next
        finally:
            chromium.close()
