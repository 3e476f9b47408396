"""One key press is one digit (app/domain/keypad.py). The times are Asterisk's reports of a
loaded chaos run (ChannelDtmfReceived, 160 ms presses): a caller typed 87654321# and Asterisk
reported 3, 2, 1 and # twice each; the next caller typed 55554444# and was heard right."""

from __future__ import annotations

from app.domain.keypad import Keypad, KeyPress

TYPED_87654321 = [  # (digit, seconds)
    ("8", 39.688), ("7", 39.888), ("6", 40.089), ("5", 40.309), ("4", 40.561),
    ("3", 40.760), ("3", 40.805), ("2", 40.888), ("2", 41.010), ("1", 41.089), ("1", 41.215),
    ("#", 41.288), ("#", 41.419),
]  # fmt: skip
TYPED_55554444 = [
    ("5", 42.078), ("5", 42.278), ("5", 42.478), ("5", 42.678),
    ("4", 42.879), ("4", 43.079), ("4", 43.278), ("4", 43.478), ("#", 43.678),
]  # fmt: skip


def typed(reports: list[tuple[str, float]], duration_ms: int = 160) -> str:
    pad = Keypad()
    return "".join(d for d, at in reports if pad.heard("caller", KeyPress(d, at, duration_ms)))


def test_a_press_reported_twice_is_one_digit() -> None:
    assert typed(TYPED_87654321) == "87654321#"


def test_the_same_key_pressed_again_is_two_digits() -> None:
    assert typed(TYPED_55554444) == "55554444#"


def test_a_press_of_unknown_length_is_always_taken() -> None:
    assert typed([("3", 1.0), ("3", 1.001)], duration_ms=0) == "33"


def test_each_channel_is_heard_on_its_own() -> None:
    pad = Keypad()
    assert pad.heard("a", KeyPress("1", 10.0, 160))
    assert pad.heard("b", KeyPress("1", 10.05, 160)), "another caller pressing the same key"
    assert not pad.heard("a", KeyPress("1", 10.05, 160))
    pad.forget("a")
    assert pad.heard("a", KeyPress("1", 10.06, 160)), "a new channel with a reused id starts afresh"
