"""The call's data on every leg we place, and consulting a number outside, against the fake PBX.

Every leg carries X-Lianluo-Interaction and X-Lianluo-Data (what the IVR collected, form-encoded)
whoever it rings: an agent, a consulted agent, a number a caller is transferred or consulted to,
a callback's or a campaign's customer; through the carrier, the data only where the outbound
policy lets it leave (`outbound.call_data`, off by default). A number outside can be consulted
like an agent: the caller holds, the agent talks with them, then completes, conferences or
cancels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.calls.conversation import ControlError
from app.domain.agent_state import AgentState
from app.domain.interaction import Outcome
from app.domain.outbound import OutboundPolicy
from tests.unit.test_call_scripts import Center, center, restart_app
from tests.unit.test_outbound_consent import callback_attempt, customer_ringing, dialer_call, placing

OUTSIDE = "PJSIP/13900000001@carrier"
INTERACTION, DATA = "PJSIP_HEADER(add,X-Lianluo-Interaction)", "PJSIP_HEADER(add,X-Lianluo-Data)"


def data_leaves(outbound: OutboundPolicy) -> None:
    """The carrier is meant to carry the call's data (outbound.call_data: true)."""
    outbound.plan = dataclasses.replace(outbound.plan, call_data=True)


def headers(c: Center, leg: str) -> dict[str, str]:
    """The X-Lianluo-* headers a leg is placed with, by name."""
    out = {}
    for name, value in c.pbx.legs[leg].variables.items():
        if name.startswith("PJSIP_HEADER(add,X-Lianluo-"):
            out[name.removeprefix("PJSIP_HEADER(add,X-Lianluo-").rstrip(")")] = value
    return out


async def talking_with_data(c: Center) -> tuple[str, str, str]:
    """A caller talking with agent 1001, the IVR having collected their account and a PIN."""
    caller, iid, leg = await c.talking("1001")
    c.conversation(iid).call.it.collected.update({"account": "12345678", "reason": "lost card"})
    return caller, iid, leg


async def consulting_a_number(c: Center) -> tuple[str, str, str, str]:
    """Agent 1001 talking with a caller (data collected), consulting a number that has answered:
    (caller, interaction, agent's leg, the number's leg)."""
    caller, iid, first = await talking_with_data(c)
    await c.control(iid, "consult", "number:13900000001")
    outside = await c.rings(OUTSIDE)
    c.pbx.pick_up(outside)
    await c.until(lambda: "consult_answered" in c.store.kinds(iid), "the number answering")
    return caller, iid, first, outside


async def test_every_leg_to_an_agent_or_a_number_carries_the_interaction_and_its_data() -> None:
    async with center(agents=("1001", "1002")) as c:
        _, iid, _ = await talking_with_data(c)
        data_leaves(c.conversation(iid).call.outbound)
        data = "account=12345678&reason=lost+card"
        await c.control(iid, "consult", "agent:1002")
        consult_leg = await c.rings("1002")
        assert headers(c, consult_leg) == {"Interaction": iid, "Data": data, "Consult": "1001"}
        await c.control(iid, "cancel")
        await c.control(iid, "consult", "number:13900000001")
        outside = await c.rings(OUTSIDE)
        assert headers(c, outside) == {"Interaction": iid, "Data": data, "Consult": "1001"}
        await c.control(iid, "cancel")
        await c.control(iid, "transfer", "number:13900000001")
        blind = await c.rings(OUTSIDE)
        assert blind != outside
        assert headers(c, blind) == {"Interaction": iid, "Data": data}


async def test_a_callbacks_and_a_campaigns_customer_leg_carry_the_interaction_and_its_data(
    tmp_path: Path,
) -> None:
    async with placing(tmp_path) as (rec, runtime):
        c = rec.c
        data_leaves(runtime.outbound)
        attempt = callback_attempt(rec, runtime)
        attempt.call.it.collected["account"] = "777"
        agent = await c.rings("PJSIP/1001")
        c.pbx.pick_up(agent)
        await c.until(lambda: (agent, ("sound:callback_whisper",)) in c.pbx.played, "the agent's whisper")
        c.pbx.finish_playbacks()
        await c.until(lambda: c.pbx.playing, "the whisper's second part")
        c.pbx.finish_playbacks()
        customer = await c.until(lambda: customer_ringing(rec), "the callback's customer")
        assert c.pbx.legs[customer].variables[INTERACTION] == attempt.call.it.id
        assert c.pbx.legs[customer].variables[DATA] == "account=777"
        c.pbx.hang_up(customer)
        await c.until(lambda: customer_ringing(rec) is None and customer not in c.pbx.legs, "the try over")
        dc = dialer_call(rec, runtime)
        await dc.dial_customer(amd=True)
        lead = await c.until(lambda: customer_ringing(rec), "the campaign's customer")
        assert c.pbx.legs[lead].variables[INTERACTION] == dc.call.it.id
        assert DATA not in c.pbx.legs[lead].variables, "nothing collected: no data header"


