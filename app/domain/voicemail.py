"""A voicemail: a message left instead of waiting, and the work it turns into.

Pure: no I/O. A message is kept only when it holds a voice (not silence, not a hang-up at
the beep). The message is kept (file + row), sent by e-mail to the configured
people, and, when the center can dial out, becomes a callback that keeps the caller's
place in line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

# Shorter than this is a caller who hung up at the beep: nothing to keep (per queue: `min_s`).
MIN_MESSAGE_S = 1.0
# A message with less voice than this is silence or line noise (per queue: `min_voice_s`).
MIN_VOICE_S = 0.5
# Louder than this (RMS, full scale 1.0; about -40 dBFS) over a 20 ms frame is someone speaking.
VOICE_LEVEL = 0.01
FRAME_S = 0.02


@dataclass
class Voicemail:
    id: str
    interaction_id: str
    phone: str
    queue: str | None
    customer_id: int | None
    recorded_at: datetime
    duration_s: float | None
    file_path: str
    size_bytes: int
    status: str = "new"
    callback_id: str | None = None
    emailed_at: datetime | None = None
    email_error: str | None = None


def worth_keeping(
    duration_s: float | None,
    size_bytes: int,
    voice_s: float | None = None,
    min_s: float = MIN_MESSAGE_S,
    min_voice_s: float = MIN_VOICE_S,
) -> bool:
    """Is there a message? At least `min_s` long, with at least `min_voice_s` of voice in it
    (`voice_s`, see `voice_seconds`; None when the audio could not be read).

    Asterisk may not know the duration (hang-up mid-recording): judge by the audio then. A WAV
    of 8 kHz 16-bit mono carries 16,000 bytes per second after its 44-byte header.
    """
    if duration_s is None or duration_s <= 0:
        duration_s = (size_bytes - 44) / 16000
    if duration_s < min_s:
        return False
    return voice_s is None or voice_s >= min_voice_s


def voice_seconds(pcm: bytes, rate: int) -> float:
    """Seconds of 16-bit mono audio loud enough to be someone speaking (20 ms frames)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64) / 32768
    frame = max(1, round(rate * FRAME_S))
    n = len(samples) // frame
    if n == 0:
        return 0.0
    frames = samples[: n * frame].reshape(n, frame)
    frames = frames - frames.mean(axis=1, keepdims=True)  # a DC offset is not a voice
    loud = np.sqrt((frames * frames).mean(axis=1)) >= VOICE_LEVEL
    return float(loud.sum()) * frame / rate


def email_subject(phone: str, queue: str | None, duration_s: float | None) -> str:
    length = f", {round(duration_s)} s" if duration_s else ""
    return f"Voicemail from {phone or 'an unknown number'}" + (
        f" ({queue} queue{length})" if queue else length
    )
