"""Offers with Accept and Reject for a queue's agents, and the expert directory's admin page
(issue 13): real Asterisk, real SIP phones (pjsua), real Chromium panels.

The "general" queue offers with a preview (`offer: {accept: true}`) and hunts its members in
order: Ann (1001), Chen (1003), Bo (1002). A caller presses 1:

1. Ann's panel previews the call (the caller's keys, the queue, why her, a countdown) while no
   phone rings and the caller hears the queue's music; Ann rejects.
2. Chen's panel previews it; Chen says nothing: the offer runs out and Chen is Not Ready
   "no response".
3. Bo's panel previews it; Bo accepts, Bo's phone rings (only then), Bo answers and Bo and the
   caller hear each other.

The journey lists each offer and answer in order. Then an admin manages the expert directory in
the panel (an agent gets 403). Screenshots go to test-artifacts/queue-offers/.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio import read_wav, tone_seconds, write_tone
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, sign_in
from tests.support.calls import CALLER_TONE_HZ, ended, register_agent
from tests.support.sip_phone import Phone, PhoneLab
from tests.support.stack import Stack, eventually

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect  # noqa: E402  (typed names, once the skip has passed)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup)"),
]

OFFER_S = 4
BO_HZ = 620  # not a note of the hold music (it has notes at 440 Hz)
STACK_CONFIG = {
    "carrier": {"outbound_contact": "sip:127.0.0.2:5999", "caller_id": "7000"},  # never dialled here
    "agents": [
        {"id": "1001", "name": "Ann Li"},
        {"id": "1002", "name": "Bo Wu"},
        {"id": "1003", "name": "Chen Yu"},
    ],
    "queues": [
        {
            "name": "general",
            "strategy": "linear",
            "members": ["1001", "1003", "1002"],
            "ring_timeout_s": 10,
            "wrap_up_s": 0,
            "announce_every_s": 0,
            "offer": {"accept": True, "offer_s": OFFER_S},
        }
    ],
    "ivr": {"connecting": [], "greeting": [{"text": "Press 1.", "lang": "en"}]},
    "web": {
        "users": [
            {"username": "root", "name": "Rui Admin", "role": "admin"},
            {"username": "lead", "name": "Lin Lead", "role": "supervisor"},
        ]
    },
    "experts": {
        "groups": [{"name": "mortgage", "offer_s": 10, "expertise": "mortgage"}],
        "directory": [
            {
                "id": "zhou",
                "name": "Zhou Bo (branch)",
                "number": "13912340001",
                "groups": ["mortgage"],
                "expertise": {"mortgage": 5},
            },
        ],
    },
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def no_call_on(phone: Phone) -> bool:
    return not phone._unclaimed  # the lab's record of calls that reached this phone


def preview_shows(page: Page) -> None:
    """The queue's offer in this agent's panel: the caller's keys, the queue, why them, a
    countdown; no asking agent and no note (those are an expert's)."""
    expect(page.locator("#expert-offer")).to_be_visible(timeout=8_000)
    expect(page.locator("#expert-offer-ivr")).to_contain_text("queue general")
    expect(page.locator("#expert-offer-ivr")).to_contain_text("keys: 1")
    expect(page.locator("#expert-offer-customer")).to_contain_text("13700000141")
    expect(page.locator("#expert-offer-reason")).to_contain_text("linear hunt")
    expect(page.locator("#expert-offer-left")).to_contain_text(" s left")
    expect(page.locator("#expert-offer-note")).to_be_hidden()
    expect(page.locator("#expert-offer-asked-by")).to_be_hidden()


def offer_journey(stack: Stack, iid: str) -> list[tuple[str, str | None]]:
    wanted = ("queue_offer", "agent_answered", "connected")
    return [(k, d.get("agent_id")) for k, d in stack.events(iid) if k.startswith(wanted)]


def test_reject_timeout_accept_with_real_phones_and_panels(
    stack: Stack, lab: PhoneLab, browser: Browser, artifacts: Path, tones: tuple[Path, Path], tmp_path: Path
) -> None:
    shots = artifacts / "queue-offers"
    shots.mkdir(parents=True, exist_ok=True)
    phones = {a: register_agent(lab, stack, a) for a in ("1001", "1002", "1003")}
    eventually(lambda: all(stack.agent_state(a)["state"] == "ready" for a in phones), 10, "the agents ready")
    contexts = [
        browser.new_context(locale="en-US", viewport={"width": 1100, "height": 1000}) for _ in phones
    ]  # one per agent: their own cookies
    try:
        ann, bo, chen = (ctx.new_page() for ctx in contexts)
        for page, agent_id in ((ann, "1001"), (bo, "1002"), (chen, "1003")):
            sign_in(page, stack, agent_id)

        caller_phone = lab.phone("127.0.0.2", user="13700000141")
        caller = caller_phone.call(
            f"sip:7000@127.0.0.1:{stack.sip_port}", play=tones[0], record=tmp_path / "caller.wav", loop=True
        )
        caller.wait_confirmed(timeout=10)
        # The caller's recording runs in real time from here (frames are written when no audio
        # comes too): wall-clock times map to places in it.
        recording_from = time.monotonic()
        it = eventually(lambda: stack.interaction("ani = %s", "13700000141"), 10, "the interaction")
        stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
        pressed_at = time.time() * 1000
        caller.send_dtmf("1")

        # -- 1. Ann previews and rejects; the caller hears music meanwhile ---------------------
        preview_shows(ann)
        shown_at = float(ann.evaluate("document.getElementById('expert-offer').dataset.shownAt"))
        ann.screenshot(path=str(shots / "ann-preview.png"))
        assert all(no_call_on(p) for p in phones.values()), "no phone rings before Accept"
        assert stack.agent_state("1001")["state"] == "reserved"
        heard_from = time.monotonic() - recording_from
        caller.wait_rx_audio(caller.rx_audio_seconds() + 2.0, timeout=5)  # music while Ann reads
        heard_to = time.monotonic() - recording_from
        ann.click("#expert-offer-reject")
        expect(ann.locator("#expert-offer-closed")).to_have_text("Rejected.")
        eventually(lambda: stack.agent_state("1001")["state"] == "ready", 5, "Ann free for other callers")

        # -- 2. Chen previews and says nothing: Not Ready "no response" ------------------------
        preview_shows(chen)
        assert no_call_on(phones["1003"])
        expect(chen.locator("#expert-offer-closed")).to_contain_text(
            "timed out", timeout=OFFER_S * 1000 + 5000
        )
        chen_state = stack.agent_state("1003")
        assert chen_state["state"] == "not_ready" and chen_state["not_ready_reason"] == "no response", (
            chen_state
        )

        # -- 3. Bo previews and accepts: his phone rings, he answers, they talk ----------------
        preview_shows(bo)
        bo.screenshot(path=str(shots / "bo-preview.png"))
        assert no_call_on(phones["1002"])
        # The click as the page sees it (Playwright's own click adds its checks).
        accepted_at = float(
            bo.evaluate(
                "() => { const t = Date.now();"
                " document.getElementById('expert-offer-accept').click(); return t; }"
            )
        )
        bo_leg = phones["1002"].wait_incoming(timeout=10)
        ring_ms = time.time() * 1000 - accepted_at
        assert bo_leg.header("X-Lianluo-Queue") == "general"
        bo_leg.answer(
            play=write_tone(tmp_path / "bo.wav", BO_HZ, 60), record=tmp_path / "bo-heard.wav", loop=True
        )
        stack.wait_event(it["id"], "connected", timeout=10)
        expect(bo.locator("#expert-offer-closed")).to_contain_text("Accepted")
        before = caller.rx_audio_seconds()
        caller.wait_rx_audio(before + 2.5, timeout=15)
        bo_leg.wait_rx_audio(2.5, timeout=15)
        caller.hangup()
        done = ended(stack, it["id"])
        assert done["agent_id"] == "1002" and done["outcome"] == "completed", done
        assert all(no_call_on(phones[a]) for a in ("1001", "1003")), "only Bo's phone rang"

        samples, rate = read_wav(caller.recording())
        assert tone_seconds((samples[int(before * rate) :], rate), BO_HZ) > 1.5, "the caller heard Bo"
        assert tone_seconds(bo_leg.recording(), CALLER_TONE_HZ) > 1.5, "Bo heard the caller"
        # While Ann read the offer the caller heard the queue's music (sound in 50 ms frames; the
        # music has quiet notes of its own, so: much of it, and no long silence).
        part = samples[int(heard_from * rate) : int(heard_to * rate)]
        n = round(0.05 * rate)
        frames = part[: len(part) // n * n].reshape(-1, n)
        frames = frames - frames.mean(axis=1, keepdims=True)
        loud = np.sqrt((frames * frames).mean(axis=1)) >= 0.003
        gap = max((len(run) for run in "".join("x" if v else "." for v in loud).split("x")), default=0) * 0.05
        shutil.copy(caller.recording(), shots / "caller.wav")
        heard = f"{loud.mean():.0%} of {len(loud) * 0.05:.1f} s, longest gap {gap:.2f} s"
        print(f"\nmusic during the preview: {heard}")
        assert loud.sum() * 0.05 > 1.0 and gap < 1.5, heard

        assert offer_journey(stack, it["id"]) == [
            ("queue_offered", "1001"),
            ("queue_offer_rejected", "1001"),
            ("queue_offered", "1003"),
            ("queue_offer_timeout", "1003"),
            ("queue_offered", "1002"),
            ("queue_offer_accepted", "1002"),
            ("agent_answered", "1002"),
            ("connected", "1002"),
        ]
        rejected = next(d for k, d in stack.events(it["id"]) if k == "queue_offer_rejected")
        assert rejected["by"] == "1001"
        print(
            f"key 1 -> preview on Ann's screen: {shown_at - pressed_at:.0f} ms;"
            f" Bo's Accept -> his phone rings: {ring_ms:.0f} ms"
        )
    finally:
        for ctx in contexts:
            ctx.close()


def test_the_expert_directory_page_for_admins(stack: Stack, browser: Browser, artifacts: Path) -> None:
    shots = artifacts / "queue-offers"
    shots.mkdir(parents=True, exist_ok=True)
    admin = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 1000})
    agent = browser.new_context(locale="en-US")
    supervisor = browser.new_context(locale="en-US")
    try:
        page = agent.new_page()
        sign_in(page, stack, "1001")
        refused = page.goto(stack.web_url + "/experts")
        assert refused is not None and refused.status == 403
        assert "13912340001" not in page.content()
        # Nor may an agent's session add or remove one (its own cookie and CSRF token).
        posted = page.evaluate(
            """async () => {
                const csrf = document.querySelector('meta[name="csrf-token"]').content;
                const form = new URLSearchParams({csrf_token: csrf, id: "eve", name: "Eve", number: "139"});
                const add = await fetch("/experts", {method: "POST", body: form});
                const remove = await fetch("/experts/zhou/remove", {method: "POST",
                    body: new URLSearchParams({csrf_token: csrf})});
                return [add.status, remove.status];
            }"""
        )
        assert posted == [403, 403]
        lead = supervisor.new_page()
        sign_in(lead, stack, "lead", "/supervisor")
        expect(lead.locator("#to-experts")).to_have_count(0)
        refused = lead.goto(stack.web_url + "/experts")
        assert refused is not None and refused.status == 403  # admins only

        page = admin.new_page()
        sign_in(page, stack, "root", "/supervisor")
        page.click("#to-experts")
        expect(page).to_have_url(re.compile("/experts$"))
        zhou = page.locator('#expert-directory tr[data-expert-id="zhou"]')
        expect(zhou).to_have_attribute("data-source", "config")
        expect(zhou).to_contain_text("13912340001")
        expect(zhou.locator("button")).to_have_count(0)  # the configuration's experts stay

        # A refused entry: the error beside its field, what was typed kept, nothing added.
        page.fill("#expert-id", "liu")
        page.fill("#expert-name", "Liu Yang")
        page.fill("#expert-number", "call me maybe")
        page.fill("#expert-groups", "mortgage")
        page.click("#add-expert-submit")
        expect(page.locator("#error-number")).to_contain_text("a phone number")
        expect(page.locator("#expert-name")).to_have_value("Liu Yang")
        expect(page.locator('#expert-directory tr[data-expert-id="liu"]')).to_have_count(0)
        page.screenshot(path=str(shots / "directory-refused.png"))
        page.fill("#expert-number", "13912340002")
        page.fill("#expert-groups", "no-such-group")
        page.click("#add-expert-submit")
        expect(page.locator("#error-groups")).to_contain_text("no expert group 'no-such-group'")

        page.fill("#expert-groups", "mortgage")
        page.fill("#expert-expertise", "mortgage 6")
        page.click("#add-expert-submit")
        expect(page.locator("#message")).to_have_text("Expert liu added.")
        liu = page.locator('#expert-directory tr[data-expert-id="liu"]')
        expect(liu).to_have_attribute("data-source", "roster")
        expect(liu).to_contain_text("mortgage 6")
        status, listing = stack.api("GET", "/api/experts")
        assert status == 200 and "liu" in [e["id"] for e in listing["experts"]], listing

        page.goto(stack.web_url + "/experts?lang=zh")
        expect(page.locator("h1")).to_have_text("专家名录")
        page.screenshot(path=str(shots / "directory-zh.png"))
        page.goto(stack.web_url + "/experts?lang=en")
        page.click('button[data-remove="liu"]')
        expect(page.locator("#message")).to_have_text("Expert liu removed.")
        expect(page.locator('#expert-directory tr[data-expert-id="liu"]')).to_have_count(0)
        rows = stack.query("SELECT removed, changed_by FROM expert_roster")
        assert [tuple(r) for r in rows] == [(True, "root")], rows
    finally:
        admin.close()
        agent.close()
        supervisor.close()
