"""Issue 17 item 6: the agent panel for a full day, clicked through in Chromium.

One agent, Alice, works only in the browser (the panel's WebRTC softphone), at a laptop's
1280x800. Real SIP callers (pjsua on the carrier trunk) call 7000 and press 1 for billing.

- Not Ready and Ready are offered only where they do something; while a call rings or is
  answered the panel offers "Not Ready after this call" instead, and honours it when wrap-up ends.
- The caller's menu choice shows by its label ("Billing"), not the key pressed.
- The first caller's offer is declined from the panel: her browser stops ringing, she is Ready
  again, the caller is still on the line.
- The second caller is answered; the page has exactly one Hang up, a call timer and a state
  timer, and says why the call came to her in plain words (the engine's line behind a toggle).
- She hangs up there; the wrap-up form is on screen without scrolling, its error beside the
  field; after saving, the language switch keeps the last-call card, now worded in Chinese.

Screenshots of every state at 1280x800 and 1920x1080 go to test-artifacts/panel-day/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import write_tone
from tests.support.browser import CHROMIUM, chromium_flags, sign_in
from tests.support.calls import AGENT_TONE_HZ
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually, free_port

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, ViewportSize, expect  # noqa: E402  (typed names, after the skip)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

FIRST, SECOND = "13900000711", "13900000722"  # this module's callers
WRAP_UP_S = 8
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
DESKTOP: ViewportSize = {"width": 1920, "height": 1080}
CLOCK = re.compile(r"^\d+:\d\d(:\d\d)?$")
STACK_CONFIG = {
    "asterisk": {"wss_port": free_port()},
    "agents": [{"id": "1001", "name": "Alice Wang", "webrtc": True, "skills": {"billing": 8}}],
    "queues": [
        {
            "name": "billing",
            "members": ["1001"],
            "strategy": "longest_idle",
            "skills": [{"skill": "billing", "min_level": 5}],
            "ring_timeout_s": 30,
            "wrap_up_s": WRAP_UP_S,
        }
    ],
    "ivr": {
        "connecting": [],
        "menu": [{"digit": "1", "queue": "billing", "label": {"en": "Billing", "zh": "账务"}}],
    },
}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    mic = write_tone(tmp_path_factory.mktemp("mic") / "alice.wav", AGENT_TONE_HZ, 10, rate=48000)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_flags(mic))
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(artifacts: Path) -> Path:
    d = artifacts / "panel-day"
    d.mkdir(parents=True, exist_ok=True)
    return d


def snap(page: Page, shots: Path, name: str) -> None:
    """The state on screen at both sizes; the page goes back to the laptop's size."""
    page.screenshot(path=str(shots / f"{name}-1280x800.png"))
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(shots / f"{name}-1920x1080.png"))
    page.set_viewport_size(LAPTOP)


def shown(page: Page, *ids: str) -> list[str]:
    """Which of the state buttons a person sees."""
    return [i for i in ids if page.locator(f"#{i}").is_visible()]


STATE_BUTTONS = ("ready", "stay-ready", "not-ready", "not-ready-after", "decline")


def visible_hang_ups(page: Page) -> int:
    return sum(1 for b in page.get_by_role("button", name="Hang up").all() if b.is_visible())


