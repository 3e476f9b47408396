"""Key press to the agent's phone ringing, on the path the demo takes, against Asterisk's Queue().

Issue 17 asks that a caller with an idle agent hears that agent's phone ring within 300 ms of
their menu choice, "prompt or not". The routing benchmark (queue_vs_stasis.py) leaves
`ivr.connecting` empty and records nothing, which is not the demo's path. Here the Stasis side
runs as the demo does: "please hold" configured and every call recorded, so the consent notice
("this call may be recorded", English and Mandarin, 9 s) is due before the agent speaks. Both
may only play while the agent's phone already rings.

One real Lianluo (`python -m app run`, its own Asterisk and database, free ports), one SIPp
answering for every agent (all idle: each answers and hangs up at once), one SIPp caller:

  A  DID 7200 -> Answer(), Read() one digit, Queue(): app_queue, the baseline (no prompt);
  B  DID 7100 -> Stasis, the demo's prompts: the greeting, digit 1, queue `general`.

Measured on both, as in queue_vs_stasis.py: from the caller's RFC 2833 end packet of digit 1
to the agent SIPp receiving the INVITE (both logged by SIPp on this host's clock, legs paired by
a marker in the caller's From user). Printed: p50/p95/p99 per path, B/A ratios, and whether B's
p95 is within the 300 ms the issue asks for.

Usage:
  .venv/bin/python benchmarks/key_to_ring.py            # 50 calls per path at 1 call/s
  .venv/bin/python benchmarks/key_to_ring.py --quick    # smoke run: 6 calls per path

Writes the figures as JSON to benchmarks/results/key_to_ring.json (--quick: to the temporary
directory). Exits with 1 when a path paired no call. Everything it starts is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench_stack import (
    REPO,
    Bench,
    BenchError,
    SideResult,
    agent_ids,
    fmt,
    free_sip_port,
    installed_asterisk_prefix,
    interrupted,
    log_line,
    make_stack,
    qualify_now,
    ratio,
    scratch_database,
    start_agents,
    stop_process,
    wait_idle,
    wait_ready,
    write_caller_pcap,
)

RESULTS = REPO / "benchmarks" / "results" / "key_to_ring.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "key_to_ring.json"
TARGET_MS = 300.0
MEMBERS = 10
# The demo's prompts on the way to an agent (config/demo.yaml): "please hold" (played only to a
# caller who waits) and every call recorded, so the consent notice is due (its default text).
DEMO_IVR = {"connecting": [{"text": "Please hold while we connect you to an agent.", "lang": "en"}]}
DEMO_RECORDING = {"enabled": True, "default": {"mode": "all", "retention_days": 1}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 6 calls per path at 2 calls/s")
    p.add_argument("--calls", type=int, default=50, help="calls per path (50)")
    p.add_argument("--rate", type=float, default=1.0, help="calls per second (1)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured calls per path first (2)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, SIPp traces)")
    p.add_argument("--output", type=Path, help=f"the JSON file (default {RESULTS.relative_to(REPO)})")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.rate, args.warmup = min(args.calls, 6), 2.0, 1
    args.output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    return args


def print_table(a: SideResult, b: SideResult) -> None:
    print("| path | paired/calls | p50 ms | p95 ms | p99 ms | max ms | B/A p50 | B/A p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in (("A Queue() (baseline)", a), ("B Stasis, demo prompts", b)):
        ratios = (
            [fmt(ratio(b.p50_ms, a.p50_ms), 2), fmt(ratio(b.p95_ms, a.p95_ms), 2)] if r is b else ["", ""]
        )
        print(
            f"| {label} | {r.paired}/{r.calls} | {fmt(r.p50_ms)} | {fmt(r.p95_ms)} | {fmt(r.p99_ms)} "
            f"| {fmt(r.max_ms)} | {' | '.join(ratios)} |"
        )
    within = b.p95_ms is not None and b.p95_ms <= TARGET_MS
    verdict = "yes" if within else "no"
    print(f"\nB p95 key press -> agent INVITE: {fmt(b.p95_ms)} ms; within {TARGET_MS:g} ms: {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupted)
    prefix = installed_asterisk_prefix()
    work = Path(tempfile.mkdtemp(prefix="lianluo-bench-"))
    started = time.monotonic()
    digit_end_s = write_caller_pcap(work / "caller_media.pcap")
    agents: subprocess.Popen[bytes] | None = None
    results: dict[str, SideResult] = {}
    try:
        with scratch_database("lianluo_bench") as db_url, open(work / "agents.out", "wb") as agents_out:
            agents_port = free_sip_port()
            agents = start_agents(work, agents_port, work / "agents.log", agents_out)
            bench = Bench(work, work / "agents.log", digit_end_s)
            log_line("starting Lianluo and its Asterisk with the demo's prompts")
            stack = make_stack(
                work, MEMBERS, agents_port, db_url, prefix, name="key_to_ring", ivr=DEMO_IVR,
                recording=DEMO_RECORDING,
            )  # fmt: skip
            try:
                stack.start()
                qualify_now(stack, agent_ids(MEMBERS))
                wait_ready(stack, MEMBERS)
                for path in ("queue", "stasis"):
                    if args.warmup:
                        bench.measure(stack, path, args.rate, args.warmup)
                        wait_idle(stack, MEMBERS)
                for path in ("queue", "stasis"):
                    if agents.poll() is not None:
                        raise BenchError("the agents' SIPp exited; see agents.out in the work dir")
                    log_line(f"  {args.calls} calls at {args.rate:g} calls/s: {path}")
                    results[path] = bench.measure(stack, path, args.rate, args.calls)
                    wait_idle(stack, MEMBERS)
            finally:
                stack.shutdown()
    except (RuntimeError, AssertionError) as exc:  # BenchError, a timed-out wait, the app exiting
        print(f"benchmark failed: {exc}", file=sys.stderr)
        args.keep = True
        return 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if agents is not None:
            stop_process(agents)
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    a, b = results["queue"], results["stasis"]
    print_table(a, b)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "key_to_ring",
        "measured": "caller sends the RFC 2833 end packet of digit 1 -> agent SIPp receives the INVITE",
        "stasis_config": {"ivr": DEMO_IVR, "recording": DEMO_RECORDING},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seconds": round(time.monotonic() - started, 1),
        "queue": asdict(a),
        "stasis": asdict(b),
        "ratio_p50": ratio(b.p50_ms, a.p50_ms),
        "ratio_p95": ratio(b.p95_ms, a.p95_ms),
        "target_ms": TARGET_MS,
    }
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    problems = [f"{r.path}: none of {r.calls} calls reached an agent" for r in (a, b) if not r.paired]
    for problem in problems:
        print(f"benchmark failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
