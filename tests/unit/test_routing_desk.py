"""The routing desk (app/flows/routing.py) with an in-memory store: no Asterisk, no database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app.config import AgentSettings, QueueSettings, Settings
from app.domain.agent_state import AgentState
from app.domain.routing import WaitingInteraction
from app.flows.routing import RoutingError, RoutingService


class FakeStore:
    def __init__(self) -> None:
        self.agent_events: list[Any] = []
        self.overrides: dict[str, dict[str, int | None]] = {"1002": {"tech": 9}}

    async def skill_overrides(self) -> dict[str, dict[str, int | None]]:
        return self.overrides

    async def save_agent_events(self, events: Any, reasons: Any) -> None:
        self.agent_events.extend(events)

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
