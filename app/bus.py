"""One in-process path for "something changed": interactions saved, agents' states, queues.

Publishers (the interaction writer, the routing desk) call `publish`; subscribers (the panel's
live hub, screen pops, call boxes, and later supervision) register for the notices they care
about. Delivery is synchronous and in publishing order, so a subscriber sees changes in the
order they happened; a subscriber must therefore not block (queue work for a task of its own)
and its exceptions are logged, never passed back to the publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.domain.agent_state import Agent
from app.domain.fax import FaxJob
from app.domain.interaction import InteractionEvent
from app.domain.sip_bans import Ban

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InteractionSaved:
    """These events of the interaction are in PostgreSQL now."""

    interaction_id: str
    events: tuple[InteractionEvent, ...]


@dataclass(frozen=True)
class AgentsChanged:
    """These agents' states changed (the objects are live: read what is needed at once)."""

    agents: tuple[Agent, ...]


@dataclass(frozen=True)
class QueueChanged:
    """Someone joined or left this queue's line."""

    queue: str


@dataclass(frozen=True)
class SipBansChanged:
    """A SIP source was banned, or a ban ended (expired or lifted): the bans in force now."""

    bans: tuple[Ban, ...]


@dataclass(frozen=True)
class FaxJobChanged:
    """An outbound fax job was queued, went on the line, or has a try's result (a copy: the job
    object goes on changing)."""

    job: FaxJob


Notice = InteractionSaved | AgentsChanged | QueueChanged | SipBansChanged | FaxJobChanged
N = TypeVar("N", InteractionSaved, AgentsChanged, QueueChanged, SipBansChanged, FaxJobChanged)


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type[N], handler: Callable[[N], None]) -> Callable[[], None]:
        """Call `handler` with every notice of `kind`; returns the function that unsubscribes."""
        handlers = self._handlers.setdefault(kind, [])
        handlers.append(handler)

        def unsubscribe() -> None:
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def publish(self, notice: Notice) -> None:
        for handler in list(self._handlers.get(type(notice), ())):
            try:
                handler(notice)
            except Exception:
                log.exception("%s subscriber %r failed", type(notice).__name__, handler)
