"""Offers previewed in a person's panel before any phone rings, with Accept, Reject and a clock.

One registry for every kind of offer (an expert asked from a call box, an agent chosen by a
queue that offers with a preview): `open` pushes the preview card to the person's panels and
starts the offer's clock; their Accept or Reject (`reply`, from the panel's HTTP route) or the
clock running out comes back to the call's own event queue as an `OfferReply`, so the call
decides in its own order of events; `close` ends the offer and tells the panels. What a verdict
means for the person is the rule in app/domain/offers.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.calls.events import OfferReply
from app.calls.session import Call
from app.domain.offers import Verdict, answer_of
from app.errors import AppError

Push = Callable[[str, dict[str, Any]], int]

# The panel's websocket messages: one pair for every kind of offer (the preview box is one).
OFFER_MESSAGE = "expert_offer"
CLOSED_MESSAGE = "expert_offer_closed"


def card_of(
    call: Call, reason: str, *, note: str = "", asked_by: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """What the person offered the call sees before their phone rings: the customer, what the
    IVR collected, why them (and, for an expert, the asking agent and their note)."""
    it = call.it
    customer = call.customer
    return {
        "interaction_id": it.id,
        "customer": {
            "ani": it.ani,
            "name": customer.name if customer is not None else None,
            "tier": it.tier or (customer.tier if customer is not None else None),
            "vip": bool(customer is not None and customer.vip),
        },
        "ivr": {"digits": it.digits, "queue": it.queue, "collected": dict(it.collected)},
        "note": note,
        "asked_by": asked_by or {"id": None, "name": None},
        "reason": reason,
        **extra,
    }


class OfferError(AppError):
    def __init__(self, message: str, http_status: int = 404) -> None:
        super().__init__("offers", message, {}, http_status)


@dataclass
class Preview:
    """An offer being previewed: the call it is for, whose panel shows it, what it shows."""

    call: Call
    offer_id: str
    agent_id: str
    card: dict[str, Any]
    timer: asyncio.TimerHandle | None = None


class Previews:
    def __init__(self, push: Push | None = None) -> None:
        self.push: Push = push or (lambda agent_id, message: 0)
        self._open: dict[str, Preview] = {}  # offer id -> the offer being previewed

    def open(
        self,
        call: Call,
        agent_id: str,
        card: dict[str, Any],
        offer_s: float,
        now: datetime,
        offer_id: str | None = None,
    ) -> tuple[str, int]:
        """Show `card` in the agent's panels and start the clock: (the offer id, how many panels
        got it). The card gets the offer's id, its time and when it expires."""
        offer_id = offer_id or str(uuid.uuid4())
        card = {
            **card,
            "offer_id": offer_id,
            "offer_s": offer_s,
            "offered_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=offer_s)).isoformat(),
        }
        timer = asyncio.get_running_loop().call_later(
            offer_s, call.events.put_nowait, OfferReply(offer_id, Verdict.TIMEOUT.value)
        )
        self._open[offer_id] = Preview(call, offer_id, agent_id, card, timer)
        return offer_id, self.push(agent_id, {"type": OFFER_MESSAGE, "offer": card})

    def close(self, offer_id: str, verdict: str) -> Preview | None:
        """The offer is over (answered, timed out or withdrawn): its clock stops, the panels hear."""
        p = self._open.pop(offer_id, None)
        if p is None:
            return None
        if p.timer is not None:
            p.timer.cancel()
        self.push(p.agent_id, {"type": CLOSED_MESSAGE, "offer_id": offer_id, "verdict": verdict})
        return p

    def reply(self, offer_id: str, answer: str, agent_id: str | None, by: str) -> None:
        """Accept or Reject from the panel of the person offered it (`agent_id`; None: anyone,
        e.g. the token API), carried out by the call in its own order."""
        try:
            verdict = answer_of(answer)
        except ValueError as exc:
            raise OfferError(str(exc), 400) from exc
        p = self._open.get(offer_id)
        if p is None or (agent_id is not None and p.agent_id != agent_id):
            raise OfferError("no such offer (it may have timed out or been withdrawn)")
        p.call.events.put_nowait(OfferReply(offer_id, verdict.value, by))

    def holding(self, agent_id: str) -> dict[str, Any] | None:
        """The card this agent's panel shows now (a panel opened during the offer), or None."""
        return next((p.card for p in self._open.values() if p.agent_id == agent_id), None)

    def __iter__(self) -> Iterator[Preview]:
        return iter(list(self._open.values()))

    def __len__(self) -> int:
        return len(self._open)
