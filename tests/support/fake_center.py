"""What the call-script tests share around the fake PBX (tests/support/fake_pbx.py): prompts
by name, waiting for the in-memory world to change, and looking at a center's calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from app.calls.conversation import Conversation
from app.calls.switchboard import Switchboard
from app.domain.agent_state import AgentState
from app.domain.interaction import Interaction, Outcome, Phase
from app.domain.prompt import for_caller
from app.routing.desk import RoutingService
from tests.support.fake_pbx import FakePbx, FakeStore


class FakeVoice:
    """Prompts by name; texts said at call time come out as one sound each."""

    cache: Any = None

    def __getitem__(self, name: str) -> list[str]:
        return [f"sound:{name}"]

    def fixed_in(self, name: str, lang: str | None) -> list[str]:
        return [f"sound:{name}"] if lang is None else [f"sound:{name}:{lang}"]

    async def say(self, texts: Any, lang: str | None = None) -> list[str]:
        return [f"said:{t.text}" for t in for_caller(texts, lang)]


async def until(check: Callable[[], Any], what: str, timeout: float = 3.0) -> Any:
    """Poll the in-memory world until `check` holds (never a fixed sleep); its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class CenterLookups:
    """Looking at a test center's calls; the center dataclass provides these four parts."""

    pbx: FakePbx
    store: FakeStore
    desk: RoutingService
    board: Switchboard

    async def until(self, check: Callable[[], Any], what: str, timeout: float = 3.0) -> Any:
        return await until(check, what, timeout)

    def interaction_of(self, caller: str) -> Interaction | None:
        return next((it for it in self.store.rows.values() if it.caller_channel_id == caller), None)

    async def rings(self, endpoint: str) -> str:
        """The ringing leg of an agent ("1001") or any endpoint ("PJSIP/x@carrier")."""
        target = endpoint if "/" in endpoint else f"PJSIP/{endpoint}"
        return str(await self.until(lambda: self.pbx.ringing(target), f"{target} to ring"))

    def state(self, agent_id: str) -> AgentState:
        return self.desk.agents[agent_id].state

    def conversation(self, iid: str) -> Conversation:
        call = self.board.call(iid)
        assert call is not None and isinstance(call.conversation, Conversation)
        return call.conversation

    async def outcome(self, iid: str) -> Outcome | None:
        def ended() -> bool:  # its row may not be written yet
            row = self.store.rows.get(iid)
            return row is not None and row.phase is Phase.ENDED

        await self.until(ended, f"interaction {iid} to end")
        return self.store.rows[iid].outcome
