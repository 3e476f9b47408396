"""The stack the call benchmarks share: one real Lianluo with its own Asterisk, SIPp agents and
callers, and the app_queue baseline beside our Stasis path.

  A  DID 7200 -> Answer(), Read() one digit, Queue(bench): app_queue with static members,
     written into the instance's `extensions_local.conf` and `queues_local.conf`;
  B  DID 7100 -> Stasis: the app answers, plays a one-word greeting, takes digit 1 and routes
     to queue `general` (longest idle), with no "please hold" prompt.

Used by queue_vs_stasis.py, capacity.py and recording_cost.py (see benchmarks/README.md). Everything here
starts processes the caller must stop: BenchStack.shutdown, stop_process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.rtp_pcap import write_caller_media  # noqa: E402
from tests.support.stack import (  # noqa: E402
    Stack,
    asterisk_pids_for,
    eventually,
    free_sip_port,
    installed_asterisk_prefix,
    scratch_database,
    write_config,
)

__all__ = [
    "Stack",
    "eventually",
    "free_sip_port",
    "installed_asterisk_prefix",
    "scratch_database",
]

SIPP_DIR = REPO / "benchmarks" / "sipp"

INSTANCE = "bench"
STASIS_DID = "7100"
QUEUE_DID = "7200"
CARRIER_IP = "127.0.0.2"
FIRST_AGENT = 30000  # agent ids 30000, 30001, ...

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# The caller's media: voice, then RFC 2833 digit 1, then voice
# ---------------------------------------------------------------------------

VOICE_LEAD_MS = 160  # voice before the digit: Answer()'s wait ends on the first frame
MEDIA_MS = 1000


def write_caller_pcap(path: Path) -> float:
    """Write the caller's media as a pcap for SIPp's play_pcap_audio.

    Returns the offset (s) of the digit's first end packet: Asterisk delivers the digit (to
    Read() or as ARI ChannelDtmfReceived) when that packet arrives.
    """
    (end,) = write_caller_media(path, [VOICE_LEAD_MS], MEDIA_MS)
    return end


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop one process we started: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parent_pid(pid: int) -> int | None:
    """The parent of a process (field 4 of /proc/<pid>/stat); None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


class BenchStack(Stack):
    """tests.support.stack.Stack, started at log level INFO (see make_stack): DEBUG logging
    would cost the app CPU that production does not spend."""

    def start(self, timeout: float = 180.0) -> None:
        super().start(timeout)

    def asterisk_pid(self) -> int:
        pids = self.asterisk_pids()
        # A child Asterisk forked to run a command (MixMonitor's, System()) has its parent's
        # command line until it execs: only the one whose parent is not an Asterisk counts.
        pids = [pid for pid in pids if parent_pid(pid) not in pids]
        if len(pids) != 1:
            raise BenchError(f"expected one Asterisk for {self.var_dir}, found {pids}")
        return pids[0]

    def shutdown(self) -> None:
        """Stop the app (which stops its Asterisk); then make sure no Asterisk of ours is left."""
        try:
            self.stop(timeout=45)
        finally:
            for pid in asterisk_pids_for(self.var_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# The contact center under test
# ---------------------------------------------------------------------------


def agent_ids(members: int) -> list[str]:
    return [str(FIRST_AGENT + i) for i in range(members)]


def write_baseline(etc: Path, members: list[str]) -> None:
    """Site-local files for the app_queue baseline (`members`: every static member's agent id);
    Lianluo never overwrites them."""
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "extensions_local.conf").write_text(
        "; queue_vs_stasis baseline: the same caller flow as the Stasis side (answer, one\n"
        "; digit), then app_queue with static members.\n"
        "[from-carrier](+)\n"
        f"exten => {QUEUE_DID},1,Answer()\n"
        " same => n,Read(BENCH_DIGIT,,1,,1,10)\n"
        " same => n,Queue(bench,,,,30)\n"
        " same => n,Hangup()\n"
    )
    lines = [
        "; queue_vs_stasis baseline queue",
        "[bench]",
        "strategy = leastrecent",
        "timeout = 15",
        "retry = 1",
        "wrapuptime = 0",
        "ringinuse = no",
        "autofill = yes",
        "joinempty = yes",
        "leavewhenempty = no",
        "announce-frequency = 0",
        "periodic-announce-frequency = 0",
        "announce-holdtime = no",
        "announce-position = no",
        "musicclass = default",
    ]
    lines += [f"member => PJSIP/{a}" for a in members]
    (etc / "queues_local.conf").write_text("\n".join(lines) + "\n")


