"""Hold music without dead air: the tracks Asterisk plays to callers on hold have no pause over
LONGEST_PAUSE_S (Debian's open with up to 0.9 s of silence and close with up to 9 s)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.adapters.hold_music import LONGEST_PAUSE_S, SYSTEM_MOH, hold_music
from tests.support.audio import read_wav

pytestmark = pytest.mark.skipif(
    not list(SYSTEM_MOH.glob("*.wav")) or shutil.which("sox") is None,
    reason="needs Debian's asterisk-moh-opsound-wav and sox (scripts/setup)",
)
FRAME_S = 0.02


def pauses(path: Path) -> list[float]:
    """Lengths in seconds of the stretches with nothing to hear, the ends included."""
    samples, rate = read_wav(path)
    frame = round(FRAME_S * rate)
    n = len(samples) // frame
    heard = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1)) > 0.003
    found, run = [], 0
    for h in [*heard.tolist(), True]:
        if h and run:
            found.append(run * FRAME_S)
        run = 0 if h else run + 1
    return found


async def test_every_track_plays_without_a_pause_a_caller_could_take_for_a_dead_line(tmp_path: Path) -> None:
    folder = await hold_music(tmp_path)
    tracks = sorted(folder.glob("*.wav"))
    assert folder != SYSTEM_MOH and [t.name for t in tracks] == sorted(
        t.name for t in SYSTEM_MOH.glob("*.wav")
    )
    before = max(max(pauses(t), default=0) for t in SYSTEM_MOH.glob("*.wav"))
    after = {t.name: max(pauses(t), default=0.0) for t in tracks}
    print(f"\nlongest pause in Debian's tracks {before:.2f} s; in ours: {after}")
    assert before > 1.0  # what this is about
    assert all(p <= LONGEST_PAUSE_S + 0.1 for p in after.values()), after
    # Made once: a second start reuses the copies.
    mtimes = {t.name: t.stat().st_mtime_ns for t in tracks}
    assert await hold_music(tmp_path) == folder
    assert {t.name: t.stat().st_mtime_ns for t in folder.glob("*.wav")} == mtimes


async def test_without_tracks_the_source_folder_is_played_as_it_is(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    assert await hold_music(tmp_path / "cache", source=empty) == empty
