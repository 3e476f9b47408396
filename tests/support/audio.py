"""Audio checks for end-to-end tests: write test tones, read recordings, and decide what was heard.

Everything here is numpy only. Every analysis function takes an ``AudioSource``: a path to a WAV
file (PCM 8/16/24/32-bit, float, or G.711 u-law/A-law; any rate; mono or stereo) or an in-memory
``(samples, rate)`` pair, so unit tests can work without files.

Typical assertions::

    assert tone_seconds(agent_rec, 1000) >= 1.0          # the agent heard the caller's test tone
    assert best_match(caller_rec, GREETING_WAV) >= 0.6   # the caller heard the greeting prompt
    assert speech_seconds(vm_rec) >= 2.0                 # something (not silence) was recorded

Reference values on this machine: pjsua2 recordings of a played file correlate at about 0.8 with
the file; unrelated audio at about 0.16. So a threshold near 0.5-0.6 separates the two.
"""

from __future__ import annotations

import os
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AudioSource = str | os.PathLike[str] | tuple[np.ndarray, int]

ANALYSIS_RATE = 8000
"""Telephone audio never carries more than 4 kHz, so all comparisons happen at 8 kHz."""

# WAVE format tags (RIFF "fmt " chunk).
_FMT_PCM = 0x0001
_FMT_FLOAT = 0x0003
_FMT_ALAW = 0x0006
_FMT_ULAW = 0x0007
_FMT_EXTENSIBLE = 0xFFFE


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = 8000) -> Path:
    """Write float samples in [-1, 1] (clipped) as a 16-bit mono PCM WAV file."""
    pcm = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    data = np.round(pcm * 32767.0).astype("<i2").tobytes()
    out = Path(path)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(data)
    return out


def tone(
    freq_hz: float,
    seconds: float,
    rate: int = 8000,
    amplitude: float = 0.5,
    silence_before: float = 0.0,
    silence_after: float = 0.0,
) -> np.ndarray:
    """A sine tone as float samples, with optional leading/trailing silence."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    body = amplitude * np.sin(2.0 * np.pi * freq_hz * t)
    # A few ms of fade avoids a click, which would otherwise splatter energy over all frequencies.
    fade = min(n // 2, round(0.005 * rate))
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        body[:fade] *= ramp
        body[-fade:] *= ramp[::-1]
    return np.concatenate(
        [np.zeros(round(silence_before * rate)), body, np.zeros(round(silence_after * rate))]
    )


def write_tone(
    path: str | os.PathLike[str],
    freq_hz: float,
    seconds: float,
    rate: int = 8000,
    amplitude: float = 0.5,
    silence_before: float = 0.0,
    silence_after: float = 0.0,
) -> Path:
    """Write a sine tone as a 16-bit mono WAV file and return its path."""
    return write_wav(path, tone(freq_hz, seconds, rate, amplitude, silence_before, silence_after), rate)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _ulaw_decode(codes: np.ndarray) -> np.ndarray:
    u = ~codes.astype(np.uint8)
    sign = (u & 0x80) != 0
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    mantissa = (u & 0x0F).astype(np.int32)
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -magnitude, magnitude).astype(np.float64) / 32768.0


def _alaw_decode(codes: np.ndarray) -> np.ndarray:
    a = codes.astype(np.uint8) ^ 0x55
    sign = (a & 0x80) != 0
    exponent = ((a >> 4) & 0x07).astype(np.int32)
    mantissa = (a & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    # A-law's sign bit set means positive (the opposite of u-law).
    return np.where(sign, magnitude, -magnitude).astype(np.float64) / 32768.0


def _decode_pcm(raw: bytes, width: int) -> np.ndarray:
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v & 0x800000, v - (1 << 24), v)
        return v.astype(np.float64) / float(1 << 23)
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    raise ValueError(f"unsupported PCM sample width: {width} bytes")


def _read_riff(path: Path) -> tuple[np.ndarray, int]:
    """Minimal RIFF reader for what the stdlib ``wave`` module refuses (G.711, float, extensible)."""
    blob = path.read_bytes()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(blob):
        cid = blob[pos : pos + 4]
        size = struct.unpack_from("<I", blob, pos + 4)[0]
        body = blob[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", body, 0)
            bits = struct.unpack_from("<H", body, 14)[0]
            if tag == _FMT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            data = body  # a truncated (unfinalised) file still yields what was written
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError(f"{path}: WAV without fmt or data chunk")
    tag, channels, rate, bits = fmt
    if tag == _FMT_PCM:
        width = bits // 8
        data = data[: len(data) - len(data) % (width * channels)]
        samples = _decode_pcm(data, width)
    elif tag == _FMT_FLOAT:
        dtype = "<f4" if bits == 32 else "<f8"
        samples = np.frombuffer(data[: len(data) - len(data) % (bits // 8)], dtype=dtype).astype(np.float64)
    elif tag == _FMT_ULAW:
        samples = _ulaw_decode(np.frombuffer(data, dtype=np.uint8))
    elif tag == _FMT_ALAW:
        samples = _alaw_decode(np.frombuffer(data, dtype=np.uint8))
    else:
        raise ValueError(f"{path}: unsupported WAV format tag 0x{tag:04x}")
    return _mix_down(samples, channels), rate


def _mix_down(samples: np.ndarray, channels: int) -> np.ndarray:
    if channels <= 1:
        return samples
    usable = len(samples) - len(samples) % channels
    mixed: np.ndarray = samples[:usable].reshape(-1, channels).mean(axis=1)
    return mixed


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a WAV file as (float samples in [-1, 1], sample rate); stereo is mixed down to mono."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        return _read_riff(p)
    return _mix_down(_decode_pcm(raw, width), channels), rate


def load(source: AudioSource) -> tuple[np.ndarray, int]:
    """Accept a WAV path or a ``(samples, rate)`` pair; return float mono samples and rate."""
    if isinstance(source, tuple):
        samples, rate = source
        arr = np.asarray(samples, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr.mean(axis=1)
        return arr, int(rate)
    return read_wav(source)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited (FFT) resampling; exact enough for analysis, not meant for playback."""
    if from_rate == to_rate or len(samples) == 0:
        return np.asarray(samples, dtype=np.float64)
    n_in = len(samples)
    n_out = max(1, round(n_in * to_rate / from_rate))
    spectrum = np.fft.rfft(samples)
    bins = n_out // 2 + 1
    if bins <= len(spectrum):
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - len(spectrum), dtype=spectrum.dtype)])
    return np.fft.irfft(spectrum, n_out) * (n_out / n_in)


