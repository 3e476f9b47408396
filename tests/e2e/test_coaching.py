"""Listen, whisper, barge: a supervisor's desk phone on a live call, checked on recorded audio.

The caller, the agent and the supervisor each play a tone of their own; each phone records what
it hears. Positions in a recording are wall-clock offsets from the moment its media started.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import PromptText
from tests.support.audio import best_match, find_reference, read_wav, write_tone
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, PROBE_JS, chromium_flags
from tests.support.calls import CALLER_TONE_HZ, HEARD, call_in, ended, prompt_wav, register_agent
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import Stack, eventually, free_port, free_sip_port

pytestmark = pytest.mark.e2e

AGENT_HZ = 1330  # not 440: the hold music has notes there
SUPERVISOR_HZ = 620
# Where the hold music (8 kHz u-law) has next to nothing, and no harmonic of the other tones.
HIGH_SUPERVISOR_HZ = 2870
BOB_HZ = 1700
CARRIER_PORT = free_sip_port()  # customers called back answer here
STACK_CONFIG = {
    "asterisk": {"wss_port": free_port()},  # the TLS listener of browser softphones
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{CARRIER_PORT}", "caller_id": "7000"},
    "web": {
        "users": [
            {"username": "lead", "name": "Lee Lead", "role": "supervisor", "phone": True},
            {"username": "duty", "name": "Du Ty", "role": "supervisor", "phone": True, "webrtc": True},
        ]
    },
    "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li"}],
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 10,
            "wrap_up_s": 0,
            "announce_every_s": 0,
            "callback": {"offer": True, "customer_ring_s": 15},  # for the callback test
        }
    ],
    "ivr": {"connecting": [], "greeting": [{"text": "Press 1.", "lang": "en"}]},
}


class Panel:
    """A signed-in panel session (cookie and CSRF token), as the page's script uses it."""

    def __init__(self, stack: Stack, username: str) -> None:
        self.stack = stack
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        password = stack.secrets["panel_passwords"][username]
        status, body = self.send("POST", "/login", {"username": username, "password": password})
        assert status == 200, body
        self.csrf = body["csrf_token"]

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.stack.web_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if getattr(self, "csrf", None):
            req.add_header("X-CSRF-Token", self.csrf)
        try:
            with self.opener.open(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def ari(stack: Stack, path: str) -> list[dict[str, Any]]:
    """What Asterisk itself holds (ARI, with the app's own credentials)."""
    port = stack.settings["asterisk"]["http_port"]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ari{path}")
    auth = base64.b64encode(f"lianluo:{stack.secrets['ari_password']}".encode()).decode()
    req.add_header("Authorization", f"Basic {auth}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        result: list[dict[str, Any]] = json.loads(resp.read())
        return result


def supervision_leftovers(stack: Stack) -> list[str]:
    channels = [c["id"] for c in ari(stack, "/channels") if c["id"].startswith(("coach-", "snoop-"))]
    bridges = [b["id"] for b in ari(stack, "/bridges") if b["id"].startswith("coach-")]
    return channels + bridges


STARTED: dict[int, float] = {}


def window(call: Call, seconds: float) -> tuple[float, float]:
    """Let `seconds` of the call go by; (start, end) positions in its recording."""
    start = time.monotonic() - STARTED[id(call)]
    call.wait_rx_audio(call.rx_audio_seconds() + seconds, timeout=seconds + 10)
    return start, time.monotonic() - STARTED[id(call)]


def level(call: Call, span: tuple[float, float], hz: float) -> float:
    """How strong a tone is in what a phone heard over `span`: its spectral peak against the
    strongest peak of that stretch (1.0: the loudest thing heard; ~0.01: codec noise)."""
    samples, rate = read_wav(call.recording())
    part = samples[int((span[0] + 0.3) * rate) : int((span[1] - 0.3) * rate)].astype(float)
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    freqs = np.fft.rfftfreq(len(part), 1 / rate)
    return float(spectrum[(freqs > hz - 15) & (freqs < hz + 15)].max() / spectrum.max())


def hearing(panel: Panel, mode: str) -> None:
    """Wait until the supervisor's snoop for `mode` is in their bridge."""

    def check() -> bool:
        status, body = panel.send("GET", "/panel/api/supervision/calls")
        assert status == 200, body
        return body["mine"] is not None and body["mine"]["hearing"] == mode

    eventually(check, 10, f"the supervisor's snoop in {mode} mode")


def connected_call(
    lab: PhoneLab, stack: Stack, tmp_path: Path, ani: str
) -> tuple[Call, Call, dict[str, Any], Phone]:
    """A caller talking with Alice (each playing a tone), and the supervisor's phone registered."""
    alice = register_agent(lab, stack, "1001")
    lead = register_agent(lab, stack, "lead")  # the supervisor's own SIP account
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    caller_tone = write_tone(tmp_path / "caller.wav", CALLER_TONE_HZ, 90)
    caller, it = call_in(lab, stack, ani, caller_tone, tmp_path / f"{ani}-heard.wav")
    STARTED[id(caller)] = time.monotonic() - 0.1
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    alice_leg = alice.wait_incoming(timeout=15)
    alice_leg.answer(
        play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), record=tmp_path / "alice-heard.wav", loop=True
    )
    STARTED[id(alice_leg)] = time.monotonic()
    stack.wait_event(it["id"], "connected")
    return caller, alice_leg, it, lead


def test_listen_whisper_barge_on_one_supervisor_call(stack: Stack, lab: PhoneLab, tmp_path: Path) -> None:
    caller, alice_leg, it, lead = connected_call(lab, stack, tmp_path, "13700000071")
    panel = Panel(stack, "lead")

    # An agent may not listen in, nor see the calls.
    agent = Panel(stack, "1001")
    assert agent.send("POST", f"/panel/api/supervision/calls/{it['id']}/listen")[0] == 403
    assert agent.send("GET", "/panel/api/supervision/calls")[0] == 403
    assert agent.send("POST", "/panel/api/supervision/end")[0] == 403
    assert panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/shout")[0] == 400

    status, calls = panel.send("GET", "/panel/api/supervision/calls")
    assert status == 200 and [c["interaction_id"] for c in calls["calls"]] == [str(it["id"])], calls
    assert calls["calls"][0]["agent_id"] == "1001"
    status, body = panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/listen")
    assert status == 200 and body["state"] == "ringing", body
    sup = lead.wait_incoming(timeout=15)
    lead_tone = write_tone(tmp_path / "lead.wav", SUPERVISOR_HZ, 90)
    sup.answer(play=lead_tone, record=tmp_path / "lead-heard.wav", loop=True)
    STARTED[id(sup)] = time.monotonic()
    hearing(panel, "listen")
    listen = {c: window(c, 3.0) for c in (sup, caller, alice_leg)}

    # Whisper, then barge: the same phone call, a new snoop each time.
    assert panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/whisper")[0] == 200
    hearing(panel, "whisper")
    whisper = {c: window(c, 3.0) for c in (sup, caller, alice_leg)}
    assert panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/barge")[0] == 200
    hearing(panel, "barge")
    barge = {c: window(c, 3.0) for c in (sup, caller, alice_leg)}
    assert sup.is_confirmed, "the supervisor's call stayed up through the mode changes"

    # The supervisor hangs up: everything made for them goes, the call goes on.
    sup.hangup()
    stack.wait_event(it["id"], "supervision_ended")
    eventually(lambda: supervision_leftovers(stack) == [], 10, "no snoop, phone or bridge left")
    after = window(caller, 2.0)
    caller.hangup()
    ended(stack, it["id"])
    eventually(lambda: ari(stack, "/channels") == [], 10, "no channel left in Asterisk")
    assert [b for b in ari(stack, "/bridges")] == []

    events = [(k, d) for k, d in stack.events(it["id"]) if k.startswith("supervision_")]
    assert events == [
        ("supervision_started", {"supervisor": "lead", "mode": "listen"}),
        ("supervision_mode", {"supervisor": "lead", "mode": "whisper", "was": "listen"}),
        ("supervision_mode", {"supervisor": "lead", "mode": "barge", "was": "whisper"}),
        ("supervision_ended", {"supervisor": "lead", "reason": "supervisor_hung_up"}),
    ], events

    heard = {
        name: {c: level(c, spans[c], SUPERVISOR_HZ) for c in spans}
        for name, spans in (("listen", listen), ("whisper", whisper), ("barge", barge))
    }
    print("supervisor tone (at supervisor, caller, agent):", {k: list(v.values()) for k, v in heard.items()})
    sides = {
        name: (level(sup, spans[sup], CALLER_TONE_HZ), level(sup, spans[sup], AGENT_HZ))
        for name, spans in (("listen", listen), ("whisper", whisper), ("barge", barge))
    }
    print("caller and agent tones at the supervisor:", sides)
    # Listen: the supervisor hears both sides; nobody hears the supervisor.
    assert sides["listen"][0] > 0.2, "the supervisor did not hear the caller"
    assert sides["listen"][1] > 0.2, "the supervisor did not hear the agent"
    assert heard["listen"][caller] < 0.05, "the caller heard the supervisor while listening"
    assert heard["listen"][alice_leg] < 0.05, "the agent heard the supervisor while listening"
    # Whisper: the agent hears the supervisor, the caller does not.
    assert heard["whisper"][alice_leg] > 0.2, "the agent did not hear the whisper"
    assert heard["whisper"][caller] < 0.05, "the caller heard the whisper"
    assert min(sides["whisper"]) > 0.2 and min(sides["barge"]) > 0.2, "the supervisor heard both sides"
    # Barge: both do.
    assert heard["barge"][alice_leg] > 0.2, "the agent did not hear the supervisor barge in"
    assert heard["barge"][caller] > 0.2, "the caller did not hear the supervisor barge in"
    # Gone: the caller hears the agent again and no supervisor.
    assert level(caller, after, SUPERVISOR_HZ) < 0.05 and level(caller, after, AGENT_HZ) > 0.5


def test_from_the_supervisor_page_and_the_call_ending_ends_the_supervisors_call(
    stack: Stack, lab: PhoneLab, tmp_path: Path, artifacts: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    caller, _alice_leg, it, lead = connected_call(lab, stack, tmp_path, "13700000072")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US").new_page()
            page.goto(stack.web_url + "/supervisor")
            page.fill("#username", "lead")
            page.fill("#password", str(stack.secrets["panel_passwords"]["lead"]))
            page.click("#sign-in")
            page.goto(stack.web_url + "/supervisor")
            row = page.locator(f'#live-calls tr[data-interaction-id="{it["id"]}"]')
            expect(row).to_contain_text("13700000072")
            row.locator('button[data-mode="whisper"]').click()
            sup = lead.wait_incoming(timeout=15)
            sup.answer(play=write_tone(tmp_path / "lead.wav", SUPERVISOR_HZ, 30), loop=True)
            expect(page.locator("#coach-status")).to_contain_text("whispering (only the agent hears you)")
            expect(row).to_contain_text("lead")
            page.screenshot(path=str(artifacts / "supervisor-whisper.png"), full_page=True)

            # Asking for another call while on this one is refused, and this one goes on.
            panel = Panel(stack, "lead")
            assert panel.send("POST", "/panel/api/supervision/calls/nope/listen")[0] == 409
            caller.hangup()
            sup.wait_disconnected(timeout=10)
            expect(row).to_have_count(0)
            expect(page.locator("#coach-status")).to_contain_text("Pick a call")
        finally:
            chromium.close()
    ended(stack, it["id"])
    stack.wait_event(it["id"], "supervision_ended")
    eventually(lambda: ari(stack, "/channels") == [], 10, "no channel left in Asterisk")
    assert ari(stack, "/bridges") == []
    reasons = [d["reason"] for k, d in stack.events(it["id"]) if k == "supervision_ended"]
    assert reasons == ["call_over"]


def test_the_supervisor_hears_a_consultation_and_follows_the_call_to_the_consulted_agent(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    caller, alice_leg, it, lead = connected_call(lab, stack, tmp_path, "13700000073")
    bob = register_agent(lab, stack, "1002")  # after Alice took the call: it is hers
    eventually(lambda: stack.agent_state("1002")["state"] == "ready", 10, "Bob ready")
    panel = Panel(stack, "lead")
    assert panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/listen")[0] == 200
    sup = lead.wait_incoming(timeout=15)
    lead_tone = write_tone(tmp_path / "lead.wav", SUPERVISOR_HZ, 90)
    sup.answer(play=lead_tone, record=tmp_path / "lead-heard.wav", loop=True)
    STARTED[id(sup)] = time.monotonic()
    hearing(panel, "listen")

    # Alice asks Bob (the caller holds): the supervisor hears their consultation.
    assert stack.api("POST", f"/api/calls/{it['id']}/consult", {"target": "agent:1002"})[0] == 200
    bob_leg = bob.wait_incoming(timeout=15)
    bob_leg.answer(play=write_tone(tmp_path / "bob.wav", BOB_HZ, 90), loop=True)
    stack.wait_event(it["id"], "consult_answered", timeout=10)
    consulting = window(sup, 3.0)

    # Alice hands the caller to Bob and drops off: the supervisor stays, now on Bob's channel.
    assert stack.api("POST", f"/api/calls/{it['id']}/complete")[0] == 200
    alice_leg.wait_disconnected(timeout=10)
    stack.wait_event(it["id"], "supervision_followed")
    hearing(panel, "listen")
    with_bob = window(sup, 3.0)
    assert sup.is_confirmed

    sup.hangup()
    stack.wait_event(it["id"], "supervision_ended")
    caller.hangup()
    ended(stack, it["id"])
    eventually(lambda: ari(stack, "/channels") == [], 10, "no channel left in Asterisk")
    assert ari(stack, "/bridges") == []
    followed = [d for k, d in stack.events(it["id"]) if k == "supervision_followed"]
    assert followed == [{"supervisor": "lead", "to": "1002"}]

    heard = {
        name: {hz: round(level(sup, span, hz), 4) for hz in (CALLER_TONE_HZ, AGENT_HZ, BOB_HZ)}
        for name, span in (("consulting", consulting), ("with_bob", with_bob))
    }
    print("at the supervisor (caller, Alice, Bob):", heard)
    assert heard["consulting"][AGENT_HZ] > 0.2 and heard["consulting"][BOB_HZ] > 0.2, "Alice and Bob"
    assert heard["with_bob"][CALLER_TONE_HZ] > 0.2 and heard["with_bob"][BOB_HZ] > 0.2, "caller and Bob"
    assert heard["with_bob"][AGENT_HZ] < 0.05, "Alice has left the call"


def test_a_supervisor_whispers_from_the_browser_softphone(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    caller, alice_leg, it, _lead = connected_call(lab, stack, tmp_path, "13700000074")
    mic = write_tone(tmp_path / "duty-mic.wav", SUPERVISOR_HZ, 30, rate=48000)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_flags(mic))
        try:
            page = chromium.new_context(locale="en-US").new_page()
            page.goto(stack.web_url + "/supervisor")
            page.fill("#username", "duty")
            page.fill("#password", str(stack.secrets["panel_passwords"]["duty"]))
            page.click("#sign-in")
            page.goto(stack.web_url + "/supervisor")
            expect(page.locator("#softphone")).to_have_attribute("data-state", "registered", timeout=15_000)
            row = page.locator(f'#live-calls tr[data-interaction-id="{it["id"]}"]')
            row.locator('button[data-mode="whisper"]').click()
            expect(page.locator("#softphone-answer")).to_be_visible(timeout=15_000)
            page.click("#softphone-answer")
            expect(page.locator("#softphone")).to_have_attribute("data-state", "on_call", timeout=15_000)
            expect(page.locator("#coach-status")).to_contain_text("whispering (only the agent hears you)")
            # The browser plays the call: the caller's or the agent's tone is the loudest thing.
            probe = eventually(
                lambda: (
                    (q := page.evaluate(PROBE_JS))
                    and min(abs(q["hz"] - CALLER_TONE_HZ), abs(q["hz"] - AGENT_HZ)) < 15
                    and q["db"] > -60
                    and q
                ),
                15,
                "the call's audio in the supervisor's browser",
            )
            whisper = {c: window(c, 3.0) for c in (caller, alice_leg)}
            page.click("#coach-end")
            expect(page.locator("#softphone")).to_have_attribute("data-state", "registered", timeout=10_000)
        finally:
            chromium.close()
    stack.wait_event(it["id"], "supervision_ended")
    eventually(lambda: supervision_leftovers(stack) == [], 10, "no snoop, phone or bridge left")
    caller.hangup()
    ended(stack, it["id"])
    ends = [d for k, d in stack.events(it["id"]) if k == "supervision_ended"]
    assert ends == [{"supervisor": "duty", "reason": "ended_by_supervisor"}]
    at_agent, at_caller = (
        level(alice_leg, whisper[alice_leg], SUPERVISOR_HZ),
        level(caller, whisper[caller], SUPERVISOR_HZ),
    )
    print(
        f"browser heard {probe['hz']:.0f} Hz at {probe['db']:.0f} dBFS;"
        f" its mic at the agent {at_agent:.3f}, at the caller {at_caller:.4f}"
    )
    # Chromium's own processing of the microphone (noise suppression takes a steady tone for
    # noise) turns it down by about 20 dB: still 100 times what the caller gets.
    assert at_agent > 0.05, "the agent did not hear the supervisor's browser"
    assert at_caller < 0.05, "the caller heard the whisper"


def test_a_supervisor_barges_into_a_callback(stack: Stack, lab: PhoneLab, tmp_path: Path) -> None:
    """A call the center places (the customer called back) is listened to the same way."""
    customers = lab.phone("127.0.0.2", port=CARRIER_PORT)
    alice = register_agent(lab, stack, "1001")
    lead = register_agent(lab, stack, "lead")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    status, cb = stack.api("POST", "/api/callbacks", {"phone": "13700000075", "queue": "general"})
    assert status == 201, cb
    alice_leg = alice.wait_incoming(timeout=15)
    alice_leg.answer(
        play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), record=tmp_path / "alice-heard.wav", loop=True
    )
    STARTED[id(alice_leg)] = time.monotonic()
    customer = customers.wait_incoming(timeout=20)
    customer.answer(
        play=write_tone(tmp_path / "customer.wav", CALLER_TONE_HZ, 90),
        record=tmp_path / "customer-heard.wav",
        loop=True,
    )
    STARTED[id(customer)] = time.monotonic()
    panel = Panel(stack, "lead")

    def the_callback() -> dict[str, Any] | None:
        calls = panel.send("GET", "/panel/api/supervision/calls")[1]["calls"]
        return next((c for c in calls if c["kind"] == "callback" and c["agent_id"] == "1001"), None)

    call = eventually(the_callback, 15, "the callback among the live calls")
    # The customer first hears who is calling (the callback greeting), then joins Alice.
    stack.wait_event(call["interaction_id"], "connected", timeout=20)
    assert panel.send("POST", f"/panel/api/supervision/calls/{call['interaction_id']}/barge")[0] == 200
    sup = lead.wait_incoming(timeout=15)
    lead_tone = write_tone(tmp_path / "lead.wav", SUPERVISOR_HZ, 90)
    sup.answer(play=lead_tone, record=tmp_path / "lead-heard.wav", loop=True)
    STARTED[id(sup)] = time.monotonic()
    hearing(panel, "barge")
    barge = {c: window(c, 3.0) for c in (sup, customer, alice_leg)}
    sup.hangup()
    stack.wait_event(call["interaction_id"], "supervision_ended")
    customer.hangup()
    ended(stack, call["interaction_id"])
    eventually(lambda: ari(stack, "/channels") == [], 10, "no channel left in Asterisk")

    heard = {
        "supervisor hears the customer": level(sup, barge[sup], CALLER_TONE_HZ),
        "supervisor hears the agent": level(sup, barge[sup], AGENT_HZ),
        "customer hears the supervisor": level(customer, barge[customer], SUPERVISOR_HZ),
        "agent hears the supervisor": level(alice_leg, barge[alice_leg], SUPERVISOR_HZ),
    }
    print("callback, barge:", heard)
    assert min(heard.values()) > 0.2, heard


def supervisor_phones(stack: Stack) -> list[str]:
    """The supervisors' phone channels in Asterisk (snoops are `snoop-...`)."""
    return [c["id"] for c in ari(stack, "/channels") if c["id"].startswith("coach-")]


def without_caller_tone(call: Call, span: tuple[float, float], margin: float = 1.0) -> tuple[np.ndarray, int]:
    """What a phone heard over `span` (and `margin` seconds either side: two recordings' clocks
    differ by a little), with the caller's tone notched out: the snoop of a waiting caller mixes
    it in, while the caller never hears it."""
    samples, rate = read_wav(call.recording())
    start = max(0.0, span[0] - margin)
    part = samples[int(start * rate) : int((span[1] + margin) * rate)].astype(float)
    spectrum = np.fft.rfft(part)
    freqs = np.fft.rfftfreq(len(part), 1 / rate)
    spectrum[(freqs > CALLER_TONE_HZ - 30) & (freqs < CALLER_TONE_HZ + 30)] = 0
    return np.fft.irfft(spectrum, len(part)), rate


def music_match(
    sup: Call, caller: Call, span_sup: tuple[float, float], span_caller: tuple[float, float]
) -> float:
    """How well what the caller heard (the queue's music) is found in what the supervisor heard
    over the same stretch (normalised cross-correlation, 1.0: the same audio)."""
    notched, rate = without_caller_tone(sup, span_sup)
    heard, crate = read_wav(caller.recording())
    # Five 0.6 s pieces of the caller's stretch, each searched for in the supervisor's: one late
    # packet shifts everything after it, which a single long piece would score as barely heard
    # (see heard_in_parts). The median: a piece falling in a quiet bar of the music says nothing.
    scores = []
    for at in np.linspace(span_caller[0] + 0.4, span_caller[1] - 1.0, 5):
        piece = heard[int(at * crate) : int((at + 0.6) * crate)].astype(float)
        scores.append(find_reference((notched, rate), (piece, crate)).score)
    print("music pieces at the supervisor:", [round(x, 3) for x in scores])
    return float(np.median(scores))


def listen_from_the_page(stack: Stack, interaction_id: object) -> None:
    """The supervisor page offers a waiting caller: where they are, Listen and Barge, no Whisper."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_context(locale="en-US").new_page()
            page.goto(stack.web_url + "/supervisor")
            page.fill("#username", "lead")
            page.fill("#password", str(stack.secrets["panel_passwords"]["lead"]))
            page.click("#sign-in")
            page.goto(stack.web_url + "/supervisor")
            row = page.locator(f'#live-calls tr[data-interaction-id="{interaction_id}"]')
            expect(row).to_contain_text("waiting in line")
            expect(row.locator('button[data-mode="whisper"]')).to_be_disabled()
            expect(row.locator('button[data-mode="barge"]')).to_be_enabled()
            row.locator('button[data-mode="listen"]').click()
            expect(page.locator("#coach-status")).to_contain_text("Your phone is ringing")
        finally:
            chromium.close()


def test_a_caller_waiting_in_line_is_listened_to_and_followed_to_the_agent_who_answers(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    alice = register_agent(lab, stack, "1001")
    lead = register_agent(lab, stack, "lead")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    status, body = stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "break"})
    assert status == 200, body  # no agent free: the caller waits with the queue's music
    caller_tone = write_tone(tmp_path / "caller.wav", CALLER_TONE_HZ, 90)
    caller, it = call_in(lab, stack, "13700000076", caller_tone, tmp_path / "waiting-heard.wav")
    STARTED[id(caller)] = time.monotonic() - 0.1
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    stack.wait_event(it["id"], "queued", timeout=10)
    panel = Panel(stack, "lead")

    status, calls = panel.send("GET", "/panel/api/supervision/calls")
    assert status == 200, calls
    [row] = [c for c in calls["calls"] if c["interaction_id"] == str(it["id"])]
    assert (row["stage"], row["agent_id"], row["modes"]) == ("waiting", None, ["listen", "barge"]), row
    # Nobody to whisper to yet: refused, and nothing rings.
    status, body = panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/whisper")
    assert status == 409 and "nobody to whisper to" in body["message"], body
    assert panel.send("GET", "/panel/api/supervision/calls")[1]["mine"] is None
    listen_from_the_page(stack, it["id"])
    sup = lead.wait_incoming(timeout=15)
    # Not 620 Hz here: the caller hears music alone, and some of its bars are loud at 620 Hz.
    sup.answer(
        play=write_tone(tmp_path / "lead.wav", HIGH_SUPERVISOR_HZ, 90),
        record=tmp_path / "lead-heard.wav",
        loop=True,
    )
    STARTED[id(sup)] = time.monotonic()
    hearing(panel, "listen")
    assert panel.send("GET", "/panel/api/supervision/calls")[1]["mine"]["side"] == "caller"
    phones = supervisor_phones(stack)
    assert len(phones) == 1, phones
    waiting = {c: window(c, 4.0) for c in (sup, caller)}

    # Alice frees up and answers: the supervisor is moved onto her side, on the same phone call.
    assert stack.api("POST", "/api/agents/1001/state", {"state": "ready"})[0] == 200
    alice_leg = alice.wait_incoming(timeout=15)
    alice_leg.answer(
        play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), record=tmp_path / "alice-heard.wav", loop=True
    )
    STARTED[id(alice_leg)] = time.monotonic()
    stack.wait_event(it["id"], "connected")
    stack.wait_event(it["id"], "supervision_followed")
    hearing(panel, "listen")
    assert panel.send("GET", "/panel/api/supervision/calls")[1]["mine"]["side"] == "agent"
    talking = {c: window(c, 3.0) for c in (sup, caller, alice_leg)}
    assert sup.is_confirmed and supervisor_phones(stack) == phones, "no new call to the supervisor"

    caller.hangup()
    ended(stack, it["id"])
    stack.wait_event(it["id"], "supervision_ended")
    sup.wait_disconnected(timeout=10)
    eventually(lambda: ari(stack, "/channels") == [], 10, "no channel left in Asterisk")
    assert supervision_leftovers(stack) == [] and ari(stack, "/bridges") == []
    events = [(k, d) for k, d in stack.events(it["id"]) if k.startswith("supervision_")]
    assert events == [
        ("supervision_started", {"supervisor": "lead", "mode": "listen", "stage": "waiting"}),
        ("supervision_followed", {"supervisor": "lead", "to": "1001"}),
        ("supervision_ended", {"supervisor": "lead", "reason": "call_over"}),
    ], events

    heard = {
        "waiting: caller at supervisor": level(sup, waiting[sup], CALLER_TONE_HZ),
        "waiting: music at supervisor": music_match(sup, caller, waiting[sup], waiting[caller]),
        "waiting: supervisor at caller": level(caller, waiting[caller], HIGH_SUPERVISOR_HZ),
        "talking: caller at supervisor": level(sup, talking[sup], CALLER_TONE_HZ),
        "talking: agent at supervisor": level(sup, talking[sup], AGENT_HZ),
        "talking: supervisor at caller": level(caller, talking[caller], HIGH_SUPERVISOR_HZ),
        "talking: supervisor at agent": level(alice_leg, talking[alice_leg], HIGH_SUPERVISOR_HZ),
    }
    print("listening to a waiting caller:", {k: round(v, 4) for k, v in heard.items()})
    assert heard["waiting: caller at supervisor"] > 0.2, "the supervisor did not hear the waiting caller"
    # Unrelated audio reads about 0.16; 0.64-0.79 alone, 0.45 seen on a loaded machine.
    assert heard["waiting: music at supervisor"] > 0.35, "the supervisor did not hear the queue's music"
    assert heard["waiting: supervisor at caller"] < 0.05, "the waiting caller heard the supervisor"
    assert heard["talking: caller at supervisor"] > 0.2, "the supervisor lost the caller"
    assert heard["talking: agent at supervisor"] > 0.2, "the supervisor did not hear the agent"
    assert heard["talking: supervisor at caller"] < 0.05, "the caller heard the supervisor"
    assert heard["talking: supervisor at agent"] < 0.05, "the agent heard the supervisor"


def test_a_supervisor_barges_in_on_a_caller_in_the_ivr(stack: Stack, lab: PhoneLab, tmp_path: Path) -> None:
    """Barge with nobody answered yet speaks to the caller alone; the supervisor hears the menu."""
    lead = register_agent(lab, stack, "lead")
    caller_tone = write_tone(tmp_path / "caller.wav", CALLER_TONE_HZ, 90)
    caller, it = call_in(lab, stack, "13700000077", caller_tone, tmp_path / "ivr-heard.wav")
    STARTED[id(caller)] = time.monotonic() - 0.1
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    panel = Panel(stack, "lead")
    status, calls = panel.send("GET", "/panel/api/supervision/calls")
    assert status == 200, calls
    [row] = [c for c in calls["calls"] if c["interaction_id"] == str(it["id"])]
    assert (row["stage"], row["agent_id"]) == ("ivr", None), row
    assert panel.send("POST", f"/panel/api/supervision/calls/{it['id']}/barge")[0] == 200
    sup = lead.wait_incoming(timeout=15)
    sup.answer(
        play=write_tone(tmp_path / "lead.wav", HIGH_SUPERVISOR_HZ, 90),
        record=tmp_path / "lead-heard.wav",
        loop=True,
    )
    STARTED[id(sup)] = time.monotonic()
    hearing(panel, "barge")
    # The caller presses nothing: the menu plays again after the digit timeout, heard by both.
    menus = [k for k, _ in stack.events(it["id"])].count("prompt_played")
    starts = {c: time.monotonic() - STARTED[id(c)] for c in (sup, caller)}
    eventually(
        lambda: [k for k, _ in stack.events(it["id"])].count("prompt_played") > menus, 15, "the menu again"
    )
    spans = {c: (starts[c], time.monotonic() - STARTED[id(c)]) for c in (sup, caller)}
    caller.hangup()
    ended(stack, it["id"])
    stack.wait_event(it["id"], "supervision_ended")
    eventually(lambda: ari(stack, "/channels") == [], 10, "no channel left in Asterisk")
    assert ari(stack, "/bridges") == []
    events = [(k, d) for k, d in stack.events(it["id"]) if k.startswith("supervision_")]
    assert events == [
        ("supervision_started", {"supervisor": "lead", "mode": "barge", "stage": "ivr"}),
        ("supervision_ended", {"supervisor": "lead", "reason": "call_over"}),
    ], events

    menu = prompt_wav(PromptText("Press 1.", "en"))
    heard = {
        "menu at supervisor": best_match(without_caller_tone(sup, spans[sup]), menu),
        "caller at supervisor": level(sup, spans[sup], CALLER_TONE_HZ),
        "supervisor at caller": level(caller, spans[caller], HIGH_SUPERVISOR_HZ),
    }
    print("barging in on a caller in the IVR:", {k: round(v, 4) for k, v in heard.items()})
    assert heard["menu at supervisor"] > HEARD, "the supervisor did not hear the menu"
    assert heard["caller at supervisor"] > 0.2, "the supervisor did not hear the caller"
    assert heard["supervisor at caller"] > 0.2, "the caller did not hear the supervisor barge in"
