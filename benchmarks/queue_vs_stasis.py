"""Asterisk's dialplan Queue() versus Lianluo's Stasis router, side by side in one run.

The same SIPp caller load and the same SIPp agents (one auto-answer UAS for every agent, each
agent's PJSIP AOR having a static contact on it) go through one real Lianluo (`python -m app
run`, its own Asterisk, its own database, free ports):

  A  DID 7200 -> Answer(), Read() one digit, Queue(bench): app_queue with static members
     (`leastrecent`, the nearest to our longest idle), written into the instance's
     `extensions_local.conf` and `queues_local.conf`;
  B  DID 7100 -> Stasis: the app answers, plays a one-word greeting, takes digit 1 and
     routes to queue `general` (longest idle). `ivr.connecting` is empty, so no prompt
     stands between the decision and the agent's phone ringing.

The caller answers with voice at once (so neither Answer() waits for audio), then sends
RFC 2833 digit 1. The measured interval, on both paths, is from the moment the caller sends
the digit's end packet (the moment Asterisk delivers the digit and routing can start) to the
moment the agent SIPp receives the INVITE. Both ends are logged by SIPp on this host's clock;
the legs are paired by a marker in the caller's From user, which Asterisk copies into the
agent leg's From on both paths.

Usage:
  .venv/bin/python benchmarks/queue_vs_stasis.py            # 10/100/1,000 members x 2/20 cps,
                                                            # without and with churn
  .venv/bin/python benchmarks/queue_vs_stasis.py --quick    # smoke run: 10 members, 6 calls per
                                                            # cell at 5 cps, all three modes
  .venv/bin/python benchmarks/queue_vs_stasis.py --modes churn --churn-rate 100
  .venv/bin/python benchmarks/queue_vs_stasis.py --modes plain register --members 1000
  .venv/bin/python benchmarks/queue_vs_stasis.py --pool run1.json run2.json   # saved runs, pooled

Churn: while the callers run, a driver changes agents' state at --churn-rate changes per
second (50 by default), in one of two ways:
  churn     pause and unpause agents: AMI QueuePause for app_queue, the supervisor API
            (POST /api/agents/{id}/state) for ours (see the Churn class);
  register  phones coming online and going offline: REGISTER and un-REGISTER (digest auth) of
            --flappers extra agents, the same SIP requests on both paths (see Registrar).

Writes the table as JSON to benchmarks/results/queue_vs_stasis.json (--quick: to the
temporary directory, see QUICK_RESULTS). Exits with 1 when a cell's path paired no call, or
a churn driver applied no change. Everything it starts (SIPp, the app, Asterisk, the
database, the temporary var dir) is removed at the end, also on Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from bench_stack import (
    AMI_USER,
    REPO,
    AmiClient,
    Bench,
    BenchError,
    BenchStack,
    SideResult,
    agent_ids,
    fmt,
    free_sip_port,
    installed_asterisk_prefix,
    interrupted,
    log_line,
    make_stack,
    percentile,
    qualify_now,
    ratio,
    scratch_database,
    start_agents,
    stop_process,
    wait_idle,
    wait_ready,
    write_caller_pcap,
)

from tests.support.stack import eventually

RESULTS = REPO / "benchmarks" / "results" / "queue_vs_stasis.json"
# A quick run's figures say only that the paths work: they never replace a full run's file.
QUICK_RESULTS = Path(tempfile.gettempdir()) / "lianluo-bench-quick" / "queue_vs_stasis.json"
FIRST_FLAPPER = 39000  # the register churn's extra agents: 39000, 39001, ...


def flapper_ids(flappers: int) -> list[str]:
    return [str(FIRST_FLAPPER + i) for i in range(flappers)]


# ---------------------------------------------------------------------------
# Churn: agents paused and unpaused while the callers run
# ---------------------------------------------------------------------------


# --modes: what changes while the callers run (the cell's "churn" field)
CHURN_KINDS: dict[str, str | None] = {"plain": None, "churn": "pause", "register": "register"}
PAUSE_TRIES = 3  # agents tried per pause when ours refuses one that is on a call


class Registrar(asyncio.DatagramProtocol):
    """Agents' phones for the register churn: REGISTER / un-REGISTER over UDP with digest auth.

    One socket for all the flappers; their contacts differ in the user part. Each change is
    the exchange a phone makes: the request, Asterisk's 401 challenge, the request again with
    credentials, and the final answer. Asterisk's qualify OPTIONS to a fresh contact are
    answered 200, so a contact is online for as long as it is registered. Nothing else is
    expected here (flappers are paused / Not Ready, so no call is offered to them); any other
    request is refused with 486.
    """

    def __init__(self, sip_port: int, passwords: dict[str, str]) -> None:
        self.sip_port = sip_port
        self.passwords = passwords
        self.cseq: dict[str, int] = {}
        self.waiting: dict[tuple[str, int], asyncio.Future[tuple[int, list[str]]]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def register(self, agent: str, online: bool, timeout: float = 5.0) -> int:
        """Register the agent's contact (or remove it); the final SIP status."""
        expires = 120 if online else 0
        status, headers = await self._send(agent, expires, None, timeout)
        if status == 401:
            challenge = next((h for h in headers if h.lower().startswith("www-authenticate:")), "")
            status, _ = await self._send(agent, expires, self._authorization(agent, challenge), timeout)
        return status

    def _authorization(self, agent: str, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.partition("Digest")[2]))
        algorithm = params.get("algorithm", "MD5")
        h = hashlib.sha256 if algorithm.upper() == "SHA-256" else hashlib.md5

        def hx(text: str) -> str:
            return h(text.encode()).hexdigest()

        uri = f"sip:127.0.0.1:{self.sip_port}"
        ha1 = hx(f"{agent}:{params['realm']}:{self.passwords[agent]}")
        ha2 = hx(f"REGISTER:{uri}")
        cnonce = f"{random.getrandbits(64):016x}"
        fields = [
            f'username="{agent}"',
            f'realm="{params["realm"]}"',
            f'nonce="{params["nonce"]}"',
            f'uri="{uri}"',
        ]
        if "qop" in params:
            response = hx(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{ha2}")
            fields += [f'cnonce="{cnonce}"', "qop=auth", "nc=00000001"]
        else:
            response = hx(f"{ha1}:{params['nonce']}:{ha2}")
        fields += [f'response="{response}"', f"algorithm={algorithm}"]
        if "opaque" in params:
            fields.append(f'opaque="{params["opaque"]}"')
        return "Authorization: Digest " + ",".join(fields) + "\r\n"

    async def _send(
        self, agent: str, expires: int, authorization: str | None, timeout: float
    ) -> tuple[int, list[str]]:
        assert self.transport is not None
        cseq = self.cseq[agent] = self.cseq.get(agent, 0) + 1
        call_id = f"flap-{agent}-{self.port}"
        msg = (
            f"REGISTER sip:127.0.0.1:{self.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{agent}@127.0.0.1>;tag={agent}\r\n"
            f"To: <sip:{agent}@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{agent}@127.0.0.1:{self.port}>\r\n"
            f"Expires: {expires}\r\n"
            f"{authorization or ''}"
            "Content-Length: 0\r\n\r\n"
        )
        fut: asyncio.Future[tuple[int, list[str]]] = asyncio.get_running_loop().create_future()
        self.waiting[(call_id, cseq)] = fut
        self.transport.sendto(msg.encode(), ("127.0.0.1", self.sip_port))
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.waiting.pop((call_id, cseq), None)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        first, *headers = text.split("\r\n\r\n", 1)[0].split("\r\n")

        def header(name: str) -> str:
            return next(
                (h.partition(":")[2].strip() for h in headers if h.lower().startswith(name + ":")), ""
            )

        if first.startswith("SIP/2.0 "):
            status = int(first.split()[1])
            if status < 200:
                return
            number = (header("cseq").split() or ["0"])[0]
            fut = self.waiting.get((header("call-id"), int(number)))
            if fut is not None and not fut.done():
                fut.set_result((status, headers))
            return
        method = first.split()[0] if first else ""
        if method == "ACK" or self.transport is None:
            return
        reply = "200 OK" if method == "OPTIONS" else "486 Busy Here"
        kept = [
            h for h in headers if h.split(":")[0].strip().lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        self.transport.sendto(
            (f"SIP/2.0 {reply}\r\n" + "\r\n".join(kept) + "\r\nContent-Length: 0\r\n\r\n").encode(), addr
        )


def prepare_flappers(stack: BenchStack, flappers: list[str]) -> None:
    """Before any measurement: each flapper logged in, then Not Ready in ours and paused in
    app_queue, and offline. The register churn then only brings phones online and off again."""
    if not flappers:
        return

    async def main() -> None:
        registrar = Registrar(stack.sip_port, stack.secrets["agent_passwords"])
        await registrar.open()
        ami = AmiClient()
        await ami.open(int(stack.settings["asterisk"]["ami_port"]), AMI_USER, stack.secrets["ami_password"])
        try:
            for agent in flappers:
                if (status := await registrar.register(agent, True)) != 200:
                    raise BenchError(f"flapper {agent} could not register: SIP {status}")

            def logged_in() -> bool:
                status, agents = stack.api("GET", "/api/agents")
                ready = {a["id"] for a in agents if a["state"] == "ready"} if status == 200 else set()
                return ready.issuperset(flappers)

            await asyncio.to_thread(
                eventually,
                logged_in,
                30,
                "flappers logged in by their first registration",
                0.3,
            )
            for agent in flappers:
                status, body = await asyncio.to_thread(
                    stack.api,
                    "POST",
                    f"/api/agents/{agent}/state",
                    {"state": "not_ready", "reason": "back_office"},
                )
                if status != 200:
                    raise BenchError(f"flapper {agent} could not go Not Ready: {status} {body}")
                resp = await ami.action(
                    {
                        "Action": "QueuePause",
                        "Queue": "bench",
                        "Interface": f"PJSIP/{agent}",
                        "Paused": "true",
                    }
                )
                if resp.get("Response") != "Success":
                    raise BenchError(f"flapper {agent} could not be paused in app_queue: {resp}")
                if (status := await registrar.register(agent, False)) != 200:
                    raise BenchError(f"flapper {agent} could not unregister: SIP {status}")
        finally:
            registrar.close()
            await ami.close()

    asyncio.run(main())


@dataclass
class ChurnStats:
    sent: int = 0  # state changes asked for (pauses and unpauses)
    applied: int = 0
    refused: int = 0  # ours: 409, the agent was on a call or being offered one
    failed: int = 0  # errors other than a refusal
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # request -> response

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "sent": self.sent,
            "applied": self.applied,
            "refused": self.refused,
            "failed": self.failed,
            "per_s": self.sent / self.seconds if self.seconds else 0.0,
            "applied_per_s": self.applied / self.seconds if self.seconds else 0.0,
            "change_p50_ms": percentile(lat, 0.5),
            "change_p95_ms": percentile(lat, 0.95),
        }


class Churn:
    """Agents change state at `rate` changes per second, in its own thread and event loop.

    kind "register" (`Registrar`): the changes are a flapper's phone registering and, on the
    next change, un-registering, with the same SIP requests on both paths; app_queue learns
    them as device states, ours as ARI endpoint events. No flapper takes calls (they are
    paused and Not Ready), so the load is the stream of device changes alone. The rest of this
    text is about kind "pause".

    Open loop: a change is due every 1/rate s whatever the previous ones' answers. Even
    changes pause a random agent, odd ones unpause the agent paused just before, so at most
    one or two agents are paused at any moment (each for about 1/rate s) and the callers still
    find a free agent; the load is the stream of changes, not fewer agents. Random, because
    agents taken in a fixed order would be taken in the order longest idle rings them, and
    every pause of ours would then find its agent on a call.

    A (app_queue): AMI QueuePause of PJSIP/<id> in queue bench, over one AMI session.
    B (ours): POST /api/agents/<id>/state not_ready (reason "break") / ready, with the API token,
    over a small pool of keep-alive connections. Ours refuses (409) a change for an agent who
    is on a call or being offered one (app_queue pauses such a member anyway): the driver then
    tries another agent, up to PAUSE_TRIES, so that about `rate` changes a second take effect
    on both paths. Refusals are counted.
    """

    def __init__(
        self, kind: str, path: str, stack: BenchStack, agents: list[str], rate: float, seed: int
    ) -> None:
        self.rng = random.Random(seed)  # the same seed on both paths: the same agents, in turn
        self.kind = kind
        self.path = path
        self.stack = stack
        self.agents = agents
        self.rate = rate
        self.stats = ChurnStats()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"churn-{path}", daemon=True)

    def start(self) -> None:
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(15)
        if self._error is not None:
            raise BenchError(f"churn could not start: {self._error}")

    def stop(self) -> ChurnStats:
        self._stop.set()
        self._thread.join(30)
        if self._error is not None:
            raise BenchError(f"churn failed: {self._error!r}")
        return self.stats

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        secrets = self.stack.secrets
        ami: AmiClient | None = None
        http: aiohttp.ClientSession | None = None
        registrar: Registrar | None = None
        if self.kind == "register":
            registrar = Registrar(self.stack.sip_port, secrets["agent_passwords"])
            await registrar.open()
        elif self.path == "queue":
            ami = AmiClient()
            await ami.open(
                int(self.stack.settings["asterisk"]["ami_port"]), AMI_USER, secrets["ami_password"]
            )
        else:
            http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8),
                headers={"Authorization": f"Bearer {secrets['api_token']}"},
            )

        async def change(agent: str, pause: bool) -> bool:
            """One state change; True when it was applied."""
            self.stats.sent += 1
            t0 = time.perf_counter()
            try:
                if registrar is not None:  # "pause" = the phone comes online, "unpause" = it goes
                    status = await registrar.register(agent, online=pause)
                    ok, refused = status == 200, False
                elif ami is not None:
                    resp = await ami.action(
                        {
                            "Action": "QueuePause",
                            "Queue": "bench",
                            "Interface": f"PJSIP/{agent}",
                            "Paused": "true" if pause else "false",
                            "Reason": "churn",
                        }
                    )
                    ok, refused = resp.get("Response") == "Success", False
                else:
                    assert http is not None
                    body = {"state": "not_ready", "reason": "break"} if pause else {"state": "ready"}
                    async with http.post(f"{self.stack.web_url}/api/agents/{agent}/state", json=body) as r:
                        await r.read()
                        ok, refused = r.status == 200, r.status == 409
            except (OSError, aiohttp.ClientError, ConnectionError, TimeoutError):
                ok, refused = False, False
            self.stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if ok:
                self.stats.applied += 1
            elif refused:
                self.stats.refused += 1
            else:
                self.stats.failed += 1
            return ok

        flapping: set[str] = set()  # register: phones with a change in flight (one at a time each)

        async def pause() -> str | None:
            """Pause a random agent; one on a call (ours refuses) is passed over for another."""
            for _ in range(PAUSE_TRIES):
                if registrar is not None:
                    agent = self.rng.choice([a for a in self.agents if a not in flapping] or self.agents)
                    flapping.add(agent)
                else:
                    agent = self.rng.choice(self.agents)
                if await change(agent, True):
                    return agent
                flapping.discard(agent)
            return None

        async def unpause(paused: asyncio.Task[str | None]) -> None:
            agent = await paused  # never overtake the pause (HTTP requests may use two connections)
            if agent is not None:
                await change(agent, False)
                flapping.discard(agent)

        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[Any]] = set()
        last_pause: asyncio.Task[str | None] | None = None
        self._ready.set()
        start = loop.time()
        n = 0
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, start + n / self.rate - loop.time()))
            task: asyncio.Task[Any]
            if last_pause is None:
                task = last_pause = asyncio.create_task(pause())
            else:
                task = asyncio.create_task(unpause(last_pause))
                last_pause = None
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        self.stats.seconds = loop.time() - start
        if last_pause is not None:  # leave nobody paused
            await unpause(last_pause)
        if tasks:
            await asyncio.gather(*tasks)
        if ami is not None:
            await ami.close()
        if http is not None:
            await http.close()
        if registrar is not None:
            registrar.close()