def load_8k(source: AudioSource) -> np.ndarray:
    samples, rate = load(source)
    return resample(samples, rate, ANALYSIS_RATE)


def duration(source: AudioSource) -> float:
    samples, rate = load(source)
    return len(samples) / rate


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


def _frames(samples: np.ndarray, frame_len: int) -> np.ndarray:
    n = len(samples) // frame_len
    return samples[: n * frame_len].reshape(n, frame_len)


def _rms(frames: np.ndarray) -> np.ndarray:
    if frames.shape[0] == 0:
        return np.zeros(0)
    rms: np.ndarray = np.sqrt(np.mean(frames * frames, axis=1))
    return rms


def tone_frames(
    source: AudioSource,
    freq_hz: float,
    tolerance_hz: float = 15.0,
    min_level: float = 0.01,
    frame_seconds: float = 0.05,
    min_fraction: float = 0.5,
) -> tuple[np.ndarray, float]:
    """Per-frame booleans "the tone dominates this frame", and the frame length in seconds.

    A frame counts when its RMS is at least ``min_level`` (0.01 is about -40 dBFS), its spectral peak
    lies within ``tolerance_hz`` of ``freq_hz``, and at least ``min_fraction`` of its energy sits
    around that peak (so a tone buried in speech or noise does not count).
    """
    x = load_8k(source)
    rate = ANALYSIS_RATE
    frame_len = max(16, round(frame_seconds * rate))
    frames = _frames(x, frame_len)
    if frames.shape[0] == 0:
        return np.zeros(0, dtype=bool), frame_len / rate
    frames = frames - frames.mean(axis=1, keepdims=True)
    # Zero-padding to 4096 points gives ~2 Hz peak resolution, well inside any sensible tolerance.
    nfft = max(4096, 1 << (frame_len - 1).bit_length())
    window = np.hanning(frame_len)
    power = np.abs(np.fft.rfft(frames * window, n=nfft, axis=1)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    peak_freq = freqs[np.argmax(power, axis=1)]
    # Hann main lobe is +-2 bins of the unpadded frame; count that spread as "the tone".
    band_half = tolerance_hz + 2.0 * rate / frame_len
    band = np.abs(freqs - freq_hz) <= band_half
    total = power.sum(axis=1)
    fraction = np.divide(power[:, band].sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
    hit = (
        (_rms(frames) >= min_level)
        & (np.abs(peak_freq - freq_hz) <= tolerance_hz)
        & (fraction >= min_fraction)
    )
    return hit, frame_len / rate


def tone_seconds(
    source: AudioSource,
    freq_hz: float,
    tolerance_hz: float = 15.0,
    min_level: float = 0.01,
    frame_seconds: float = 0.05,
) -> float:
    """Seconds of audio in which ``freq_hz`` is the dominant component (see ``tone_frames``)."""
    hit, frame_s = tone_frames(source, freq_hz, tolerance_hz, min_level, frame_seconds)
    return float(hit.sum()) * frame_s


def tone_intervals(
    source: AudioSource,
    freq_hz: float,
    tolerance_hz: float = 15.0,
    min_level: float = 0.01,
    frame_seconds: float = 0.05,
    min_gap: float = 0.1,
) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of the tone; gaps up to ``min_gap`` are bridged."""
    hit, frame_s = tone_frames(source, freq_hz, tolerance_hz, min_level, frame_seconds)
    spans: list[tuple[float, float]] = []
    start: int | None = None
    for i, h in enumerate([*hit.tolist(), False]):
        if h and start is None:
            start = i
        elif not h and start is not None:
            spans.append((start * frame_s, i * frame_s))
            start = None
    merged: list[tuple[float, float]] = []
    for s, e in spans:
        if merged and s - merged[-1][1] <= min_gap + 1e-9:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def dominant_frequency(source: AudioSource) -> float:
    """Frequency (Hz) of the strongest component over the whole signal, at 8 kHz analysis rate."""
    x = load_8k(source)
    if len(x) == 0:
        return 0.0
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / ANALYSIS_RATE)[int(np.argmax(spectrum))])


def speech_seconds(source: AudioSource, threshold: float = 0.01, frame_seconds: float = 0.02) -> float:
    """Seconds of audio whose frame RMS is above ``threshold`` (0.01 is about -40 dBFS).

    Telephone silence (G.711 idle, comfort noise, jitter-buffer fill) stays far below that, while
    speech, tones and music are well above it.
    """
    x = load_8k(source)
    frame_len = max(1, round(frame_seconds * ANALYSIS_RATE))
    frames = _frames(x, frame_len)
    frames = frames - frames.mean(axis=1, keepdims=True)  # a DC offset is not sound
    return float((_rms(frames) >= threshold).sum()) * frame_len / ANALYSIS_RATE


@dataclass(frozen=True)
class Match:
    score: float
    """Normalised cross-correlation in [-1, 1] over the overlap; 1.0 is an exact (scaled) copy."""
    offset: float
    """Seconds into the recording where the reference starts (negative: it started before)."""
    overlap: float
    """Seconds of the reference that overlap the recording at that offset."""


def _fft_size(n: int) -> int:
    return 1 << (n - 1).bit_length()


def find_reference(
    recording: AudioSource,
    reference: AudioSource,
    min_overlap: float = 0.5,
    min_rms: float = 1e-3,
) -> Match:
    """Where the reference sits in the recording, and how well it matches there.

    Both are resampled to 8 kHz. For every alignment the score is the dot product of the overlapping
    parts divided by both of their norms, so gain does not matter. Partial overlaps count (a prompt
    cut short by a hang-up, or a recording that started late) when they cover at least
    ``min_overlap`` of the shorter signal; stretches quieter than ``min_rms`` are ignored, since
    silence would otherwise be divided by almost nothing.
    """
    rec = load_8k(recording)
    ref = load_8k(reference)
    n, m = len(rec), len(ref)
    if n == 0 or m == 0:
        return Match(0.0, 0.0, 0.0)
    rec = rec - rec.mean()
    ref = ref - ref.mean()
    nfft = _fft_size(n + m - 1)
    circular = np.fft.irfft(np.fft.rfft(rec, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    lags = np.arange(-(m - 1), n)  # reference sample 0 aligned with recording sample `lag`
    dot = circular[lags % nfft]
    rec_start = np.maximum(lags, 0)
    rec_end = np.minimum(lags + m, n)
    overlap = rec_end - rec_start
    rec_cum = np.concatenate([[0.0], np.cumsum(rec * rec)])
    ref_cum = np.concatenate([[0.0], np.cumsum(ref * ref)])
    rec_energy = rec_cum[rec_end] - rec_cum[rec_start]
    ref_energy = ref_cum[rec_end - lags] - ref_cum[rec_start - lags]
    floor = (min_rms**2) * overlap
    valid = (
        (overlap >= max(1, round(min_overlap * min(n, m)))) & (rec_energy >= floor) & (ref_energy >= floor)
    )
    if not valid.any():
        return Match(0.0, 0.0, 0.0)
    scores = np.full(len(lags), -np.inf)
    scores[valid] = dot[valid] / np.sqrt(rec_energy[valid] * ref_energy[valid])
    best = int(np.argmax(scores))
    return Match(
        float(min(scores[best], 1.0)), float(lags[best]) / ANALYSIS_RATE, float(overlap[best]) / ANALYSIS_RATE
    )


def best_match(recording: AudioSource, reference: AudioSource) -> float:
    """Maximum normalised cross-correlation of ``reference`` inside ``recording`` (see ``find_reference``)."""
    return find_reference(recording, reference).score


def heard_whole(recording: AudioSource, reference: AudioSource) -> float:
    """How well a prompt was heard, for "was it heard": the better of one match over the whole
    prompt and the prompt found in thirds in order (`heard_in_parts`, halves two levels deep),
    so one late packet mid-prompt does not read a prompt heard whole as half heard (0.41 seen
    under load). Prompts under 1.5 s keep the single match: their pieces would be too short to
    say anything. Never lower than `best_match`."""
    whole = best_match(recording, reference)
    if duration(reference) < 1.5:
        return whole
    return max(whole, heard_in_parts(recording, reference, halves=2))


def heard_in_parts(recording: AudioSource, reference: AudioSource, parts: int = 3, halves: int = 0) -> float:
    """The worst match of `reference`'s `parts` equal pieces, each found in the recording after
    the one before. One late packet in the middle of a long prompt shifts the rest by a few tens
    of milliseconds, which a single cross-correlation over the whole prompt scores as barely
    heard (0.38 seen for a prompt whose three thirds each matched at 0.80-1.00); a person hears
    it whole. With `halves`, a piece that matches poorly is looked for again as two halves, in
    order, that many levels deep (the shift may fall inside a piece: 0.49 seen for a third heard
    whole); for "was it heard whole", not for comparing two similar prompts, whose short halves
    may match each other. 0.0 when a piece is missing or out of order."""
    samples = load_8k(recording)
    ref = load_8k(reference)
    size = len(ref) // parts
    pieces = [ref[i * size : (i + 1) * size if i < parts - 1 else len(ref)] for i in range(parts)]
    worst, after = 1.0, -1.0
    for piece in pieces:
        score, after = _heard_piece(samples, piece, after, halves)
        if score == 0.0:
            return 0.0
        worst = min(worst, score)
    return worst


def _heard_piece(recording: np.ndarray, piece: np.ndarray, after: float, halves: int) -> tuple[float, float]:
    """(score, where it was found) for a piece found after `after`; a poor match is tried again
    as two halves in order, `halves` levels deep, keeping the better reading."""
    match = find_reference((recording, ANALYSIS_RATE), (piece, ANALYSIS_RATE))
    found = match.score if match.offset > after else 0.0
    if found >= 0.8 or halves == 0 or len(piece) < ANALYSIS_RATE // 2:
        return found, match.offset
    mid = len(piece) // 2
    first, first_at = _heard_piece(recording, piece[:mid], after, halves - 1)
    if first == 0.0:
        return found, match.offset
    second, _ = _heard_piece(recording, piece[mid:], first_at, halves - 1)
    split = min(first, second)
    if split > found:
        return split, first_at
    return found, match.offset
