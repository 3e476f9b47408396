"""Agents nailed up for the shift: an ordinary desk phone on a predictive campaign.

The agent's phone is a SIP phone that rings like any desk phone and is answered by a person
2 s after it starts ringing, once, when the campaign starts. Customers are played by a second
Asterisk (tests/support/customers.py): people who say "Hello?" and hang up 6 s later, and
answering machines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio import tone_intervals, tone_seconds
from tests.support.calls import AGENT_TONE_HZ, register_agent
from tests.support.customers import CustomerNetwork
from tests.support.sip_phone import Call, PhoneLab
from tests.support.stack import REPO, Stack, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.long]

CUSTOMERS = CustomerNetwork(Path(tempfile.mkdtemp(prefix="lianluo-customers-")))
NOW = datetime.now(UTC)
TODAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][NOW.weekday()]
STACK_CONFIG = {
    "carrier": {"outbound_contact": CUSTOMERS.contact, "caller_id": "7000"},
    "agents": [{"id": "1001", "name": "Alice Wang"}],
    "queues": [{"name": "general", "ring_timeout_s": 8, "wrap_up_s": 1, "announce_every_s": 0}],
    "campaigns": [
        {
            "name": "shift",
            "queue": "general",
            "mode": "predictive",  # nailed-up lines by default
            "active": False,
            "ring_s": 15,
            "amd": True,
            "on_machine": "hangup",
            "timezone": "UTC",
            "window": {"days": [TODAY], "start": "00:00", "end": "23:59"},
        }
    ],
}
PEOPLE = [f"138000500{i:02d}" for i in range(13)]
MACHINES = [f"138000400{i:02d}" for i in range(7)]
LATER = ["13800050101", "13800050102"]
PERSON_ANSWERS_S = 2.0  # a person reaching for the phone: the time it rings before they pick up
HOLD_TONE_HZ = 425  # app/dialer/nailed.py HOLD_TONE


@pytest.fixture(scope="module", autouse=True)
def customers() -> Iterator[CustomerNetwork]:
    with CUSTOMERS:
        yield CUSTOMERS


def import_leads(stack: Stack, tmp_path: Path, phones: list[str]) -> None:
    path = tmp_path / f"leads-{len(phones)}-{phones[0]}.csv"
    path.write_text("phone\n" + "\n".join(phones) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "app", "import-leads", "--config", str(stack.config_path), "shift", str(path)],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": stack.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def last_attempt(stack: Stack, phone: str) -> dict[str, Any] | None:
    rows = stack.query(
        "SELECT result, abandoned, agent_id, answered_at FROM dial_attempts WHERE phone = %s"
        " ORDER BY started_at DESC LIMIT 1",
        phone,
    )
    if not rows:
        return None
    return dict(zip(("result", "abandoned", "agent_id", "answered_at"), rows[0], strict=True))


def agent_state_at(stack: Stack, agent_id: str, at: datetime) -> str:
    rows = stack.query(
        "SELECT to_state FROM agent_state_events WHERE agent_id = %s AND at <= %s ORDER BY at DESC, id DESC"
        " LIMIT 1",
        agent_id,
        at,
    )
    return str(rows[0][0]) if rows else "logged_out"


def pick_up_like_a_person(line: Call, tone: Path, record: Path | None = None) -> None:
    """The phone rings; the agent picks it up a moment later (a person, not auto-answer)."""
    assert line.header("X-Lianluo-Line") == "nailed"
    time.sleep(PERSON_ANSWERS_S)  # the person's own reaction time, not a wait for the app
    line.answer(play=tone, loop=True, record=record)
    line.wait_confirmed(timeout=5)


def test_a_desk_phone_nailed_up_for_the_shift_takes_20_answered_customers_without_ringing_again(
    stack: Stack, lab: PhoneLab, tmp_path: Path, tones: tuple[Path, Path]
) -> None:
    import_leads(stack, tmp_path, PEOPLE + MACHINES)
    phone = register_agent(lab, stack, "1001")
    eventually(lambda: stack.agent_state("1001")["state"] == "ready", 10, "agent ready")
    assert stack.agent_state("1001")["outbound_line"] is None, "no nailed campaign running yet"
    stack.api("POST", "/api/campaigns/shift/active", {"active": True})

    line = phone.wait_incoming(timeout=15)  # the campaign starts: the agent's phone is called once
    assert stack.agent_state("1001")["outbound_line"] == "calling"
    assert stack.query("SELECT count(*) FROM dial_attempts")[0][0] == 0, "nothing dialled while it rings"
    pick_up_like_a_person(line, tones[1])
    eventually(lambda: stack.agent_state("1001")["outbound_line"] == "connected", 10, "line up")

    everyone = PEOPLE + MACHINES
    eventually(
        lambda: all((a := last_attempt(stack, p)) and a["result"] for p in everyone),
        420,
        "every customer dialled and done",
    )
    results = {p: last_attempt(stack, p) for p in everyone}
    assert all(results[p]["result"] == "machine" for p in MACHINES), results  # type: ignore[index]
    assert len(phone.calls) == 1 and line.is_confirmed, "the agent's phone never rang again"
    # Predictive dials ahead: a person may be abandoned, but never while the agent was free.
    for p in PEOPLE:
        a = results[p]
        assert a is not None and a["result"] in ("connected", "abandoned"), (p, a)
        if a["abandoned"]:
            assert agent_state_at(stack, "1001", a["answered_at"]) != "ready", f"{p} abandoned, agent free"
    connected = [p for p in PEOPLE if results[p]["result"] == "connected"]  # type: ignore[index]
    assert len(connected) >= len(PEOPLE) - 1, results
    assert all(results[p]["agent_id"] == "1001" for p in connected)  # type: ignore[index]

    # The customers heard the agent: the agent's tone is in each customer's own recording.
    eventually(
        lambda: "0 active calls" in CUSTOMERS.cli("core show channels"), 30, "the customers' calls over"
    )
    for p in connected:
        heard = tone_seconds(CUSTOMERS.recording(p), AGENT_TONE_HZ)
        assert heard > 2.0, f"{p} heard {heard:.1f} s of the agent"
    row = stack.interaction("ani = %s AND direction = 'outbound'", connected[0])
    assert row is not None and row["agent_id"] == "1001" and row["outcome"] == "completed"

    # The agent hangs up the line: out of the campaign, Not Ready with the reason, nothing dialled.
    line.hangup()
    eventually(lambda: stack.agent_state("1001")["state"] == "not_ready", 10, "agent Not Ready")
    view = stack.agent_state("1001")
    assert view["not_ready_reason"] == "hung up the outbound line" and view["outbound_line"] is None
    import_leads(stack, tmp_path, LATER)
    # Ready again: the phone is called again, and nothing is dialled until the line is up.
    stack.api("POST", "/api/agents/1001/state", {"state": "ready"})
    again = phone.wait_incoming(timeout=15)
    assert all(last_attempt(stack, p) is None for p in LATER), "dialled before the agent's line was up"
    pick_up_like_a_person(again, tones[1])
    eventually(lambda: all((a := last_attempt(stack, p)) and a["result"] for p in LATER), 120, "dialled")
    assert len(phone.calls) == 2
    eventually(
        lambda: "0 active calls" in CUSTOMERS.cli("core show channels"), 30, "the customers' calls over"
    )

    # The app is killed: Asterisk keeps the line up until the app's next start hangs it up as an
    # orphan (app/calls/recovery.py); the campaign started again calls the agent for a new line.
    stack.kill()
    stack.start()
    again.wait_disconnected(timeout=30)
    assert "nailed-1001" not in stack.cli("core show channels"), "nothing of the old line stays open"
    stack.api("POST", "/api/campaigns/shift/active", {"active": True})
    third = phone.wait_incoming(timeout=30)
    pick_up_like_a_person(third, tones[1], record=tmp_path / "waiting-line.wav")
    eventually(lambda: stack.agent_state("1001")["outbound_line"] == "connected", 10, "line up again")
    # No customer left to call: the agent waits on the line and hears its soft beep (425 Hz).
    third.wait_rx_audio(6.0, timeout=15)
    beeps = tone_intervals(third.recording(), HOLD_TONE_HZ, frame_seconds=0.02)
    assert [b for b in beeps if b[1] - b[0] >= 0.08], f"no beep on the waiting line: {beeps}"
    # Stopping the campaign lets the agent go: the line is hung up, the agent stays Ready.
    stack.api("POST", "/api/campaigns/shift/active", {"active": False})
    third.wait_disconnected(timeout=15)
    eventually(lambda: stack.agent_state("1001")["outbound_line"] is None, 10, "no line")
    assert stack.agent_state("1001")["state"] == "ready"
