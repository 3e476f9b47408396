"""What recording costs: Asterisk's CPU per concurrent call with and without recording, side by
side in one run (issue 14, "Benchmarks").

The calls are capacity.py's concurrent mode (bench_stack.py): SIPp callers from the carrier's
address on our Stasis path (DID 7100: the IVR's one-word greeting, digit 1, queue `general`),
one SIPp UAS answering for every agent (sipp/agents_capacity.xml), RTP both ways (the agent
streams u-law, the caller echoes it). Two runs of the same calls, each on its own Lianluo and
Asterisk with the demo's recording section (config/demo.yaml):

  without  queue `general` has recording mode `none` (no MixMonitor, no consent notice);
  with     queue `general` has mode `all`: when the agent answers, the app starts the stereo
           MixMonitor on the caller's channel (app/recording/service.py), as in the demo.

The IVR part (`recording.ivr`) is off in both: it ends before the agent answers, so it is not in
the measured window, and the queue's mode does not govern it.

Each run ramps up to every --steps size (default 50 and 200 concurrent calls); once every call
of a step is bridged (and, in the "with" run, recorded), it measures over a steady hold window:
  - Asterisk's and the app's CPU (utime + stime from /proc/<pid>/stat), per concurrent call;
  - the bytes the recordings grew by (their raw files), and Asterisk's write_bytes
    (/proc/<pid>/io), per call-minute;
  - audio health: Asterisk's receive packet loss and jitter (`pjsip show channelstats`), the
    task processor warnings in its log, its threads waiting on the disk (state D) and the
    machine's I/O stall (/proc/pressure/io).
Then it hangs every call up and checks the recordings: a row and a stereo file per call in the
"with" run (file size as in the row), none at all in the "without" run; and the app's CPU to
finish a call (WAV, SHA-256, waveform, row) per call.

Usage:
  .venv/bin/python benchmarks/recording_cost.py                    # 50 and 200 calls
  .venv/bin/python benchmarks/recording_cost.py --steps 50 100 200 --hold-window 30
  .venv/bin/python benchmarks/recording_cost.py --order with without   # the other run first
  .venv/bin/python benchmarks/recording_cost.py --quick            # 2 and 4 calls, ~45 s

Writes JSON to benchmarks/results/recording_cost.json (--quick: to the temporary directory).
Exits 1 when a run measured no call or the recordings are not what the run says (made without,
missing with). Everything it starts (SIPp, the apps, Asterisk, the database, the work dir) is
removed at the end, also on Ctrl-C, SIGTERM or error (bench_stack.run_held_bench).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_stack import (
    REPO,
    STASIS_DID,
    Bench,
    BenchError,
    BenchStack,
    HeldBench,
    HeldCalls,
    agent_ids,
    channel_count,
    cpu_seconds,
    fmt,
    log_line,
    make_stack,
    percentile,
    qualify_now,
    ratio,
    run_held_bench,
    scratch_database,
    settled,
    wait_batch,
    wait_ready,
    write_results,
)

from tests.support.stack import eventually

RESULTS = REPO / "benchmarks" / "results" / "recording_cost.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "recording_cost.json"
RUNS = {"without": "mode none", "with": "mode all"}
RTP_RANGE = (20000, 29999)  # as capacity.py: 2,500 calls' worth, away from a demo's range
# What each run's calls leave in interaction_events when the agent answers: the rule's verdict.
ANSWERED_EVENT = {"without": "recording_skipped", "with": "recording_started"}
TASKPROCESSOR_WARNING = "task processor queue reached"


def demo_recording(run: str) -> dict[str, Any]:
    """The demo's recording section, with queue `general` recorded (`with`) or not (`without`).
    The QA forms (a path relative to the demo's file) are left out: nothing here scores."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["recording"]
    section: dict[str, Any] = {k: v for k, v in demo.items() if k != "forms"}
    section["ivr"] = False
    # The demo's other queues' rules name queues this center has not (it has `general` only).
    section["queues"] = {"general": {"mode": "all" if run == "with" else "none"}}
    return section


# ---------------------------------------------------------------------------
# What is measured
# ---------------------------------------------------------------------------


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage (/proc/<pid>/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def thread_states(pid: int) -> dict[str, int]:
    """How many of the process's threads are in each state (R running, S sleeping, D waiting
    on the disk, ...), and "all"."""
    counts: dict[str, int] = {"all": 0, "R": 0, "D": 0}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        state = text[text.rindex(")") + 2]
        counts[state] = counts.get(state, 0) + 1
        counts["all"] += 1
    return counts


def io_stall_us() -> int | None:
    """Microseconds during which some task of the machine waited on I/O (/proc/pressure/io)."""
    try:
        some = Path("/proc/pressure/io").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(some.rsplit("total=", 1)[1])


def raw_bytes(recordings: Path) -> tuple[int, int]:
    """(files, bytes) of the recordings being written (MixMonitor's raw files)."""
    sizes = [p.stat().st_size for p in (recordings / ".live").glob("*.raw")] if recordings.exists() else []
    return len(sizes), sum(sizes)


def stored_files(recordings: Path) -> dict[str, int]:
    """Relative path -> size of every finished recording (WAV) under the directory."""
    if not recordings.exists():
        return {}
    return {str(p.relative_to(recordings)): p.stat().st_size for p in recordings.rglob("*.wav")}


# A row of `pjsip show channelstats`: bridge, channel, up time, codec, then receive count, lost,
# loss %, jitter (s), transmit count, lost, loss %, jitter, RTT. Counts may carry a K or M.
CHANNELSTATS = re.compile(
    r"^\s*\S+\s+(?P<channel>\S+)\s+\d+:\d\d:\d\d\s+\S+\s+"
    r"(?P<rx>\d+)(?P<rx_unit>[KM]?)\s+(?P<lost>\d+)(?P<lost_unit>[KM]?)\s+\d+\s+(?P<jitter>[\d.]+)\s",
    re.M,
)
UNIT = {"": 1, "K": 1000, "M": 1000_000}


def rtp_health(stack: BenchStack) -> dict[str, Any]:
    """Asterisk's receive side of every channel (`pjsip show channelstats`, since each call
    began): packets received and lost, and jitter (ms). SIPp sends no RTCP, so what the far
    ends received is not known."""
    out = stack.cli("pjsip show channelstats")
    with open(stack.var_dir / "channelstats.txt", "a") as f:  # kept with --keep
        f.write(out + "\n")
    rx = lost = 0
    jitters: list[float] = []
    for m in CHANNELSTATS.finditer(out):
        rx += int(m["rx"]) * UNIT[m["rx_unit"]]
        lost += int(m["lost"]) * UNIT[m["lost_unit"]]
        jitters.append(float(m["jitter"]) * 1000)
    jitters.sort()
    return {
        "channels": len(jitters),
        "rx_packets": rx,
        "rx_lost": lost,
        "rx_loss_pct": 100 * lost / (rx + lost) if rx + lost else None,
        "jitter_p95_ms": percentile(jitters, 0.95),
        "jitter_max_ms": jitters[-1] if jitters else None,
    }


def asterisk_log(stack: BenchStack) -> Path | None:
    found = sorted(stack.var_dir.rglob("messages.log"))
    return found[0] if found else None


def taskprocessor_warnings(log: Path | None, since: int) -> int:
    """Task processor queue warnings Asterisk logged after byte `since` of its log."""
    if log is None or not log.exists():
        return 0
    with open(log, "rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace").count(TASKPROCESSOR_WARNING)


def log_size(log: Path | None) -> int:
    return log.stat().st_size if log is not None and log.exists() else 0


def answered(stack: BenchStack, markers: list[str], kind: str) -> int:
    """How many of the calls the app has seen answered (its recording rule applied)."""
    rows = stack.query(
        "SELECT count(DISTINCT i.id) FROM interactions i JOIN interaction_events e "
        "ON e.interaction_id = i.id WHERE i.ani = ANY(%s) AND e.kind = %s",
        markers,
        kind,
    )
    return int(rows[0][0])


# ---------------------------------------------------------------------------
# One run: ramp up, hold, measure; hang up; check the recordings
# ---------------------------------------------------------------------------


def wait_up(stack: BenchStack, run: str, markers: list[str], recordings: Path) -> None:
    """Every call bridged and its rule applied (where recorded, the consent notice has been
    heard whole), two channels each, and in the "with" run every MixMonitor writing."""
    n, kind = len(markers), ANSWERED_EVENT[run]
    eventually(lambda: answered(stack, markers, kind) == n, 60, f"{n} calls answered ({kind})", 0.5)
    eventually(lambda: channel_count(stack) == 2 * n, 30, f"{2 * n} channels", 0.3)
    if run == "with":
        eventually(lambda: raw_bytes(recordings)[0] == n, 30, f"{n} raw files", 0.3)


def one_run(bench: Bench, stack: BenchStack, run: str, args: argparse.Namespace) -> dict[str, Any]:
    members = args.members
    qualify_now(stack, agent_ids(members))
    wait_ready(stack, members)
    assert stack.proc is not None
    py, ast = stack.proc.pid, stack.asterisk_pid()
    recordings = stack.var_dir / "recordings"
    alog = asterisk_log(stack)
    log_start = log_size(alog)
    held = HeldCalls(bench, stack, STASIS_DID)
    markers: list[str] = []
    steps: list[dict[str, Any]] = []
    finish: dict[str, Any] = {}
    try:
        for target in args.steps:
            log_line(f"  {run}: {len(markers)} -> {target} concurrent calls")
            new = held.place(target - len(markers), args.ramp_rate)
            batch = wait_batch(held, new, bench.digit_end_s, len(new) / args.ramp_rate + 30)
            markers += new
            failed = batch.unanswered + batch.unrouted
            if failed:
                raise BenchError(f"{run}: {failed} of {len(new)} calls did not reach an agent")
            wait_up(stack, run, markers, recordings)
            time.sleep(args.settle)
            tp0 = log_size(alog)
            cpu0 = (cpu_seconds(ast), cpu_seconds(py))
            disk0, wb0 = raw_bytes(recordings)[1], write_bytes(ast)
            io0 = io_stall_us()
            t0 = time.monotonic()
            # Every call up, none being set up: the cost of holding. Sampled meanwhile: how many
            # of Asterisk's threads wait on the disk (state D) or run.
            samples: list[dict[str, int]] = []
            while time.monotonic() < t0 + args.hold_window:
                samples.append(thread_states(ast))
                time.sleep(min(0.5, max(0.0, t0 + args.hold_window - time.monotonic())))
            t1 = time.monotonic()
            io1 = io_stall_us()
            cpu1 = (cpu_seconds(ast), cpu_seconds(py))
            disk1, wb1 = raw_bytes(recordings)[1], write_bytes(ast)
            call_minutes = target * (t1 - t0) / 60
            health = rtp_health(stack)
            dropped = len(held.lines("BYE"))
            steps.append(
                {
                    "concurrent": target,
                    "window_s": t1 - t0,
                    "setup_p95_ms": percentile(batch.setup_ms, 0.95),
                    "dropped": dropped,
                    "channels": channel_count(stack),
                    "asterisk_cpu_pct": 100 * (cpu1[0] - cpu0[0]) / (t1 - t0),
                    "app_cpu_pct": 100 * (cpu1[1] - cpu0[1]) / (t1 - t0),
                    "recording_bytes_per_call_min": (disk1 - disk0) / call_minutes,
                    "asterisk_write_bytes_per_call_min": (wb1 - wb0) / call_minutes,
                    "rtp": health,
                    "taskprocessor_warnings": taskprocessor_warnings(alog, tp0),
                    "asterisk_threads": samples[-1]["all"],
                    "asterisk_threads_d_mean": sum(s["D"] for s in samples) / len(samples),
                    "asterisk_threads_d_max": max(s["D"] for s in samples),
                    "io_stall_pct": None if io0 is None or io1 is None else (io1 - io0) / 1e4 / (t1 - t0),
                    "load1": os.getloadavg()[0],
                }
            )
            if dropped or not held.alive():
                raise BenchError(f"{run}: {dropped} calls dropped while held")
        cpu_end = cpu_seconds(py)
        t_end = time.monotonic()
    finally:
        held.end()
    # The app's work once the calls end: in the "with" run, each file made a WAV with its
    # SHA-256 and waveform, and its row written.
    expected = len(markers) if run == "with" else 0

    def done() -> bool:
        rows = stack.query("SELECT count(*) FROM recordings WHERE ani = ANY(%s)", markers)[0][0]
        return settled(stack) and rows == expected and raw_bytes(recordings)[0] == 0

    eventually(done, 60 + len(markers) * 0.5, f"the app to settle with {expected} recordings", 0.2)
    finish = {
        "app_cpu_ms_per_call": 1000 * (cpu_seconds(py) - cpu_end) / len(markers),
        "seconds": time.monotonic() - t_end,
    }
    return {
        "run": run,
        "members": members,
        "steps": steps,
        "finish": finish,
        "recordings": check_recordings(stack, markers, recordings),
        "taskprocessor_warnings": taskprocessor_warnings(alog, log_start),
    }


def check_recordings(stack: BenchStack, markers: list[str], recordings: Path) -> dict[str, Any]:
    """The recordings the run's calls left: rows, the files they name, and every file there."""
    rows = stack.query(
        "SELECT path, size_bytes, channels, duration_ms FROM recordings WHERE ani = ANY(%s)", markers
    )
    files = stored_files(recordings)
    matching = sum(1 for path, size, *_ in rows if files.get(path) == size)
    total_ms = sum(r[3] for r in rows)
    return {
        "calls": len(markers),
        "rows": len(rows),
        "files": len(files),
        "files_matching_rows": matching,
        "stereo": sum(1 for r in rows if r[2] == 2),
        "mean_duration_s": total_ms / 1000 / len(rows) if rows else None,
        "wav_bytes_per_call_min": sum(r[1] for r in rows) / (total_ms / 60000) if total_ms else None,
    }


def problems_of(results: dict[str, Any]) -> list[str]:
    """What says the benchmark did not measure what it says: no step, or recordings where none
    should be, or missing where every call should have one."""
    out = [f"{run}: not measured" for run in RUNS if run not in results.get("runs", {})]
    for run, res in results.get("runs", {}).items():
        if not res["steps"]:
            out.append(f"{run}: no step measured")
        rec = res["recordings"]
        if run == "without" and (rec["rows"] or rec["files"]):
            out.append(f"without: {rec['rows']} recording rows and {rec['files']} files (expected none)")
        if run == "with" and not (
            rec["rows"] == rec["calls"] == rec["files_matching_rows"] == rec["stereo"] == rec["files"]
        ):
            out.append(f"with: recordings do not match the calls: {rec}")
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def step_of(res: dict[str, Any], n: int) -> dict[str, Any] | None:
    return next((s for s in res["steps"] if s["concurrent"] == n), None)


def print_table(results: dict[str, Any]) -> None:
    runs = results["runs"]
    print(
        "\nRecording's cost: concurrent held calls, RTP both ways (CPU over the hold window, % of one core)"
    )
    print(
        "| run | concurrent | Asterisk %cpu | per call | app %cpu | per call "
        "| recording KB/call-min | Asterisk write KB/call-min | rx loss % | jitter p95 ms "
        "| task processor warnings | Asterisk threads in D, mean / max | I/O stall % | load |"
    )
    print("|---|" + "---:|" * 13)
    sizes = sorted({s["concurrent"] for r in runs.values() for s in r["steps"]})
    for n in sizes:
        for run, res in runs.items():
            s = step_of(res, n)
            if s is None:
                continue
            rtp = s["rtp"]
            print(
                f"| {run} | {n} | {fmt(s['asterisk_cpu_pct'])} | {fmt(s['asterisk_cpu_pct'] / n, 3)} "
                f"| {fmt(s['app_cpu_pct'])} | {fmt(s['app_cpu_pct'] / n, 3)} "
                f"| {fmt(s['recording_bytes_per_call_min'] / 1024, 0)} "
                f"| {fmt(s['asterisk_write_bytes_per_call_min'] / 1024, 0)} "
                f"| {fmt(rtp['rx_loss_pct'], 2)} | {fmt(rtp['jitter_p95_ms'], 2)} "
                f"| {s['taskprocessor_warnings']} "
                f"| {fmt(s['asterisk_threads_d_mean'])} / {s['asterisk_threads_d_max']} "
                f"| {fmt(s['io_stall_pct'])} | {fmt(s['load1'])} |"
            )
        r = results["ratios"].get(str(n))
        if r:
            print(
                f"| ratio with/without | {n} | {fmt(r['asterisk_cpu'], 2)} | {fmt(r['asterisk_cpu'], 2)} "
                f"| {fmt(r['app_cpu'], 2)} | {fmt(r['app_cpu'], 2)} |||||||||"
            )
    print("\nAfter hang-up: the app's CPU to finish each call (ms per call), and the recordings left")
    print(
        "| run | app CPU ms/call | rows | files | files matching their row | stereo "
        "| mean length s | WAV KB/call-min |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run, res in runs.items():
        rec = res["recordings"]
        wav = rec["wav_bytes_per_call_min"]
        print(
            f"| {run} | {fmt(res['finish']['app_cpu_ms_per_call'], 2)} | {rec['rows']} | {rec['files']} "
            f"| {rec['files_matching_rows']} | {rec['stereo']} | {fmt(rec['mean_duration_s'])} "
            f"| {fmt(None if wav is None else wav / 1024, 0)} |"
        )
    for run, res in runs.items():
        warnings = res["taskprocessor_warnings"]
        print(f"{run}: task processor warnings in Asterisk's log over the whole run: {warnings}")


def ratios(runs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "with" not in runs or "without" not in runs:
        return out
    for s in runs["with"]["steps"]:
        base = step_of(runs["without"], s["concurrent"])
        if base is not None:
            out[str(s["concurrent"])] = {
                "asterisk_cpu": ratio(s["asterisk_cpu_pct"], base["asterisk_cpu_pct"]),
                "app_cpu": ratio(s["app_cpu_pct"], base["app_cpu_pct"]),
            }
    return out


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: a few calls, short windows")
    p.add_argument("--steps", type=int, nargs="+", help="concurrent calls measured (default 50 200)")
    p.add_argument("--ramp-rate", type=float, help="calls/s placing the held calls (default 20)")
    p.add_argument("--hold-window", type=float, help="seconds measured with every call up (default 20)")
    p.add_argument("--settle", type=float, help="seconds after the last call is up, before measuring (2)")
    p.add_argument("--order", nargs=2, choices=list(RUNS), default=["without", "with"], help="run order")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, SIPp traces, recordings)")
    p.add_argument("--output", type=Path, help=f"the JSON file (default {RESULTS.relative_to(REPO)})")
    args = p.parse_args(argv)
    q = args.quick
    args.steps = sorted(set(args.steps or ([2, 4] if q else [50, 200])))
    args.ramp_rate = args.ramp_rate or (10.0 if q else 20.0)
    args.hold_window = args.hold_window if args.hold_window is not None else (3.0 if q else 20.0)
    args.settle = args.settle if args.settle is not None else (0.5 if q else 2.0)
    args.members = max(args.steps)
    args.output = args.output or (QUICK_RESULTS if q else RESULTS)
    if sorted(args.order) != sorted(RUNS):
        p.error("--order names each run once")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}

    def measure(hb: HeldBench) -> None:
        for run in args.order:
            log_line(f"{run} recording ({RUNS[run]}): Lianluo and Asterisk, {args.members} agents")
            (hb.work / run).mkdir()
            # A database per run: on one shared with the run before, the app would find that
            # run's calls open (and close them) and every panel user's password changed (and
            # hash each again, 0.5 s of CPU apiece), inside the measurement.
            with scratch_database(f"lianluo_reccost_{run}") as db_url:
                stack = make_stack(
                    hb.work / run,
                    args.members,
                    hb.agents_port,
                    db_url,
                    hb.prefix,
                    name=f"recording cost {run}",
                    rtp=RTP_RANGE,
                    recording=demo_recording(run),
                )
                try:
                    stack.start()
                    results.setdefault("runs", {})[run] = one_run(hb.bench, stack, run, args)
                finally:
                    stack.shutdown()
            hb.check_agents()

    def report(seconds: float, fds: int) -> None:
        results["ratios"] = ratios(results["runs"])
        print_table(results)
        write_results(args.output, "recording_cost", args, seconds, fds, results, rtp_range=RTP_RANGE)

    return run_held_bench("reccost", results, measure, problems_of, report, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
