"""Wallboard update latency: from a call's event to the wallboard message that shows it.

One real Lianluo with its own Asterisk (the benchmarks' center, bench_stack.py: DID 7100, a
one-word greeting, digit 1 into queue `general`, --agents agents answered by one SIPp UAS that
talks 200 ms and hangs up), SIPp callers from the carrier's address (sipp/caller.xml: voice,
digit 1), and a supervisor signed in to the panel whose websocket (/ws) receives the wallboard
messages, each stamped with the time it arrived.

For every call, two events change a wallboard figure: `queued` (offered + 1) and `connected`
(answered + 1). The latency of an event is from its time (`interaction_events.at`, the app's
clock on this host) to the arrival of the first wallboard message whose count for the day has
reached that event's rank (the n-th `queued` event by time -> the first message with offered >=
n). It covers the write-behind to PostgreSQL (the board folds events once they are saved), the
fold, the push (at most every 0.25 s) and the websocket.

Two runs in one stack, the same measurement:

  baseline  --baseline-rate calls/s (1) for --baseline-calls calls;
  load      --rate calls/s (20) for --seconds.

Prints p50/p95/p99/max per run and per event kind, the share within 1 s (the issue's target),
and load p95 / baseline p95. JSON to benchmarks/results/wallboard_latency.json (--quick: the
temporary directory). Exits 1 when a run measured no update or a call's update never came
(broken), never because it is slow.

  .venv/bin/python benchmarks/wallboard_latency.py            # 1 call/s x 20, then 20 calls/s for 30 s
  .venv/bin/python benchmarks/wallboard_latency.py --quick    # 1 call/s x 4, then 20 calls/s for 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from bench_stack import (
    REPO,
    STASIS_DID,
    Bench,
    BenchError,
    BenchStack,
    fmt,
    free_sip_port,
    installed_asterisk_prefix,
    interrupted,
    log_line,
    make_stack,
    percentile,
    ratio,
    scratch_database,
    start_agents,
    stop_process,
    wait_ready,
    write_caller_pcap,
)

RESULTS = REPO / "benchmarks" / "results" / "wallboard_latency.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "wallboard_latency.json"
SUPERVISOR = "lead"
TARGET_S = 1.0  # the issue's: figures update within 1 s of the event
FIGURE = {"queued": "offered", "connected": "answered"}  # the event -> the day's count it moves


@dataclass
class RunFigures:
    name: str
    rate: float
    calls: int
    answered: int
    updates: int  # events whose update was seen
    missing: int  # events no message ever reflected
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    within_target_pct: float | None
    by_kind: dict[str, dict[str, float | None]]


class BoardWatch:
    """The supervisor's websocket: every wallboard message's arrival time and day counts."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.seen: list[tuple[float, dict[str, int]]] = []
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._news = asyncio.Event()

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        password = self.stack.secrets["panel_passwords"][SUPERVISOR]
        async with self._http.post(
            self.stack.web_url + "/login", json={"username": SUPERVISOR, "password": password}
        ) as resp:
            if resp.status != 200:
                raise BenchError(f"the supervisor could not sign in: {resp.status} {await resp.text()}")
        ws = await self._http.ws_connect(
            self.stack.web_url.replace("http", "ws", 1) + "/ws", headers={"Origin": self.stack.web_url}
        )
        self._task = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            arrived = time.time()  # before parsing: the message is here
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            body = json.loads(msg.data)
            if body.get("type") != "wallboard":
                continue
            today = (body["board"]["queues"].get("general") or {}).get("today") or {}
            self.seen.append((arrived, {k: int(today.get(k) or 0) for k in ("offered", "answered")}))
            self._news.set()

    async def reaches(self, offered: int, answered: int, timeout: float) -> None:
        """Until the board shows these counts, or `timeout` (the figures then tell what is missing)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.count("offered") < offered or self.count("answered") < answered:
                    self._news.clear()
                    await self._news.wait()

    def count(self, figure: str) -> int:
        return self.seen[-1][1][figure] if self.seen else 0

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            await self._http.close()


def latencies(
    seen: list[tuple[float, dict[str, int]]], events: list[tuple[str, float]], window: tuple[float, float]
) -> tuple[dict[str, list[float]], int]:
    """Per event kind, the latency (ms) of each event of the window, and how many never showed.
    `events`: (kind, time) of every queued/connected event of the run so far, in time order."""
    out: dict[str, list[float]] = {k: [] for k in FIGURE}
    missing = 0
    for kind, figure in FIGURE.items():
        counts = [c[figure] for _, c in seen]  # never decreasing within a day
        times = [t for kind_, t in events if kind_ == kind]
        for rank, at in enumerate(times, start=1):
            if not window[0] <= at < window[1]:
                continue
            i = bisect.bisect_left(counts, rank)
            if i == len(counts):
                missing += 1
            else:
                out[kind].append(max(0.0, seen[i][0] - at) * 1000)
    return out, missing


def summary(
    name: str, rate: float, calls: int, answered: int, by_kind: dict[str, list[float]], missing: int
) -> RunFigures:
    every = sorted(x for xs in by_kind.values() for x in xs)
    return RunFigures(
        name=name,
        rate=rate,
        calls=calls,
        answered=answered,
        updates=len(every),
        missing=missing,
        p50_ms=percentile(every, 0.50),
        p95_ms=percentile(every, 0.95),
        p99_ms=percentile(every, 0.99),
        max_ms=every[-1] if every else None,
        within_target_pct=round(100 * sum(x <= TARGET_S * 1000 for x in every) / len(every), 1)
        if every
        else None,
        by_kind={
            kind: {"p50_ms": percentile(sorted(xs), 0.50), "p95_ms": percentile(sorted(xs), 0.95)}
            for kind, xs in by_kind.items()
        },
    )


async def measure(args: argparse.Namespace, bench: Bench, stack: BenchStack) -> list[RunFigures]:
    watch = BoardWatch(stack)
    await watch.open()
    runs = [
        ("baseline", args.baseline_rate, args.baseline_calls),
        ("load", args.rate, int(args.rate * args.seconds)),
    ]
    windows: list[tuple[str, float, int, tuple[float, float]]] = []
    try:
        for code, (name, rate, calls) in enumerate(runs, start=4000):
            offered_before, answered_before = watch.count("offered"), watch.count("answered")
            log_line(f"{name}: {calls} calls at {rate:g} calls/s")
            started = time.time()
            await asyncio.to_thread(bench.caller, stack, STASIS_DID, rate, calls, code)
            # Every call's figures on the board (or a call that never got there: broken).
            await watch.reaches(offered_before + calls, answered_before + calls, timeout=30)
            await asyncio.sleep(1.0)  # the last push
            windows.append((name, rate, calls, (started, time.time())))
            answered = watch.count("answered") - answered_before
            log_line(
                f"{name}: {watch.count('offered') - offered_before} offered, {answered} answered on the board"
            )
            await asyncio.to_thread(wait_ready, stack, args.agents)
    finally:
        await watch.close()
    rows = stack.query(
        "SELECT kind, extract(epoch FROM at)::float8 FROM interaction_events"
        " WHERE kind = ANY(%s) ORDER BY at, id",
        list(FIGURE),
    )
    events = [(str(k), float(t)) for k, t in rows]
    out = []
    for name, rate, calls, window in windows:
        by_kind, missing = latencies(watch.seen, events, window)
        answered = sum(1 for k, t in events if k == "connected" and window[0] <= t < window[1])
        out.append(summary(name, rate, calls, answered, by_kind, missing))
    return out


def report(runs: list[RunFigures], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\nWallboard update latency (event -> websocket message), {args.agents} agents answering.\n")
    print("| run | calls/s | calls | updates | p50 ms | p95 ms | p99 ms | max ms | within 1 s |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in runs:
        print(
            f"| {r.name} | {r.rate:g} | {r.calls} | {r.updates} | {fmt(r.p50_ms)} | {fmt(r.p95_ms)}"
            f" | {fmt(r.p99_ms)} | {fmt(r.max_ms)} | {fmt(r.within_target_pct)}% |"
        )
    print("\n| event | run | p50 ms | p95 ms |")
    print("|---|---|--:|--:|")
    for r in runs:
        for kind, f in r.by_kind.items():
            print(f"| {kind} | {r.name} | {fmt(f['p50_ms'])} | {fmt(f['p95_ms'])} |")
    base, load = runs[0], runs[-1]
    p95_ratio = ratio(load.p95_ms, base.p95_ms)
    print(f"\nload p95 / baseline p95: {fmt(p95_ratio, 2)}x")
    return {"runs": [asdict(r) for r in runs], "p95_ratio": p95_ratio}


def broken(runs: list[RunFigures]) -> list[str]:
    why = []
    for r in runs:
        if not r.updates:
            why.append(f"{r.name}: no update measured")
        if r.missing:
            why.append(f"{r.name}: {r.missing} event(s) never shown on the wallboard")
        if r.answered < r.calls:
            why.append(f"{r.name}: {r.calls - r.answered} call(s) not answered")
    return why


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline-rate", type=float, default=1.0)
    parser.add_argument("--baseline-calls", type=int, default=20)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 calls at 1/s, 20 calls/s for 3 s")
    parser.add_argument("--output", type=Path, help="where the JSON goes (default: see above)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.baseline_calls = 3.0, 4
    if shutil.which("sipp") is None:
        print("sipp is not installed (make setup installs it)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, interrupted)
    work = Path(tempfile.mkdtemp(prefix="lianluo-wallboard-"))
    digit_end_s = write_caller_pcap(work / "caller_media.pcap")
    agents: subprocess.Popen[bytes] | None = None
    stack: BenchStack | None = None
    try:
        with scratch_database("lianluo_bench_wallboard") as db_url, open(work / "agents.out", "wb") as out:
            agents_port = free_sip_port()
            agents = start_agents(work, agents_port, work / "agents.log", out)
            stack = make_stack(
                work,
                args.agents,
                agents_port,
                db_url,
                installed_asterisk_prefix(),
                name="wallboard latency",
                web={"users": [{"username": SUPERVISOR, "name": "Lee Lead", "role": "supervisor"}]},
            )
            stack.start()
            wait_ready(stack, args.agents)
            runs = asyncio.run(measure(args, Bench(work, work / "agents.log", digit_end_s), stack))
    except (RuntimeError, AssertionError) as exc:  # BenchError, a timed-out wait, the app exiting
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.shutdown()
        if agents is not None:
            stop_process(agents)
        shutil.rmtree(work, ignore_errors=True)
    res = report(runs, args)
    out_path = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "at": datetime.now(UTC).isoformat(),
        "host": platform.node(),
        "load1": os.getloadavg()[0],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    out_path.write_text(json.dumps({"meta": meta, **res}, indent=2) + "\n")
    why = broken(runs)
    for w in why:
        print(f"BROKEN: {w}", file=sys.stderr)
    return 1 if why else 0


if __name__ == "__main__":
    sys.exit(main())
