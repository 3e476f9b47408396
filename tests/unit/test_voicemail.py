"""Which recordings are kept as messages, and how the e-mail is titled."""

from __future__ import annotations

import numpy as np

from app.domain.voicemail import email_subject, voice_seconds, worth_keeping


def test_a_hang_up_at_the_beep_is_not_a_message() -> None:
    assert not worth_keeping(0.4, 44 + 6400)
    assert worth_keeping(3.0, 44 + 48000)


def test_unknown_duration_is_judged_by_the_audio() -> None:
    assert worth_keeping(None, 44 + 16000 * 2)
    assert not worth_keeping(None, 44 + 8000)
    assert not worth_keeping(0, 44)


def pcm(*parts: tuple[float, float]) -> bytes:
    """16-bit 8 kHz audio: (seconds, level) parts, a 300 Hz tone at `level` (0: silence)."""
    out = []
    for seconds, level in parts:
        t = np.arange(round(seconds * 8000)) / 8000
        out.append(level * np.sin(2 * np.pi * 300 * t))
    return (np.concatenate(out) * 32767).astype("<i2").tobytes()


def test_a_silent_message_or_one_below_the_minimum_is_not_kept() -> None:
    silent = pcm((2.5, 0.0))
    assert voice_seconds(silent, 8000) == 0.0
    assert not worth_keeping(2.5, 44 + len(silent), voice_seconds(silent, 8000)), "2.5 s of silence"
    hiss = pcm((3.0, 0.003))  # line noise, about -50 dBFS
    assert not worth_keeping(3.0, 44 + len(hiss), voice_seconds(hiss, 8000))
    spoken = pcm((0.5, 0.0), (1.5, 0.3), (1.0, 0.0))
    assert abs(voice_seconds(spoken, 8000) - 1.5) < 0.05
    assert worth_keeping(3.0, 44 + len(spoken), voice_seconds(spoken, 8000))
    assert not worth_keeping(3.0, 44 + len(spoken), 1.5, min_s=4.0), "shorter than the queue's minimum"
    assert not worth_keeping(3.0, 44 + len(spoken), 1.5, min_voice_s=2.0)


def test_subject_names_the_caller_and_queue() -> None:
    assert email_subject("13700000031", "general", 12.4) == "Voicemail from 13700000031 (general queue, 12 s)"
    assert email_subject("", None, None) == "Voicemail from an unknown number"
