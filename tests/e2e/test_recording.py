"""Call recording on the real stack: real Asterisk (MixMonitor over AMI), real SIP phones.

A caller (playing one tone) reaches an agent (playing another); the agent pauses and resumes the
recording, holds and resumes the caller, and the caller hangs up. The stereo file must hold the
caller's tone on the left channel only and the agent's on the right only, be silent where the
row says it was paused or on hold, and match the row's SHA-256. Then who may fetch it: the QA
user and the agent on the call may, another agent may not, and every attempt is audited.
A consult transfer keeps one recording; the QA desk marks the consultation and the hand-over on
its time line where the file has them, with the IVR path and the wrap-up code beside the player
(screenshots: test-artifacts/panel/qa-desk-transfer-marks*.png).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any, cast

import numpy as np
import psycopg
import pytest

from app.config import RecordingSettings
from app.domain.transcript import SIDES, words_found
from tests.support.audio import (
    best_match,
    duration,
    find_reference,
    heard_in_parts,
    tone_intervals,
    tone_seconds,
    write_tone,
)
from tests.support.calls import HEARD, call_in, ended, prompt_wav, register_agent
from tests.support.sip_phone import PhoneLab
from tests.support.stack import REPO, Stack, eventually

pytestmark = pytest.mark.e2e

CALLER_HZ = 1000
AGENT_HZ = 1330
BOB_HZ = 620  # the second agent (not a note of the hold music either)
STACK_CONFIG = {
    "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li"}],
    "queues": [{"name": "general", "ring_timeout_s": 10, "wrap_up_s": 0, "announce_every_s": 0}],
    "ivr": {
        "connecting": [],
        "greeting": [{"text": "Press 1.", "lang": "en"}],
        # Its label names the caller's choice in the QA desk, as on the agent's screen pop.
        "menu": [{"digit": "1", "queue": "general", "label": {"en": "General enquiries", "zh": "一般咨询"}}],
    },
    "web": {"users": [{"username": "qa", "name": "Qiu Anna", "role": "qa"}]},
    "recording": {
        "enabled": True,
        "agents_hear_own": True,
        "default": {"mode": "all", "retention_days": 30},
        "forms": str(REPO / "config" / "qa_forms"),
        "transcripts": {"enabled": True, "workers": 1},
    },
}


def control(stack: Stack, it: dict[str, Any], action: str) -> dict[str, Any]:
    status, result = stack.api("POST", f"/api/calls/{it['id']}/{action}", {})
    assert status == 200, (action, status, result)
    return cast(dict[str, Any], result)


def stereo(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (2, 2)
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return data[:, 0].astype(np.float64) / 32768, data[:, 1].astype(np.float64) / 32768, rate


def part(x: np.ndarray, rate: int, start: float, end: float) -> tuple[np.ndarray, int]:
    return x[int(start * rate) : int(end * rate)], rate


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


class Browserless:
    """A panel user over HTTP (JSON sign-in, session cookie), as the page's script would be."""

    def __init__(self, stack: Stack, username: str) -> None:
        self.stack = stack
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        password = str(stack.secrets["panel_passwords"][username])
        body = json.dumps({"username": username, "password": password}).encode()
        req = urllib.request.Request(
            stack.web_url + "/login", body, {"Content-Type": "application/json", "Accept": "application/json"}
        )
        with self.opener.open(req, timeout=10) as resp:
            assert resp.status == 200
            self.csrf = json.loads(resp.read())["csrf_token"]

    def get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(self.stack.web_url + path, headers={"Accept": "application/json"})
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRF-Token": self.csrf,
        }
        req = urllib.request.Request(self.stack.web_url + path, json.dumps(body).encode(), headers)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def test_a_free_agents_phone_rings_during_the_consent_which_the_caller_hears_before_the_agent(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    """The consent notice does not hold up a free agent: their phone rings while it plays, and
    the caller still hears it whole before the agent's voice (here a tone)."""
    alice = register_agent(lab, stack, "1001")
    caller, it = call_in(
        lab, stack, "13700000072", write_tone(tmp_path / "c.wav", CALLER_HZ, 60), tmp_path / "h.wav"
    )
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    alice_leg = alice.wait_incoming(timeout=30)
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 60), loop=True)
    stack.wait_event(it["id"], "connected", timeout=20)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 2.0, timeout=15)
    caller.hangup()
    caller.wait_disconnected(timeout=10)
    heard = caller.recording()
    assert caller.confirmed_at is not None and alice_leg.invited_at is not None
    # The caller's recording starts as their call is answered: the INVITE's place in it.
    invite_at = alice_leg.invited_at - caller.confirmed_at
    english, mandarin = (prompt_wav(p) for p in RecordingSettings().consent_prompt)  # the default
    en, zh = find_reference(heard, english), find_reference(heard, mandarin)
    # Heard whole: each third found after the one before (one late packet mid-prompt shifts the
    # rest by tens of milliseconds, which the whole prompt's correlation reads as half heard).
    whole = heard_in_parts(heard, english, halves=2), heard_in_parts(heard, mandarin, halves=2)
    assert min(whole) > HEARD, (en, zh, whole)
    consent_end = zh.offset + duration(mandarin)
    assert en.offset < zh.offset, "the English notice, then the Mandarin one"
    assert invite_at < en.offset + duration(english), (
        invite_at,
        en,
        "the agent's phone rang during the notice",
    )
    agent = tone_intervals(heard, AGENT_HZ)
    assert agent, "the caller heard the agent"
    assert agent[0][0] > consent_end - 0.1, (agent[0], consent_end, "the agent only after the whole notice")
    print(f"INVITE {invite_at:.2f} s; consent {en.offset:.2f}-{consent_end:.2f} s; agent {agent[0][0]:.2f} s")
    ended(stack, it["id"])


