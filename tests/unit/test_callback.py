"""The callback's rules: what an attempt costs, when to retry, when to give up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.callback import (
    AttemptResult,
    Callback,
    CallbackError,
    CallbackSource,
    CallbackStatus,
    RetryPolicy,
    attempt_result,
    valid_phone,
)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=2, retry_after_s=120)


def callback(**kw: object) -> Callback:
    args: dict[str, object] = {
        "id": "cb1",
        "phone": "13700000002",
        "queue": "general",
        "place_at": T0,
        "requested_at": T0 + timedelta(seconds=40),
        "source": CallbackSource.IVR,
    }
    args.update(kw)
    return Callback(**args)  # type: ignore[arg-type]


def test_undialable_numbers_are_refused() -> None:
    for bad in ("", "anonymous", "12", "+", "1" * 21, "137 0000"):
        assert not valid_phone(bad)
        with pytest.raises(CallbackError):
            callback(phone=bad)
    assert valid_phone("+8613700000002") and valid_phone("911")


def test_answered_attempt_completes_it() -> None:
    cb = callback()
    cb.start_attempt("1001")
    cb.finish_attempt(AttemptResult.ANSWERED, T0, POLICY)
    assert cb.status is CallbackStatus.COMPLETED and cb.attempts == 1 and not cb.open


def test_unreached_customer_is_retried_after_the_pause_then_given_up() -> None:
    cb = callback()
    cb.start_attempt("1001")
    cb.finish_attempt(AttemptResult.BUSY, T0, POLICY)
    assert cb.status is CallbackStatus.WAITING and cb.agent_id is None
    assert not cb.due(T0 + timedelta(seconds=119)) and cb.due(T0 + timedelta(seconds=120))
    assert cb.place_at == T0, "a retry keeps the original place in line"
    cb.start_attempt("1002")
    cb.finish_attempt(AttemptResult.NO_ANSWER, T0, POLICY)
    assert cb.status is CallbackStatus.FAILED and cb.attempts == 2 and cb.last_result == "no_answer"  # type: ignore[comparison-overlap]


def test_an_agent_who_misses_it_costs_the_customer_no_attempt() -> None:
    cb = callback()
    cb.start_attempt("1001")
    cb.agent_missed()
    assert cb.status is CallbackStatus.WAITING and cb.attempts == 0 and cb.due(T0)


def test_interrupted_attempt_counts_and_is_retried() -> None:
    cb = callback()
    cb.start_attempt("1001")
    cb.interrupted(T0, POLICY)
    assert cb.status is CallbackStatus.WAITING and cb.attempts == 1
    waiting = callback()
    waiting.interrupted(T0, POLICY)
    assert waiting.attempts == 0, "a callback still in line lost nothing"


def test_illegal_steps_are_refused() -> None:
    cb = callback()
    with pytest.raises(CallbackError):
        cb.finish_attempt(AttemptResult.BUSY, T0, POLICY)
    cb.start_attempt("1001")
    with pytest.raises(CallbackError):
        cb.start_attempt("1002")
    cb.finish_attempt(AttemptResult.ANSWERED, T0, POLICY)
    with pytest.raises(CallbackError):
        cb.cancel()


@pytest.mark.parametrize(
    ("cause", "result"),
    [
        (17, AttemptResult.BUSY),
        (19, AttemptResult.NO_ANSWER),
        (16, AttemptResult.NO_ANSWER),
        (None, AttemptResult.NO_ANSWER),
        (34, AttemptResult.FAILED),
        (1, AttemptResult.FAILED),
    ],
)
def test_hangup_causes(cause: int | None, result: AttemptResult) -> None:
    assert attempt_result(cause) is result
