"""A call flood from one source against the demo's call limits, and another source's calls.

One real Lianluo with its own Asterisk and the demo's call limits (security.call_limits in
config/demo.yaml: per source 10 calls/s, burst 50; per trunk 20 calls/s, burst 100; at once,
what the RTP range carries: 10,000 ports as in the demo). Two SIPp callers on the carrier
trunk, each from its own address (benchmarks/sipp/flood.xml):

  baseline  the other source alone: --other-rate calls/s for --seconds, each held --hold-s;
  flood     the same again while 127.0.0.2 sends --flood-rate calls/s for --seconds.

Prints, for the other source, answered calls and set-up (INVITE sent -> 200 OK received)
p50/p95/max in both runs and flood/baseline; for the flood, calls answered, refused with 503
and neither, and whether every flood call has exactly one closed interaction (found by its
caller ID, the SIPp call marker); the app's and Asterisk's CPU; and Asterisk's channels left.

Usage:
  .venv/bin/python benchmarks/flood.py              # 100 calls/s for 10 s against 5 calls/s
  .venv/bin/python benchmarks/flood.py --quick      # smoke run: 50 calls/s for 2 s

Writes JSON to benchmarks/results/flood.json (--quick: to the temporary directory). Exits 1
when a path is broken: a flood call without exactly one closed interaction, a call with neither
200 nor 503, or no baseline call answered; never because it is slow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_stack import (
    REPO,
    BenchError,
    BenchStack,
    cpu_seconds,
    fmt,
    installed_asterisk_prefix,
    interrupted,
    log_line,
    percentile,
    ratio,
    scratch_database,
)

from tests.support.flood import Caller, CallerLog, run_callers
from tests.support.stack import eventually, write_config

RESULTS = REPO / "benchmarks" / "results" / "flood.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "flood.json"
FLOOD_IP, OTHER_IP = "127.0.0.2", "127.0.0.3"
DID = "7000"
RTP_RANGE = (20000, 29999)  # the demo's size (10,000 ports), beside a running demo's ports


@dataclass
class SideFigures:
    calls: int
    answered: int
    refused: int
    neither: int
    setup_p50_ms: float | None
    setup_p95_ms: float | None
    setup_max_ms: float | None


def figures(log: CallerLog) -> SideFigures:
    setup = log.setup_ms()
    return SideFigures(
        calls=len(log.started),
        answered=len(log.answered),
        refused=len(log.refused),
        neither=len(log.unanswered),
        setup_p50_ms=percentile(setup, 0.50),
        setup_p95_ms=percentile(setup, 0.95),
        setup_max_ms=setup[-1] if setup else None,
    )


def make_stack(work: Path, db_url: str, prefix: Path) -> BenchStack:
    var_dir = work / "var"
    config = work / "center.yaml"
    # security.call_limits is not set: the defaults, which are the demo's.
    settings = write_config(
        config,
        var_dir,
        instance="flood",
        center_name="Flood benchmark",
        asterisk={"rtp_start": RTP_RANGE[0], "rtp_end": RTP_RANGE[1]},
        carrier={"name": "carrier", "match": [FLOOD_IP, OTHER_IP], "dids": [DID]},
    )
    return BenchStack(config, var_dir, db_url, prefix, work / "app.log", settings, log_level="INFO")


def flood_interactions(stack: BenchStack, markers: set[str], timeout: float) -> dict[str, Any]:
    """Per flood call (caller ID): its interactions; waits for all to be closed."""

    def rows() -> list[tuple[Any, ...]]:
        return stack.query(
            "SELECT ani, count(*), count(ended_at), min(outcome) FROM interactions"
            " WHERE legs->>'source' = %s GROUP BY ani",
            FLOOD_IP,
        )

    def closed() -> list[tuple[Any, ...]] | None:
        found = rows()
        return found if sum(r[2] for r in found) >= len(markers) else None

    with contextlib.suppress(AssertionError):
        eventually(closed, timeout, "every flood call's interaction closed")
    found = {r[0]: r for r in rows()}
    return {
        "calls": len(markers),
        "with_one_closed_interaction": sum(
            1 for m in markers if m in found and found[m][1] == found[m][2] == 1
        ),
        "without_interaction": sum(1 for m in markers if m not in found),
        "with_several": sum(1 for m in markers if m in found and found[m][1] > 1),
        "open": sum(r[1] - r[2] for r in found.values()),
        "refused": sum(1 for r in found.values() if r[3] == "refused"),
    }


def channels(stack: BenchStack) -> int:
    out = stack.cli("core show channels count")
    return int(out.split(" active channel")[0].split()[-1])


def run(args: argparse.Namespace, work: Path, stack: BenchStack) -> dict[str, Any]:
    other_calls = max(1, int(args.other_rate * args.seconds))
    flood_calls = max(1, int(args.flood_rate * args.seconds))
    hold_ms = int(args.hold_s * 1000)
    timeout = args.seconds + args.hold_s + 90

    def other(code: int) -> Caller:
        return Caller(OTHER_IP, stack.sip_port, DID, args.other_rate, other_calls, code, hold_ms, work)

    log_line(f"baseline: {other_calls} calls at {args.other_rate:g} calls/s from {OTHER_IP}")
    (baseline,) = run_callers([other(6001)], timeout)
    eventually(lambda: channels(stack) == 0, 30, "the baseline's calls to end")

    log_line(f"flood: {flood_calls} calls at {args.flood_rate:g} calls/s from {FLOOD_IP}, and the same again")
    assert stack.proc is not None
    ast_pid, py_pid = stack.asterisk_pid(), stack.proc.pid
    cpu0, t0 = (cpu_seconds(ast_pid), cpu_seconds(py_pid)), time.monotonic()
    flood = Caller(FLOOD_IP, stack.sip_port, DID, args.flood_rate, flood_calls, 6002, hold_ms, work)
    flood_log, under_flood = run_callers([flood, other(6003)], timeout)
    wall = time.monotonic() - t0
    cpu1 = (cpu_seconds(ast_pid), cpu_seconds(py_pid))

    closed = flood_interactions(stack, set(flood_log.started), timeout=60)
    with contextlib.suppress(AssertionError):
        eventually(lambda: channels(stack) == 0, 60, "every call to end")
    base, under, fl = figures(baseline), figures(under_flood), figures(flood_log)
    return {
        "baseline": asdict(base),
        "under_flood": asdict(under),
        "flood": asdict(fl),
        "flood_interactions": closed,
        "setup_p95_ratio": ratio(under.setup_p95_ms, base.setup_p95_ms),
        "asterisk_cpu_pct": round(100 * (cpu1[0] - cpu0[0]) / wall, 1),
        "python_cpu_pct": round(100 * (cpu1[1] - cpu0[1]) / wall, 1),
        "channels_left": channels(stack),
    }


def report(res: dict[str, Any], args: argparse.Namespace) -> None:
    b, u, f, c = res["baseline"], res["under_flood"], res["flood"], res["flood_interactions"]
    print(f"\nFlood: {args.flood_rate:g} calls/s for {args.seconds:g} s from {FLOOD_IP}; the other source")
    print(f"{OTHER_IP} at {args.other_rate:g} calls/s; each answered call held {args.hold_s:g} s.\n")
    print("| other source | calls | answered | refused | set-up p50 ms | p95 ms | max ms |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, s in (("alone", b), ("under the flood", u)):
        print(
            f"| {name} | {s['calls']} | {s['answered']} | {s['refused']} | {fmt(s['setup_p50_ms'])}"
            f" | {fmt(s['setup_p95_ms'])} | {fmt(s['setup_max_ms'])} |"
        )
    print(f"\nset-up p95 under the flood / alone: {fmt(res['setup_p95_ratio'], 2)}x\n")
    print("| flood | calls | answered | refused (503) | neither | one closed interaction | open |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    print(
        f"| {FLOOD_IP} | {f['calls']} | {f['answered']} | {f['refused']} | {f['neither']}"
        f" | {c['with_one_closed_interaction']} | {c['open']} |"
    )
    print(
        f"\nCPU during the flood: Asterisk {res['asterisk_cpu_pct']}%, app {res['python_cpu_pct']}%"
        f" (of one core); Asterisk channels afterwards: {res['channels_left']}"
    )


def broken(res: dict[str, Any]) -> list[str]:
    why = []
    c, f = res["flood_interactions"], res["flood"]
    if c["with_one_closed_interaction"] != c["calls"]:
        missing = c["calls"] - c["with_one_closed_interaction"]
        why.append(f"{missing} flood call(s) without exactly one closed interaction")
    if f["neither"] or res["under_flood"]["neither"]:
        why.append("a call got neither 200 nor 503")
    if not res["baseline"]["answered"]:
        why.append("no baseline call was answered")
    return why


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flood-rate", type=float, default=100.0)
    parser.add_argument("--other-rate", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hold-s", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 calls/s for 2 s")
    parser.add_argument("--output", type=Path, help="where the JSON goes (default: see above)")
    args = parser.parse_args()
    if args.quick:
        args.flood_rate, args.other_rate, args.seconds, args.hold_s = 50.0, 5.0, 2.0, 1.0
    if shutil.which("sipp") is None:
        print("sipp is not installed (make setup installs it)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, interrupted)
    work = Path(tempfile.mkdtemp(prefix="lianluo-flood-"))
    stack: BenchStack | None = None
    try:
        with scratch_database("lianluo_bench_flood") as db_url:
            stack = make_stack(work, db_url, installed_asterisk_prefix())
            stack.start()
            res = run(args, work, stack)
            stack.shutdown()
            stack = None
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            stack.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report(res, args)
    out = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "at": datetime.now(UTC).isoformat(),
        "host": platform.node(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    out.write_text(json.dumps({"meta": meta, **res}, indent=2) + "\n")
    why = broken(res)
    for w in why:
        print(f"BROKEN: {w}", file=sys.stderr)
    return 1 if why else 0


if __name__ == "__main__":
    sys.exit(main())
