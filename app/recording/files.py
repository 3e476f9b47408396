"""The recording files on disk: blocking work, run in a thread (never on the event loop).

Asterisk's MixMonitor with the `D` option writes raw signed 16-bit little-endian samples at
8 kHz, interleaved: the audio coming from the caller's channel (the caller) first, the audio
going to it (the center's side) second. Here that raw file becomes a standard stereo WAV, which
browsers play, and its SHA-256 is taken as it is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 8000
CHANNELS = 2
SAMPLE_BYTES = 2
_CHUNK = 1 << 20
# The waveform and the activity marks work on 100 ms frames: 800 stereo samples, 3,200 bytes.
LEVEL_FRAME_S = 0.1
_LEVEL_BYTES = round(SAMPLE_RATE * LEVEL_FRAME_S) * CHANNELS * SAMPLE_BYTES
_RAW_CHUNK = _LEVEL_BYTES * 320


@dataclass(frozen=True)
class Stored:
    size_bytes: int
    sha256: str
    duration_ms: int
    # RMS level (0-1) of each 100 ms frame: the caller's channel, the center's.
    caller_levels: list[float] = field(default_factory=list)
    center_levels: list[float] = field(default_factory=list)


def levels(chunk: bytes) -> tuple[list[float], list[float]]:
    """Per-frame RMS of each channel of interleaved 16-bit stereo (whole frames only)."""
    per_frame = _LEVEL_BYTES // SAMPLE_BYTES
    samples = np.frombuffer(chunk[: len(chunk) - len(chunk) % SAMPLE_BYTES], dtype="<i2")
    n = len(samples) // per_frame
    if n == 0:
        return [], []
    frames = samples[: n * per_frame].reshape(n, -1, CHANNELS).astype(np.float64) / 32768.0
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return [round(float(v), 4) for v in rms[:, 0]], [round(float(v), 4) for v in rms[:, 1]]


def wav_header(data_bytes: int, rate: int = SAMPLE_RATE, channels: int = CHANNELS) -> bytes:
    block = channels * SAMPLE_BYTES
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, 8 * SAMPLE_BYTES)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def raw_to_wav(raw: Path, wav: Path) -> Stored:
    """Write `wav` (mode 0640, through a temporary name) from MixMonitor's interleaved raw file."""
    size = raw.stat().st_size if raw.exists() else 0
    size -= size % (CHANNELS * SAMPLE_BYTES)  # a frame cut by a crash is dropped
    wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav.with_suffix(".part")
    digest = hashlib.sha256()
    header = wav_header(size)
    caller: list[float] = []
    center: list[float] = []
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "wb") as out:
        out.write(header)
        digest.update(header)
        left = size
        if left:
            with raw.open("rb") as src:
                while left > 0:
                    chunk = src.read(min(_RAW_CHUNK, left))
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    a, b = levels(chunk)
                    caller += a
                    center += b
                    left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, wav)
    frames = size // (CHANNELS * SAMPLE_BYTES)
    return Stored(len(header) + size, digest.hexdigest(), frames * 1000 // SAMPLE_RATE, caller, center)


def sha256_of(path: Path) -> str | None:
    """The file's SHA-256, or None if it is gone."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace a small JSON file atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)
