"""What a call's task reads from its queue, besides ARI events, and what unwinds its script."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from app.adapters.ari import AriEvent
from app.domain.experts import Ask


@dataclass(frozen=True)
class Decided:
    """The routing desk decided who gets this call (or took it out of line)."""


@dataclass(frozen=True)
class Overflowed:
    """The desk moved this call's ticket to another queue by an overflow rule."""

    queue: str


@dataclass(frozen=True)
class DialFailed:
    """Placing a leg failed before it could ring (the trunk or endpoint refused)."""

    channel_id: str
    reason: str


@dataclass(frozen=True)
class PbxLost:
    """After a reconnect, these channels of the call were not in Asterisk any more: the PBX
    restarted or lost them while the app was away."""

    channel_ids: frozenset[str]
    pbx_restarted: bool
    why: str = ""


@dataclass(frozen=True)
class Reconnected:
    """The ARI websocket came back: events of this call may have been lost meanwhile (e.g. the end
    of a prompt), so a step waiting for one looks again."""


@dataclass(frozen=True)
class OfferReply:
    """An offer shown before any phone rings (an expert's preview) was answered: "accept",
    "reject", or "timeout" when its time ran out."""

    offer_id: str
    verdict: str
    by: str = ""


@dataclass
class ControlRequest:
    """Asked by a person (panel or API); carried out between the call's events and answered
    through `done`."""

    action: str
    by: str
    target: str | None = None  # transfer/consult: "agent:1002", "queue:billing", "number:139..."
    digits: str | None = None
    note: str | None = None  # asking an expert: the agent's note, which travels with the call
    blind: bool = False  # asking an expert: hand the caller over as soon as the expert answers
    ask: Ask | None = None  # asking an expert: whom (app/domain/experts.py)
    done: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


CallEvent = AriEvent | Decided | Overflowed | DialFailed | PbxLost | Reconnected | ControlRequest | OfferReply


class CallerGone(Exception):
    """The caller's leg ended: the script unwinds and the interaction is closed."""


class CallDropped(Exception):
    """The call's caller leg was lost by the PBX or ended by the center (not the caller's
    doing): closed as dropped, with why."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
