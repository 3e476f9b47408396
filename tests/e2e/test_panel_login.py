"""The agent panel in a real browser: Debian's Chromium, driven by Playwright, against the
whole running stack (app, Asterisk, PostgreSQL) started as `make run` would start it.

An agent signs in, presses Ready; the page, the API and PostgreSQL all say Ready. A change
made elsewhere reaches the page over the websocket, and a supervisor's table follows live.
Screenshots of each state go to test-artifacts/panel/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, eventually

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402  (typed names, once the skip has passed)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

STACK_CONFIG = {
    "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li", "role": "expert"}],
    "web": {"users": [{"username": "lead", "name": "Lee Lead", "role": "supervisor"}]},
}
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(artifacts: Path) -> Path:
    d = artifacts / "panel"
    d.mkdir(parents=True, exist_ok=True)
    return d


def sign_in(page: Page, stack: Stack, username: str) -> None:
    page.goto(stack.web_url + "/panel")
    expect(page).to_have_url(re.compile(r"/login$"))  # not signed in: sent to the sign-in page
    page.fill("#username", username)
    page.fill("#password", str(stack.secrets["panel_passwords"][username]))
    page.click("#sign-in")


def test_agent_signs_in_and_goes_ready(stack: Stack, browser: Browser, shots: Path) -> None:
    agent_ctx = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 640})
    lead_ctx = browser.new_context(locale="zh-CN", viewport={"width": 1000, "height": 640})
    try:
        page = agent_ctx.new_page()
        sign_in(page, stack, "1001")
        expect(page).to_have_url(re.compile(r"/panel$"))
        expect(page.locator("#live")).to_have_attribute("data-live", "true")  # websocket is up
        expect(page.locator("#state")).to_have_text("Logged out")
        page.screenshot(path=str(shots / "1-agent-signed-in.png"))

        page.click("#ready")
        expect(page.locator("#state")).to_have_text("Ready")
        expect(page.locator("#state")).to_have_attribute("data-state", "ready")
        assert stack.agent_state("1001")["state"] == "ready"  # the machine API agrees
        eventually(
            lambda: stack.query("SELECT state FROM agents WHERE id = '1001'") == [("ready",)],
            10,
            "agent 1001 stored as ready",
        )
        page.screenshot(path=str(shots / "2-agent-ready.png"))

        # A change made elsewhere (a supervisor's API call) reaches the open page live.
        status, body = stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "lunch"})
        assert status == 200, body
        expect(page.locator("#state")).to_have_text("Not Ready")
        expect(page.locator("#state-detail")).to_contain_text("Lunch")

        # The same page in Chinese (the toggle in the header).
        page.click("header a.lang")
        expect(page.locator("#state")).to_have_text("未就绪")
        expect(page.locator("#state-detail")).to_contain_text("午餐")
        expect(page.locator("#live")).to_have_attribute("data-live", "true")
        page.screenshot(path=str(shots / "3-agent-not-ready-zh.png"))

        # A supervisor (browser in Chinese) watches the table while the agent goes Ready again.
        lead = lead_ctx.new_page()
        sign_in(lead, stack, "lead")
        expect(lead).to_have_url(re.compile(r"/supervisor$"))
        expect(lead.locator("#live")).to_have_attribute("data-live", "true")
        row = lead.locator('#agents tr[data-agent-id="1001"] [data-field="state"]')
        expect(row).to_contain_text("未就绪")
        page.click("#ready")
        expect(page.locator("#state")).to_have_text("就绪")
        expect(row).to_contain_text("就绪")
        expect(row).not_to_contain_text("未就绪")
        lead.screenshot(path=str(shots / "4-supervisor-zh.png"))
        assert stack.agent_state("1001")["state"] == "ready"

        # Signing out ends the session: the panel sends the browser back to sign in.
        page.click("#sign-out")
        expect(page).to_have_url(re.compile(r"/login\?signed_out=1$"))
        page.goto(stack.web_url + "/panel")
        expect(page).to_have_url(re.compile(r"/login$"))
    finally:
        agent_ctx.close()
        lead_ctx.close()
