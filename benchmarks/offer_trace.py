"""Where the Stasis path's time goes between the caller's digit and the agent's INVITE.

A packet capture on the loopback interface (AF_PACKET, so run it as root) during a short
caller run of `queue_vs_stasis.py`'s set-up, one call at a time: for each call, the
kernel's stamp of every packet that matters, from the caller's RFC 2833 end packet to the
INVITE reaching the agents' SIPp:

  dtmf      the caller's first end packet of digit 1 (RTP to Asterisk): time zero
  ari-dtmf  Asterisk -> app: the ARI websocket frame carrying ChannelDtmfReceived
  stop      app -> Asterisk: DELETE /playbacks/... (the greeting is stopped)
  db        app -> PostgreSQL: the first packet of each query batch
  originate app -> Asterisk: POST /channels/agent-... (the originate), and its response
  moh       app -> Asterisk: POST /channels/.../moh
  invite    Asterisk -> agent: the INVITE

Usage (root):
  .venv/bin/python benchmarks/offer_trace.py --members 1000 --calls 30
  .venv/bin/python benchmarks/offer_trace.py --members 100 --path queue   # app_queue: dtmf -> invite
  .venv/bin/python benchmarks/offer_trace.py --quick      # smoke run: 10 members, 4 calls, --loop

Prints the median and 90th percentile of each step's offset. With `--loop`, the app's event
loop is traced too (a `sitecustomize` hook, for this run only, records every callback the
loop runs, with its task and the line it suspended at), and the loop's work between the
digit and the INVITE is summed per step. Tracing slows the app: compare the steps with
each other, not with the benchmark's figures. Nothing is written; the stack, the database
and the work dir are removed at the end. Exits with 1 when no call could be traced (or, with
`--loop`, the loop trace is empty).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_stack as qs  # noqa: E402

from tests.support.stack import free_sip_port, installed_asterisk_prefix, scratch_database  # noqa: E402

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
PACKET_OUTGOING = 4


@dataclass
class Packet:
    t: float  # kernel stamp, s
    kind: str
    detail: str = ""


@dataclass
class Sniffer:
    """Captures the packets that mark a call's steps; classification is done on the fly."""

    ari_port: int
    agents_port: int
    db_port: int
    packets: list[Packet] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        s.bind(("lo", 0))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, anc, _flags, addr = self._sock.recvmsg(65535, socket.CMSG_SPACE(16))
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:  # on lo every packet is seen twice: keep the receipt
                continue
            t = time.time()
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                    sec, nsec = struct.unpack("qq", payload[:16])
                    t = sec + nsec / 1e9
            p = self.classify(data[14:], t)
            if p is not None:
                self.packets.append(p)

    def classify(self, ip: bytes, t: float) -> Packet | None:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return None
        ihl = (ip[0] & 0x0F) * 4
        proto = ip[9]
        l4 = ip[ihl:]
        if proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack("!HH", l4[:4])
            body = l4[8:]
            if dport == self.agents_port and body.startswith(b"INVITE "):
                return Packet(t, "invite")
            if ip[12:16] == socket.inet_aton(qs.CARRIER_IP) and len(body) >= 16 and body[0] >> 6 == 2:
                pt = body[1] & 0x7F
                if pt == 101 and body[13] & 0x80:
                    return Packet(t, "dtmf", f"{sport}")
            return None
        if proto != 6 or len(l4) < 20:
            return None
        sport, dport = struct.unpack("!HH", l4[:4])
        off = (l4[12] >> 4) * 4
        body = l4[off:]
        if dport == self.ari_port and l4[13] & 0x12 == 0x02:  # SYN: a new connection to ARI
            return Packet(t, "connect", str(sport))
        if not body:
            return None
        if sport == self.ari_port:
            if b'"ChannelDtmfReceived"' in body[:400]:
                return Packet(t, "ari-dtmf")
            if body.startswith(b"HTTP/1.1 "):
                return Packet(t, "ari-response", f"{dport} {body[9:12].decode(errors='replace')}")
            return None
        if dport == self.ari_port:
            line = body.split(b"\r\n", 1)[0].decode(errors="replace")
            if line.startswith("DELETE /ari/playbacks"):
                return Packet(t, "stop", str(sport))
            if line.startswith("POST /ari/channels/agent-"):
                return Packet(t, "originate", str(sport))
            if "/moh" in line:
                return Packet(t, "moh", str(sport))
            if line.startswith(("GET ", "POST ", "DELETE ", "PUT ")):
                return Packet(t, "ari-other", line[:60])
            return None
        if dport == self.db_port:
            return Packet(t, "db")
        return None


