"""Listen, whisper, barge: what a supervisor on a live call hears, and who hears them.

Pure: no I/O. The supervisor's phone talks to a snoop on the agent's channel (ARI
`POST /channels/{agent}/snoop`), never to the call's own bridge. The snoop always spies on
both directions of the agent's channel, so the supervisor hears the agent and everything the
agent hears (the caller, a conference, an expert being consulted). What the supervisor says
goes where the snoop's whisper direction puts it:

- listen: nowhere (`whisper=none`);
- whisper: out to the agent's phone only (`out`: frames written to the agent's channel);
- barge: to the agent's phone and into what the agent sends to the call (`both`), so the
  caller hears the supervisor as if the agent had said it.

A snoop's directions are fixed when it is made, so a mode change makes a new snoop and drops
the old one while the supervisor's own call stays up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


@dataclass(frozen=True)
class SnoopDirections:
    """ARI's `spy` and `whisper` parameters: in (from the channel), out (to it), both, none."""

    spy: str
    whisper: str


_DIRECTIONS = {
    Mode.LISTEN: SnoopDirections("both", "none"),
    Mode.WHISPER: SnoopDirections("both", "out"),
    Mode.BARGE: SnoopDirections("both", "both"),
}


def snoop_directions(mode: Mode) -> SnoopDirections:
    return _DIRECTIONS[mode]


def parse_mode(text: str) -> Mode:
    """The mode a request names; ValueError with the choices otherwise."""
    try:
        return Mode(text)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"unknown mode {text!r}; use one of {choices}") from None


def hears_supervisor(mode: Mode) -> tuple[bool, bool]:
    """(the agent hears the supervisor, the caller hears the supervisor)."""
    whisper = _DIRECTIONS[mode].whisper
    return whisper in ("out", "both"), whisper in ("in", "both")
