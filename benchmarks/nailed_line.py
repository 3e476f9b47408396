"""From AMD's verdict to the customer hearing the agent: a nailed-up line against a ringing phone.

One real Lianluo (`python -m app run`, its own Asterisk, a scratch database, free ports), a
second Asterisk playing the customers (tests/support/customers.py, numbers 1380005xxxx: a person
who answers after 1-3 s, says "Hello?" and hangs up 6 s later) and two agents' SIP phones
(pjsua2), each playing a steady 440 Hz tone into its call, in the same run:

  nailed    agent 1001, campaign `nailed` (progressive, agent_line: nailed): the phone is
            called once when the campaign starts and answered by a person 2 s later; every
            customer is then put through on that line;
  ringing   agent 1002, campaign `ringing` (progressive, agent_line: ringing): the phone rings
            for each customer and answers the moment the INVITE arrives (an auto-answer phone,
            the best a ringing phone can do); the baseline of the ratio;
  desk      agent 1003, campaign `desk` (agent_line: ringing) with an ordinary desk phone that a
            person picks up 2 s after it rings: the way outbound worked for such a phone before
            nailed-up lines. Its figure is how many of its (at most 4) customers were abandoned;
            the agent presses Ready again after each miss.

The campaigns run one after the other, one customer at a time (one agent each, progressive).

Measured on the customer's own recording, per connected customer:

- **the verdict**: `dial_attempts.answered_at`, the moment the app learns AMD's verdict "human"
  (the answered leg enters our Stasis app from the AMD dialplan); the app's wall clock;
- **heard**: the customer's recording starts at a wall-clock time the customer's dialplan writes
  just before MixMonitor (same host, same clock); the start of the first stretch of at least
  200 ms dominated by the agent's 440 Hz tone (20 ms frames) in that recording, plus that start,
  is when the customer first heard the agent.

The figure is heard - verdict. The table shows p50, p95 and the worst call of each path, and the
ratio nailed/ringing of each ("-" where the baseline's figure is not above zero: the customer's
stamp can come a few tens of ms late, see benchmarks/README.md). Calls whose customer was not
put through (abandoned) are counted and left out of the figures.

Usage:
  .venv/bin/python benchmarks/nailed_line.py             # 12 customers per path (4 desk), ~9 min
  .venv/bin/python benchmarks/nailed_line.py --calls 30
  .venv/bin/python benchmarks/nailed_line.py --quick     # smoke run: 2 customers per path, ~1 1/2 min

Needs the cached Asterisk (scripts/install-asterisk) and PostgreSQL (DATABASE_URL or
127.0.0.1:5432). Writes every call's figures to benchmarks/results/nailed_line.json (--quick: to
$TMPDIR/lianluo-bench-quick/). Exits 1 when the nailed or ringing path has no measured call.
Everything it starts is stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_stack import percentile  # noqa: E402

from tests.support.audio import tone_intervals, write_tone  # noqa: E402
from tests.support.calls import AGENT_TONE_HZ  # noqa: E402
from tests.support.customers import CustomerNetwork  # noqa: E402
from tests.support.sip_phone import Call, Phone, PhoneLab  # noqa: E402
from tests.support.stack import (  # noqa: E402
    Stack,
    eventually,
    installed_asterisk_prefix,
    scratch_database,
    write_config,
)

PATHS = ("nailed", "ringing", "desk")
AGENT_OF = {"nailed": "1001", "ringing": "1002", "desk": "1003"}
LINE_OF = {"nailed": "nailed", "ringing": "ringing", "desk": "ringing"}
PERSON_ANSWERS_S = 2.0
DESK_CALLS = 4  # every one is abandoned: a few show it
SUSTAINED_S = 0.2  # the agent's tone is steady: a stretch this long is the agent, not a voice


def config(contact: str) -> dict[str, Any]:
    today = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][datetime.now(UTC).weekday()]
    campaigns = []
    for path in PATHS:
        campaigns.append(
            {
                "name": path,
                "queue": f"q{path}",
                "mode": "progressive",
                "agent_line": LINE_OF[path],
                "active": False,
                "ring_s": 15,
                "amd": True,
                "timezone": "UTC",
                "window": {"days": [today], "start": "00:00", "end": "23:59"},
            }
        )
    return {
        "carrier": {"outbound_contact": contact, "caller_id": "7000"},
        "agents": [
            {"id": "1001", "name": "Nailed Desk", "groups": ["nailed"]},
            {"id": "1002", "name": "Auto Answer", "groups": ["ringing"]},
            {"id": "1003", "name": "Desk Ringing", "groups": ["desk"]},
        ],
        "queues": [
            {"name": "general"},  # the test center's menu sends callers there; nobody calls in here
            *(
                {"name": f"q{p}", "groups": [p], "ring_timeout_s": 8, "wrap_up_s": 0, "announce_every_s": 0}
                for p in PATHS
            ),
        ],
        "campaigns": campaigns,
    }


def import_leads(stack: Stack, campaign: str, phones: list[str], work: Path) -> None:
    path = work / f"{campaign}.csv"
    path.write_text("phone\n" + "\n".join(phones) + "\n")
    command = ["import-leads", "--config", str(stack.config_path), campaign, str(path)]
    done = subprocess.run(
        [sys.executable, "-m", "app", *command],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": stack.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)


def attempt(stack: Stack, phone: str) -> tuple[str | None, datetime | None]:
    rows = stack.query(
        "SELECT result, answered_at FROM dial_attempts WHERE phone = %s ORDER BY started_at DESC LIMIT 1",
        phone,
    )
    return (rows[0][0], rows[0][1]) if rows else (None, None)


def first_heard(customers: CustomerNetwork, number: str) -> float | None:
    """Wall-clock time at which the agent's tone starts in the customer's recording: the start of
    its first stretch of at least 200 ms (20 ms frames; a lone frame of the customer's own "Hello?"
    can peak near 440 Hz)."""
    spans = tone_intervals(customers.recording(number), AGENT_TONE_HZ, frame_seconds=0.02, min_gap=0.04)
    start = next((a for a, b in spans if b - a >= SUSTAINED_S), None)
    return None if start is None else customers.recording_started_at(number) + start


def run_path(
    path: str,
    stack: Stack,
    phone: Phone,
    customers: CustomerNetwork,
    numbers: list[str],
    tone: Path,
    work: Path,
) -> dict[str, Any]:
    agent = AGENT_OF[path]
    import_leads(stack, path, numbers, work)
    stack.api("POST", f"/api/agents/{agent}/state", {"state": "ready"})
    stack.api("POST", f"/api/campaigns/{path}/active", {"active": True})
    held: list[Call] = []
    if path == "nailed":
        line = phone.wait_incoming(timeout=30)
        time.sleep(PERSON_ANSWERS_S)  # a person picking up the line, once
        line.answer(play=tone, loop=True)
        held.append(line)

    def done() -> bool:
        if path == "desk" and stack.agent_state(agent)["state"] == "not_ready":
            # A missed customer sets the agent Not Ready ("no answer"): they press Ready again.
            stack.api("POST", f"/api/agents/{agent}/state", {"state": "ready"})
        if path != "nailed":
            try:
                call = phone.wait_incoming(timeout=0.2)
            except Exception:
                pass
            else:
                if path == "desk":
                    time.sleep(PERSON_ANSWERS_S)  # a person picks up (the ring is cancelled by then)
                with contextlib.suppress(Exception):
                    call.answer(play=tone, loop=True)
                held.append(call)
        return all(attempt(stack, n)[0] for n in numbers) and "0 active calls" in customers.cli(
            "core show channels"
        )

    eventually(done, 60 + 20 * len(numbers), f"{path}: every customer called", interval=0.05)
    stack.api("POST", f"/api/campaigns/{path}/active", {"active": False})
    stack.api("POST", f"/api/agents/{agent}/state", {"state": "not_ready", "reason": "break"})
    gaps, abandoned = [], 0
    calls = []
    for n in numbers:
        result, verdict = attempt(stack, n)
        heard = first_heard(customers, n) if result == "connected" else None
        gap = None if heard is None or verdict is None else heard - verdict.timestamp()
        calls.append({"number": n, "result": result, "gap_s": gap})
        if result == "abandoned":
            abandoned += 1
        if gap is not None:
            gaps.append(gap)
    for call in held:
        with contextlib.suppress(Exception):
            call.hangup()
    return {"calls": calls, "gaps": gaps, "abandoned": abandoned}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=12, help="customers per path (default 12)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 customers per path")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    calls = 2 if args.quick else args.calls
    quick_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "lianluo-bench-quick"
    output = args.output or (
        quick_dir / "nailed_line.json" if args.quick else REPO / "benchmarks" / "results" / "nailed_line.json"
    )
    work = Path(tempfile.mkdtemp(prefix="lianluo-bench-nailed-"))
    customers = CustomerNetwork(work / "customers")
    results: dict[str, Any] = {}
    with customers, scratch_database("lianluo_bench_nailed") as db_url:
        settings = write_config(work / "center.yaml", work / "var", **config(customers.contact))
        stack = Stack(
            work / "center.yaml",
            work / "var",
            db_url,
            installed_asterisk_prefix(),
            work / "app.log",
            settings,
            log_level="INFO",
        )
        stack.start()
        try:
            with PhoneLab(log_dir=work / "pjsua") as lab:
                tone = write_tone(work / "agent-tone.wav", AGENT_TONE_HZ, 120)
                for i, path in enumerate(PATHS):
                    agent = AGENT_OF[path]
                    phone = lab.phone(
                        "127.0.0.1",
                        user=agent,
                        password=stack.agent_password(agent),
                        registrar=f"127.0.0.1:{stack.sip_port}",
                    )
                    phone.wait_registered(timeout=10)
                    count = min(calls, DESK_CALLS) if path == "desk" else calls
                    numbers = [f"1380005{i + 1}{k:03d}" for k in range(count)]
                    results[path] = run_path(path, stack, phone, customers, numbers, tone, work)
        finally:
            stack.stop()
    print(f"\nAMD verdict -> customer hears the agent ({calls} customers per path)\n")
    print("| path | measured | abandoned | p50 ms | p95 ms | max ms |")
    print("|---|--:|--:|--:|--:|--:|")
    figures: dict[str, tuple[float, float, float]] = {}
    for path in PATHS:
        r = results[path]
        gaps = r["gaps"]
        if gaps:
            p95 = percentile(sorted(gaps), 0.95)
            assert p95 is not None  # gaps is not empty
            figures[path] = (statistics.median(gaps), p95, max(gaps))
            f = figures[path]
            print(
                f"| {path} | {len(gaps)} | {r['abandoned']} | {f[0] * 1000:.0f} | {f[1] * 1000:.0f} "
                f"| {f[2] * 1000:.0f} |"
            )
        else:
            print(f"| {path} | 0 | {r['abandoned']} | - | - | - |")
    if "nailed" in figures and "ringing" in figures:
        n, b = figures["nailed"], figures["ringing"]
        # A baseline figure at or below zero (see the module doc: the stamps' offset) has no ratio.
        ratios = [f"{x / y:.2f}" if y > 0 else "-" for x, y in zip(n, b, strict=True)]
        print(f"| ratio nailed/ringing | | | {' | '.join(ratios)} |")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"calls_per_path": calls, "paths": results}, indent=2, default=str))
    print(f"\nwritten: {output}")
    return 0 if "nailed" in figures and "ringing" in figures else 1


if __name__ == "__main__":
    sys.exit(main())