# Written to the work dir and put on the app's PYTHONPATH with --loop. Each record: wall-clock
# start, duration, and what ran (task name and the lines it suspended at, outer to inner).
LOOP_HOOK = r"""
import asyncio.events, atexit, os, time

_path = os.environ.get("LIANLUO_LOOP_TRACE")
if _path:
    _records = []
    _orig = asyncio.events.Handle._run
    _now, _perf = time.time, time.perf_counter

    def _where(cb):
        task = getattr(cb, "__self__", None)
        if isinstance(task, asyncio.Future) and hasattr(task, "get_coro"):
            coro, lines = task.get_coro(), []
            while coro is not None and len(lines) < 8:
                frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
                if frame is not None:
                    lines.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            return task.get_name() + " " + ">".join(lines)
        return str(getattr(cb, "__qualname__", None) or type(cb).__qualname__)[:80]

    def _run(self):
        t0, p0 = _now(), _perf()
        try:
            return _orig(self)
        finally:
            if len(_records) < 2_000_000:
                _records.append((t0, _perf() - p0, _where(self._callback)))

    asyncio.events.Handle._run = _run

    @atexit.register
    def _dump():
        with open(_path, "w") as f:
            for t0, d, what in _records:
                f.write(f"{t0:.6f} {d * 1e6:.0f} {what}\n")
"""


