"""One key press is one digit, however the line reported it.

A phone sends a key press (RFC 4733, "RFC 2833") as a run of RTP packets that ends with three
copies of its end packet. When those come late (a congested network, a busy phone), Asterisk
ends the press on its own timeout and then once more when the late end packets arrive: two
digits for one press, the second 30 to 130 ms after the first, each with the press's full
length. A caller typing 87654321 was heard as 87654332211 that way (seen in the chaos test).

The second report gives itself away: a press of that length, ending when it did, would have
begun before the first one ended, and nobody presses a key again before letting it go.
"""

from __future__ import annotations

from dataclasses import dataclass

# How far a second press of the same key may seem to begin before the first ended and still
# count as a press of its own: packet timing wobbles by a few milliseconds. Reports of one
# press overlap by 29 ms and more; a phone's fastest typing leaves 40 ms between presses.
OVERLAP_S = 0.010


@dataclass(frozen=True)
class KeyPress:
    digit: str
    ended_at: float  # seconds (Asterisk's clock: when it reported the press over)
    duration_ms: int  # how long the key was down; 0 if unknown

    @property
    def began_at(self) -> float:
        return self.ended_at - self.duration_ms / 1000


def same_press(earlier: KeyPress | None, later: KeyPress) -> bool:
    """Is `later` the press `earlier` reported again?"""
    if earlier is None or earlier.digit != later.digit or later.duration_ms <= 0:
        return False
    return later.began_at < earlier.ended_at - OVERLAP_S


class Keypad:
    """The last press heard on each channel, to drop a press reported twice."""

    def __init__(self) -> None:
        self._last: dict[str, KeyPress] = {}

    def heard(self, channel_id: str, press: KeyPress) -> bool:
        """True for a new press; False for one already heard (to be ignored)."""
        if same_press(self._last.get(channel_id), press):
            return False
        self._last[channel_id] = press
        return True

    def forget(self, channel_id: str) -> None:
        """The channel is gone."""
        self._last.pop(channel_id, None)