# ---------------------------------------------------------------------------
# One measurement: one SIPp caller run against one path
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def churn_kind(cell: dict[str, Any]) -> str | None:
    """None, "pause" or "register" (runs saved before register churn existed stored a bool)."""
    kind = cell.get("churn")
    return "pause" if kind is True else (kind or None)


def print_table(cells: list[dict[str, Any]]) -> None:
    head = (
        "| members | cps | churn | path | paired/calls | p50 ms | p95 ms | p99 ms | max ms "
        "| B/A p50 | B/A p95 | B/A p99 | Asterisk %cpu | Python %cpu | load |"
    )
    print(head)
    print("|" + "|".join("---" if i in (2, 3) else "---:" for i in range(15)) + "|")
    for cell in cells:
        for key, label in (("queue", "A Queue()"), ("stasis", "B Stasis")):
            r = cell[key]
            rb = key == "stasis"
            ratios = [fmt(cell[k], 2) if rb else "" for k in ("ratio_p50", "ratio_p95", "ratio_p99")]
            churn = churn_kind(cell) or "no"
            print(
                f"| {cell['members']:,} | {cell['rate']:g} | {churn} | {label} "
                f"| {r['paired']}/{r['calls']} "
                f"| {fmt(r['p50_ms'])} | {fmt(r['p95_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['max_ms'])} "
                f"| {' | '.join(ratios)} "
                f"| {fmt(r['asterisk_cpu_pct'])} | {fmt(r['python_cpu_pct'])} | {fmt(r.get('load1'))} |"
            )
    churned = [c for c in cells if c.get("churn")]
    if not churned:
        return
    plain = {(c["members"], c["rate"]): c for c in cells if not c.get("churn")}
    print()
    print(
        "| members | cps | churn | path | sent/s | applied/s | refused | failed "
        "| change p50 ms | change p95 ms | p50 churn/plain | p95 churn/plain |"
    )
    print("|---:|---:|---|---|" + "---:|" * 8)
    for cell in churned:
        base = plain.get((cell["members"], cell["rate"]))
        for key, label in (("queue", "A Queue()"), ("stasis", "B Stasis")):
            r, st = cell[key], cell[key]["churn"]
            b = base[key] if base else None
            print(
                f"| {cell['members']:,} | {cell['rate']:g} | {churn_kind(cell)} | {label} "
                f"| {st['per_s']:.1f} | {st['applied_per_s']:.1f} "
                f"| {st['refused']} | {st['failed']} "
                f"| {fmt(st['change_p50_ms'])} | {fmt(st['change_p95_ms'])} "
                f"| {fmt(ratio(r['p50_ms'], b['p50_ms']) if b else None, 2)} "
                f"| {fmt(ratio(r['p95_ms'], b['p95_ms']) if b else None, 2)} |"
            )


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 10 members, 5 calls/s, 6 calls per cell, 1 warm-up call, 4 flappers (~1 min)",
    )
    p.add_argument("--members", type=int, nargs="+", help="member counts (default 10 100 1000)")
    p.add_argument("--rates", type=float, nargs="+", help="calls per second (default 2 20)")
    p.add_argument("--slow-calls", type=int, default=30, help="calls per cell below 10 calls/s")
    p.add_argument("--fast-calls", type=int, default=200, help="calls per cell at 10 calls/s and above")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured calls per path after each start")
    p.add_argument(
        "--churn-rate", type=float, default=50.0, help="agent state changes per second in churn runs (50)"
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=list(CHURN_KINDS),
        default=list(CHURN_KINDS),
        help="measure without churn, with pause churn, with register churn (default all three)",
    )
    p.add_argument(
        "--flappers", type=int, default=20, help="extra agents whose phones the register churn flaps (20)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, SIPp traces)")
    p.add_argument(
        "--pool", type=Path, nargs="+", metavar="JSON", help="measure nothing: print saved runs' cells pooled"
    )
    p.add_argument("--output", type=Path, help=f"the JSON file (default {RESULTS.relative_to(REPO)})")
    args = p.parse_args(argv)
    args.modes = list(dict.fromkeys(args.modes))
    if args.quick:
        args.members = args.members or [10]
        args.rates = args.rates or [5.0]
        args.slow_calls = min(args.slow_calls, 6)
        args.fast_calls = min(args.fast_calls, 6)
        args.warmup = min(args.warmup, 1)
        args.flappers = min(args.flappers, 4)
    args.output = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    args.members = args.members or [10, 100, 1000]
    args.rates = args.rates or [2.0, 20.0]
    return args