def loop_steps(trace: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in trace.read_text(errors="replace").splitlines():
        t, d, what = line.split(" ", 2)
        out.append((float(t), float(d) / 1000, what))
    return out


def analyse(packets: list[Packet]) -> list[dict[str, float]]:
    """One dict of step -> ms after the caller's end packet, per call."""
    packets = sorted(packets, key=lambda p: p.t)
    calls: list[dict[str, float]] = []
    i = 0
    while i < len(packets):
        p = packets[i]
        if p.kind != "dtmf":
            i += 1
            continue
        t0 = p.t
        steps: dict[str, float] = {}
        pending: dict[str, str] = {}  # client port -> request kind awaiting its response
        j = i + 1
        db_batches = 0
        last_db = -1.0
        while j < len(packets):
            q = packets[j]
            ms = (q.t - t0) * 1000
            if q.kind == "dtmf":
                j += 1
                if ms < 100:  # the repeats of the same end packet
                    continue
                break
            if q.kind == "invite":
                steps["invite"] = ms
                j += 1
                break
            if q.kind == "db":
                if ms - last_db > 0.3:
                    db_batches += 1
                    steps.setdefault(f"db{db_batches}", ms)
                last_db = ms
            elif q.kind in ("stop", "originate", "moh"):
                steps.setdefault(q.kind, ms)
                pending[q.detail] = q.kind
            elif q.kind == "ari-response":
                port, _status = q.detail.split()
                kind = pending.pop(port, None)
                if kind is not None:
                    steps.setdefault(f"{kind}-done", ms)
            elif q.kind == "ari-dtmf":
                steps.setdefault("ari-dtmf", ms)
            elif q.kind == "connect":
                steps.setdefault("connect", ms)
                steps["connects"] = steps.get("connects", 0) + 1
            j += 1
        if "invite" in steps:
            steps["db-batches"] = db_batches
            steps["t0"] = t0
            calls.append(steps)
        i = j
    return calls


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return qs.percentile(v, q) or 0.0


ORDER = [
    "ari-dtmf",
    "stop",
    "stop-done",
    "db1",
    "db2",
    "db3",
    "db4",
    "originate",
    "originate-done",
    "moh",
    "moh-done",
    "invite",
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=100)
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--rate", type=float, default=2.0)
    p.add_argument("--path", choices=["stasis", "queue"], default="stasis")
    p.add_argument("--loop", action="store_true", help="also trace the app's event loop")
    p.add_argument("--show", type=int, default=1, help="calls to print step by step (with --loop)")
    p.add_argument("--warmup", type=int, default=3, help="untraced calls first (default 3)")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 members, 4 calls, 1 warm-up, --loop")
    args = p.parse_args(argv)
    if args.quick:
        args.members, args.calls, args.warmup, args.loop = 10, min(args.calls, 4), min(args.warmup, 1), True
    try:
        return trace(args)
    except (RuntimeError, AssertionError, OSError) as exc:  # BenchError, a timed-out wait, no raw socket
        print(f"trace failed: {exc}", file=sys.stderr)
        return 1


def trace(args: argparse.Namespace) -> int:
    prefix = installed_asterisk_prefix()
    work = Path(tempfile.mkdtemp(prefix="lianluo-trace-"))
    digit_end_s = qs.write_caller_pcap(work / "caller_media.pcap")
    agents = None
    try:
        with scratch_database("lianluo_trace") as db_url, open(work / "agents.out", "wb") as out:
            agents_port = free_sip_port()
            agents = qs.start_agents(work, agents_port, work / "agents.log", out)
            bench = qs.Bench(work, work / "agents.log", digit_end_s)
            stack = qs.make_stack(work, args.members, agents_port, db_url, prefix, name="queue_vs_stasis")
            trace = work / "loop.trace"
            if args.loop:
                (work / "hook").mkdir()
                (work / "hook" / "sitecustomize.py").write_text(LOOP_HOOK)
                stack.env = {"PYTHONPATH": str(work / "hook"), "LIANLUO_LOOP_TRACE": str(trace)}
            sniffer = Sniffer(
                int(stack.settings["asterisk"]["http_port"]),
                agents_port,
                urlparse(db_url).port or 5432,
            )
            try:
                stack.start()
                qs.qualify_now(stack, qs.agent_ids(args.members))
                qs.wait_ready(stack, args.members)
                if args.warmup:
                    bench.measure(stack, args.path, 2.0, args.warmup)
                    qs.wait_idle(stack, args.members)
                sniffer.start()
                try:
                    result = bench.measure(stack, args.path, args.rate, args.calls)
                finally:
                    sniffer.stop()
            finally:
                stack.shutdown()
            steps = loop_steps(trace) if args.loop else []
    finally:
        if agents is not None:
            qs.stop_process(agents)
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    calls = analyse(sniffer.packets)
    print(
        f"{args.path}, {args.members} members, {args.rate:g} calls/s: {len(calls)} calls traced; "
        f"SIPp-logged p50 {qs.fmt(result.p50_ms)} ms, p95 {qs.fmt(result.p95_ms)} ms"
    )
    print("| step | calls | p50 ms | p90 ms |")
    print("|---|---:|---:|---:|")
    for step in [*ORDER, "db-batches", "connect", "connects"]:
        vals = [c[step] for c in calls if step in c]
        if vals:
            print(f"| {step} | {len(vals)} | {pct(vals, 0.5):.2f} | {pct(vals, 0.9):.2f} |")
    if steps:
        report_loop(calls, steps, args.show)
    if not calls:
        print("trace failed: no call traced from its end packet to its INVITE", file=sys.stderr)
        return 1
    if args.loop and not steps:
        print("trace failed: the app's event loop left no trace", file=sys.stderr)
        return 1
    return 0


def short(what: str) -> str:
    """A loop step's label without the per-call ids."""
    name, _, lines = what.partition(" ")
    for prefix in ("call-", "save-", "Task-"):
        if name.startswith(prefix):
            name = prefix.rstrip("-")
    return f"{name} {lines}".strip()


def report_loop(calls: list[dict[str, float]], steps: list[tuple[float, float, str]], show: int) -> None:
    """Loop work (ms) between each call's end packet and its INVITE, summed by step label."""
    totals: dict[str, list[float]] = {}
    busy: list[float] = []
    ordered = sorted(calls, key=lambda c: c["invite"])
    for n, c in enumerate(ordered):
        t0, t1 = c["t0"], c["t0"] + c["invite"] / 1000
        window = [(t, d, w) for t, d, w in steps if t0 <= t <= t1]
        busy.append(sum(d for _, d, _ in window))
        per: dict[str, float] = {}
        for _, d, w in window:
            per[short(w)] = per.get(short(w), 0.0) + d
        for k, v in per.items():
            totals.setdefault(k, []).append(v)
        if n in {len(ordered) // 2 + i for i in range(show)}:
            print(f"\none call (invite at {c['invite']:.2f} ms): loop steps and packets from the end packet")
            print("| at ms | took ms | step |")
            print("|---:|---:|---|")
            rows = [((t - t0) * 1000, f"{d:.2f}", short(w)[:150]) for t, d, w in window if d >= 0.02]
            rows += [
                (ms, "", f"**packet: {k}**")
                for k, ms in c.items()
                if k not in ("t0", "connects", "db-batches")
            ]
            for ms, took, what in sorted(rows):
                print(f"| {ms:.2f} | {took} | {what} |")
    print(
        f"\nloop busy between end packet and INVITE: p50 {pct(busy, 0.5):.2f} ms, p90 {pct(busy, 0.9):.2f} ms"
    )
    print("| step (task, where it suspended) | calls | mean ms per call |")
    print("|---|---:|---:|")
    for label, spent in sorted(totals.items(), key=lambda kv: -sum(kv[1]))[:25]:
        print(f"| {label[:150]} | {len(spent)} | {sum(spent) / len(calls):.3f} |")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