def test_stereo_recording_with_pause_and_hold_checksum_and_access(
    stack: Stack, lab: PhoneLab, tmp_path: Path
) -> None:
    alice = register_agent(lab, stack, "1001")
    ani = "13700000071"
    voice = write_tone(tmp_path / "caller.wav", CALLER_HZ, 90)
    caller, it = call_in(lab, stack, ani, voice, tmp_path / "caller-heard.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    alice_leg = alice.wait_incoming(timeout=30)  # while the consent announcement plays
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), loop=True)
    started = stack.wait_event(it["id"], "recording_started", timeout=10)
    assert started["rule"] == "default"

    def talk(seconds: float) -> None:
        caller.wait_rx_audio(caller.rx_audio_seconds() + seconds, timeout=seconds + 10)

    talk(3.0)
    control(stack, it, "pause_recording")
    talk(3.0)
    assert control(stack, it, "resume_recording")["call"]["recording"] == {"recording": True, "paused": False}
    talk(2.0)
    control(stack, it, "hold")
    talk(3.0)
    control(stack, it, "resume")
    talk(2.0)
    caller.hangup()
    ended(stack, it["id"])

    row = eventually(
        lambda: stack.query(
            "SELECT id::text, path, sha256, size_bytes, duration_ms, channels, agents, spans, started_at"
            " FROM recordings WHERE interaction_id = %s",
            it["id"],
        ),
        20,
        "the recording's row (written once Asterisk closed the file)",
    )[0]
    rec_id, rel, sha, size, duration_ms, channels, agents, spans, _ = row
    path = stack.var_dir / "recordings" / rel
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha, "the row's SHA-256 is the file's"
    assert len(data) == size and channels == 2 and agents == ["1001"]
    left, right, rate = stereo(path)
    assert rate == 8000
    length = len(left) / rate
    assert abs(length - duration_ms / 1000) < 0.05
    assert 12.0 < length < 25.0, length

    marked = [s for s in spans if s["kind"] in ("pause", "hold")]
    assert [s["kind"] for s in marked] == ["pause", "hold"], spans
    pause, hold = marked
    # Both phones play all the time: the time line marks them talking at once, not silence.
    assert "overtalk" in {s["kind"] for s in spans} and "silence" not in {s["kind"] for s in spans}
    # Audio outside the marked spans: the caller's tone on the left only, the agent's on the
    # right only. Inside them: silence on both.
    talking = (0.5, float(pause["start_s"]) - 0.3)
    assert talking[1] - talking[0] > 1.5, spans
    assert tone_seconds(part(left, rate, *talking), CALLER_HZ) > 0.8 * (talking[1] - talking[0])
    assert tone_seconds(part(right, rate, *talking), AGENT_HZ) > 0.8 * (talking[1] - talking[0])
    assert tone_seconds(part(left, rate, *talking), AGENT_HZ) < 0.1, "the agent leaked into the caller side"
    assert tone_seconds(part(right, rate, *talking), CALLER_HZ) < 0.1, "the caller leaked into the center"
    between = (float(pause["end_s"]) + 0.3, float(hold["start_s"]) - 0.3)
    assert tone_seconds(part(left, rate, *between), CALLER_HZ) > 0.7 * (between[1] - between[0])
    for span in (pause, hold):
        inside = (float(span["start_s"]) + 0.3, float(span["end_s"]) - 0.3)
        assert inside[1] - inside[0] > 2.0, span
        for side in (left, right):
            assert rms(part(side, rate, *inside)[0]) < 1e-3, f"{span['kind']} is not silence"
    after = (float(hold["end_s"]) + 0.5, length - 0.3)
    assert tone_seconds(part(right, rate, *after), AGENT_HZ) > 0.7 * (after[1] - after[0])

    # Who may fetch it. The QA user finds it by the caller's number and plays it.
    qa = Browserless(stack, "qa")
    status, body = qa.get(f"/panel/api/recordings?ani={ani[-4:]}")
    assert status == 200 and [r["id"] for r in json.loads(body)["recordings"]] == [rec_id]
    status, audio = qa.get(f"/panel/api/recordings/{rec_id}/audio")
    assert status == 200 and audio == data
    status, body = qa.get(f"/panel/api/recordings/{rec_id}")
    assert status == 200 and json.loads(body)["checksum_ok"] is True
    status, downloaded = qa.get(f"/panel/api/recordings/{rec_id}/audio?download=1")
    assert status == 200 and downloaded == data
    # Alice talked on it (and the center lets agents hear their own); Bob did not.
    assert Browserless(stack, "1001").get(f"/panel/api/recordings/{rec_id}/audio")[0] == 200
    bob = Browserless(stack, "1002")
    assert bob.get(f"/panel/api/recordings/{rec_id}/audio")[0] == 403
    status, body = bob.get("/panel/api/recordings")
    assert status == 200 and json.loads(body)["recordings"] == [], "Bob's search shows none of Alice's calls"
    audit = stack.query(
        "SELECT username, action, allowed FROM recording_access WHERE recording_id = %s ORDER BY id", rec_id
    )
    assert audit == [
        ("qa", "listen", True),
        ("qa", "download", True),
        ("1001", "listen", True),
        ("1002", "listen", False),
    ]

    # An altered file is flagged by its checksum.
    with path.open("r+b") as f:
        f.seek(100)
        f.write(b"\x7f\x7f")
    status, body = qa.get(f"/panel/api/recordings/{rec_id}")
    assert json.loads(body)["checksum_ok"] is False


