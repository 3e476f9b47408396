"""The browser softphone end to end: Debian's Chromium (Playwright, fake media devices)
against the whole running stack, and a real SIP caller (pjsua) on the carrier trunk.

The agent signs in; the panel's softphone registers the agent's own endpoint with Asterisk
over the SIP websocket, and the routing desk sees it as the agent's phone (Ready). A caller
dials 7000 and presses 1; the browser rings; the test clicks Answer. Then audio must flow
both ways through DTLS-SRTP: the caller's recording holds the tone the browser's fake
microphone plays, and the browser hears the caller's 1 kHz tone (WebRTC statistics and an
analyser on the played stream). The same sign-in over wss (the TLS listener with the
generated certificate) registers too. Screenshots go to test-artifacts/panel/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import tone_seconds, write_tone
from tests.support.browser import CHROMIUM, PROBE_JS, chromium_flags, sign_in, softphone_stats
from tests.support.calls import AGENT_TONE_HZ, CALLER_TONE_HZ, call_in, ended
from tests.support.sip_phone import PhoneLab
from tests.support.stack import Stack, eventually, free_port, scratch_database, write_config

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect  # noqa: E402  (typed names, once the skip has passed)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

AGENTS = [{"id": "1001", "name": "Alice Wang", "webrtc": True}, {"id": "1002", "name": "Bob Li"}]
STACK_CONFIG = {
    "asterisk": {"wss_port": free_port()},
    "agents": AGENTS,
    "queues": [{"name": "general", "strategy": "longest_idle", "ring_timeout_s": 20, "wrap_up_s": 0}],
}


@pytest.fixture(scope="module")
def mic_tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the browser's fake microphone plays (looped): the agent's 440 Hz tone."""
    return write_tone(tmp_path_factory.mktemp("mic") / "mic.wav", AGENT_TONE_HZ, 10, rate=48000)


@pytest.fixture(scope="module")
def browser(mic_tone: Path) -> Iterator[Browser]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_flags(mic_tone))
        yield chromium
        chromium.close()


@pytest.fixture
def shots(artifacts: Path) -> Path:
    d = artifacts / "panel"
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_agent_answers_in_the_browser_and_audio_flows_both_ways(
    stack: Stack, browser: Browser, lab: PhoneLab, tones: tuple[Path, Path], tmp_path: Path, shots: Path
) -> None:
    ctx = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 760})
    try:
        page = ctx.new_page()
        page_errors: list[str] = []
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        csp_reports: list[str] = []
        page.on(
            "console", lambda m: csp_reports.append(m.text) if "Content Security Policy" in m.text else None
        )
        sign_in(page, stack, "1001")

        # The softphone registers the agent's own endpoint over the websocket ...
        phone = page.locator("#softphone")
        expect(phone).to_have_attribute("data-state", "registered", timeout=15_000)
        expect(page.locator("#softphone-status")).to_contain_text("Ready to ring")
        contacts = stack.cli("pjsip show contacts")
        assert re.search(r"Contact:\s+1001/sip:\S+transport=ws\b", contacts, re.IGNORECASE), contacts
        # ... and the routing desk takes it as the agent's phone: registered, logged in as Ready.
        eventually(
            lambda: (
                stack.agent_state("1001")["device_registered"]
                and stack.agent_state("1001")["state"] == "ready"
            ),
            15,
            "agent 1001 registered and Ready through the browser",
        )
        expect(page.locator("#phone")).to_have_attribute("data-registered", "true")
        expect(page.locator("#state")).to_have_attribute("data-state", "ready")
        page.screenshot(path=str(shots / "softphone-1-registered.png"))

        ani = "13800138101"
        call, it = call_in(lab, stack, ani, tones[0], tmp_path / "caller.wav")
        stack.wait_event(it["id"], "prompt_played", timeout=20)
        call.send_dtmf("1")

        expect(phone).to_have_attribute("data-state", "ringing", timeout=15_000)
        expect(page.locator("#softphone-status")).to_contain_text(ani)  # who is calling
        expect(page.locator("#softphone-answer")).to_be_visible()
        page.screenshot(path=str(shots / "softphone-2-ringing.png"))

        page.click("#softphone-answer")
        expect(phone).to_have_attribute("data-state", "on_call", timeout=15_000)
        stack.wait_event(it["id"], "connected", timeout=10)
        assert stack.agent_state("1001")["state"] == "on_call"

        # The browser hears the caller: RTP arrives with a level, and its tone is 1 kHz.
        stats = eventually(
            lambda: (
                (s := softphone_stats(page)) and s["packetsReceived"] > 100 and s["audioLevel"] > 0.01 and s
            ),
            15,
            "the browser to receive the caller's audio",
        )
        probe = eventually(
            lambda: (
                (p := page.evaluate(PROBE_JS)) and abs(p["hz"] - CALLER_TONE_HZ) < 15 and p["db"] > -60 and p
            ),
            15,
            f"a {CALLER_TONE_HZ} Hz tone in what the browser plays",
        )
        # The caller hears the browser: a few seconds of the call's audio, then the agent hangs up.
        heard_before = call.rx_audio_seconds()
        call.wait_rx_audio(heard_before + 3.0, timeout=15)
        stats = softphone_stats(page)
        assert stats is not None and stats["packetsSent"] > 100, stats
        page.screenshot(path=str(shots / "softphone-3-on-call.png"))
        expect(page.locator("#softphone-hangup")).to_be_hidden()  # one Hang up: the call section's
        page.click("#call-hangup")
        call.wait_disconnected(timeout=10)
        expect(phone).to_have_attribute("data-state", "registered")
        expect(page.locator("#softphone-status")).to_contain_text("Call ended")

        caller_wav = call.recording()
        browser_tone_s = tone_seconds(caller_wav, AGENT_TONE_HZ)
        print(
            f"\naudio evidence: the caller heard the browser's {AGENT_TONE_HZ} Hz tone"
            f" for {browser_tone_s:.2f} s; the browser played {probe['hz']:.0f} Hz"
            f" at {probe['db']:.0f} dBFS, audioLevel {stats['audioLevel']:.3f},"
            f" {stats['packetsReceived']} packets / {stats['bytesReceived']} bytes in,"
            f" {stats['packetsSent']} packets out"
        )
        assert browser_tone_s >= 1.5, f"the caller did not hear the browser ({browser_tone_s:.2f} s of tone)"

        row = ended(stack, it["id"])
        assert row["outcome"] == "completed"
        assert row["agent_id"] == "1001"
        assert not page_errors, page_errors
        assert not csp_reports, csp_reports
    finally:
        ctx.close()