def measure_size(
    bench: Bench, stack: BenchStack, members: int, args: argparse.Namespace, agents: subprocess.Popen[bytes]
) -> list[dict[str, Any]]:
    """Every rate for one member count, on a started stack."""
    cells = []
    qualify_now(stack, agent_ids(members))
    wait_ready(stack, members)
    if "register" in args.modes:
        prepare_flappers(stack, flapper_ids(args.flappers))
    for path in ("queue", "stasis"):
        if args.warmup:
            bench.measure(stack, path, 2.0, args.warmup)
            wait_idle(stack, members)
    for rate in args.rates:
        calls = args.slow_calls if rate < 10 else args.fast_calls
        for churning in [CHURN_KINDS[m] for m in args.modes]:
            results: dict[str, SideResult] = {}
            # Alternate which path goes first, so slow drift on a shared machine favours neither.
            paths = ("queue", "stasis") if bench.cells % 2 == 0 else ("stasis", "queue")
            bench.cells += 1
            for path in paths:
                if agents.poll() is not None:
                    raise BenchError("the agents' SIPp exited; see agents.out in the work dir")
                mode = f", {churning} churn {args.churn_rate:g}/s" if churning else ""
                log_line(f"  {members} members, {rate:g} calls/s{mode}, {calls} calls: {path}")
                churn = (
                    Churn(
                        churning,
                        path,
                        stack,
                        flapper_ids(args.flappers) if churning == "register" else agent_ids(members),
                        args.churn_rate,
                        seed=bench.cells,
                    )
                    if churning
                    else None
                )
                results[path] = bench.measure(stack, path, rate, calls, churn)
                wait_idle(stack, members)
            a, b = results["queue"], results["stasis"]
            cells.append(
                {
                    "members": members,
                    "rate": rate,
                    "churn": churning,
                    "queue": asdict(a),
                    "stasis": asdict(b),
                    "ratio_p50": ratio(b.p50_ms, a.p50_ms),
                    "ratio_p95": ratio(b.p95_ms, a.p95_ms),
                    "ratio_p99": ratio(b.p99_ms, a.p99_ms),
                }
            )
    return cells


