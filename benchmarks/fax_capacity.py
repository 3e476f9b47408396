"""Fax on this machine: Asterisk's CPU per fax against a plain voice call, and pages per minute.

One real Lianluo (`python -m app run`, its own Asterisk, a scratch database, free ports) sends
catalogue documents as fax jobs (`POST /api/faxes/jobs`, `fax.job_lines` at once) through the
carrier trunk to a second Asterisk playing the customers' fax machines (tests/support/fax_machine.py:
ReceiveFAX, res_fax_spandsp, ECM). Two modes, each with a center and a machine of its own:

  g711   fax as audio (ulaw), the default (`fax.t38: false`);
  t38    `fax.t38: true`, and the machine offers T.38 too: the session switches to UDPTL.

In each mode, in the same run:

- **idle**: our Asterisk's CPU with no call, over the window;
- **voice**: K plain voice calls from our Asterisk through the same trunk (music on hold to the
  far end, which echoes it back: audio both ways, like a fax call), our Asterisk's CPU over the
  window while all K are up;
- **fax**: K faxes sent at once; our Asterisk's CPU over the window while they are all in SendFAX.

The CPU figures are % of one core per call, idle subtracted ((window % - idle %) / calls on),
from /proc/<pid>/stat; the ratio fax/voice is the figure to read (the machine is shared).

Pages per minute (g711): N faxes queued at once (N = 1, 10, 30), each the cover page and the
2-page product sheet; pages the far end received / minutes from the first job queued to the last
one finished (dialling, answer and T.30 handshakes included). A fax that fails is counted apart.

Usage:
  .venv/bin/python benchmarks/fax_capacity.py            # K = 10, N = 1, 10, 30; ~6 min
  .venv/bin/python benchmarks/fax_capacity.py --quick    # K = 2, N = 1, 2, one page; both modes at once

Needs the cached Asterisk (scripts/install-asterisk) and PostgreSQL (DATABASE_URL or
127.0.0.1:5432). Writes the figures to benchmarks/results/fax_capacity.json (--quick: to
$TMPDIR/lianluo-bench-quick/). Exits 1 when a mode measured no fax. Everything it starts is
stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_stack import BenchStack, cpu_seconds  # noqa: E402

from tests.support.fax_machine import FaxMachine  # noqa: E402
from tests.support.stack import eventually, installed_asterisk_prefix, scratch_database, write_config  # noqa: E402

SHEET = REPO / "config" / "fax" / "wm100-product-sheet.pdf"  # 2 pages
FORM = REPO / "config" / "fax" / "repair-form.pdf"  # 1 page
VOICE_PREFIX = "0109"  # the machine answers these with Echo(): a voice call's far end
RTP = {"g711": (38000, 38999), "t38": (39000, 39999)}


class Machines(FaxMachine):
    """The customers' fax machines, and a far end for voice calls (numbers 0109...)."""

    def _write_config(self) -> None:
        super()._write_config()
        plan = self.root / "etc" / "extensions.conf"
        plan.write_text(plan.read_text() + f"exten => _{VOICE_PREFIX}.,1,Answer()\n same => n,Echo()\n")


@dataclass
class Settings:
    quick: bool
    calls: int  # K: voice calls and faxes at once for the CPU figures
    window_s: float
    batches: tuple[int, ...]  # N: faxes at once for pages per minute (g711)
    document: str  # catalogue code sent


def center_config(mode: str, machine: FaxMachine, lines: int) -> dict[str, Any]:
    return {
        "asterisk": {"rtp_start": RTP[mode][0], "rtp_end": RTP[mode][1]},
        "carrier": {"outbound_contact": machine.contact, "caller_id": "7000"},
        "fax": {
            "t38": mode == "t38",
            "job_lines": lines,
            "job_attempts": 1,  # a failed fax is counted as failed, not tried again
            "job_ring_s": 15,
            "documents": [
                {"code": "101", "en": "the product sheet", "pdf": str(SHEET)},
                {"code": "102", "en": "the repair form", "pdf": str(FORM)},
            ],
        },
    }


