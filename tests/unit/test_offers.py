"""The rule of offers with Accept and Reject (app/domain/offers.py), shared by experts and queues."""

from __future__ import annotations

import pytest

from app.domain.offers import OfferTerms, Verdict, aftermath, answer_of, terms_problem

TERMS = OfferTerms(offer_s=15.0, no_response_reason="away from desk")


def test_accept_keeps_the_person_reserved_for_their_phone_to_ring() -> None:
    a = aftermath(Verdict.ACCEPT, TERMS)
    assert a.rings and a.not_ready_reason is None and not a.never_again and a.event == "accepted"


def test_reject_frees_the_person_and_never_offers_them_this_caller_again() -> None:
    a = aftermath(Verdict.REJECT, TERMS)
    assert not a.rings and a.not_ready_reason is None and a.never_again and not a.no_answer
    assert a.event == "rejected"


def test_a_silent_offer_sets_the_person_not_ready_with_the_configured_reason() -> None:
    a = aftermath(Verdict.TIMEOUT, TERMS)
    assert not a.rings and a.not_ready_reason == "away from desk" and a.no_answer
    assert a.event == "timeout"


def test_a_cancelled_offer_frees_the_person_without_blame() -> None:
    a = aftermath(Verdict.CANCEL, TERMS)
    assert not a.rings and a.not_ready_reason is None and not a.never_again and not a.no_answer
    assert a.event == "cancelled"


@pytest.mark.parametrize("text", ["accept", "reject"])
def test_a_panel_may_answer_accept_or_reject(text: str) -> None:
    assert answer_of(text).value == text


@pytest.mark.parametrize("text", ["timeout", "cancel", "ACCEPT", "", "yes"])
def test_a_panel_may_not_answer_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="accept or reject"):
        answer_of(text)


def test_terms_are_checked() -> None:
    assert terms_problem(15, "no response") is None
    assert "offer_s" in (terms_problem(1, "no response") or "")
    assert "offer_s" in (terms_problem(500, "no response") or "")
    assert "no_response_reason" in (terms_problem(15, " ") or "")
    assert "no_response_reason" in (terms_problem(15, "x" * 41) or "")