async def test_by_default_what_the_ivr_collected_stays_off_the_carrier() -> None:
    async with center(agents=("1001", "1002")) as c:
        _, iid, _ = await talking_with_data(c)
        await c.control(iid, "consult", "number:13900000001")
        outside = await c.rings(OUTSIDE)
        assert headers(c, outside) == {"Interaction": iid, "Consult": "1001"}
        await c.control(iid, "cancel")
        await c.control(iid, "consult", "agent:1002")
        ours = await c.rings("1002")
        assert headers(c, ours)["Data"] == "account=12345678&reason=lost+card", "our own phones get it"


async def test_consulting_a_number_outside_then_completing_leaves_the_caller_with_them() -> None:
    async with center(wrap_up_s=30) as c:
        caller, iid, first = await talking_with_data(c)
        answer = await c.control(iid, "consult", "number:13900000001")
        assert answer["to"] == "number:13900000001" and answer["state"] == "ringing"
        assert caller in c.pbx.moh, "the caller holds while the number rings"
        outside = await c.rings(OUTSIDE)
        view = c.conversation(iid).view()["consult"]
        assert view == {"agent_id": "", "answered": False, "number": "13900000001", "expert": None}
        c.pbx.pick_up(outside)
        await c.until(lambda: "consult_answered" in c.store.kinds(iid), "the number answering")
        assert c.pbx.bridge_of(outside) == c.pbx.bridge_of(first) is not None, "the agent talks with them"
        assert c.pbx.bridge_of(caller) is None
        done = await c.control(iid, "complete")
        assert done["to"] == "number:13900000001" and done["from"] == "1001"
        assert first not in c.pbx.legs
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(outside) and caller not in c.pbx.moh
        await c.until(lambda: c.state("1001") is AgentState.WRAP_UP, "the agent's wrap-up")
        c.pbx.hang_up(outside)
        assert await c.outcome(iid) is Outcome.COMPLETED
        assert caller not in c.pbx.legs
        assert "transferred" in c.store.kinds(iid)


async def test_consulting_a_number_then_cancelling_brings_the_caller_back() -> None:
    async with center() as c:
        caller, iid, first, outside = await consulting_a_number(c)
        await c.control(iid, "cancel")
        assert outside not in c.pbx.legs
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(first) is not None and caller not in c.pbx.moh
        assert c.state("1001") is AgentState.ON_CALL


async def test_a_conference_with_a_number_goes_on_when_the_agent_leaves() -> None:
    async with center(wrap_up_s=30) as c:
        caller, iid, first, outside = await consulting_a_number(c)
        await c.control(iid, "conference")
        bridge = c.pbx.bridge_of(caller)
        assert bridge is not None and c.pbx.bridge_of(first) == c.pbx.bridge_of(outside) == bridge
        assert c.conversation(iid).view()["conference"] == [], "no agent besides the one in control"
        c.pbx.hang_up(first)
        await c.until(lambda: c.state("1001") is AgentState.WRAP_UP, "the agent's wrap-up")
        assert caller in c.pbx.legs and c.pbx.bridge_of(caller) == c.pbx.bridge_of(outside)
        c.pbx.hang_up(outside)
        assert await c.outcome(iid) is Outcome.COMPLETED


async def test_a_number_not_allowed_is_never_consulted() -> None:
    async with center() as c:
        caller, iid, first = await c.talking("1001")
        for target, status in (("number:+8821390001", 403), ("number:1390", 403), ("number:abc", 400)):
            try:
                await c.control(iid, "consult", target)
                raise AssertionError(f"a consult to {target} must be refused")
            except ControlError as exc:
                assert exc.http_status == status, (target, exc.message)
        assert c.pbx.originated("PJSIP/1390") == [] and c.pbx.originated("PJSIP/+882") == []
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(first) is not None and caller not in c.pbx.moh


async def test_a_restarted_app_takes_over_a_consulted_number_and_completes_it() -> None:
    async with center(wrap_up_s=30) as c:
        caller, iid, first, outside = await consulting_a_number(c)
        await restart_app(c)
        conv = await c.until(lambda: getattr(c.board.call(iid), "conversation", None), "the call followed")
        await c.until(lambda: conv.active, "the conversation running again")
        assert conv.view()["consult"]["number"] == "13900000001"
        await c.control(iid, "complete")
        assert first not in c.pbx.legs
        assert c.pbx.bridge_of(caller) == c.pbx.bridge_of(outside) is not None
        c.pbx.hang_up(outside)
        assert await c.outcome(iid) is Outcome.COMPLETED