def make_stack(
    work: Path,
    members: int,
    agents_port: int,
    db_url: str,
    prefix: Path,
    *,
    name: str,
    flappers: list[str] | None = None,
    rtp: tuple[int, int] = (20000, 21999),
    ivr: dict[str, Any] | None = None,
    recording: dict[str, Any] | None = None,
    web: dict[str, Any] | None = None,
) -> BenchStack:
    """The benchmark's contact center: `members` agents with a static contact on the agents'
    SIPp, and `flappers` (agent ids) whose phones register by themselves; members of the
    baseline's queue too. `rtp`: Asterisk's RTP port range (two ports per call leg). `ivr`
    adds to (or replaces) the IVR settings below; `recording` is the recording section; `web`
    adds to the web section (e.g. a supervisor to sign in)."""
    flappers = flappers or []
    var_dir = work / f"var-{members}"
    config = work / f"center-{members}.yaml"
    settings = write_config(
        config,
        var_dir,
        instance=INSTANCE,
        center_name=f"{name} {members}",
        asterisk={"rtp_start": rtp[0], "rtp_end": rtp[1]},
        # Only the Stasis DID is Lianluo's: were the baseline's DID listed too, its generated
        # priority 1 (into Stasis) would win over the one extensions_local.conf appends.
        carrier={"name": "carrier", "match": [CARRIER_IP], "dids": [STASIS_DID]},
        # These benchmarks drive the call path at up to 80 calls/s from one carrier address on
        # purpose: the door's limits (the demo's: 10 calls/s per source) would measure only the
        # door. benchmarks/flood.py measures the door with the demo's limits.
        security={
            "call_limits": {
                "per_source": {"calls_per_s": 1000, "burst": 1000},
                "per_trunk": {"calls_per_s": 1000, "burst": 1000},
            }
        },
        agents=[
            {"id": a, "name": f"Agent {a}", "contact": f"sip:{a}@127.0.0.1:{agents_port}"}
            for a in agent_ids(members)
        ]
        # The register churn's agents: no static contact, their phones register (Registrar).
        + [{"id": a, "name": f"Flapper {a}"} for a in flappers],
        queues=[{"name": "general", "strategy": "longest_idle", "ring_timeout_s": 15, "wrap_up_s": 0}],
        # The demo's "please hold" prompt stays: with a free agent it is not played (their phone
        # rings at once), so this is the path the demo takes.
        ivr={
            "greeting": [{"text": "Press 1.", "lang": "en"}],
            "menu": [{"digit": "1", "queue": "general"}],
            "digit_timeout_s": 10,
            "attempts": 1,
            **(ivr or {}),
        },
        **({"recording": recording} if recording is not None else {}),
        **({"web": web} if web is not None else {}),
    )
    write_baseline(var_dir / "asterisk" / INSTANCE / "etc", agent_ids(members) + flappers)
    # Given to the constructor: Stack's generated __init__ calls no __post_init__ of a subclass,
    # so setting it there (as the first version did) left the app logging at DEBUG.
    return BenchStack(
        config, var_dir, db_url, prefix, work / f"app-{members}.log", settings, log_level="INFO"
    )


def wait_ready(stack: BenchStack, members: int) -> None:
    """Every agent online and Ready in Lianluo, and Not in use in app_queue."""

    def agents_ready() -> bool:
        status, agents = stack.api("GET", "/api/agents")
        if status != 200:
            return False
        return sum(1 for a in agents if a["device_registered"] and a["state"] == "ready") == members

    eventually(agents_ready, 90, f"{members} agents online and ready in Lianluo", 0.5)

    measured = {f"PJSIP/{a}" for a in agent_ids(members)}

    def members_free() -> bool:
        # Only the measured agents: the register churn's extra members stay paused throughout.
        lines = [
            ln
            for ln in stack.cli("queue show bench").splitlines()
            if ln.split()[:1] and ln.split()[0] in measured
        ]
        return len(lines) == members and all("(Not in use)" in ln and "(paused" not in ln for ln in lines)

    eventually(members_free, 60, f"{members} queue members not in use and not paused", 0.5)
    check = stack.cli(f"dialplan show {QUEUE_DID}@from-carrier")
    if "Queue(bench" not in check or "lianluo-inbound" in check:
        raise BenchError(f"extensions_local.conf did not add {QUEUE_DID} to from-carrier:\n{check}")


