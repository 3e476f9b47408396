"""The interaction's lifecycle: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.interaction import IllegalTransition, Interaction, Outcome, Phase, outcome_when_caller_leaves

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def new() -> Interaction:
    return Interaction("i1", "chan-1", ani="13800138000", dnis="7000", arrived_at=T0)


def test_happy_path_records_every_step_and_queue_wait() -> None:
    it = new()
    it.digit(T0 + timedelta(seconds=5), "1")
    it.enqueue(T0 + timedelta(seconds=5), "general", "medium", reason="menu:1")
    it.offer(T0 + timedelta(seconds=6), ("1001",), "longest idle")
    it.connect(T0 + timedelta(seconds=8, milliseconds=250), "1001")
    it.end(T0 + timedelta(seconds=60), Outcome.COMPLETED)
    assert it.queue_wait_ms == 3250
    assert it.agent_id == "1001"
    assert [e.kind for e in it.drain()] == ["dtmf", "queued", "offered", "connected", "ended"]
    assert it.drain() == []


def test_failed_offer_keeps_place_and_original_queue_time() -> None:
    it = new()
    it.enqueue(T0, "general", "medium", reason="menu:1")
    it.offer(T0 + timedelta(seconds=1), ("1001",), "longest idle")
    it.offer_failed(T0 + timedelta(seconds=16), "1001", "no answer")
    assert it.phase is Phase.QUEUED
    it.enqueue(T0 + timedelta(seconds=16), "overflow-q", "medium", reason="overflow")
    assert it.queued_at == T0  # overflow keeps the caller's place
    it.offer(T0 + timedelta(seconds=16), ("1002",), "longest idle")
    it.connect(T0 + timedelta(seconds=20), "1002")
    assert it.queue_wait_ms == 20_000


def test_illegal_transitions_are_refused() -> None:
    it = new()
    with pytest.raises(IllegalTransition):
        it.connect(T0, "1001")
    with pytest.raises(IllegalTransition):
        it.offer(T0, ("1001",), "x")


def test_end_is_idempotent_first_outcome_wins() -> None:
    it = new()
    it.end(T0, Outcome.NO_AGENT)
    it.end(T0 + timedelta(seconds=1), Outcome.HUNG_UP_IN_IVR)
    assert it.outcome is Outcome.NO_AGENT
    assert [e.kind for e in it.drain()] == ["ended"]


def test_caller_leaving_means_different_things_per_phase() -> None:
    assert outcome_when_caller_leaves(Phase.IVR) is Outcome.HUNG_UP_IN_IVR
    assert outcome_when_caller_leaves(Phase.QUEUED) is Outcome.ABANDONED
    assert outcome_when_caller_leaves(Phase.OFFERED) is Outcome.ABANDONED
    assert outcome_when_caller_leaves(Phase.CONNECTED) is Outcome.COMPLETED
