"""A voicemail: a message left instead of waiting, and the work it turns into.

Pure: no I/O. The message is kept (file + row), sent by e-mail to the configured
people, and, when the center can dial out, becomes a callback that keeps the caller's
place in line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Shorter than this is a caller who hung up at the beep: nothing to keep.
MIN_MESSAGE_S = 1.0


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


def worth_keeping(duration_s: float | None, size_bytes: int) -> bool:
    """Asterisk may not know the duration (hang-up mid-recording): judge by the audio then.

    A WAV of 8 kHz 16-bit mono carries 16,000 bytes per second after its 44-byte header.
    """
    if duration_s is not None and duration_s > 0:
        return duration_s >= MIN_MESSAGE_S
    return (size_bytes - 44) / 16000 >= MIN_MESSAGE_S


def email_subject(phone: str, queue: str | None, duration_s: float | None) -> str:
    length = f", {round(duration_s)} s" if duration_s else ""
    return f"Voicemail from {phone or 'an unknown number'}" + (
        f" ({queue} queue{length})" if queue else length
    )
