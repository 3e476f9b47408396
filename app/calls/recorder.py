"""What the conversation tells a call recorder (app/recording/ brings the real one).

The runtime only says what happens to the caller: an agent answered (again, after a transfer),
the caller went on hold or came back, someone asked to pause or resume the recording, the call
is over. Whether and how a call is recorded is the recorder's business.
"""

from __future__ import annotations

from typing import Protocol

from app.domain.interaction import Interaction
from app.errors import AppError


class Recorder(Protocol):
    async def connected(self, it: Interaction, caller_channel: str, campaign: str | None) -> None:
        """An agent answered and talks with the caller (each time: after a transfer too)."""

    def notice(self, it: Interaction, campaign: str | None) -> list[str]:
        """What the customer of a call we place hears about recording as the agent is joined
        (sound URIs in the call's language); nothing where the call is not recorded."""

    async def held(self, it: Interaction, caller_channel: str, on: bool) -> None:
        """The caller went on hold (True) or came back (False)."""

    async def paused(self, it: Interaction, caller_channel: str, on: bool, by: str) -> dict[str, object]:
        """Pause (True) or resume (False) the call's recording; what changed, for the record.
        Raises an AppError (409) when the call is not being recorded."""

    def party(self, interaction_id: str, agent_id: str) -> None:
        """Another agent joined the call (a consultation answered)."""

    async def ivr(self, it: Interaction, caller_channel: str, state: str) -> None:
        """The caller's time in the IVR: "start" (answered), "sensitive" or "plain" (entering a
        flow node that is, or is not, marked sensitive), "end" (on to a queue or voicemail)."""

    async def over(self, it: Interaction) -> None:
        """The call has ended: the caller left (the recording's file closes)."""

    def state(self, interaction_id: str) -> dict[str, object] | None:
        """For the agent's call box: {"recording": bool, "paused": bool}, or None if not recorded."""


class NoRecorder:
    """Nothing is recorded."""

    async def connected(self, it: Interaction, caller_channel: str, campaign: str | None) -> None:
        return None

    def notice(self, it: Interaction, campaign: str | None) -> list[str]:
        return []

    async def held(self, it: Interaction, caller_channel: str, on: bool) -> None:
        return None

    async def paused(self, it: Interaction, caller_channel: str, on: bool, by: str) -> dict[str, object]:
        raise AppError("call-control", "this call is not being recorded", {}, 409)

    def party(self, interaction_id: str, agent_id: str) -> None:
        return None

    async def ivr(self, it: Interaction, caller_channel: str, state: str) -> None:
        return None

    async def over(self, it: Interaction) -> None:
        return None

    def state(self, interaction_id: str) -> dict[str, object] | None:
        return None