def test_a_consult_transfer_keeps_one_recording_with_both_agents(
    stack: Stack, lab: PhoneLab, tmp_path: Path, artifacts: Path
) -> None:
    """One recording across the consultation; in the QA desk (Chromium) its time line marks the
    consultation and the hand-over where they happened in the file (the hold's edges, the first
    agent's voice giving way to the second's), and beside the player the caller's IVR path by
    the menu's label and the second agent's wrap-up code."""
    alice = register_agent(lab, stack, "1001")
    bob = register_agent(lab, stack, "1002")
    eventually(lambda: stack.agent_state("1002")["state"] == "ready", 10, "Bob ready")
    # Bob steps away so that Alice takes the call; he is back for the consultation.
    assert stack.api("POST", "/api/agents/1002/state", {"state": "not_ready", "reason": "break"})[0] == 200
    voice = write_tone(tmp_path / "caller.wav", CALLER_HZ, 90)
    caller, it = call_in(lab, stack, "13700000072", voice, tmp_path / "caller-heard.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    alice_leg = alice.wait_incoming(timeout=30)
    alice_leg.answer(play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), loop=True)
    stack.wait_event(it["id"], "recording_started", timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3.0, timeout=15)
    assert stack.api("POST", "/api/agents/1002/state", {"state": "ready"})[0] == 200
    status, result = stack.api("POST", f"/api/calls/{it['id']}/consult", {"target": "agent:1002"})
    assert status == 200, result
    bob_leg = bob.wait_incoming(timeout=15)
    bob_leg.answer(play=write_tone(tmp_path / "bob.wav", BOB_HZ, 90), loop=True)
    stack.wait_event(it["id"], "consult_answered", timeout=10)
    # The agents talk while the caller holds (their music): a consultation of a few seconds,
    # so that its start and its hand-over are apart on the time line.
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3.0, timeout=15)
    control(stack, it, "complete")
    alice_leg.wait_disconnected(timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 3.0, timeout=15)
    caller.hangup()
    ended(stack, it["id"])

    rows = eventually(
        lambda: stack.query("SELECT path, agents, spans FROM recordings WHERE interaction_id = %s", it["id"]),
        20,
        "the recording's row",
    )
    assert len(rows) == 1, "one recording for the whole interaction"
    rel, agents, spans = rows[0]
    assert sorted(agents) == ["1001", "1002"]
    marked = [s for s in spans if s["kind"] in ("pause", "hold")]
    assert [s["kind"] for s in marked] == ["hold"], "the caller held during the consultation"
    hold = marked[0]
    left, right, rate = stereo(stack.var_dir / "recordings" / rel)
    before = (0.5, float(hold["start_s"]) - 0.3)
    after = (float(hold["end_s"]) + 0.5, len(left) / rate - 0.3)
    assert tone_seconds(part(right, rate, *before), AGENT_HZ) > 0.7 * (before[1] - before[0])
    assert tone_seconds(part(right, rate, *after), BOB_HZ) > 0.7 * (after[1] - after[0]), (
        "the second agent's part is in the same recording"
    )
    assert tone_seconds(part(right, rate, *after), AGENT_HZ) < 0.1, "the first agent had left"
    assert tone_seconds(part(left, rate, *after), CALLER_HZ) > 0.7 * (after[1] - after[0])
    inside = (float(hold["start_s"]) + 0.3, float(hold["end_s"]) - 0.3)
    assert rms(part(left, rate, *inside)[0]) < 1e-3 and rms(part(right, rate, *inside)[0]) < 1e-3

    # Bob, who has the caller at the end, gives the wrap-up code.
    status, saved = Browserless(stack, "1002").post(
        f"/panel/api/interactions/{it['id']}/disposition", {"code": "resolved"}
    )
    assert status == 200, saved
    bob_from = tone_intervals(part(right, rate, 0, len(right) / rate), BOB_HZ)[0][0]
    alice_until = tone_intervals(part(right, rate, 0, float(hold["start_s"]) + 0.5), AGENT_HZ)[-1][1]
    _qa_desk_marks_the_transfer(stack, it, (alice_until, bob_from), hold, artifacts / "panel")


