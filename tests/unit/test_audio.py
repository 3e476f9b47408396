"""Unit tests of the audio checks used by end-to-end tests (synthetic signals only)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support import audio

RATE = 8000


def _noise(seconds: float, seed: int, rate: int = RATE, level: float = 0.2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(round(seconds * rate)) * level


def _write_raw_wav(path: Path, tag: int, channels: int, rate: int, bits: int, data: bytes) -> None:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


# ---------------------------------------------------------------------------------------------
# Writing and reading
# ---------------------------------------------------------------------------------------------


def test_write_tone_round_trip(tmp_path: Path) -> None:
    path = audio.write_tone(
        tmp_path / "t.wav", 1000, 1.0, amplitude=0.5, silence_before=0.5, silence_after=0.25
    )
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    samples, rate = audio.read_wav(path)
    assert rate == 8000
    assert len(samples) == 8000 + 4000 + 2000
    assert np.all(samples[:4000] == 0) and np.all(samples[-2000:] == 0)
    assert 0.49 < np.max(np.abs(samples)) <= 0.5
    assert audio.dominant_frequency(path) == pytest.approx(1000, abs=2)


def test_read_wav_stereo_is_mixed_down(tmp_path: Path) -> None:
    left = np.full(800, 0.5)
    right = np.full(800, -0.25)
    frames = np.round(np.column_stack([left, right]) * 32767).astype("<i2").tobytes()
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(frames)
    samples, rate = audio.read_wav(tmp_path / "s.wav")
    assert rate == 16000 and len(samples) == 800
    assert samples == pytest.approx(np.full(800, 0.125), abs=1e-4)


def test_read_wav_8bit_unsigned(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128, 192, 64, 255]))
    samples, _ = audio.read_wav(tmp_path / "u8.wav")
    assert samples == pytest.approx([0.0, 0.5, -0.5, 127 / 128])


def test_read_wav_g711_and_float(tmp_path: Path) -> None:
    # u-law: 0xFF is +0, 0x00 is -32124, 0x80 is +32124 (ITU-T G.711 table values).
    _write_raw_wav(tmp_path / "u.wav", 7, 1, 8000, 8, bytes([0xFF, 0x00, 0x80]))
    u, rate = audio.read_wav(tmp_path / "u.wav")
    assert rate == 8000
    assert u * 32768 == pytest.approx([0, -32124, 32124])
    # A-law: 0xD5 is +8, 0x55 is -8, 0xAA is +32256.
    _write_raw_wav(tmp_path / "a.wav", 6, 1, 8000, 8, bytes([0xD5, 0x55, 0xAA]))
    a, _ = audio.read_wav(tmp_path / "a.wav")
    assert a * 32768 == pytest.approx([8, -8, 32256])
    _write_raw_wav(tmp_path / "f.wav", 3, 1, 8000, 32, np.array([0.25, -1.0], dtype="<f4").tobytes())
    f, _ = audio.read_wav(tmp_path / "f.wav")
    assert f == pytest.approx([0.25, -1.0])


def test_resample_keeps_frequency_and_duration() -> None:
    x = audio.tone(700, 1.0, rate=16000)
    y = audio.resample(x, 16000, 8000)
    assert len(y) == 8000
    assert audio.dominant_frequency((y, 8000)) == pytest.approx(700, abs=2)
    assert audio.duration((x, 16000)) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Tones
# ---------------------------------------------------------------------------------------------


def test_tone_seconds_counts_only_the_dominant_tone() -> None:
    signal = np.concatenate([audio.tone(1000, 1.0), np.zeros(RATE), audio.tone(440, 2.0)])
    src = (signal, RATE)
    assert audio.tone_seconds(src, 1000) == pytest.approx(1.0, abs=0.1)
    assert audio.tone_seconds(src, 440) == pytest.approx(2.0, abs=0.1)
    assert audio.tone_seconds(src, 1400) == 0.0


def test_tone_seconds_tolerance_level_and_rate() -> None:
    assert audio.tone_seconds((audio.tone(1010, 1.0), RATE), 1000) >= 0.9
    assert audio.tone_seconds((audio.tone(1050, 1.0), RATE), 1000) == 0.0
    quiet = (audio.tone(1000, 1.0, amplitude=0.005), RATE)  # about -49 dBFS RMS
    assert audio.tone_seconds(quiet, 1000) == 0.0
    assert audio.tone_seconds(quiet, 1000, min_level=0.001) >= 0.9
    assert audio.tone_seconds((audio.tone(1000, 1.0, rate=16000), 16000), 1000) >= 0.9


def test_tone_in_loud_noise_is_not_dominant_but_survives_mild_noise() -> None:
    t = audio.tone(1000, 2.0, amplitude=0.3)
    assert audio.tone_seconds((t + _noise(2.0, 1, level=0.02), RATE), 1000) >= 1.9
    assert audio.tone_seconds((t + _noise(2.0, 1, level=0.5), RATE), 1000) < 0.2


def test_tone_intervals() -> None:
    signal = np.concatenate(
        [np.zeros(RATE // 2), audio.tone(1000, 1.0), np.zeros(RATE), audio.tone(1000, 0.5)]
    )
    spans = audio.tone_intervals((signal, RATE), 1000)
    assert len(spans) == 2
    assert spans[0][0] == pytest.approx(0.5, abs=0.06) and spans[0][1] == pytest.approx(1.5, abs=0.06)
    assert spans[1][0] == pytest.approx(2.5, abs=0.06) and spans[1][1] == pytest.approx(3.0, abs=0.06)


def test_tone_seconds_reads_files(tmp_path: Path) -> None:
    path = audio.write_tone(tmp_path / "t.wav", 1000, 1.5, rate=16000, silence_before=1.0)
    assert audio.tone_seconds(path, 1000) == pytest.approx(1.5, abs=0.1)


# ---------------------------------------------------------------------------------------------
# Cross-correlation
# ---------------------------------------------------------------------------------------------


def test_best_match_finds_reference_with_gain_offset_and_noise() -> None:
    ref = _noise(2.0, seed=1)
    recording = np.concatenate([_noise(3.0, seed=2, level=0.05), 0.3 * ref, _noise(5.0, seed=3, level=0.05)])
    recording = recording + _noise(len(recording) / RATE, seed=4, level=0.01)
    m = audio.find_reference((recording, RATE), (ref, RATE))
    assert m.score > 0.9
    assert m.offset == pytest.approx(3.0, abs=0.001)
    assert m.overlap == pytest.approx(2.0, abs=0.001)
    assert audio.best_match((recording, RATE), (_noise(2.0, seed=9), RATE)) < 0.3


def test_best_match_across_sample_rates(tmp_path: Path) -> None:
    ref8 = audio.tone(300, 0.3) + audio.tone(1300, 0.3, amplitude=0.2) * np.linspace(0, 1, 2400)
    ref8 = np.concatenate([ref8, _noise(1.0, seed=5)])
    ref8 = np.convolve(ref8, np.ones(4) / 4, mode="same")  # keep it below 4 kHz like phone audio
    ref_path = audio.write_wav(tmp_path / "ref.wav", ref8, 8000)
    rec16 = audio.resample(np.concatenate([np.zeros(4000), ref8, np.zeros(4000)]), 8000, 16000)
    rec_path = audio.write_wav(tmp_path / "rec.wav", rec16, 16000)
    m = audio.find_reference(rec_path, ref_path)
    assert m.score > 0.95
    assert m.offset == pytest.approx(0.5, abs=0.002)


def test_best_match_partial_overlaps() -> None:
    ref = _noise(4.0, seed=1)
    # The prompt was cut off by a hang-up after 3 s.
    cut = np.concatenate([np.zeros(RATE), ref[: 3 * RATE]])
    assert audio.best_match((cut, RATE), (ref, RATE)) > 0.95
    # The recording started late, after the first second of the prompt.
    late = ref[RATE:]
    m = audio.find_reference((late, RATE), (ref, RATE))
    assert m.score > 0.95 and m.offset == pytest.approx(-1.0, abs=0.001)
    # Too little overlap does not count.
    assert audio.best_match((ref[: RATE // 2], RATE), (ref, RATE)) > 0.95  # whole recording overlaps
    assert audio.best_match((np.concatenate([ref[-RATE // 4 :], _noise(4.0, 3)]), RATE), (ref, RATE)) < 0.3


def test_best_match_silence_is_zero() -> None:
    assert audio.best_match((np.zeros(RATE * 2), RATE), (_noise(1.0, 1), RATE)) == 0.0
    assert audio.best_match((_noise(2.0, 1), RATE), (np.zeros(RATE), RATE)) == 0.0
    assert audio.best_match((np.zeros(0), RATE), (_noise(1.0, 1), RATE)) == 0.0


def test_best_match_is_fast_for_30_seconds() -> None:
    import time

    recording = _noise(30.0, seed=1)
    ref = recording[10 * RATE : 15 * RATE].copy()
    started = time.perf_counter()
    m = audio.find_reference((recording, RATE), (ref, RATE))
    assert time.perf_counter() - started < 2.0
    assert m.score == pytest.approx(1.0, abs=1e-4) and m.offset == pytest.approx(10.0)


# ---------------------------------------------------------------------------------------------
# Speech / activity
# ---------------------------------------------------------------------------------------------


def test_speech_seconds() -> None:
    signal = np.concatenate(
        [np.zeros(RATE), _noise(1.5, 1), _noise(1.0, 2, level=0.001), audio.tone(500, 0.5)]
    )
    assert audio.speech_seconds((signal, RATE)) == pytest.approx(2.0, abs=0.05)
    assert audio.speech_seconds((np.zeros(RATE), RATE)) == 0.0
    assert audio.speech_seconds((signal, RATE), threshold=0.0005) == pytest.approx(3.0, abs=0.05)


def test_heard_in_parts_hears_a_prompt_whole_across_a_late_packet() -> None:
    rate = audio.ANALYSIS_RATE
    prompt = _noise(3.0, seed=11, rate=rate)
    pad = np.zeros(rate // 2)
    gap = np.zeros(int(0.04 * rate))  # one late packet and a jitter buffer's catch-up: 40 ms later
    at = int(2.5 * rate)  # inside the last third
    late = np.concatenate([pad, prompt[:at], gap, prompt[at:], pad])
    assert audio.heard_in_parts((late, rate), (prompt, rate), halves=2) > 0.9
    assert audio.heard_in_parts((late, rate), (prompt, rate)) < 0.6  # one piece shifted inside

    other = _noise(1.0, seed=12, rate=rate)
    cut = np.concatenate([pad, prompt[: 2 * rate], other, pad])  # the last third never came
    assert audio.heard_in_parts((cut, rate), (prompt, rate), halves=2) < 0.3

    swapped = np.concatenate([pad, prompt[rate : 2 * rate], prompt[:rate], prompt[2 * rate :], pad])
    assert audio.heard_in_parts((swapped, rate), (prompt, rate), halves=2) == 0.0


def test_heard_whole_reads_a_prompt_with_a_late_packet_as_heard_and_never_below_one_match() -> None:
    rate = 8000
    prompt = _noise(3.0, seed=21, rate=rate)
    pad = np.zeros(rate // 2)
    late = np.concatenate(
        [pad, prompt[: int(1.4 * rate)], np.zeros(int(0.04 * rate)), prompt[int(1.4 * rate) :], pad]
    )
    assert audio.best_match((late, rate), (prompt, rate)) < 0.6  # one match over the whole: half heard
    assert audio.heard_whole((late, rate), (prompt, rate)) > 0.75  # heard (HEARD is 0.5)
    twice = np.concatenate([pad, prompt, pad, prompt, pad])  # heard twice: pieces may pair across
    assert audio.heard_whole((twice, rate), (prompt, rate)) >= audio.best_match((twice, rate), (prompt, rate))
    other = _noise(3.0, seed=22, rate=rate)
    assert audio.heard_whole((np.concatenate([pad, other, pad]), rate), (prompt, rate)) < 0.3
