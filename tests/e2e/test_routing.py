"""Routing with real phones: skills, a VIP jumping the line, sticky agents, live skill changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.calls import call_in, ended, register_agent
from tests.support.sip_phone import Call, Phone, PhoneLab
from tests.support.stack import Stack, eventually

pytestmark = pytest.mark.e2e

STACK_CONFIG = {
    "agents": [
        {"id": "1001", "name": "Alice Wang", "skills": {"billing": 8}},
        {"id": "1002", "name": "Bob Li", "skills": {"tech": 7}, "groups": ["seniors"]},
        {"id": "1003", "name": "Chen Jing", "skills": {"billing": 4}},
    ],
    "queues": [
        {
            "name": "billing",
            "strategy": "skills_best",
            "skills": [{"skill": "billing", "min_level": 3}],
            "sticky_s": 30,
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
        },
        {
            "name": "tech",
            "strategy": "longest_idle",
            "skills": [{"skill": "tech", "min_level": 3}],
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
        },
        {
            # Named members and a group: either admits an agent (one rule, app/domain/routing.py).
            "name": "escalations",
            "members": ["1001"],
            "groups": ["seniors"],
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
        },
    ],
    "ivr": {
        "greeting": [{"text": "Billing, press 1. Technical support, press 2.", "lang": "en"}],
        "menu": [
            {"digit": "1", "queue": "billing"},
            {"digit": "2", "queue": "tech"},
            {"digit": "3", "queue": "escalations"},
        ],
        "digit_timeout_s": 5,
        "attempts": 2,
    },
}


@pytest.fixture
def agents(lab: PhoneLab, stack: Stack) -> dict[str, Phone]:
    phones = {agent_id: register_agent(lab, stack, agent_id) for agent_id in ("1001", "1002", "1003")}
    for agent_id in phones:
        eventually(lambda a=agent_id: stack.agent_state(a)["device_registered"], 10, f"{agent_id} registered")  # type: ignore[misc]
        status, body = stack.api("POST", f"/api/agents/{agent_id}/state", {"state": "ready"})
        assert status == 200, body
    return phones


def choose(
    lab: PhoneLab, stack: Stack, ani: str, digit: str, tone: Path, tmp_path: Path
) -> tuple[Call, dict[str, Any]]:
    call, it = call_in(lab, stack, ani, tone, tmp_path / f"{ani}.wav")
    stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
    call.send_dtmf(digit)  # interrupts the greeting, as callers who know the menu do
    stack.wait_event(it["id"], "queued", timeout=10)
    return call, it


def answer(phone: Phone, ani: str, tone: Path) -> Call:
    ringing = phone.wait_incoming(timeout=15)
    assert ani in ringing.remote_uri, (ani, ringing.remote_uri)
    ringing.answer(play=tone, loop=True)
    return ringing


def test_each_caller_reaches_an_agent_with_the_skill(
    stack: Stack, lab: PhoneLab, agents: dict[str, Phone], tones: tuple[Path, Path], tmp_path: Path
) -> None:
    billing, b_it = choose(lab, stack, "13900000001", "1", tones[0], tmp_path)
    b_agent = answer(agents["1001"], "13900000001", tones[1])  # billing 8 beats billing 4
    assert stack.wait_event(b_it["id"], "connected")["agent_id"] == "1001"
    assert b_agent.header("X-Lianluo-Queue") == "billing"

    tech, t_it = choose(lab, stack, "13900000002", "2", tones[0], tmp_path)
    answer(agents["1002"], "13900000002", tones[1])  # the only tech agent
    assert stack.wait_event(t_it["id"], "connected")["agent_id"] == "1002"
    offered = stack.wait_event(t_it["id"], "offered")
    assert "tech" in offered["reason"], offered

    for call, it in ((billing, b_it), (tech, t_it)):
        call.hangup()
        assert ended(stack, it["id"])["outcome"] == "completed"
    assert stack.interaction_row("id = %s", b_it["id"])["queue"] == "billing"


def test_vip_caller_jumps_the_line(
    stack: Stack, lab: PhoneLab, agents: dict[str, Phone], tones: tuple[Path, Path], tmp_path: Path
) -> None:
    stack.query("INSERT INTO customers (name, phone, vip) VALUES ('VIP Zhao', '13900000099', true)")
    # Only Alice serves billing for this test; she is busy with a first caller.
    stack.api("POST", "/api/agents/1003/state", {"state": "not_ready", "reason": "meeting"})
    first, first_it = choose(lab, stack, "13900000010", "1", tones[0], tmp_path)
    first_leg = answer(agents["1001"], "13900000010", tones[1])
    stack.wait_event(first_it["id"], "connected")

    regular, regular_it = choose(lab, stack, "13900000011", "1", tones[0], tmp_path)
    vip, vip_it = choose(lab, stack, "13900000099", "1", tones[0], tmp_path)
    assert stack.interaction_row("id = %s", vip_it["id"])["tier"] == "top"

    first_leg.hangup()  # Alice frees up: the VIP, who arrived later, is served first
    answer(agents["1001"], "13900000099", tones[1])
    stack.wait_event(vip_it["id"], "connected")
    assert stack.interaction_row("id = %s", regular_it["id"])["answered_at"] is None

    for call in (first, regular, vip):
        call.hangup()
    for it in (first_it, regular_it, vip_it):
        ended(stack, it["id"])
    stack.api("POST", "/api/agents/1003/state", {"state": "ready"})


def test_returning_customer_gets_their_previous_agent(
    stack: Stack, lab: PhoneLab, agents: dict[str, Phone], tones: tuple[Path, Path], tmp_path: Path
) -> None:
    ani = "13900000020"
    # First call: Alice (the better billing agent) is away, so Chen serves this customer.
    stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "lunch"})
    call, it = choose(lab, stack, ani, "1", tones[0], tmp_path)
    answer(agents["1003"], ani, tones[1])
    stack.wait_event(it["id"], "connected")
    call.hangup()
    ended(stack, it["id"])
    stack.api("POST", "/api/agents/1001/state", {"state": "ready"})

    # Second call: both ready, Alice has the higher skill, yet the customer goes back to Chen.
    call, it = choose(lab, stack, ani, "1", tones[0], tmp_path)
    answer(agents["1003"], ani, tones[1])
    offered = stack.wait_event(it["id"], "offered")
    assert offered["agent_id"] == "1003"
    assert "sticky" in offered["reason"].lower() or "last" in offered["reason"].lower(), offered
    call.hangup()
    ended(stack, it["id"])


def test_supervisor_changes_a_skill_and_the_next_call_follows_it(
    stack: Stack, lab: PhoneLab, agents: dict[str, Phone], tones: tuple[Path, Path], tmp_path: Path
) -> None:
    status, body = stack.api("PUT", "/api/agents/1002/skills/billing", {"level": 10})
    assert status == 200 and body["skills"]["billing"] == 10, body
    assert stack.api("DELETE", "/api/agents/1001/skills/billing")[0] == 200
    # Without the token: refused, nothing changes.
    status, body = stack.api("PUT", "/api/agents/1001/skills/billing", {"level": 9}, token="wrong")
    assert status == 401, body
    assert "billing" not in stack.agent_state("1001")["skills"]

    call, it = choose(lab, stack, "13900000030", "1", tones[0], tmp_path)
    answer(agents["1002"], "13900000030", tones[1])  # Bob, billing 10 now, beats Chen (4)
    assert stack.wait_event(it["id"], "connected")["agent_id"] == "1002"
    call.hangup()
    ended(stack, it["id"])
    rows = stack.query("SELECT agent_id, skill, level FROM agent_skill_overrides ORDER BY agent_id")
    assert ("1001", "billing", None) in rows and ("1002", "billing", 10) in rows


def test_a_queue_naming_members_and_a_group_reaches_an_agent_only_in_the_group(
    stack: Stack, lab: PhoneLab, agents: dict[str, Phone], tones: tuple[Path, Path], tmp_path: Path
) -> None:
    # Alice is the named member, logged in but on a break; Bob is in the queue only by his group.
    stack.api("POST", "/api/agents/1001/state", {"state": "not_ready", "reason": "break"})
    call, it = choose(lab, stack, "13900000030", "3", tones[0], tmp_path)
    answer(agents["1002"], "13900000030", tones[1])
    assert stack.wait_event(it["id"], "connected")["agent_id"] == "1002"
    assert "no_agent_available" not in [kind for kind, _ in stack.events(it["id"])]
    call.hangup()
    assert ended(stack, it["id"])["outcome"] == "completed"
    stack.api("POST", "/api/agents/1001/state", {"state": "ready"})


def test_api_rejects_bad_input_clearly(stack: Stack) -> None:
    assert stack.api("PUT", "/api/agents/1001/skills/billing", {"level": 11})[0] == 400
    assert stack.api("PUT", "/api/agents/9999/skills/billing", {"level": 5})[0] == 404
    status, body = stack.api("POST", "/api/agents/1001/state", {"state": "dancing"})
    assert status == 400 and "dancing" in body["message"]
    assert stack.api("GET", "/api/agents", token="")[0] == 401