def _qa_desk_marks_the_transfer(
    stack: Stack, it: dict[str, Any], heard: tuple[float, float], hold: dict[str, Any], shots: Path
) -> None:
    """The desk's player for the consult-transferred call: `heard` is where, in the file, the
    first agent's tone ends and the second's begins."""
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import expect, sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS

    shots.mkdir(parents=True, exist_ok=True)
    rec_id, duration_ms = stack.query(
        "SELECT id::text, duration_ms FROM recordings WHERE interaction_id = %s", it["id"]
    )[0]
    duration = duration_ms / 1000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            qa = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 900}).new_page()
            sign_in_as(qa, stack, "qa", "/qa")
            qa.goto(f"{stack.web_url}/qa?ani=13700000072&play={rec_id}")
            expect(qa.locator("#player")).to_have_attribute("data-recording-id", rec_id)
            expect(qa.locator("#timeline .mark-transfer")).to_have_count(2)
            marks = qa.locator('#marks li[data-kind="transfer"]')
            expect(marks).to_have_text(
                [re.compile(r"consultation with agent 1002$"), re.compile(r"handed over to agent 1002$")]
            )
            consult_at = float(marks.nth(0).get_attribute("data-start") or "nan")
            handed_at = float(marks.nth(1).get_attribute("data-start") or "nan")
            print(f"marks: consult {consult_at:.2f} s, hand-over {handed_at:.2f} s; hold {hold};"
                  f" Alice heard until {heard[0]:.2f} s, Bob from {heard[1]:.2f} s")  # fmt: skip
            # The consultation began as the caller went on hold, the hand-over as they came back:
            # Alice is heard up to the first mark, Bob from the second.
            assert abs(consult_at - float(hold["start_s"])) < 1.0
            assert abs(handed_at - float(hold["end_s"])) < 1.0
            assert heard[0] <= consult_at + 0.5 and abs(heard[1] - handed_at) < 1.0
            # On the time line, the hand-over's bar sits at its share of the recording's length.
            share = qa.evaluate(
                """() => {
                  const line = document.getElementById("timeline").getBoundingClientRect();
                  const bar = document.querySelector('#timeline [data-how="consult_completed"]');
                  return (bar.getBoundingClientRect().left - line.left) / line.width;
                }"""
            )
            assert abs(share - handed_at / duration) < 0.01, (share, handed_at, duration)
            # Beside the player: the caller's way through the IVR and the wrap-up code.
            expect(qa.locator('#ivr-path li[data-choice="1"]')).to_have_text("General enquiries")
            expect(qa.locator("#ivr-path li.reached")).to_have_text("to the queue general")
            expect(qa.locator("#disposition")).to_have_text("Resolved (resolved)")
            # A click on the hand-over's mark plays from there.
            qa.click('#timeline .mark-transfer[data-how="consult_completed"]')
            qa.wait_for_function(
                f"() => Math.abs(document.getElementById('audio').currentTime - {handed_at}) < 0.5",
                timeout=10_000,
            )
            qa.screenshot(path=str(shots / "qa-desk-transfer-marks.png"), full_page=True)
            zh = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
            sign_in_as(zh, stack, "qa", "/qa")
            zh.goto(f"{stack.web_url}/qa?ani=13700000072&play={rec_id}&lang=zh")
            expect(zh.locator('#ivr-path li[data-choice="1"]')).to_have_text("一般咨询")
            expect(zh.locator("#disposition")).to_have_text("已解决 (resolved)")
            zh.screenshot(path=str(shots / "qa-desk-transfer-marks-zh.png"), full_page=True)
        finally:
            browser.close()