def test_other_accounts_are_not_given_out(stack: Stack, browser: Browser) -> None:
    """Only the signed-in agent's own account, only to the panel's script."""
    ctx = browser.new_context(locale="en-US")
    try:
        page = ctx.new_page()
        sign_in(page, stack, "1002")  # a desk-phone agent: no softphone on the page
        expect(page.locator("#state")).to_be_visible()
        assert page.locator("#softphone").count() == 0
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
        api = stack.web_url + "/panel/api/softphone"
        resp = page.request.get(api, headers={"X-CSRF-Token": csrf or ""})
        assert resp.status == 404 and resp.json()["error_id"] == "softphone-off", resp.text()
        assert stack.agent_password("1001") not in resp.text()
        resp = page.request.get(api)  # no token: refused before anything else
        assert resp.status == 403 and resp.json()["error_id"] == "csrf-failed", resp.text()
        page.click("#sign-out")
        resp = page.request.get(api, headers={"X-CSRF-Token": csrf or ""})
        assert resp.status == 401, resp.text()
        # The desk agent's endpoint is today's plain SIP one.
        endpoint = stack.cli("pjsip show endpoint 1002")
        assert re.search(r"media_encryption\s+:\s+no\b", endpoint), endpoint
        assert re.search(r"webrtc\s+:\s+no\b", endpoint), endpoint
    finally:
        ctx.close()


@pytest.fixture
def wss_stack(tmp_path: Path, asterisk_prefix: Path, artifacts: Path) -> Iterator[Stack]:
    """A second contact center whose softphones use wss (TLS with the generated certificate)."""
    with scratch_database("lianluo_wss") as db_url:
        settings = write_config(
            tmp_path / "center.yaml",
            tmp_path / "var",
            asterisk={"webrtc_socket": "wss", "wss_port": free_port(), "rtp_start": 31000, "rtp_end": 31999},
            agents=AGENTS,
        )
        s = Stack(
            tmp_path / "center.yaml",
            tmp_path / "var",
            db_url,
            asterisk_prefix,
            artifacts / "wss_stack.log",
            settings,
        )
        s.start()
        try:
            yield s
        finally:
            assert s.stop() == 0, s.tail()


def test_softphone_registers_over_wss(wss_stack: Stack, browser: Browser) -> None:
    tls = wss_stack.var_dir / "tls"
    assert (tls / "webrtc.key").stat().st_mode & 0o777 == 0o600
    # The certificate is self-signed: a person accepts it once; the test browser is told to.
    ctx = browser.new_context(locale="zh-CN", ignore_https_errors=True)
    try:
        page = ctx.new_page()
        sign_in(page, wss_stack, "1001")
        expect(page.locator("#softphone")).to_have_attribute("data-state", "registered", timeout=15_000)
        expect(page.locator("#softphone-status")).to_contain_text("已就绪")
        assert re.search(r"Contact:\s+1001/sip:", wss_stack.cli("pjsip show contacts"))
        # It went over TLS: the panel handed out the wss address, and the page's policy allows
        # no other websocket than that one (and its own origin).
        port = wss_stack.settings["asterisk"]["wss_port"]
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        account = page.request.get(wss_stack.web_url + "/panel/api/softphone", headers={"X-CSRF-Token": csrf})
        assert account.json()["ws_url"] == f"wss://127.0.0.1:{port}/ws", account.json()
        csp = page.request.get(wss_stack.web_url + "/panel").headers["content-security-policy"]
        assert f"connect-src 'self' wss://127.0.0.1:{port};" in csp, csp
        assert f"HTTPS Server Enabled and Bound to 127.0.0.1:{port}" in wss_stack.cli("http show status")
        eventually(lambda: wss_stack.agent_state("1001")["device_registered"], 15, "1001 registered over wss")

        # A second panel tab does not fight the first for the calls; it takes over when that closes.
        second = ctx.new_page()
        second.goto(wss_stack.web_url + "/panel")
        expect(second.locator("#softphone")).to_have_attribute("data-state", "elsewhere")
        page.close()
        expect(second.locator("#softphone")).to_have_attribute("data-state", "registered", timeout=15_000)
        eventually(lambda: wss_stack.agent_state("1001")["device_registered"], 15, "1001 registered again")
        # Closing the last panel unregisters: calls stop coming to a browser that is gone.
        second.close()
        eventually(lambda: not wss_stack.agent_state("1001")["device_registered"], 15, "1001 unregistered")
    finally:
        ctx.close()
