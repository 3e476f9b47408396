"""Driving the panel in Debian's Chromium (Playwright) with fake media devices.

Shared by the browser tests: the flags that let a headless Chromium take calls against
Asterisk on 127.0.0.1, signing in, and the two ways of seeing what the browser hears
(WebRTC statistics, and an analyser on the softphone's <audio> element).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    # Asterisk offers its media on 127.0.0.1; Chromium leaves loopback out of ICE otherwise.
    "--allow-loopback-in-peer-connection",
    # The test's own AudioContext (the analyser below) may start without a click.
    "--autoplay-policy=no-user-gesture-required",
]

# The analyser: the strongest frequency in what the page's <audio> element is playing.
PROBE_JS = """() => {
  const audio = document.getElementById("softphone-audio");
  if (!audio || !audio.srcObject) return null;
  if (!window.__probe || window.__probe.stream !== audio.srcObject) {
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
    window.__probe = { ctx, analyser, stream: audio.srcObject };
  }
  const { ctx, analyser } = window.__probe;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return { hz: (best * ctx.sampleRate) / analyser.fftSize, db: bins[best], state: ctx.state };
}"""


def chromium_flags(mic: Path) -> list[str]:
    """The flags, with the fake microphone playing `mic` (a WAV file, looped)."""
    return [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={mic}"]


def sign_in(page: Any, stack: Stack, username: str, home: str = "/panel") -> None:
    """Through the sign-in form, as a person would; back on `home` (the agent panel, or e.g.
    /supervisor) with its live socket open."""
    from playwright.sync_api import expect

    page.goto(stack.web_url + home)
    expect(page).to_have_url(re.compile(r"/login$"))
    page.fill("#username", username)
    page.fill("#password", str(stack.secrets["panel_passwords"][username]))
    page.click("#sign-in")
    expect(page).to_have_url(re.compile(re.escape(home) + "$"))
    expect(page.locator("#live")).to_have_attribute("data-live", "true")


def softphone_stats(page: Any) -> dict[str, Any] | None:
    """The softphone's RTP counters for the current call (None without one)."""
    stats: dict[str, Any] | None = page.evaluate("() => window.lianluoSoftphone.stats()")
    return stats