def test_the_agent_pauses_in_the_call_box_and_qa_replays_in_the_browser(
    stack: Stack, lab: PhoneLab, tmp_path: Path, artifacts: Path
) -> None:
    """Chromium: the agent's "Pause recording" button, then the QA desk finds the call by its
    number and plays it (its time advances, at 2x too), with the pause marked on the time line."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import expect

    from tests.support.browser import CHROMIUM_FLAGS

    shots = artifacts / "panel"
    shots.mkdir(parents=True, exist_ok=True)
    ani = "13700000073"
    alice = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_FLAGS)
        try:
            agent_page = browser.new_context().new_page()
            sign_in_as(agent_page, stack, "1001", "/panel")
            voice = write_tone(tmp_path / "caller.wav", CALLER_HZ, 90)
            caller, it = call_in(lab, stack, ani, voice, tmp_path / "caller-heard.wav")
            stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
            caller.send_dtmf("1")
            alice_leg = alice.wait_incoming(timeout=30)
            alice_leg.answer(play=write_tone(tmp_path / "alice.wav", AGENT_HZ, 90), loop=True)
            box = agent_page.locator("#call")
            expect(box).to_have_attribute("data-recording", "on", timeout=10_000)
            caller.wait_rx_audio(caller.rx_audio_seconds() + 2.0, timeout=15)
            agent_page.click("#call-rec-pause")
            expect(box).to_have_attribute("data-recording", "paused", timeout=10_000)
            expect(agent_page.locator("#call-status")).to_contain_text("Recording paused")
            agent_page.screenshot(path=str(shots / "recording-paused-call-box.png"))
            caller.wait_rx_audio(caller.rx_audio_seconds() + 2.0, timeout=15)
            agent_page.click("#call-rec-resume")
            expect(box).to_have_attribute("data-recording", "on", timeout=10_000)
            caller.wait_rx_audio(caller.rx_audio_seconds() + 2.0, timeout=15)
            caller.hangup()
            ended(stack, it["id"])
            rec_id = eventually(
                lambda: stack.query("SELECT id::text FROM recordings WHERE interaction_id = %s", it["id"]),
                20,
                "the recording's row",
            )[0][0]

            qa = browser.new_context().new_page()
            sign_in_as(qa, stack, "qa", "/qa")
            qa.fill("#f-ani", ani)
            qa.click("#search-go")
            row = qa.locator(f'#recordings tr[data-recording-id="{rec_id}"]')
            expect(row).to_have_count(1)
            expect(qa.locator("#recordings tbody tr")).to_have_count(1)
            row.locator("a.play").click()
            expect(qa.locator("#player")).to_have_attribute("data-recording-id", rec_id)
            expect(qa.locator("#timeline .mark-pause")).to_have_count(1)
            expect(qa.locator("#player")).to_have_attribute("data-waveform", "drawn")
            qa.evaluate("() => document.getElementById('audio').play()")
            qa.wait_for_function("() => document.getElementById('audio').currentTime > 1.0", timeout=10_000)
            qa.click('#speeds button[data-rate="2"]')
            assert qa.evaluate("() => document.getElementById('audio').playbackRate") == 2
            at = qa.evaluate("() => document.getElementById('audio').currentTime")
            qa.wait_for_function(
                f"() => document.getElementById('audio').currentTime > {at} + 1.5", timeout=10_000
            )
            qa.screenshot(path=str(shots / "qa-desk-player.png"), full_page=True)

            # QA scores the call with the demo form: (1 + 1 + 3 x 3/5 + 3 + 2 + 2 x 5/5) / 12 = 90.
            chosen = {"greeting": "yes", "verified": "yes", "understood": "3", "accurate": "yes"}
            chosen |= {"hold_used_well": "na", "resolved": "yes", "courteous": "5"}
            for question, value in chosen.items():
                qa.check(f'#evaluate input[name="q.{question}"][value="{value}"]')
            qa.click("#evaluate-go")
            expect(qa.locator("#scored")).to_contain_text("Result: 90")
            expect(qa.locator("#evaluations td.score")).to_have_text(["90"])
            qa.screenshot(path=str(shots / "qa-desk-scored.png"), full_page=True)
            # A second evaluator (a supervisor, by the API) fails the critical question: 0, and the
            # spread between the two shows in calibration.
            answers: dict[str, Any] = {
                "greeting": "yes",
                "verified": "no",
                "understood": 4,
                "accurate": "yes",
            }
            answers |= {"hold_used_well": "yes", "resolved": "yes", "courteous": 4}
            status, second = stack.api(
                "POST", f"/api/recordings/{rec_id}/evaluations", {"form": "service", "answers": answers}
            )
            assert status == 201 and second["score"] == 0 and second["failed_critical"] == ["verified"], (
                second
            )
            status, both = stack.api("GET", f"/api/recordings/{rec_id}/evaluations")
            assert [e["score"] for e in both["evaluations"]] == [90.0, 0]
            assert both["calibration"]["spread"] == 90.0 and both["calibration"]["count"] == 2
            first = both["evaluations"][0]
            qa.reload()
            expect(qa.locator("#calibration")).to_contain_text("2 evaluations, 0–90, spread 90")
            # Frozen: the database refuses to change a submitted score; an amendment says who and why.
            with pytest.raises(psycopg.errors.RaiseException, match="frozen"):
                stack.query("UPDATE evaluations SET score = 100 WHERE id = %s", first["id"])
            status, amended = stack.api(
                "POST",
                f"/api/evaluations/{first['id']}/amend",
                {"answers": {**chosen, "understood": 5, "courteous": 5}, "why": "replayed"},
            )
            assert status == 200 and amended["score"] == 100.0 and amended["first_score"] == 90.0, amended
            assert amended["amended"]["why"] == "replayed"
            # The agent sees both evaluations of their call, acknowledges one and disputes the other.
            alice_web = Browserless(stack, "1001")
            status, body = alice_web.get("/panel/api/evaluations/mine")
            mine = json.loads(body)["evaluations"]
            assert status == 200 and sorted(e["score"] for e in mine) == [0, 100.0]
            # In the browser: /qa/mine, acknowledge the first, dispute the second with a comment.
            agent_page.goto(stack.web_url + "/qa/mine")
            first_row = agent_page.locator(f'#my-evaluations tr[data-evaluation-id="{first["id"]}"]')
            second_row = agent_page.locator(f'#my-evaluations tr[data-evaluation-id="{second["id"]}"]')
            expect(first_row.locator("td.score")).to_have_text("100")
            first_row.locator("button.acknowledge").click()
            expect(first_row.locator("td.status")).to_have_text("Acknowledged")
            second_row.locator('input[name="comment"]').fill("I did verify")
            second_row.locator("button.dispute").click()
            expect(second_row.locator("td.status")).to_have_text("Disputed: I did verify")
            agent_page.screenshot(path=str(shots / "qa-my-evaluations.png"), full_page=True)
            disputed = [e for e in json.loads(alice_web.get("/panel/api/evaluations/mine")[1])["evaluations"]]
            assert [e["disputed"] for e in disputed if e["id"] == second["id"]] == [True]
            assert (
                Browserless(stack, "1002").post(f"/panel/api/evaluations/{first['id']}/acknowledge", {})[0]
                == 403
            )
        finally:
            browser.close()
    audit = stack.query(
        "SELECT username, action, allowed FROM recording_access WHERE recording_id = %s", rec_id
    )
    assert ("qa", "listen", True) in audit


def sign_in_as(page: Any, stack: Stack, username: str, home: str) -> None:
    page.goto(stack.web_url + "/login")
    page.fill("#username", username)
    page.fill("#password", str(stack.secrets["panel_passwords"][username]))
    page.click("#sign-in")
    page.wait_for_url(f"**{home}")


def spoken(text: str, path: Path, voice: str = "slt") -> Path:
    """flite speech at the phone line's 8 kHz, with a pause after it (the phone loops it); flite's
    voices are what pocketsphinx's model hears best (espeak-ng's: about 40% of the words)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path), "pad", "0.3", "1.0"], check=True
    )
    return path


