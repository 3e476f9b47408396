"""Offers with Accept and Reject: what happens to the person offered a call, whatever offered it.

Pure: no I/O, no clock, no configuration reader.

An expert asked from an agent's call box (app/experts/) and an agent chosen by a queue that
offers with a preview (`queues[i].offer`, app/inbound/) see the same thing before any phone
rings: the customer, what the IVR collected, why they were chosen and a countdown, with Accept
and Reject. One rule for both, one paragraph per verdict:

- **Accept.** They stay reserved for the call and their phone rings next.
- **Reject.** They are set free at once (Ready again, for other callers) and are never offered
  this caller again: the next one is chosen without them.
- **Timeout** (no answer within the offer's time). They are set Not Ready with the configured
  reason ("no response" by default): someone who does not answer a preview is not at their
  desk, and the next caller should not wait on them too. The next one is chosen without them;
  once Ready again they may be offered this caller, if nobody else could take it.
- **Cancel** (the caller hung up, or the asking agent withdrew). They are set free; nobody is
  to blame, so nothing is remembered against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_OFFER_S = 15.0
DEFAULT_NO_RESPONSE_REASON = "no response"
# An offer shorter than this cannot be read; one longer keeps the caller waiting on one person.
MIN_OFFER_S = 3.0
MAX_OFFER_S = 120.0


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    TIMEOUT = "timeout"
    CANCEL = "cancel"


# What the person may answer from their panel (the others come from the clock or the call).
ANSWERS = (Verdict.ACCEPT, Verdict.REJECT)


def answer_of(text: str) -> Verdict:
    """The verdict a person sent from their panel; ValueError for anything but accept/reject."""
    if text not in {v.value for v in ANSWERS}:
        raise ValueError("accept or reject")
    return Verdict(text)


@dataclass(frozen=True)
class OfferTerms:
    """How long an offer waits, and the Not Ready reason of one who lets it run out."""

    offer_s: float = DEFAULT_OFFER_S
    no_response_reason: str = DEFAULT_NO_RESPONSE_REASON


def terms_problem(offer_s: float, no_response_reason: str) -> str | None:
    """Why these terms cannot be used (for the config's error), or None."""
    if not MIN_OFFER_S <= offer_s <= MAX_OFFER_S:
        return f"offer_s must be {MIN_OFFER_S:g}-{MAX_OFFER_S:g} seconds, got {offer_s:g}"
    if not no_response_reason.strip() or len(no_response_reason) > 40:
        return "no_response_reason must be 1-40 characters"
    return None


@dataclass(frozen=True)
class Aftermath:
    """What a verdict means for the person offered the call."""

    rings: bool  # their phone rings next (still reserved)
    not_ready_reason: str | None  # set Not Ready with this reason; None: free (or ringing)
    never_again: bool  # not offered this caller again
    no_answer: bool  # counts as a silent offer (like ring-no-answer)
    event: str  # the interaction event's suffix: offered -> accepted/rejected/timeout/cancelled


def aftermath(verdict: Verdict, terms: OfferTerms) -> Aftermath:
    """The rule of the module docstring, for one verdict."""
    if verdict is Verdict.ACCEPT:
        return Aftermath(True, None, False, False, "accepted")
    if verdict is Verdict.REJECT:
        return Aftermath(False, None, True, False, "rejected")
    if verdict is Verdict.TIMEOUT:
        return Aftermath(False, terms.no_response_reason, False, True, "timeout")
    return Aftermath(False, None, False, False, "cancelled")