def in_view(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"]


def test_a_day_at_the_panel(
    stack: Stack, browser: Browser, lab: PhoneLab, tones: tuple[Path, Path], shots: Path
) -> None:
    ctx = browser.new_context(locale="en-US", viewport=LAPTOP)
    errors: list[str] = []
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, stack, "1001")
        phone = page.locator("#softphone")
        expect(phone).to_have_attribute("data-state", "registered", timeout=15_000)
        state = page.locator("#state")

        # -- Not Ready, then Ready: each state offers only what does something ----------------------
        page.select_option("#reason", "break")
        page.click("#not-ready")
        expect(state).to_have_attribute("data-state", "not_ready")
        expect(page.locator("#state-detail")).to_contain_text("Break")
        assert shown(page, *STATE_BUTTONS) == ["ready", "not-ready"]
        expect(page.locator("#state-timer")).to_have_text(CLOCK)
        expect(page.locator("#state-timer")).not_to_have_text("0:00", timeout=5_000)  # it counts
        snap(page, shots, "01-not-ready")
        page.click("#ready")
        expect(state).to_have_attribute("data-state", "ready")
        eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice Ready")
        assert shown(page, *STATE_BUTTONS) == ["not-ready"], "no Ready button that does nothing"
        snap(page, shots, "02-ready")

        # -- the first caller rings: Decline -------------------------------------------------------
        first = lab.phone("127.0.0.2", user=FIRST).call(
            f"sip:7000@127.0.0.1:{stack.sip_port}", play=tones[0], loop=True
        )
        first.wait_confirmed(timeout=10)
        it1 = eventually(lambda: stack.interaction("ani = %s", FIRST), 10, "the first call's interaction")
        stack.wait_event(it1["id"], "answered_by_ivr", timeout=10)
        first.send_dtmf("1")
        expect(phone).to_have_attribute("data-state", "ringing", timeout=15_000)
        expect(state).to_have_attribute("data-state", "ringing")
        assert shown(page, *STATE_BUTTONS) == ["not-ready-after", "decline"]
        assert visible_hang_ups(page) == 0, "a ringing offer is declined, not hung up"
        # Why her: in plain words, the engine's own line folded away.
        parts = page.locator("#pop-reason-parts")
        expect(parts).to_contain_text("you know Billing at level 8")
        expect(parts).to_contain_text("you were free the longest")
        expect(page.locator("#pop-reason")).to_be_hidden()
        expect(page.locator("#pop-menu")).to_have_text("Billing")  # the flow's label, not the key
        page.click("#pop-reason-toggle")
        expect(page.locator("#pop-reason")).to_contain_text("skills billing 8>=5")
        snap(page, shots, "03-ringing")
        page.click("#decline")
        expect(phone).to_have_attribute("data-state", "registered", timeout=10_000)
        expect(state).to_have_attribute("data-state", "ready")
        stack.wait_event(it1["id"], "offer_declined", timeout=10)
        assert stack.agent_state("1001")["state"] == "ready"
        assert first.is_confirmed, "the declined caller is still on the line"
        first.hangup()
        first.wait_disconnected(timeout=10)
        eventually(lambda: stack.interaction_row("id = %s", it1["id"])["ended_at"], 10, "the first call over")

        # -- the second caller: answered in the browser ---------------------------------------------
        second = lab.phone("127.0.0.2", user=SECOND).call(
            f"sip:7000@127.0.0.1:{stack.sip_port}", play=tones[0], loop=True
        )
        second.wait_confirmed(timeout=10)
        it2 = eventually(lambda: stack.interaction("ani = %s", SECOND), 10, "the second call's interaction")
        iid = str(it2["id"])
        stack.wait_event(iid, "answered_by_ivr", timeout=10)
        second.send_dtmf("1")
        expect(phone).to_have_attribute("data-state", "ringing", timeout=15_000)
        page.click("#softphone-answer")
        expect(phone).to_have_attribute("data-state", "on_call", timeout=15_000)
        stack.wait_event(iid, "connected", timeout=10)
        expect(state).to_have_attribute("data-state", "on_call")
        expect(page.locator("#call")).to_be_visible()
        assert visible_hang_ups(page) == 1, "one Hang up on the page"
        expect(page.locator("#call-hangup")).to_be_visible()
        expect(page.locator("#call-timer")).to_have_text(CLOCK)
        expect(page.locator("#state-timer")).to_have_text(CLOCK)
        assert shown(page, *STATE_BUTTONS) == ["not-ready-after"]

        # "Not Ready after this call": asked, taken back, asked again.
        page.select_option("#reason", "lunch")
        page.click("#not-ready-after")
        expect(page.locator("#after-call")).to_have_text("You go Not Ready (Lunch) after this call.")
        assert shown(page, *STATE_BUTTONS) == ["stay-ready"]
        assert stack.agent_state("1001")["not_ready_next"] == "lunch"
        snap(page, shots, "04-on-call-not-ready-after")
        page.click("#stay-ready")
        expect(page.locator("#after-call")).to_be_hidden()
        assert stack.agent_state("1001")["not_ready_next"] is None
        page.click("#not-ready-after")
        expect(page.locator("#after-call")).to_be_visible()

        # -- hang up in the panel: wrap-up on screen, its error beside the field ------------------------
        page.click("#call-hangup")
        second.wait_disconnected(timeout=10)
        expect(state).to_have_attribute("data-state", "wrap_up")
        expect(page.locator("#acw")).to_be_visible()
        assert in_view(page, "#acw-save") and in_view(page, "#acw-code"), "wrap-up below the fold at 1280x800"
        assert shown(page, *STATE_BUTTONS) == ["ready", "not-ready"]
        page.click("#acw-save")  # no code chosen
        error = page.locator("#acw-code-error")
        expect(error).to_have_text("Choose a disposition code.")
        code_box, error_box = page.locator("#acw-code").bounding_box(), error.bounding_box()
        assert code_box and error_box and abs(error_box["y"] - code_box["y"]) < 60, (
            "the error is by the field"
        )
        assert in_view(page, "#acw-code-error")
        snap(page, shots, "05-wrap-up-error")

        # Wrap-up ends: the agent's earlier request takes her Not Ready (lunch), not Ready.
        expect(state).to_have_attribute("data-state", "not_ready", timeout=(WRAP_UP_S + 10) * 1000)
        expect(page.locator("#state-detail")).to_contain_text("Lunch")
        expect(page.locator("#acw-countdown")).to_be_hidden()  # wrap-up is over
        page.select_option("#acw-code", "resolved")
        page.fill("#acw-notes", "Explained the March bill.")
        page.click("#acw-save")
        expect(page.locator("#acw-saved")).to_have_attribute("data-code", "resolved")
        expect(error).to_be_hidden()
        assert stack.query("SELECT disposition FROM interactions WHERE id = %s", iid) == [("resolved",)]
        snap(page, shots, "06-after-wrap-up-not-ready")

        # -- the language switch keeps the last call's card, now in Chinese ----------------------------
        page.click("header a.lang")
        expect(state).to_have_text("未就绪")
        expect(page.locator("#pop")).to_have_attribute("data-interaction-id", iid)
        expect(page.locator("#pop-title")).to_have_text("上一通电话")
        expect(page.locator("#pop-ani")).to_have_text(SECOND)
        expect(page.locator("#pop-reason-parts")).to_contain_text("您的账务技能为 8 级")
        expect(page.locator("#pop-menu")).to_have_text("账务")
        expect(page.locator("#acw-saved")).to_have_attribute("data-code", "resolved")
        snap(page, shots, "07-last-call-zh")
        assert not errors, errors
    finally:
        ctx.close()