def wait_idle(stack: BenchStack, members: int, timeout: float = 60) -> None:
    """No channel left in Asterisk and every agent Ready again, before the next measurement."""

    def no_channels() -> bool:
        out = stack.cli("core show channels count")
        m = re.search(r"(\d+) active channels?", out)
        return m is not None and int(m.group(1)) == 0

    eventually(no_channels, timeout, "Asterisk to have no channels", 0.3)
    wait_ready(stack, members)


def settled(stack: BenchStack) -> bool:
    """The app follows no call and has nothing left to write (/health)."""
    status, body = stack.health()
    app = body.get("app", {})
    return status == 200 and app.get("calls") == 0 and app.get("writes_waiting") == 0


AMI_USER = "lianluo"  # the app's AMI user (manager.conf); its password is in var/secrets.yaml


class AmiClient:
    """Just enough AMI for QueuePause: one connection, events off, responses matched by ActionID."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._n = 0

    async def open(self, port: int, user: str, secret: str) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        await self._reader.readline()  # "Asterisk Call Manager/..."
        self._task = asyncio.create_task(self._read())
        resp = await self.action({"Action": "Login", "Username": user, "Secret": secret, "Events": "off"})
        if resp.get("Response") != "Success":
            raise BenchError(f"AMI login refused: {resp}")

    async def action(self, fields: dict[str, str]) -> dict[str, str]:
        self._n += 1
        action_id = str(self._n)
        fut: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._waiting[action_id] = fut
        text = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items())
        self._writer.write((text + "\r\n").encode())
        return await fut

    async def _read(self) -> None:
        block: dict[str, str] = {}
        while line := await self._reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                block[key.strip()] = value.strip()
                continue
            fut = self._waiting.pop(block.get("ActionID", ""), None)
            if fut is not None and not fut.done():
                fut.set_result(block)
            block = {}
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("AMI connection closed"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.action({"Action": "Logoff"})
        self._task.cancel()
        self._writer.close()


def qualify_now(stack: BenchStack, agents: list[str]) -> None:
    """Have Asterisk qualify the agents' static contacts at once (AMI PJSIPQualify). Left to
    itself it spreads each contact's first qualify over qualify_frequency (30 s), and an agent
    is online in Lianluo and Not in use in app_queue only once its contact has answered."""

    async def main() -> None:
        ami = AmiClient()
        await ami.open(int(stack.settings["asterisk"]["ami_port"]), AMI_USER, stack.secrets["ami_password"])
        try:
            for agent in agents:
                resp = await ami.action({"Action": "PJSIPQualify", "Endpoint": agent})
                if resp.get("Response") != "Success":
                    raise BenchError(f"could not qualify agent {agent}'s contact: {resp}")
        finally:
            await ami.close()

    asyncio.run(main())


EPOCH = re.compile(r"(\d{9,11}\.\d{6})")


@dataclass
class SideResult:
    path: str  # "queue" (A) or "stasis" (B)
    calls: int
    paired: int
    timeouts: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    asterisk_cpu_pct: float
    python_cpu_pct: float
    seconds: float
    load1: float  # the host's 1-minute load average at the end of the caller run
    churn: dict[str, Any] | None = None  # ChurnStats.summary() when agents churned meanwhile
    latencies_ms: list[float] = field(repr=False, default_factory=list)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def agent_invites(log: Path) -> dict[str, float]:
    """Marker -> time the agent SIPp received the first INVITE carrying it."""
    seen: dict[str, float] = {}
    if not log.exists():
        return seen
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("INVITE "):
            continue
        t, m = EPOCH.search(line), re.search(r"sip:(\d+)@", line)
        if t and m:
            seen.setdefault(m.group(1), float(t.group(1)))
    return seen


def caller_command(
    stack: BenchStack,
    scenario: Path,
    did: str,
    rate: float,
    calls: int,
    code: int,
    log: Path,
    media_port: int | None = None,
) -> list[str]:
    """SIPp placing `calls` calls to `did` from the carrier's address at `rate` calls/s, each
    marked "<code><call number>" in its From user, logging its <log> actions to `log`."""
    cmd = [
        "sipp",
        f"127.0.0.1:{stack.sip_port}",
        "-sf", str(scenario),
        "-s", did,
        "-i", CARRIER_IP,
        "-p", str(free_udp_port(CARRIER_IP)),
        "-mi", CARRIER_IP,
        "-mp", str(media_port or free_udp_port(CARRIER_IP)),
        "-r", str(rate),
        "-m", str(calls),
        "-l", str(max(calls, 1)),
        "-key", "run", str(code),
        "-trace_logs", "-log_file", str(log),
        "-nostdin",
    ]  # fmt: skip
    return cmd


class DriverStats(Protocol):
    def summary(self) -> dict[str, Any]: ...


class Driver(Protocol):
    """Something that runs beside a caller run (queue_vs_stasis's Churn): started just before
    it, stopped just after, its summary kept with the run's figures."""

    def start(self) -> None: ...

    def stop(self) -> DriverStats: ...


class Bench:
    def __init__(self, work: Path, agents_log: Path, digit_end_s: float) -> None:
        self.work = work
        self.agents_log = agents_log
        self.digit_end_s = digit_end_s
        self.next_code = 1000  # the fixed-width first part of each call's marker
        self.cells = 0

    def caller(self, stack: BenchStack, did: str, rate: float, calls: int, code: int) -> Path:
        """Run the SIPp caller to completion; returns its log of <log> actions."""
        log = self.work / f"caller-{code}.log"
        cmd = caller_command(stack, SIPP_DIR / "caller.xml", did, rate, calls, code, log)
        cmd += ["-timeout", f"{int(calls / rate + 60)}s"]
        with open(self.work / f"caller-{code}.out", "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=self.work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                proc.wait(calls / rate + 90)
            except subprocess.TimeoutExpired:
                raise BenchError(f"SIPp caller {code} did not finish") from None
            finally:
                stop_process(proc)
        return log

    def invites_for(self, markers: dict[str, float], timeout: float = 3.0) -> dict[str, float]:
        """The agents' INVITE times; SIPp may write the last lines a moment after the caller ends."""
        deadline = time.monotonic() + timeout
        while True:
            invites = agent_invites(self.agents_log)
            if all(m in invites for m in markers) or time.monotonic() > deadline:
                return invites
            time.sleep(0.2)

    def measure(
        self, stack: BenchStack, path: str, rate: float, calls: int, churn: Driver | None = None
    ) -> SideResult:
        """One caller run on one path; with `churn`, its agents change state all along."""
        did = QUEUE_DID if path == "queue" else STASIS_DID
        code = self.next_code
        self.next_code += 1
        assert stack.proc is not None
        ast_pid, py_pid = stack.asterisk_pid(), stack.proc.pid
        if churn is not None:
            churn.start()
        cpu0 = (cpu_seconds(ast_pid), cpu_seconds(py_pid))
        t0 = time.monotonic()
        try:
            log = self.caller(stack, did, rate, calls, code)
        finally:
            wall = time.monotonic() - t0
            cpu1 = (cpu_seconds(ast_pid), cpu_seconds(py_pid))
            churned = churn.stop().summary() if churn is not None else None

        ready_at: dict[str, float] = {}
        timeouts = 0
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            t = EPOCH.search(line)
            marker = line.split()[-1] if line.split() else ""
            if line.startswith("MEDIA ") and t:
                ready_at[marker] = float(t.group(1)) + self.digit_end_s
            elif line.startswith("TIMEOUT "):
                timeouts += 1
        invites = self.invites_for(ready_at)
        latencies = sorted((invites[m] - t) * 1000 for m, t in ready_at.items() if m in invites)
        return SideResult(
            path=path,
            calls=calls,
            paired=len(latencies),
            timeouts=timeouts,
            p50_ms=percentile(latencies, 0.50),
            p95_ms=percentile(latencies, 0.95),
            p99_ms=percentile(latencies, 0.99),
            max_ms=latencies[-1] if latencies else None,
            asterisk_cpu_pct=100 * (cpu1[0] - cpu0[0]) / wall,
            python_cpu_pct=100 * (cpu1[1] - cpu0[1]) / wall,
            seconds=wall,
            load1=os.getloadavg()[0],
            churn=churned,
            latencies_ms=[round(x, 3) for x in latencies],
        )


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(b: float | None, a: float | None) -> float | None:
    return None if a is None or b is None or a <= 0 else b / a


def interrupted(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` cleans up what it started."""
    raise KeyboardInterrupt


def start_agents(
    work: Path,
    port: int,
    log: Path,
    out: IO[bytes],
    scenario: Path = SIPP_DIR / "agents.xml",
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """One SIPp UAS answering for every agent (their AORs' static contacts point at it)."""
    cmd = [
        "sipp",
        "-sf", str(scenario),
        "-i", "127.0.0.1",
        "-p", str(port),
        "-mi", "127.0.0.1",
        "-mp", str(free_udp_port("127.0.0.1")),
        "-trace_logs", "-log_file", str(log),
        "-nostdin",
        *extra,
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def log_line(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Held calls: RTP both ways until Asterisk hangs up (capacity.py's concurrent mode,
# recording_cost.py)
# ---------------------------------------------------------------------------

AUDIO = "agent_audio.ulaw"  # what a held agent streams, looped (agents_capacity.xml names it)
HOLD_CODE = 9000  # held calls' markers start with 9: agents_capacity.xml holds them


def write_agent_audio(path: Path) -> None:
    """One second of u-law (a rising and falling pattern, not silence), for rtp_stream."""
    path.write_bytes(bytes((0x80 + abs((i % 64) - 32)) & 0xFF for i in range(8000)))


def raise_fd_limit() -> int:
    """Raise our open-files limit to the hard limit: SIPp, the app and Asterisk inherit it, and
    each held call costs Asterisk descriptors (RTP sockets, timers) and SIPp one per stream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    """Resident memory of one process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def channel_count(stack: BenchStack) -> int:
    m = re.search(r"(\d+) active channels?", stack.cli("core show channels count"))
    return int(m.group(1)) if m else -1


@dataclass
class HeldCalls:
    """SIPp callers holding calls (caller_hold.xml), one process per batch."""

    bench: Bench
    stack: BenchStack
    did: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def place(self, calls: int, rate: float) -> list[str]:
        """Start a batch of `calls` held calls at `rate`; their markers."""
        code = self.bench.next_code + HOLD_CODE - 1000
        self.bench.next_code += 1
        work = self.bench.work
        log = work / f"held-{code}.log"
        media = free_echo_port()
        cmd = caller_command(
            self.stack, SIPP_DIR / "caller_hold.xml", self.did, rate, calls, code, log, media
        )
        cmd += ["-rtp_echo", "-max_socket", str(calls * 2 + 100)]
        with open(work / f"held-{code}.out", "wb") as out:
            self.procs.append(
                subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            )
        self.logs.append(log)
        return [f"{code}{i}" for i in range(1, calls + 1)]

    def lines(self, kind: str) -> dict[str, float]:
        """Marker -> time of the callers' `kind` lines (START, MEDIA, BYE)."""
        seen: dict[str, float] = {}
        for log in self.logs:
            if not log.exists():
                continue
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith(kind + " ") and (t := EPOCH.search(line)):
                    seen.setdefault(line.split()[-1], float(t.group(1)))
        return seen

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def end(self, timeout: float = 60.0) -> None:
        """Hang every call up from Asterisk, then stop the callers."""
        try:
            if self.procs and self.stack.proc is not None:
                # A busy Asterisk may answer the CLI late; the wait below is what counts.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.stack.cli("channel request hangup all")
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
                    time.sleep(0.3)
        finally:
            for proc in self.procs:
                stop_process(proc)
            self.procs = []


_echo_ports = iter(range(42000, 60000, 4))


def free_echo_port() -> int:
    """A media port for an echoing caller: SIPp binds it and the port 2 above (video)."""
    for port in _echo_ports:
        try:
            for p in (port, port + 2):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.2", p))
            return port
        except OSError:
            continue
    raise BenchError("no free media port pair for a caller")


@dataclass
class Batch:
    """What became of a batch of held calls: set-up times, failures."""

    markers: list[str]
    setup_ms: list[float]  # digit end -> agent INVITE
    answer_ms: list[float]  # caller's INVITE -> 200 OK (ACK)
    unanswered: int
    unrouted: int


def wait_batch(held: HeldCalls, markers: list[str], digit_end_s: float, timeout: float) -> Batch:
    """Until every call of the batch reached an agent (or timeout, or a caller died)."""
    deadline = time.monotonic() + timeout
    while True:
        media = held.lines("MEDIA")
        invites = agent_invites(held.bench.agents_log)
        done = all(m in invites for m in markers)
        if done or time.monotonic() > deadline or not held.alive():
            break
        time.sleep(0.5)
    start = held.lines("START")
    setup = sorted(
        (invites[m] - media[m] - digit_end_s) * 1000 for m in markers if m in media and m in invites
    )
    answer = sorted((media[m] - start[m]) * 1000 for m in markers if m in media and m in start)
    return Batch(
        markers,
        setup,
        answer,
        unanswered=sum(1 for m in markers if m not in media),
        unrouted=sum(1 for m in markers if m in media and m not in invites),
    )


# ---------------------------------------------------------------------------
# A held-call benchmark's frame: work dir, agents' SIPp, clean-up, the JSON
# ---------------------------------------------------------------------------


@dataclass
class HeldBench:
    """What the runs of a held-call benchmark share: the work dir (the caller's pcap, the
    agents' audio), the Asterisk build, the agents' SIPp (sipp/agents_capacity.xml)."""

    work: Path
    prefix: Path
    fds: int  # the open-files limit, raised to the hard limit
    agents_port: int
    agents: subprocess.Popen[bytes]
    bench: Bench

    def check_agents(self) -> None:
        if self.agents.poll() is not None:
            raise BenchError("the agents' SIPp exited; see agents.out in the work dir")


def run_held_bench(
    name: str,
    results: dict[str, Any],
    measure: Callable[[HeldBench], None],
    problems: Callable[[dict[str, Any]], list[str]],
    report: Callable[[float, int], None],
    keep: bool = False,
) -> int:
    """Run `measure` (which fills `results`) beside one agents' SIPp, then `report(seconds,
    fds)` whatever was measured, also after an error; the exit status: 0, 1 when it failed or
    `problems` says the results are broken, 130 on Ctrl-C or SIGTERM. Everything started here is
    stopped and the work dir removed (kept on failure or with `keep`)."""
    signal.signal(signal.SIGTERM, interrupted)
    fds = raise_fd_limit()
    prefix = installed_asterisk_prefix()
    work = Path(tempfile.mkdtemp(prefix=f"lianluo-{name}-"))
    digit_end_s = write_caller_pcap(work / "caller_media.pcap")
    write_agent_audio(work / AUDIO)
    started = time.monotonic()
    agents: subprocess.Popen[bytes] | None = None
    found: list[str] = []
    try:
        with open(work / "agents.out", "wb") as agents_out:
            port = free_sip_port()
            agents = start_agents(
                work,
                port,
                work / "agents.log",
                agents_out,
                scenario=SIPP_DIR / "agents_capacity.xml",
                extra=("-max_socket", "5000"),
            )
            measure(HeldBench(work, prefix, fds, port, agents, Bench(work, work / "agents.log", digit_end_s)))
        found = problems(results)
        keep = keep or bool(found)
    except (RuntimeError, AssertionError, subprocess.TimeoutExpired) as exc:  # a wait, the app exiting
        print(f"benchmark failed: {exc}", file=sys.stderr)
        keep = True
        return 1
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if agents is not None:
            stop_process(agents)
        if results:
            report(time.monotonic() - started, fds)
        if keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in found:
        print(f"benchmark failed: {problem}", file=sys.stderr)
    return 1 if found else 0


def write_results(
    output: Path, benchmark: str, args: Any, seconds: float, fds: int, results: dict[str, Any], **extra: Any
) -> None:
    """The benchmark's JSON: what, when, on what host, with which arguments, and its results."""
    output.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": benchmark,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
            "open_files_limit": fds,
        },
        **extra,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seconds": round(seconds, 1),
        **results,
    }
    output.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwritten to {output} ({seconds:.0f} s)", file=sys.stderr)
