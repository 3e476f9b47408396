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

A call nobody has answered yet (the caller in the IVR, or waiting in line) has no agent's
channel: the snoop goes on the caller's channel instead, so the supervisor hears the caller and
everything played to them (prompts, music, announcements). There is nobody to whisper to, so
whisper is refused there; barge speaks to the caller alone (`out`: frames written to the
caller's channel). Once an agent answers, the supervisor moves to the agent's side in the mode
they are in (barge then reaches both, as on any call).
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


class Side(StrEnum):
    """Whose channel the snoop is on."""

    AGENT = "agent"  # the party in control of the call: an agent (or an outside expert)
    CALLER = "caller"  # nobody has answered yet: the caller in the IVR or in line


_CALLER_DIRECTIONS = {
    Mode.LISTEN: SnoopDirections("both", "none"),
    Mode.BARGE: SnoopDirections("both", "out"),
}


def side_for(has_agent: bool, caller_reachable: bool) -> Side | None:
    """Where to listen: the agent's side whenever someone answered, else the caller's while their
    channel is up (not a callback's customer who has not been called yet); None: nobody."""
    if has_agent:
        return Side.AGENT
    return Side.CALLER if caller_reachable else None


def refusal(mode: Mode, side: Side) -> str | None:
    """Why this mode cannot be had on this side (None: it can)."""
    if side is Side.CALLER and mode not in _CALLER_DIRECTIONS:
        return (
            "no agent is on this call yet, so there is nobody to whisper to: "
            "listen, or barge to speak to the caller"
        )
    return None


def snoop_directions(mode: Mode, side: Side = Side.AGENT) -> SnoopDirections:
    if side is Side.CALLER:
        reason = refusal(mode, side)
        if reason is not None:
            raise ValueError(reason)
        return _CALLER_DIRECTIONS[mode]
    return _DIRECTIONS[mode]


def modes_on(side: Side) -> tuple[Mode, ...]:
    """The modes a supervisor may pick on this side, in the order of the page's buttons."""
    return tuple(m for m in Mode if refusal(m, side) is None)


def parse_mode(text: str) -> Mode:
    """The mode a request names; ValueError with the choices otherwise."""
    try:
        return Mode(text)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ValueError(f"unknown mode {text!r}; use one of {choices}") from None


def hears_supervisor(mode: Mode, side: Side = Side.AGENT) -> tuple[bool, bool]:
    """(the agent hears the supervisor, the caller hears the supervisor)."""
    whisper = snoop_directions(mode, side).whisper
    if side is Side.CALLER:  # the snoop's channel is the caller's; there is no agent
        return False, whisper in ("out", "both")
    return whisper in ("out", "both"), whisper in ("in", "both")
