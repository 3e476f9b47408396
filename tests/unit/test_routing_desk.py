"""The routing desk (app/routing/desk.py) with an in-memory store: no Asterisk, no database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.adapters.db import PastInteraction
from app.config import AgentSettings, QueueSettings, Settings
from app.domain.agent_state import AgentSnapshot, AgentState
from app.domain.routing import Tier, WaitingInteraction
from app.routing.desk import RoutingError, RoutingService


class FakeStore:
    def __init__(self) -> None:
        self.agent_events: list[Any] = []
        self.overrides: dict[str, dict[str, int | None]] = {"1002": {"tech": 9}}
        self.snapshots: dict[str, AgentSnapshot] = {}
        self.history: list[PastInteraction] = []
        self.down = False

    async def skill_overrides(self) -> dict[str, dict[str, int | None]]:
        return self.overrides

    async def save_agent_events(self, events: Any, now: Any) -> None:
        if self.down:
            raise ConnectionError("database down")
        self.agent_events.extend(events)

    async def agent_snapshots(self) -> dict[str, AgentSnapshot]:
        return self.snapshots

    async def routing_history(self, since: Any) -> list[PastInteraction]:
        return self.history

    async def set_skill_override(self, agent_id: str, skill: str, level: int | None, changed_by: str) -> None:
        self.overrides.setdefault(agent_id, {})[skill] = level


def settings(wrap_up_s: float = 0.0) -> Settings:
    return Settings(
        agents=(
            AgentSettings("1001", "Alice", skills={"billing": 8}),
            AgentSettings("1002", "Bob", skills={"tech": 3}),
        ),
        queues=(QueueSettings("general", wrap_up_s=wrap_up_s),),
    )


async def eventually(check: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_desk() -> AsyncIterator[RoutingService]:
    service = RoutingService(settings(wrap_up_s=0.05), FakeStore(), lambda: datetime.now(UTC))  # type: ignore[arg-type]
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_live_skill_overrides_replace_the_yaml_at_start() -> None:
    async with running_desk() as desk:
        assert desk.agents["1002"].skills == {"tech": 9}


async def test_registering_the_phone_logs_the_agent_in_ready() -> None:
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        assert desk.agents["1001"].state is AgentState.READY
        assert desk.anyone_logged_in("general")
        desk.device_changed("1001", False)
        assert not desk.agents["1001"].routable
        assert not desk.anyone_logged_in("general")


async def test_a_decision_reserves_the_agent_and_wakes_the_caller() -> None:
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        ticket = desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        decision = await asyncio.wait_for(ticket.decided, 2)
        assert decision.agent_ids == ("1001",)
        assert desk.agents["1001"].state is AgentState.RESERVED
        await eventually(lambda: any(e.to_state is AgentState.RESERVED for e in desk.store.agent_events))  # type: ignore[attr-defined]


async def test_a_pass_run_at_once_decides_before_the_caller_yields() -> None:
    """The call flow asks for the pass in its own step (benchmarks/README.md: the originate
    then leaves before the side steps queued on the loop)."""
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        desk.device_changed("1002", True)
        desk.set_state("1002", "not_ready", "lunch")
        ticket = desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        desk.dispatch_now()
        assert ticket.decided.done() and ticket.decided.result().agent_ids == ("1001",)
        assert desk.dispatch() == []  # nothing left waiting: no pass
        # Only the agents who changed are written.
        await eventually(lambda: any(e.to_state is AgentState.RESERVED for e in desk.store.agent_events))  # type: ignore[attr-defined]
        assert {e.agent_id for e in desk.store.agent_events} == {"1001", "1002"}  # type: ignore[attr-defined]


async def test_ring_no_answer_sets_the_agent_not_ready() -> None:
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        ticket = desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        await asyncio.wait_for(ticket.decided, 2)
        desk.ringing("1001")
        desk.offer_failed("1001", "general", "No answer", no_answer=True)
        agent = desk.agents["1001"]
        assert agent.state is AgentState.NOT_READY and agent.not_ready_reason == "no answer"


async def test_hang_up_starts_wrap_up_and_the_timer_ends_it() -> None:
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        ticket = desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        await asyncio.wait_for(ticket.decided, 2)
        desk.ringing("1001")
        desk.answered("1001", "general", 1.0, "i1", ticket.waiting.tier)
        desk.hung_up("1001", "general", talk_s=30)
        assert desk.agents["1001"].state is AgentState.WRAP_UP
        await eventually(lambda: desk.agents["1001"].state is AgentState.READY)  # type: ignore[comparison-overlap]


async def test_callers_who_hang_up_in_line_teach_the_wait_model() -> None:
    async with running_desk() as desk:
        desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        desk.withdraw("i1", abandoned=True)
        assert desk.router._wait_estimator("general").abandon_rate > 0


async def test_withdrawn_caller_frees_the_line() -> None:
    async with running_desk() as desk:
        ticket = desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        desk.withdraw("i1")
        assert ticket.decided.cancelled()
        assert desk.tickets == {}


async def test_people_asking_for_impossible_changes_get_clear_errors() -> None:
    async with running_desk() as desk:
        with pytest.raises(RoutingError, match="no agent"):
            desk.set_state("9999", "ready", None)
        with pytest.raises(RoutingError, match="unknown state"):
            desk.set_state("1001", "dancing", None)
        with pytest.raises(RoutingError, match="1-10"):
            await desk.set_skill("1001", "billing", 0, "test")
        assert desk.set_state("1001", "not_ready", "lunch").not_ready_reason == "lunch"
        assert desk.set_state("1001", "ready", None).state is AgentState.READY
        assert desk.set_state("1001", "ready", None).state is AgentState.READY  # twice is fine


async def test_agents_come_back_as_they_were_after_a_restart() -> None:
    """From the stored state, not from their phones: a break stays a break, a wrap-up keeps its
    remaining time, a call is a call (the runtime then finds out if it is still there)."""
    now = datetime.now(UTC)
    store = FakeStore()
    store.snapshots = {
        "1001": AgentSnapshot(AgentState.NOT_READY, now - timedelta(minutes=5), "lunch"),
        "1002": AgentSnapshot(
            AgentState.WRAP_UP, now - timedelta(seconds=3), None, "it-1", now + timedelta(seconds=0.2)
        ),
    }
    desk = RoutingService(settings(wrap_up_s=30), store, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    await desk.start()
    try:
        alice, bob = desk.agents["1001"], desk.agents["1002"]
        assert (alice.state, alice.not_ready_reason) == (AgentState.NOT_READY, "lunch")
        assert bob.state is AgentState.WRAP_UP and bob.interaction_id == "it-1"
        desk.device_changed("1001", True)  # her phone registers again: still at lunch
        assert alice.state is AgentState.NOT_READY
        await eventually(lambda: desk.agents["1002"].state is AgentState.READY)  # the rest of the wrap-up
        assert [e.reason for e in store.agent_events][:2] == ["restored", "restored"]
    finally:
        await desk.stop()


async def test_the_desk_rebuilds_its_statistics_from_history() -> None:
    now = datetime.now(UTC)
    store = FakeStore()
    store.history = [
        PastInteraction(
            "a",
            "general",
            "medium",
            now - timedelta(minutes=9),
            now - timedelta(minutes=8, seconds=50),
            now - timedelta(minutes=5),
            "completed",
            "1002",
        ),
        PastInteraction(
            "b",
            "general",
            "medium",
            now - timedelta(minutes=4),
            None,
            now - timedelta(minutes=3),
            "abandoned",
            None,
        ),
    ]
    desk = RoutingService(settings(wrap_up_s=30), store, lambda: datetime.now(UTC))  # type: ignore[arg-type]
    await desk.start()
    try:
        stats = desk.stats("general")
        assert stats.answered == 1 and stats.average_speed_of_answer_s == 10.0
        assert stats.average_handle_s is not None and round(stats.average_handle_s) == 3 * 60 + 50 + 30
        assert desk.router.round_robin_last("general") == "1002"
    finally:
        await desk.stop()


async def test_agent_state_changes_wait_for_the_database_and_none_is_lost() -> None:
    store = FakeStore()
    async with contextlib.AsyncExitStack() as stack:
        desk = RoutingService(settings(), store, lambda: datetime.now(UTC))  # type: ignore[arg-type]
        await desk.start()
        stack.push_async_callback(desk.stop)
        store.down = True
        desk.device_changed("1001", True)
        desk.set_state("1001", "not_ready", "lunch")
        await eventually(lambda: len(desk._unsaved) >= 3)  # tried, failed, kept
        assert store.agent_events == []
        store.down = False
        await eventually(lambda: len(store.agent_events) >= 3, timeout=8)
        reasons = [e.reason for e in store.agent_events]
        assert "lunch" in reasons and "device registered" in reasons


async def test_a_declined_caller_is_not_offered_again_to_that_agent_but_a_missed_one_is() -> None:
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        desk.set_state("1002", "not_ready", "lunch")
        declined = WaitingInteraction("i1", "general", datetime.now(UTC))
        ticket = desk.enqueue(declined)
        desk.dispatch_now()
        assert ticket.decided.result().agent_ids == ("1001",)
        desk.ringing("1001")
        desk.declined("1001")
        desk.offer_failed("1001", "general", "Normal Clearing", no_answer=False)
        assert desk.agents["1001"].state is AgentState.READY  # free for other callers
        again = desk.enqueue(declined)  # back in line, as the call's task does
        desk.dispatch_now()
        assert not again.decided.done(), "offered again to the agent who declined"
        assert declined.excluded_agents == {"1001"} and declined.declined_by == {"1001"}
        # A missed ring is forgiven once everyone free has had a turn; a refusal is not.
        missed = WaitingInteraction("i2", "general", datetime.now(UTC), excluded_agents=frozenset({"1001"}))
        other = desk.enqueue(missed)
        desk.dispatch_now()
        assert other.decided.done() and other.decided.result().agent_ids == ("1001",)
        desk.withdraw("i1")


async def test_not_ready_asked_on_a_call_waits_for_the_call_to_end() -> None:
    async with running_desk() as desk:
        desk.device_changed("1001", True)
        ticket = desk.enqueue(WaitingInteraction("i1", "general", datetime.now(UTC)))
        desk.dispatch_now()
        await asyncio.wait_for(ticket.decided, 2)
        desk.ringing("1001")
        desk.answered("1001", "general", 1.0, "i1", Tier.MEDIUM)
        assert desk.set_state("1001", "not_ready", "lunch").state is AgentState.ON_CALL
        assert desk.agents["1001"].not_ready_next == "lunch"
        desk.hung_up("1001", "general", 10.0)
        await eventually(lambda: desk.agents["1001"].state is AgentState.NOT_READY)
        assert desk.agents["1001"].not_ready_reason == "lunch"