def channels_in(stack: BenchStack, app: str) -> int:
    """Our Asterisk's channels now running dialplan application `app`."""
    return sum(f"!{app}!" in line for line in stack.cli("core show channels concise").splitlines())


def cpu_percent(pid: int, seconds: float) -> float:
    """The process's CPU over the next `seconds`, in % of one core."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # a measuring window, not a wait for something to happen
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100


def no_calls(stack: BenchStack) -> None:
    eventually(lambda: "0 active channels" in stack.cli("core show channels count"), 60, "no channel left")


def voice_cpu(stack: BenchStack, pid: int, k: int, window: float) -> dict[str, float]:
    for i in range(k):
        number = f"{VOICE_PREFIX}{i:07d}"
        hold = f"MusicOnHold default,{int(window) + 60}"
        stack.cli(f"channel originate PJSIP/{number}@carrier application {hold}")
    eventually(lambda: channels_in(stack, "MusicOnHold") >= k, 60, f"{k} voice calls up")
    on_before = channels_in(stack, "MusicOnHold")
    pct = cpu_percent(pid, window)
    on = (on_before + channels_in(stack, "MusicOnHold")) / 2
    stack.cli("channel request hangup all")
    no_calls(stack)
    return {"percent": pct, "calls_on": on}


class Numbers:
    """A new fax number for every job: one number gets few jobs a day (fax.job_daily_limit)."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> list[str]:
        self.next += n
        return [f"0105550{i:04d}" for i in range(self.next - n, self.next)]


def fax_batch(
    stack: BenchStack, pid: int, numbers: list[str], document: str, window: float
) -> dict[str, Any]:
    """Queue one job per number at once; CPU over `window` while all are in SendFAX (0: not
    measured); each job's result, and the seconds from the first queued to the last finished."""
    n = len(numbers)
    t0 = time.monotonic()
    ids = []
    for number in numbers:
        status, job = stack.api("POST", "/api/faxes/jobs", {"number": number, "documents": [document]})
        if status != 201:
            raise RuntimeError(f"job to {number} refused: {status} {job}")
        ids.append(job["id"])
    cpu: dict[str, float] | None = None
    if window:
        eventually(lambda: channels_in(stack, "SendFAX") >= n, 120, f"{n} faxes in SendFAX")
        on_before = channels_in(stack, "SendFAX")
        pct = cpu_percent(pid, window)
        cpu = {"percent": pct, "calls_on": (on_before + channels_in(stack, "SendFAX")) / 2}
    finished: dict[str, dict[str, Any]] = {}

    def all_done() -> bool:
        for job in stack.api("GET", "/api/faxes/jobs")[1]:
            if job["id"] in ids and job["id"] not in finished and job["status"] in ("sent", "failed"):
                finished[job["id"]] = job | {"finished_s": time.monotonic() - t0}
        return len(finished) == n

    eventually(all_done, 120 + 20 * n, f"{n} fax jobs to finish", interval=0.2)
    results = [finished[i]["attempt_results"][-1] for i in ids]
    ok = [r for r in results if r["status"] == "ok"]
    seconds = max(j["finished_s"] for j in finished.values())
    pages = sum(int(r["pages"]) for r in ok)
    return {
        "faxes": n,
        "ok": len(ok),
        "failed": n - len(ok),
        "pages": pages,
        "seconds": seconds,
        "pages_per_minute": pages / seconds * 60,
        "rates": sorted({r["rate"] for r in ok}),
        "cpu": cpu,
    }


def t38_sessions(machine: FaxMachine) -> int:
    """Fax sessions the machine completed over T.38 (its `fax show stats`)."""
    stats = machine.cli("fax show stats")
    section = stats.split("Spandsp T.38", 1)[1] if "Spandsp T.38" in stats else ""
    m = re.search(r"Success\s*:\s*(\d+)", section)
    return int(m.group(1)) if m else 0