CALLER_SENTENCE = "I would like to check the balance of my account please"
AGENT_SENTENCE = "Certainly, may I have your account number first"


def test_each_side_speaks_its_own_sentence_on_its_own_channel(
    stack: Stack, lab: PhoneLab, tmp_path: Path, artifacts: Path
) -> None:
    """Speech, not tones: the caller's sentence is found on the left channel (normalised
    cross-correlation with the source) and not on the right; the agent's the other way round.
    The transcript finds at least 70% of each sentence's words on its speaker's side; in
    Chromium, the QA desk finds the call by a word of it and a click on a line seeks the audio."""
    # rms: the flite voice pocketsphinx hears best here (slt's "balance" and "please" came back
    # as "talent" and "leave"; kal16 heard the agent's sentence at 0.62 to 1.0).
    caller_says = spoken(CALLER_SENTENCE, tmp_path / "caller.wav", "rms")
    agent_says = spoken(AGENT_SENTENCE, tmp_path / "agent.wav", "rms")
    alice = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "Alice ready")
    caller, it = call_in(lab, stack, "13700000074", caller_says, tmp_path / "caller-heard.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    caller.send_dtmf("1")
    alice_leg = alice.wait_incoming(timeout=30)
    alice_leg.answer(play=agent_says, loop=True)
    stack.wait_event(it["id"], "recording_started", timeout=10)
    caller.wait_rx_audio(caller.rx_audio_seconds() + 9.0, timeout=20)  # each sentence twice or more
    caller.hangup()
    ended(stack, it["id"])
    rel = eventually(
        lambda: stack.query("SELECT path FROM recordings WHERE interaction_id = %s", it["id"]), 20, "the row"
    )[0][0]
    left, right, rate = stereo(stack.var_dir / "recordings" / rel)
    scores = {
        "caller on left": best_match((left, rate), caller_says),
        "agent on right": best_match((right, rate), agent_says),
        "agent on left": best_match((left, rate), agent_says),
        "caller on right": best_match((right, rate), caller_says),
    }
    print("cross-correlation with the sources:", {k: round(v, 2) for k, v in scores.items()})
    assert scores["caller on left"] > HEARD and scores["agent on right"] > HEARD, scores
    assert scores["agent on left"] < 0.3 and scores["caller on right"] < 0.3, scores

    # The transcript, made after the call by the worker pool: each sentence on its speaker's side.
    rec_id = stack.query("SELECT id::text FROM recordings WHERE interaction_id = %s", it["id"])[0][0]

    def transcribed() -> dict[str, Any] | None:
        status, body = stack.api("GET", f"/api/recordings/{rec_id}/transcript")
        assert status == 200, body
        assert body["state"] != "failed", body
        return cast(dict[str, Any], body) if body["state"] == "done" else None

    transcript = eventually(transcribed, 90, "the transcript")
    said = {side: " ".join(ln["text"] for ln in transcript["lines"] if ln["side"] == side) for side in SIDES}
    accuracy = {
        "caller's words, caller side": words_found(CALLER_SENTENCE, said["caller"]),
        "agent's words, agent side": words_found(AGENT_SENTENCE, said["center"]),
        "agent's words, caller side": words_found(AGENT_SENTENCE, said["caller"]),
        "caller's words, agent side": words_found(CALLER_SENTENCE, said["center"]),
    }
    print("transcript:", [(ln["who"], ln["start_s"], ln["text"]) for ln in transcript["lines"]])
    print("transcript word accuracy:", {k: round(v, 2) for k, v in accuracy.items()})
    assert accuracy["caller's words, caller side"] >= 0.7, accuracy
    assert accuracy["agent's words, agent side"] >= 0.7, accuracy
    assert {ln["who"] for ln in transcript["lines"]} == {"Caller", "Agent"}
    # How far behind: nothing waits once this (the newest) recording's transcript is done.
    eventually(
        lambda: (transcribed() or {}).get("behind") == {"waiting": 0, "oldest_wait_s": 0.0}, 10, "0 behind"
    )
    status, found = stack.api("GET", "/api/recordings?words=account+number")
    assert status == 200 and [r["id"] for r in found["recordings"]] == [rec_id], found
    _qa_finds_the_call_by_a_word_and_a_line_seeks(stack, rec_id, transcript, artifacts / "panel")

    # Retention (30 days here): once the recording is older, the job deletes it and says so.
    stack.query("UPDATE recordings SET started_at = started_at - interval '31 days' WHERE id = %s", rec_id)
    status, result = stack.api("POST", "/api/recordings/retention", {})
    assert status == 200 and [d["id"] for d in result["deleted"]] == [rec_id], result
    assert not (stack.var_dir / "recordings" / rel).exists()
    assert stack.query("SELECT deleted_reason FROM recordings WHERE id = %s", rec_id) == [
        ("retention: 30 days",)
    ]
    eventually(
        lambda: f"retention: deleted recording {rec_id}" in stack.tail(200), 5, "the deletion's log line"
    )


def _qa_finds_the_call_by_a_word_and_a_line_seeks(
    stack: Stack, rec_id: str, transcript: dict[str, Any], shots: Path
) -> None:
    """Chromium: the QA desk's "Words in the transcript" finds the call; its transcript is beside
    the player, each line saying who spoke and when; a click on the agent's line moves the audio
    element's time to that line's start."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import expect

    from tests.support.browser import CHROMIUM_FLAGS

    shots.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_FLAGS)
        try:
            qa = browser.new_context().new_page()
            sign_in_as(qa, stack, "qa", "/qa")
            expect(qa.locator("#transcripts-behind")).to_have_attribute("data-waiting", "0")
            qa.fill("#f-words", "account")
            qa.click("#search-go")
            expect(qa.locator("#recordings tbody tr")).to_have_count(1)
            qa.locator(f'#recordings tr[data-recording-id="{rec_id}"] a.play').click()
            expect(qa.locator("#player")).to_have_attribute("data-recording-id", rec_id)
            lines = qa.locator("#transcript-lines li")
            expect(lines).to_have_count(len(transcript["lines"]))
            expect(qa.locator("#transcript-lines li.side-caller .who").first).to_have_text("Caller")
            agent_lines = [ln for ln in transcript["lines"] if ln["side"] == "center"]
            target = agent_lines[-1]
            line = qa.locator(f'#transcript-lines li.side-center[data-start="{target["start_s"]:.2f}"]')
            expect(line.locator(".who")).to_have_text("Agent")
            qa.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=10_000)
            line.locator("button.seek").click()
            qa.wait_for_function(
                f"() => Math.abs(document.getElementById('audio').currentTime - {target['start_s']}) < 0.3",
                timeout=10_000,
            )
            at = qa.evaluate("() => document.getElementById('audio').currentTime")
            print(f"clicked the agent's line at {target['start_s']:.2f} s: the audio is at {at:.2f} s")
            qa.evaluate("() => document.getElementById('audio').play()")
            qa.wait_for_function(
                f"() => document.getElementById('audio').currentTime > {target['start_s']} + 0.5",
                timeout=10_000,
            )
            qa.screenshot(path=str(shots / "qa-desk-transcript.png"), full_page=True)
        finally:
            browser.close()
