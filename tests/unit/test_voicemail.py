"""Which recordings are kept as messages, and how the e-mail is titled."""

from __future__ import annotations

from app.domain.voicemail import email_subject, worth_keeping


def test_a_hang_up_at_the_beep_is_not_a_message() -> None:
    assert not worth_keeping(0.4, 44 + 6400)
    assert worth_keeping(3.0, 44 + 48000)


def test_unknown_duration_is_judged_by_the_audio() -> None:
    assert worth_keeping(None, 44 + 16000 * 2)
    assert not worth_keeping(None, 44 + 8000)
    assert not worth_keeping(0, 44)


def test_subject_names_the_caller_and_queue() -> None:
    assert email_subject("13700000031", "general", 12.4) == "Voicemail from 13700000031 (general queue, 12 s)"
    assert email_subject("", None, None) == "Voicemail from an unknown number"
