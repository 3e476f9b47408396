"""The wallboard under a scripted load of SIPp callers (issue 18's acceptance): callers who give
up in the queue and callers who ask for a callback while every agent is on a break, then
callers answered by agents (one SIPp UAS answering for three agents). At each quiet instant the
wallboard's figures equal the same figures computed by SQL from the event log, to the call, and
at the end the interval report for the hour equals what the script itself expects.

The "same instant" is taken between two phases, when no call is moving: the board is read over
the API (the same figures the websocket pushes) and the event log by SQL right after.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.event_log import WALLBOARD_SQL
from tests.support.flood import free_udp_port
from tests.support.rtp_pcap import write_caller_media
from tests.support.stack import Stack, eventually, free_sip_port

SIPP = Path(__file__).resolve().parents[2] / "benchmarks" / "sipp"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        subprocess.run(["which", "sipp"], capture_output=True).returncode != 0, reason="needs SIPp"
    ),
]

AGENTS = ("2001", "2002", "2003")
AGENTS_PORT = free_sip_port()  # one SIPp answers for every agent (their static contact)
CARRIER_PORT = free_sip_port()  # where callbacks would dial out: nobody (they are cancelled)
SHORT_ABANDON_S = 1
STACK_CONFIG = {
    "web": {"users": [{"username": "lead", "name": "Lee Lead", "role": "supervisor"}]},
    "supervision": {"short_abandon_s": SHORT_ABANDON_S},
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{CARRIER_PORT}", "caller_id": "7000"},
    "agents": [
        {"id": a, "name": f"Agent {a}", "contact": f"sip:{a}@127.0.0.1:{AGENTS_PORT}"} for a in AGENTS
    ],
    "queues": [
        {
            "name": "general",
            "ring_timeout_s": 8,
            "wrap_up_s": 0,
            "announce_every_s": 2,
            "callback": {"offer": True, "retry_after_s": 60, "max_attempts": 1},
        }
    ],
    "ivr": {
        "greeting": [{"text": "Press 1.", "lang": "en"}],
        "connecting": [],
        "position": [{"text": "You are number {position}.", "lang": "en"}],
        "callback_offer": [{"text": "For a callback, press {key}.", "lang": "en"}],
        "callback_confirmed": [{"text": "We will call you back. Goodbye.", "lang": "en"}],
        "menu": [{"digit": "1", "queue": "general"}],
    },
}


@dataclass(frozen=True)
class Callers:
    """One kind of caller in the script: how many, how fast, holding how long (SIPp's -d),
    pressing 1 when, and the first of their caller IDs (one each, in order)."""

    count: int
    rate: float
    hold_ms: int
    digits_ms: tuple[int, ...]
    first: int

    def numbers(self) -> list[str]:
        return [str(self.first + n) for n in range(self.count)]


ABANDONING = Callers(5, 2.0, 4500, (160,), 13800000100)
# The center hangs up on them after the confirmation; 1 for the menu, then 1 again every
# 0.7 s: one lands in the announcement (position, then the callback offer), which it interrupts.
CALLING_BACK = Callers(3, 1.0, 25000, (160, *range(1500, 20000, 700)), 13800000200)
ANSWERED = Callers(12, 4.0, 15000, (160,), 13800000300)


@pytest.fixture(scope="module")
def agent_phones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The SIPp UAS that answers for every agent (talks 200 ms, then hangs up), started before
    the center so that its first qualify finds them."""
    work = tmp_path_factory.mktemp("agents")
    log = work / "agents.log"
    cmd = [
        "sipp", "-sf", str(SIPP / "agents.xml"),
        "-i", "127.0.0.1", "-p", str(AGENTS_PORT),
        "-mi", "127.0.0.1", "-mp", str(free_udp_port("127.0.0.1")),
        "-trace_logs", "-log_file", str(log), "-nostdin",
    ]  # fmt: skip
    with open(work / "agents.out", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def callers(stack: Stack, work: Path, name: str, script: Callers) -> subprocess.Popen[bytes]:
    """Start SIPp placing the script's calls to the DID, each with its own caller ID."""
    here = work / name
    here.mkdir()
    write_caller_media(here / "caller_media.pcap", script.digits_ms, max(script.digits_ms) + 1000)
    (here / "numbers.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in script.numbers()))
    cmd = [
        "sipp", f"127.0.0.1:{stack.sip_port}",
        "-sf", str(SIPP / "queue_caller.xml"),
        "-inf", str(here / "numbers.csv"),
        "-s", "7000",
        "-i", "127.0.0.2", "-p", str(free_udp_port("127.0.0.2")),
        "-mi", "127.0.0.2", "-mp", str(free_udp_port("127.0.0.2")),
        "-r", str(script.rate), "-m", str(script.count), "-l", str(script.count),
        "-d", str(script.hold_ms),
        "-timeout", "90s",
        "-trace_err", "-nostdin",
    ]  # fmt: skip
    with open(here / "sipp.out", "wb") as out:
        return subprocess.Popen(cmd, cwd=here, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen[bytes]) -> None:
    """SIPp has placed and ended its calls (its exit code counts the calls the center hung up
    as failed: the outcome is checked in the event log instead)."""
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError("SIPp callers did not finish") from None


def outcomes(stack: Stack, script: Callers) -> dict[str, int]:
    """How the script's callers' calls ended (a callback's own tries are outbound: not these)."""
    rows = stack.query(
        "SELECT coalesce(outcome, 'open'), count(*) FROM interactions"
        " WHERE direction = 'inbound' AND ani = ANY(%s) GROUP BY 1",
        script.numbers(),
    )
    return {str(o): int(n) for o, n in rows}


def ended_as(stack: Stack, script: Callers, outcome: str) -> bool:
    got = outcomes(stack, script)
    assert got == {outcome: script.count}, got
    return True


def board_and_log(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    """The wallboard's figures and the event log's, read at one quiet instant."""
    status, board = stack.api("GET", "/api/wallboard")
    assert status == 200, board
    rows = {r[0]: r[1:] for r in stack.query(WALLBOARD_SQL, f"{SHORT_ABANDON_S} seconds")}
    offered, answered, abandoned, short = rows.get("general", (0, 0, 0, 0))
    (pending,) = stack.query(
        "SELECT count(*) FROM callbacks WHERE queue = 'general' AND status IN ('waiting', 'dialing')"
    )[0]
    (waiting,) = stack.query(
        "SELECT count(*) FROM interactions i WHERE i.ended_at IS NULL AND EXISTS (SELECT 1"
        " FROM interaction_events e WHERE e.interaction_id = i.id AND e.kind = 'queued') AND NOT EXISTS"
        " (SELECT 1 FROM interaction_events e WHERE e.interaction_id = i.id AND e.kind = 'connected')"
    )[0]
    general = board["queues"]["general"]
    today = general["today"]
    seen = {
        "offered": today["offered"],
        "answered": today["answered"],
        "abandoned": today["abandoned"],
        "short_abandoned": today["short_abandoned"],
        "callbacks_pending": general["callbacks_pending"],
        "waiting": general["waiting"],
    }
    expected = {
        "offered": offered,
        "answered": answered,
        "abandoned": abandoned,
        "short_abandoned": short,
        "callbacks_pending": pending,
        "waiting": waiting,
    }
    return seen, expected


def agree(stack: Stack) -> bool:
    """The board folds events once saved and pushes at most four times a second: a moment."""
    seen, expected = board_and_log(stack)
    assert seen == expected, f"board {seen} != event log {expected}"
    return True


def all_ready(stack: Stack) -> bool:
    status, agents = stack.api("GET", "/api/agents")
    return status == 200 and all(
        a["device_registered"] and a["state"] == "ready" for a in agents if a["id"] in AGENTS
    )


def test_under_a_scripted_load_the_wallboard_equals_the_event_log_and_the_report_the_script(
    agent_phones: Path, stack: Stack, tmp_path: Path
) -> None:
    eventually(lambda: all_ready(stack), 60, "the three agents online and ready")
    for agent in AGENTS:  # everyone on a break: callers wait
        assert (
            stack.api("POST", f"/api/agents/{agent}/state", {"state": "not_ready", "reason": "break"})[0]
            == 200
        )

    # Phase 1: callers who give up in the queue and callers who ask for a callback, together.
    abandoning = callers(stack, tmp_path, "abandoning", ABANDONING)
    calling_back = callers(stack, tmp_path, "calling-back", CALLING_BACK)
    finish(abandoning)
    finish(calling_back)
    eventually(
        lambda: ended_as(stack, ABANDONING, "abandoned"),
        20,
        "every abandoning caller's interaction ended as abandoned",
    )
    eventually(
        lambda: ended_as(stack, CALLING_BACK, "callback_requested"),
        20,
        "every caller asking for a callback ended with one",
    )
    eventually(lambda: agree(stack), 5, "the board agrees with the event log")
    seen, _ = board_and_log(stack)
    # A callback waits in line as a call of its own (the center's try, outbound, in the
    # caller's place): offered once more, and waiting.
    assert (seen["offered"], seen["abandoned"], seen["callbacks_pending"], seen["waiting"]) == (
        ABANDONING.count + 2 * CALLING_BACK.count,
        ABANDONING.count,
        CALLING_BACK.count,
        CALLING_BACK.count,
    )
    assert seen["short_abandoned"] == 0  # each waited over a second before hanging up

    # The callbacks are cancelled (nobody to reach at the carrier), then the agents come back.
    status, open_callbacks = stack.api("GET", "/api/callbacks?open=1")
    assert status == 200 and len(open_callbacks) == CALLING_BACK.count, open_callbacks
    for cb in open_callbacks:
        assert stack.api("DELETE", f"/api/callbacks/{cb['id']}")[0] == 200
    for agent in AGENTS:
        assert stack.api("POST", f"/api/agents/{agent}/state", {"state": "ready"})[0] == 200

    # Phase 2: callers answered by the agents, faster than three agents can take them at once.
    finish(callers(stack, tmp_path, "answered", ANSWERED))
    eventually(
        lambda: ended_as(stack, ANSWERED, "completed"), 30, "every answered caller's interaction completed"
    )
    eventually(lambda: agree(stack), 5, "the board agrees with the event log")
    seen, _ = board_and_log(stack)
    offered = ABANDONING.count + 2 * CALLING_BACK.count + ANSWERED.count
    assert (
        seen["offered"],
        seen["answered"],
        seen["abandoned"],
        seen["callbacks_pending"],
        seen["waiting"],
    ) == (
        offered,
        ANSWERED.count,
        ABANDONING.count,
        0,
        0,
    )

    # The interval report for the hour (or the two hours, if the script ran across one) says
    # what the script did: every caller offered (and each callback's try), the answered
    # answered, the abandoning abandoned; a cancelled callback is neither.
    status, report = stack.api("GET", "/api/reports/interval?minutes=60")
    assert status == 200, report
    rows = [r for r in report["rows"] if r["queue"] == "general"]
    assert 1 <= len(rows) <= 2, rows
    totals = {k: sum(r[k] for r in rows) for k in ("offered", "answered", "abandoned", "short_abandoned")}
    assert totals == {
        "offered": offered,
        "answered": ANSWERED.count,
        "abandoned": ABANDONING.count,
        "short_abandoned": 0,
    }
