"""A callback cancelled at any moment before its customer is dialled is over: nobody is left
waiting in line for it, no customer is called, the agent is let go. Against the fake PBX.

The chaos test once left such a try waiting in line forever: the cancel came between the try
being started and its place in line being taken, when there was nothing yet to withdraw.
"""

from __future__ import annotations

from pathlib import Path

from app.domain.agent_state import AgentState
from app.domain.interaction import Outcome
from tests.unit.test_outbound_consent import callback_attempt, customer_ringing, placing


async def test_a_callback_cancelled_before_it_takes_its_place_in_line_never_waits(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        attempt = callback_attempt(rec, runtime)
        attempt.cb.cancel()  # what the service's cancel does, before the try's task has run
        attempt.withdraw()
        assert await c.outcome(attempt.call.it.id) is Outcome.FAILED
        ended = [e.data for e in c.store.events[attempt.call.it.id] if e.kind == "ended"]
        assert ended == [{"outcome": "failed", "ended_by": "system", "reason": "callback cancelled"}]
        assert c.desk.place_in_line(attempt.call.it.id) is None, "still waiting in line"
        assert c.pbx.ringing("PJSIP/1001") is None and customer_ringing(rec) is None


async def test_a_callback_cancelled_while_the_agent_rings_calls_nobody(tmp_path: Path) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        attempt = callback_attempt(rec, runtime)
        agent = await c.rings("PJSIP/1001")
        attempt.cb.cancel()
        attempt.withdraw()
        c.pbx.pick_up(agent)
        assert await c.outcome(attempt.call.it.id) is Outcome.FAILED
        ended = [e.data for e in c.store.events[attempt.call.it.id] if e.kind == "ended"]
        assert ended == [{"outcome": "failed", "ended_by": "system", "reason": "callback cancelled"}]
        await c.until(lambda: agent not in c.pbx.legs, "the agent's leg hung up")
        assert customer_ringing(rec) is None and not c.pbx.originated("PJSIP/13900001111")
        assert c.state("1001") in (AgentState.READY, AgentState.WRAP_UP)