def pool(files: list[Path]) -> list[dict[str, Any]]:
    """The cells of several saved runs, pooled: same members, rate and churn, every call counted.

    Latency percentiles are recomputed over all the calls; CPU, load and the churn driver's
    rates are means over the runs, and the change latencies the mean of each run's percentile.
    """
    groups: dict[tuple[int, float, str | None], dict[str, list[dict[str, Any]]]] = {}
    for f in files:
        for saved in json.loads(f.read_text())["cells"]:
            key = (saved["members"], saved["rate"], churn_kind(saved))
            for path in ("queue", "stasis"):
                groups.setdefault(key, {"queue": [], "stasis": []})[path].append(saved[path])

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    cells = []
    for (members, rate, churning), sides in groups.items():
        cell: dict[str, Any] = {
            "members": members,
            "rate": rate,
            "churn": churning,
            "runs": len(sides["queue"]),
        }
        for path, runs in sides.items():
            lat = sorted(x for r in runs for x in r["latencies_ms"])
            side: dict[str, Any] = {
                "path": path,
                "calls": sum(r["calls"] for r in runs),
                "paired": len(lat),
                "timeouts": sum(r["timeouts"] for r in runs),
                "p50_ms": percentile(lat, 0.50),
                "p95_ms": percentile(lat, 0.95),
                "p99_ms": percentile(lat, 0.99),
                "max_ms": lat[-1] if lat else None,
                "asterisk_cpu_pct": mean([r["asterisk_cpu_pct"] for r in runs]),
                "python_cpu_pct": mean([r["python_cpu_pct"] for r in runs]),
                "load1": mean([r.get("load1", 0.0) for r in runs]),
                "churn": None,
            }
            churns = [r["churn"] for r in runs if r.get("churn")]
            if churns:
                side["churn"] = {
                    k: (sum if k in ("sent", "applied", "refused", "failed") else mean)(
                        [c[k] for c in churns]
                    )
                    for k in churns[0]
                    if all(c[k] is not None for c in churns)
                }
            cell[path] = side
        for q in ("p50", "p95", "p99"):
            cell[f"ratio_{q}"] = ratio(cell["stasis"][f"{q}_ms"], cell["queue"][f"{q}_ms"])
        cells.append(cell)
    return sorted(cells, key=lambda c: (c["members"], c["rate"], c["churn"] or ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pool:
        print_table(pool(args.pool))
        return 0
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupted)
    prefix = installed_asterisk_prefix()
    work = Path(tempfile.mkdtemp(prefix="lianluo-bench-"))
    cells: list[dict[str, Any]] = []
    started = time.monotonic()
    digit_end_s = write_caller_pcap(work / "caller_media.pcap")
    agents: subprocess.Popen[bytes] | None = None
    try:
        with scratch_database("lianluo_bench") as db_url, open(work / "agents.out", "wb") as agents_out:
            agents_port = free_sip_port()
            agents = start_agents(work, agents_port, work / "agents.log", agents_out)
            bench = Bench(work, work / "agents.log", digit_end_s)
            for members in args.members:
                log_line(f"{members} members: starting Lianluo and its Asterisk")
                flappers = args.flappers if "register" in args.modes else 0
                stack = make_stack(
                    work,
                    members,
                    agents_port,
                    db_url,
                    prefix,
                    name="queue_vs_stasis",
                    flappers=flapper_ids(flappers),
                )
                try:
                    stack.start()
                    cells += measure_size(bench, stack, members, args, agents)
                finally:
                    stack.shutdown()
        problems = broken(cells)
        args.keep = args.keep or bool(problems)
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
        if cells:
            report(cells, args, time.monotonic() - started, digit_end_s)
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"benchmark failed: {problem}", file=sys.stderr)
    return 1 if problems else 0


def broken(cells: list[dict[str, Any]]) -> list[str]:
    """What says a path is broken rather than slow: no cell at all, a path that paired none of
    its calls, a churn driver that applied no change."""
    if not cells:
        return ["no cell measured"]
    problems = []
    for cell in cells:
        where = f"{cell['members']} members, {cell['rate']:g} calls/s, churn {churn_kind(cell) or 'no'}"
        for path in ("queue", "stasis"):
            side = cell[path]
            if not side["paired"]:
                problems.append(f"{where}, {path}: none of {side['calls']} calls reached an agent")
            if side.get("churn") is not None and not side["churn"]["applied"]:
                problems.append(f"{where}, {path}: the churn driver applied no change")
    return problems


def report(cells: list[dict[str, Any]], args: argparse.Namespace, seconds: float, digit_end_s: float) -> None:
    print_table(cells)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "queue_vs_stasis",
        "measured": "caller sends the RFC 2833 end packet of digit 1 -> agent SIPp receives the INVITE",
        "digit_end_offset_ms": digit_end_s * 1000,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seconds": round(seconds, 1),
        "cells": cells,
    }
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {args.output} ({seconds:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