def run_mode(mode: str, s: Settings, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    machine = Machines(work / "machine", t38=mode == "t38")
    lines = max(s.calls, *s.batches)
    out: dict[str, Any] = {"mode": mode}
    with scratch_database(f"lianluo_bench_fax_{mode}") as db_url:
        settings = write_config(work / "center.yaml", work / "var", **center_config(mode, machine, lines))
        stack = BenchStack(
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
            machine.start(stack.sip_port)
            try:
                pid = stack.asterisk_pid()
                numbers = Numbers()
                out["idle_percent"] = cpu_percent(pid, s.window_s)
                out["voice"] = voice_cpu(stack, pid, s.calls, s.window_s)
                batches = s.batches if mode == "g711" else ()
                if s.calls not in batches:
                    batches = (*batches, s.calls)
                before = t38_sessions(machine)
                out["batches"] = [
                    fax_batch(stack, pid, numbers.take(n), s.document, s.window_s if n == s.calls else 0)
                    for n in batches
                ]
                out["t38_sessions"] = t38_sessions(machine) - before
            finally:
                machine.stop()
        finally:
            stack.shutdown()
    return out


def per_call(cpu: dict[str, float] | None, idle: float) -> float | None:
    if not cpu or cpu["calls_on"] <= 0:
        return None
    return (cpu["percent"] - idle) / cpu["calls_on"]


def report(results: dict[str, dict[str, Any]], s: Settings) -> bool:
    print(
        f"\nAsterisk CPU per call, % of one core ({s.calls} at once, {s.window_s:.0f} s window, "
        "idle subtracted)\n"
    )
    print("| mode | idle % | voice call % | fax % | fax / voice | T.38 sessions |")
    print("|---|--:|--:|--:|--:|--:|")
    measured = True
    for mode, r in results.items():
        voice = per_call(r["voice"], r["idle_percent"])
        cpu_batch = next((b for b in r["batches"] if b["cpu"]), None)
        fax = per_call(cpu_batch["cpu"] if cpu_batch else None, r["idle_percent"])
        measured &= any(b["ok"] for b in r["batches"])
        ratio = f"{fax / voice:.1f}" if fax is not None and voice else "-"
        print(
            f"| {mode} | {r['idle_percent']:.2f} | {voice if voice is not None else float('nan'):.2f} "
            f"| {fax if fax is not None else float('nan'):.2f} | {ratio} | {r['t38_sessions']} |"
        )
    print("\nPages per minute (g711; each fax: cover + document)\n")
    print("| faxes at once | ok | failed | pages | seconds | pages/min | pages/min per fax |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for b in results["g711"]["batches"]:
        per_fax = b["pages_per_minute"] / b["faxes"]
        print(
            f"| {b['faxes']} | {b['ok']} | {b['failed']} | {b['pages']} | {b['seconds']:.1f} "
            f"| {b['pages_per_minute']:.1f} | {per_fax:.2f} |"
        )
    return measured


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 at once; 1 and 2 one-page faxes")
    p.add_argument("--calls", type=int, default=10, help="calls and faxes at once for the CPU figures")
    p.add_argument("--batches", default="1,10,30", help="faxes at once for pages per minute (g711)")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        s = Settings(quick=True, calls=2, window_s=2.0, batches=(1, 2), document="102")
    else:
        batches = tuple(int(b) for b in args.batches.split(","))
        s = Settings(quick=False, calls=args.calls, window_s=15.0, batches=batches, document="101")
    quick_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "lianluo-bench-quick"
    results_dir = quick_dir if args.quick else REPO / "benchmarks" / "results"
    output = args.output or results_dir / "fax_capacity.json"
    work = Path(tempfile.mkdtemp(prefix="lianluo-bench-fax-"))
    modes = ("g711", "t38")
    if s.quick:
        # The path matters here, not the figures: both modes side by side keep it under a minute.
        with ThreadPoolExecutor(len(modes)) as pool:
            done = list(pool.map(lambda m: run_mode(m, s, work / m), modes))
    else:
        done = [run_mode(m, s, work / m) for m in modes]
    results = dict(zip(modes, done, strict=True))
    measured = report(results, s)
    output.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        output.write_text(json.dumps({"settings": s.__dict__, "results": results}, indent=2, default=str))
    print(f"\nwritten: {output}")
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
