"""Caller ID from an unauthenticated trunk, as the center keeps it (app/domain/caller_id.py)."""

from __future__ import annotations

import pytest

from app.domain.caller_id import caller_number


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("13800138000", "13800138000"),
        ("+8613800138000", "+8613800138000"),
        (" 138-0013-8000 ", "13800138000"),  # separators people and carriers write
        ("(010) 1234.5678", "01012345678"),
        ("9011441234567", "9011441234567"),  # a number, if not one we would call (outbound policy)
        ("anonymous", ""),
        ("Restricted", ""),
        ("", ""),
        ("13800138000\r\nX-Forged: 1", ""),  # CR/LF: would forge log lines and SIP headers
        ("1380,0138000", ""),  # a comma: cut the caller ID in the dialplan
        ('1380"<sip:evil>', ""),
        ("1380\x000138000", ""),
        ("sip:13800138000@198.51.100.1", ""),
        ("1" * 21, ""),
        ("+", ""),
        ("１３８００１３８０００", ""),  # full-width digits are not what a trunk dials
    ],
)
def test_a_caller_number_is_digits_or_unknown(raw: str, kept: str) -> None:
    assert caller_number(raw) == kept
