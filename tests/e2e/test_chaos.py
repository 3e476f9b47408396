"""The call runtime's acceptance chaos test: calls in every state at once, then the app is
SIGKILLed, then Asterisk, then PostgreSQL is stopped and started, and nothing is lost.

Everything is real: pjsua phones (callers on the carrier's address, agents registered, the outside
world and the customers on the carrier's outbound contact), our Asterisk, `python -m app run` and a
PostgreSQL cluster of this module's own (so stopping it disturbs nobody else).

Each call is made deterministically: agents are set Ready one at a time through the API, so the
test knows whose phone rings for which caller, and every party plays its own tone, so what each
caller hears can be checked in their recording.

1. 18 calls in every state at once (26 SIP legs): callers in the menu, callers waiting in line
   (with skills and collected data), a phone ringing, bridged conversations, a held call, a
   consultation, a conference, a caller talking with an outside number, a dialer customer in the
   connect window, a message being recorded, a callback waiting in line, and agents Ready, Not
   Ready and in wrap-up.
2. The app is SIGKILLed and started again: what should survive did (no gap in what the callers
   hear), the rest is taken up where it was, agents are as they were, controls still work.
3. Asterisk is SIGKILLed: the app restarts it, closes every call as dropped, frees the agents,
   offers nobody a dead caller, and takes new calls at once; a callback waiting meanwhile waits on.
4. PostgreSQL is stopped and started while calls go on and new ones come: nothing is lost.
5. Afterwards every interaction ended once with the right outcome, no callback, message or dial
   attempt is lost, and nothing of the killed app runs. A table of it all is printed (and written
   to test-artifacts/chaos-table.txt).

The pjsua build holds 4 calls per process, so the phones live in worker processes
(tests/support/phone_pool.py), each leg's worker chosen so that none holds more than 4 at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import PromptText
from tests.support.audio import find_reference, read_wav, tone_frames, tone_seconds, write_tone
from tests.support.calls import prompt_wav
from tests.support.phone_pool import PhonePool, RemoteCall, RemotePhone
from tests.support.sip_phone import PhoneTimeout
from tests.support.stack import REPO, Stack, eventually, free_port, free_sip_port, write_config

# Alone under make test's two workers: eighteen calls at once and three deaths take the machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.alone]

CALLER_HZ = 1000
AGENT_HZ = 1330  # the agent in control of each call
SECOND_HZ = 1900  # the consulted agent, the second agent of the conference
OUTSIDE_HZ = 1660  # the number a caller was transferred to
CARRIER_PORT = free_sip_port()  # the outside world: transfers, callbacks and the dialer's customers
OUTSIDE_NUMBER = "13900000001"
CALLBACK_NUMBER = "13700000077"
CALLBACK_NUMBER_2 = "13700000078"
LEAD = "13800090001"
MESSAGE = "This is Lianluo calling about your order. We will call you again. Goodbye."
MENU = (
    "Chaos line. For an agent, press 1. For billing, press 2. For a message, press 3. For the desk, press 4."
)
MAX_GAP_S = 2.0

# Who is who. Every agent has a queue (or a role in general) of their own, so who gets which
# call never depends on timing.
GENERAL = ["1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1016", "1013"]
BILLING = ["1010", "1015"]  # 1010 has the skill the billing callers need, 1015 has not
DESK = "1009"  # rings and does not answer before the kill
DIALER_AGENT = "1011"  # Ready for the campaign, never answers
CALLBACK_AGENT = "1012"
NOBODY = "1014"  # the message queue's only member; never signs in: the message's callback waits
SPARE = "1013"  # Ready in general: takes the first new call after Asterisk restarts
# The pjsua build holds 4 calls per process: the phones live in worker processes
# (tests/support/phone_pool.py), each leg's worker chosen so that none ever holds more than 4.
AGENT_WORKER = {
    "1010": 0, "1015": 1, CALLBACK_AGENT: 1, "1001": 2, "1002": 2, "1003": 3, "1004": 3,
    "1005": 4, "1006": 4, "1007": 4, "1008": 5, DIALER_AGENT: 6, SPARE: 7, "1016": 7, DESK: 8,
}  # fmt: skip
CARRIER_WORKER = 6
WORKERS = 9

# The IVR flow, written next to the configuration by the stack fixture.
FLOW: dict[str, Any] = {
    "name": "chaos",
    "default": True,
    "start": "menu",
    "operator": "general",
    "nodes": {
        # The menu waits long: callers left in it are still there after the restarts.
        "menu": {
            "type": "menu",
            "prompt": {"text": MENU, "lang": "en"},
            "options": {"1": "general", "2": "account", "3": "message", "4": "desk"},
            "timeout_s": 60,
            "attempts": 5,
        },
        "account": {
            "type": "collect",
            "into": "account",
            "prompt": {"text": "Your account number, then the pound key.", "lang": "en"},
            "min_digits": 4,
            "max_digits": 12,
            "timeout_s": 10,
            "next": "billing",
        },
        "general": {"type": "queue", "queue": "general"},
        "billing": {"type": "queue", "queue": "billing", "skills": {"billing": 3}},
        "message": {"type": "voicemail", "queue": "messages"},
        "desk": {"type": "queue", "queue": "desk"},
    },
}
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
STACK_CONFIG: dict[str, Any] = {
    "carrier": {"outbound_contact": f"sip:127.0.0.2:{CARRIER_PORT}", "caller_id": "7000"},
    "routing": {"transfer_numbers": ["139"], "login_on_register": False},
    "agents": [
        *({"id": a, "name": f"Agent {a}"} for a in [*GENERAL, DESK, "1015", DIALER_AGENT, CALLBACK_AGENT]),
        {"id": "1010", "name": "Billing Expert", "skills": {"billing": 5}},
        {"id": NOBODY, "name": "Never Here"},
    ],
    "queues": [
        {
            "name": "general",
            "members": GENERAL,
            "ring_timeout_s": 20,
            "wrap_up_s": 120,
            "announce_every_s": 0,
        },
        {"name": "billing", "members": BILLING, "ring_timeout_s": 20, "wrap_up_s": 0, "announce_every_s": 0},
        {"name": "desk", "members": [DESK], "ring_timeout_s": 120, "wrap_up_s": 0, "announce_every_s": 0},
        {
            "name": "dialq",
            "members": [DIALER_AGENT],
            "ring_timeout_s": 20,
            "wrap_up_s": 0,
            "announce_every_s": 0,
        },
        {
            "name": "callbacks",
            "members": [CALLBACK_AGENT],
            "ring_timeout_s": 20,
            "wrap_up_s": 0,
            "announce_every_s": 0,
            "callback": {"offer": True, "retry_after_s": 5, "customer_ring_s": 20},
        },
        {
            "name": "messages",
            "members": [NOBODY],
            "wrap_up_s": 0,
            "announce_every_s": 0,
            "voicemail": {"offer": True, "max_s": 300, "max_silence_s": 30},
        },
    ],
    "ivr": {"flows": "flows", "connecting": []},  # relative to the configuration file
    "campaigns": [
        {
            "name": "chaos",
            "queue": "dialq",
            "mode": "progressive",
            "agent_line": "ringing",  # the agent's phone rings for the customer (and is left ringing)
            "active": False,
            "ring_s": 15,
            "amd": False,
            "message": [{"text": MESSAGE, "lang": "en"}],
            "timezone": "UTC",
            "window": {"days": DAYS, "start": "00:00", "end": "23:59"},
        }
    ],
}


# -- a PostgreSQL cluster of this module's own -------------------------------------------------


@dataclass
class PrivatePostgres:
    """A cluster in a temp dir, on a free port: stopping it disturbs no other test or center."""

    root: Path
    port: int
    bindir: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def run(self, tool: str, *args: str) -> None:
        # initdb and pg_ctl refuse to run as root: as root, they run as the postgres user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, str(self.bindir / tool), *args], capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
    root = Path(tempfile.mkdtemp(prefix="lianluo-chaos-pg-", dir="/tmp"))
    root.chmod(0o755)  # the postgres user must reach it
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    pg = PrivatePostgres(root, free_port(), bindir)
    pg.run("initdb", "-D", str(pg.data), "-A", "trust", "-U", "postgres", "--no-sync")
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    asterisk_prefix: Path,
    artifacts: Path,
    postgres: PrivatePostgres,
) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("chaos")
    (d / "flows").mkdir()
    (d / "flows" / "chaos.yaml").write_text(json.dumps(FLOW))
    settings = write_config(d / "center.yaml", d / "var", **STACK_CONFIG)
    url = postgres.url("lianluo_chaos")
    s = Stack(d / "center.yaml", d / "var", url, asterisk_prefix, artifacts / "chaos.log", settings)
    s.start()
    try:
        yield s
    finally:
        assert s.stop() == 0, s.tail()
        assert s.asterisk_pids() == [], "Asterisk still running after the app stopped"


@pytest.fixture
def pool(artifacts: Path) -> Iterator[PhonePool]:
    log_dir = artifacts / "pjsua" / "chaos"
    log_dir.mkdir(parents=True, exist_ok=True)
    with PhonePool(log_dir, WORKERS) as p:
        yield p


# -- small steps ------------------------------------------------------------------------------


def ok(stack: Stack, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    got, result = stack.api(method, path, body)
    assert got == status, (method, path, body, got, result)
    return result


def set_state(stack: Stack, agent_id: str, state: str, reason: str | None = None) -> None:
    body = {"state": state, **({"reason": reason} if reason else {})}
    ok(stack, "POST", f"/api/agents/{agent_id}/state", body)


def agents(stack: Stack) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in ok(stack, "GET", "/api/agents")}


def kinds(stack: Stack, iid: str) -> list[str]:
    return [k for k, _ in stack.events(iid)]


def events_since(stack: Stack, iid: str, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
    """`kind` events of the interaction at or after `since` (a time.time() value)."""
    rows = stack.query(
        "SELECT at, data FROM interaction_events WHERE interaction_id = %s AND kind = %s ORDER BY id",
        iid,
        kind,
    )
    return [{"at": r[0].timestamp(), **r[1]} for r in rows if r[0].timestamp() >= since]


def has_events(stack: Stack, iid: str, want: list[str]) -> bool:
    return set(want) <= set(kinds(stack, iid))


def ended(stack: Stack, iid: str) -> dict[str, Any] | None:
    return stack.interaction("id = %s AND ended_at IS NOT NULL", iid)


def row(stack: Stack, iid: str) -> dict[str, Any]:
    return stack.interaction_row("id = %s", iid)


def control(stack: Stack, iid: str, action: str, **body: str) -> dict[str, Any]:
    result = ok(stack, "POST", f"/api/calls/{iid}/{action}", body)
    assert isinstance(result, dict)
    return result


def app_command(stack: Stack, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": stack.db_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def hits(path: Path, tones: tuple[float, ...] | None) -> tuple[np.ndarray, float]:
    """Per 50 ms frame: did the caller hear what they should (one of `tones`; any sound for music)?"""
    if tones is None:
        samples, rate = read_wav(path)
        n = round(0.05 * rate)
        frames = samples[: len(samples) // n * n].reshape(-1, n)
        frames = frames - frames.mean(axis=1, keepdims=True)
        return np.sqrt((frames * frames).mean(axis=1)) >= 0.003, 0.05
    found = [tone_frames(path, hz, min_fraction=0.3) for hz in tones]
    return np.logical_or.reduce([f[0] for f in found]), found[0][1]


def prompt_heard(recording: Path, prompt: Path, from_s: float = 0.0) -> float:
    """How much of a prompt is in the recording (after `from_s`): the fraction of its 1 s pieces
    found there. Pieces, not the whole: a jitter buffer that shifts the audio once (pjsua does,
    under load) would cut the whole prompt's correlation in two."""
    samples, rate = read_wav(recording)
    part = (samples[round(from_s * rate) :], rate)
    ref, ref_rate = read_wav(prompt)
    pieces = [ref[i : i + ref_rate] for i in range(0, len(ref) - ref_rate + 1, ref_rate)]
    loud = [p for p in pieces if np.sqrt(np.mean(p * p)) > 0.02]
    found = sum(1 for p in loud if find_reference(part, (p, ref_rate), min_overlap=0.9).score > 0.5)
    return found / max(1, len(loud))


def longest_gap(heard: np.ndarray, frame_s: float, skip_s: float = 0.5) -> tuple[float, float]:
    """(length, start) in seconds of the longest stretch in which nothing expected was heard."""
    best, best_at, start = 0, 0, None
    first = round(skip_s / frame_s)
    for i, h in enumerate([*heard.tolist()[first:], True], start=first):
        if not h and start is None:
            start = i
        elif h and start is not None:
            if i - start > best:
                best, best_at = i - start, start
            start = None
    return best * frame_s, best_at * frame_s


def app_processes(config_path: Path) -> list[int]:
    """Python processes running this stack's configuration (the app, and anything it left)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and b"python" in cmdline[0] and str(config_path).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


# -- the scenes -------------------------------------------------------------------------------


@dataclass
class Scene:
    """One call of the test: the state it was in when the app was killed, and what became of it."""

    name: str
    state: str
    iid: str
    caller: RemoteCall | None = None
    agents: dict[str, RemoteCall] = field(default_factory=dict)
    tones: tuple[float, ...] | None = None  # what the caller should hear throughout (None: music)
    survives: bool = False  # stays up across the app's restart
    after_app: str = ""
    after_pbx: str = ""


@dataclass
class World:
    stack: Stack
    pool: PhonePool
    tmp: Path
    phones: dict[str, RemotePhone] = field(default_factory=dict)
    callers: dict[int, RemotePhone] = field(default_factory=dict)  # worker -> its callers' phone
    carrier: RemotePhone | None = None
    scenes: dict[str, Scene] = field(default_factory=dict)
    tone: dict[float, Path] = field(default_factory=dict)
    dialer_customer: RemoteCall | None = None

    def wav(self, hz: float) -> Path:
        if hz not in self.tone:
            self.tone[hz] = write_tone(self.tmp / f"tone-{hz:.0f}.wav", hz, 60)
        return self.tone[hz]

    def rec(self, name: str) -> Path:
        return self.tmp / f"{name}-{time.monotonic_ns()}.wav"

    def add(self, scene: Scene) -> Scene:
        self.scenes[scene.name] = scene
        return scene

    def place(self, worker: int, ani: str, name: str, play: bool = True) -> RemoteCall:
        """A caller on the carrier's address dials the service line (one phone per worker is
        every caller of that worker: the From user is the caller's number)."""
        if worker not in self.callers:
            self.callers[worker] = self.pool.phone(worker, "127.0.0.2", user="caller")
        return self.callers[worker].call(
            f"sip:7000@127.0.0.1:{self.stack.sip_port}",
            play=self.wav(CALLER_HZ) if play else None,
            record=self.rec(name),
            loop=True,
            from_user=ani,
        )

    def caller(self, worker: int, name: str, ani: str, play: bool = True) -> tuple[RemoteCall, str]:
        """A caller answered by the IVR; (their leg, the interaction)."""
        call = self.place(worker, ani, name, play)
        call.wait_confirmed(timeout=10)
        stack = self.stack
        it = eventually(lambda: stack.interaction("ani = %s", ani), 10, f"an interaction for {ani}")
        stack.wait_event(it["id"], "answered_by_ivr", timeout=10)
        return call, str(it["id"])

    def incoming(self, agent_id: str, timeout: float = 15) -> RemoteCall:
        """The next call ringing agent_id's phone."""
        return self.phones[agent_id].wait_incoming(timeout)

    def outside(self, number: str, timeout: float = 15) -> RemoteCall:
        """The next call the carrier takes, for `number`."""
        assert self.carrier is not None
        return self.carrier.wait_incoming(timeout, to_user=number)

    def rang(self, agent_id: str) -> bool:
        """Has agent_id's phone got a call not yet looked at?"""
        try:
            self.incoming(agent_id, timeout=0.2)
        except PhoneTimeout:
            return False
        return True

    def ring_any(self, agent_ids: list[str], timeout: float = 15) -> tuple[str, RemoteCall]:
        """The first of these agents' phones to ring, and its call."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for agent_id in agent_ids:
                with contextlib.suppress(PhoneTimeout):
                    return agent_id, self.incoming(agent_id, timeout=0.05)
        raise AssertionError(f"none of {agent_ids} rang within {timeout:.0f} s")

    def to_agent(self, worker: int, name: str, ani: str, agent_id: str) -> Scene:
        """A caller talking with `agent_id` in general, who alone is made Ready for it."""
        set_state(self.stack, agent_id, "ready")
        call, iid = self.caller(worker, name, ani)
        call.send_dtmf("1")
        leg = self.incoming(agent_id)
        assert leg.header("X-Lianluo-Interaction") == iid
        leg.answer(play=self.wav(AGENT_HZ), loop=True)
        self.stack.wait_event(iid, "connected", timeout=10)
        return self.add(Scene(name, "bridged", iid, call, {agent_id: leg}, (AGENT_HZ,), survives=True))

    def consult(self, scene: Scene, first: str, second: str) -> None:
        set_state(self.stack, second, "ready")
        assert control(self.stack, scene.iid, "consult", target=f"agent:{second}")["state"] == "ringing"
        leg = self.incoming(second)
        assert leg.header("X-Lianluo-Consult") == first
        leg.answer(play=self.wav(SECOND_HZ), loop=True)
        eventually(
            lambda: "consult_answered" in kinds(self.stack, scene.iid), 10, "the consultation answered"
        )
        scene.agents[second] = leg


def build_every_state(w: World) -> dict[str, Any]:
    """About 20 calls in every state at once, each made deterministically. Returns what the test
    needs to remember of them."""
    stack = w.stack
    w.carrier = w.pool.phone(CARRIER_WORKER, "127.0.0.2", port=CARRIER_PORT)
    for agent_id, worker in AGENT_WORKER.items():
        w.phones[agent_id] = w.pool.phone(
            worker,
            "127.0.0.1",
            user=agent_id,
            password=stack.agent_password(agent_id),
            registrar=f"127.0.0.1:{stack.sip_port}",
        )
    for phone in w.phones.values():
        phone.wait_registered(timeout=15)
    eventually(
        lambda: all(agents(stack)[a]["device_registered"] for a in w.phones), 15, "every agent's phone known"
    )
    (w.tmp / "leads.csv").write_text(f"phone,name\n{LEAD},Lee Ad\n")
    app_command(stack, "import-leads", "--config", str(stack.config_path), "chaos", str(w.tmp / "leads.csv"))

    # Logged in but not ready: callers of billing and the callback wait for them.
    set_state(stack, "1010", "not_ready", "lunch")
    set_state(stack, "1015", "not_ready", "meeting")
    set_state(stack, CALLBACK_AGENT, "not_ready", "training")

    # A callback waiting in line.
    cb = ok(stack, "POST", "/api/callbacks", {"phone": CALLBACK_NUMBER, "queue": "callbacks"}, 201)

    # A message being recorded (the caller "speaks": their tone).
    vm_call, vm_iid = w.caller(0, "voicemail", "13600000031")
    vm_call.send_dtmf("3")
    stack.wait_event(vm_iid, "voicemail_started", timeout=10)
    eventually(
        lambda: stack.query("SELECT legs ? 'voicemail' FROM interactions WHERE id = %s", vm_iid)[0][0],
        15,
        "the recording to start",
    )
    w.add(Scene("voicemail", "leaving a message", vm_iid, vm_call))

    # Callers waiting in billing, with the skill the flow asked for and an account number.
    accounts = {}
    waiting = (("13600000011", "12345678", 0), ("13600000012", "87654321", 0), ("13600000013", "55554444", 8))
    for n, (ani, account, worker) in enumerate(waiting, 1):
        call, iid = w.caller(worker, f"waiting-{n}", ani, play=False)
        call.send_dtmf("2")
        stack.wait_event(iid, "dtmf", timeout=10)
        call.send_dtmf(account + "#")
        stack.wait_event(iid, "queued", timeout=15)
        accounts[iid] = account
        w.add(Scene(f"waiting-{n}", "waiting in line", iid, call))

    # Callers in the menu, pressing nothing.
    for n, (ani, worker) in enumerate((("13600000021", 1), ("13600000022", 1), ("13600000023", 5)), 1):
        call, iid = w.caller(worker, f"ivr-{n}", ani, play=False)
        w.add(Scene(f"ivr-{n}", "in the IVR menu", iid, call))

    # Conversations: three plain, one held, one consulting, one conference.
    w.to_agent(2, "bridged-1", "13600000041", "1001")
    w.to_agent(2, "bridged-2", "13600000042", "1002")
    w.to_agent(7, "bridged-3", "13600000047", "1016")
    held = w.to_agent(3, "held", "13600000043", "1003")
    held.state, held.tones = "on hold", None
    control(stack, held.iid, "hold")
    consulting = w.to_agent(3, "consult", "13600000044", "1004")
    w.consult(consulting, "1004", "1005")
    consulting.state, consulting.tones = "consulting (caller on hold)", None
    conference = w.to_agent(4, "conference", "13600000045", "1006")
    w.consult(conference, "1006", "1007")
    control(stack, conference.iid, "conference")
    conference.state, conference.tones = "conference", (AGENT_HZ, SECOND_HZ)

    # A caller transferred to an outside number, talking there; their agent is in wrap-up.
    external = w.to_agent(5, "external", "13600000046", "1008")
    control(stack, external.iid, "transfer", target=f"number:{OUTSIDE_NUMBER}")
    external.agents.pop("1008").wait_disconnected(timeout=10)
    outside = w.outside(OUTSIDE_NUMBER)
    outside.answer(play=w.wav(OUTSIDE_HZ), loop=True)
    stack.wait_event(external.iid, "external_connected", timeout=10)
    external.state, external.tones = "with an outside number", (OUTSIDE_HZ,)
    external.agents = {"outside": outside}
    eventually(lambda: agents(stack)["1008"]["state"] == "wrap_up", 10, "agent 1008 in wrap-up")

    # A phone ringing: the desk's agent does not answer (yet).
    set_state(stack, DESK, "ready")
    ring_call, ring_iid = w.caller(8, "ringing", "13600000051")
    ring_call.send_dtmf("4")
    first_ring = w.incoming(DESK)
    eventually(lambda: agents(stack)[DESK]["state"] == "ringing", 10, "the desk's phone ringing")
    w.add(Scene("ringing", "agent's phone ringing", ring_iid, ring_call, {DESK: first_ring}))

    # One agent Ready, waiting for work.
    set_state(stack, SPARE, "ready")
    return {"callback": cb, "accounts": accounts}


def start_dialer_and_kill(w: World) -> Scene:
    """The campaign's customer answers; the app is killed inside the 2 s connect window, while the
    campaign's only Ready agent's phone rings unanswered."""
    stack = w.stack
    set_state(stack, DIALER_AGENT, "ready")
    ok(stack, "POST", "/api/campaigns/chaos/active", {"active": True})
    customer = w.outside(LEAD, timeout=30)
    customer.answer(record=w.rec("dialer-customer"))
    w.dialer_customer = customer
    it = eventually(
        lambda: stack.interaction("ani = %s AND direction = 'outbound'", LEAD), 10, "dialer_answered", 0.02
    )
    stack.kill()
    return w.add(Scene("dialer", "dialer customer in the connect window", str(it["id"])))


def kill_and_restart_app(w: World) -> dict[str, float]:
    """Phase 1: SIGKILL the app (in the dialer's connect window) and start it again. The calls that
    should survive did, with no gap in what their callers hear; returns the measured times."""
    stack, s = w.stack, w.scenes
    survivors = [sc for sc in s.values() if sc.survives]
    for sc in survivors:  # what they hear across the restart: a recording from just before the kill
        assert sc.caller is not None
        sc.caller.record(w.rec(f"across-{sc.name}"))
    marked = time.time()
    dialer = start_dialer_and_kill(w)
    killed = time.time()
    assert stack.asterisk_pids(), "Asterisk must outlive the app"
    legs = sum(w.pool.live_calls().values())
    assert legs <= 30, f"{legs} SIP legs at once"
    menu = [name for name in s if name.startswith("ivr-")]
    for name in menu:  # what the menu callers hear from now on
        caller = s[name].caller
        assert caller is not None
        caller.record(w.rec(f"after-{name}"))
    menu_recorded = time.time()
    stack.start()
    healthy = time.time()
    followed: dict[str, float] = {}
    for sc in survivors:
        got = eventually(partial(events_since, stack, sc.iid, "recovered"), 20, f"{sc.name} recovered")
        followed[sc.name] = got[0]["at"] - killed
    for sc in survivors:
        assert sc.caller is not None and not sc.caller.is_disconnected, f"{sc.name}: the caller was cut off"
        sc.caller.wait_rx_audio(sc.caller.rx_audio_seconds() + 3.0, timeout=15)
    for sc in survivors:
        assert sc.caller is not None
        recording = sc.caller.recording()
        heard, frame_s = hits(recording, sc.tones)
        gap, at = longest_gap(heard, frame_s)
        if sc.tones is None:  # on hold: music, and nothing of the agents, across the restart too
            for hz in (AGENT_HZ, SECOND_HZ):
                assert tone_seconds(recording, hz) < 0.5, f"{sc.name}: the caller on hold heard an agent"
        sc.after_app = f"survived; longest gap {gap:.2f} s ({at - (killed - marked):+.1f} s from the kill)"
        after = heard[round((healthy - marked) / frame_s) :]
        assert after.sum() * frame_s > 1.5, f"{sc.name}: nothing of the other party heard after the restart"
        assert gap <= MAX_GAP_S, f"{sc.name}: the caller heard nothing for {gap:.2f} s ({sc.after_app})"
    answered = eventually(partial(events_since, stack, dialer.iid, "dialer_answered"), 10, "dialer_answered")
    return {
        "healthy": healthy - killed,
        "followed": max(followed.values()),
        "killed": killed,
        "menu_from": healthy - menu_recorded,  # in the menu callers' recordings
        "legs": legs,
        "dialer_kill_ms": 1000 * (killed - answered[0]["at"]),
    }


def check_taken_up(
    w: World,
    before: dict[str, dict[str, Any]],
    rows: dict[str, dict[str, Any]],
    remembered: dict[str, Any],
    times: dict[str, float],
    customer: RemoteCall,
) -> None:
    """Phase 1, what was not simply followed: taken up where it was, and the agents as they were."""
    stack, s = w.stack, w.scenes
    killed = times["killed"]

    # Agents as they were: Not Ready keeps its reason, wrap-up its end, talkers are on their calls.
    now = agents(stack)
    for agent_id in [*GENERAL, "1010", "1015", CALLBACK_AGENT]:
        was, is_ = before[agent_id], now[agent_id]
        keys = ("state", "not_ready_reason", "interaction_id", "wrap_up_until")
        assert {k: is_[k] for k in keys} == {k: was[k] for k in keys}, (agent_id, was, is_)
    assert now["1008"]["state"] == "wrap_up" and now["1008"]["wrap_up_left_s"] > 0

    # Menu callers hear the menu again.
    for name in [name for name in s if name.startswith("ivr-")]:
        sc = s[name]
        assert sc.caller is not None
        stack.wait_event(sc.iid, "ivr_resumed", timeout=15)
        eventually(partial(events_since, stack, sc.iid, "prompt_played", killed), 20, "the menu again")
        heard = prompt_heard(sc.caller.recording(), prompt_wav(PromptText(MENU)), times["menu_from"])
        assert heard >= 0.6, f"{name}: the menu was not heard again after the restart ({heard:.0%} of it)"
        sc.after_app = f"taken up: menu heard again ({heard:.0%} of it)"

    # The message: Asterisk recorded on; the caller finishes with # after the restart.
    vm = s["voicemail"]
    assert vm.caller is not None
    stack.wait_event(vm.iid, "voicemail_resumed", timeout=15)
    vm.caller.send_dtmf("#")
    hashed = time.time()
    done = eventually(partial(ended, stack, vm.iid), 20, "message kept")
    assert done["outcome"] == "voicemail", done
    kept = stack.query(
        "SELECT file_path, duration_s, callback_id FROM voicemails WHERE interaction_id = %s", vm.iid
    )
    assert kept, "no voicemails row"
    audio = Path(kept[0][0])
    spoken = tone_seconds(audio, CALLER_HZ)
    assert spoken >= hashed - killed - 1.0, (
        f"the message lost what was said across the restart ({spoken:.1f} s)"
    )
    vm.after_app = f"kept: {kept[0][1]:.1f} s message, {spoken:.1f} s of the caller, across the restart"
    # Its callback would wait for nobody (the message queue's agent never signs in): cancelled.
    eventually(lambda: stack.api("DELETE", f"/api/callbacks/{kept[0][2]}")[0] == 200, 10, "cancelled")

    # The dialer's attempt is finished, never left open.
    dialer = s["dialer"]
    attempt = eventually(
        lambda: stack.query(
            "SELECT result, abandoned, message_started_at, ended_at FROM dial_attempts"
            " WHERE phone = %s AND ended_at IS NOT NULL",
            LEAD,
        ),
        20,
        "the dial attempt closed",
    )[0]
    assert attempt[0] in ("abandoned", "connected"), attempt
    closed = eventually(partial(ended, stack, dialer.iid), 20, "the dialer's call ended")
    if attempt[0] == "abandoned":
        assert attempt[1] and attempt[2] is not None, attempt
        customer.wait_disconnected(timeout=30)
        heard = prompt_heard(customer.recording(), prompt_wav(PromptText(MESSAGE)))
        assert heard >= 0.6, f"the customer did not hear the identifying message ({heard:.0%} of it)"
        assert closed["outcome"] == "abandoned", closed
        dialer.after_app = f"closed: abandoned, identifying message heard ({heard:.0%} of it)"
    else:
        dialer.after_app = "closed: connected"
    eventually(lambda: agents(stack)[DIALER_AGENT]["state"] == "ready", 15, "the dialer's agent free again")

    # The ringing agent's call is offered again.
    ring = s["ringing"]
    retried = w.incoming(DESK, timeout=30)
    assert retried.header("X-Lianluo-Interaction") == ring.iid
    assert ring.agents[DESK].is_disconnected, "the first ring stopped before the retry"
    retried.answer(play=w.wav(AGENT_HZ), loop=True)
    eventually(lambda: events_since(stack, ring.iid, "connected", killed), 10, "the retried offer answered")
    ring.agents[DESK] = retried
    ring.after_app = "taken up: offered again after the restart, answered"

    # Waiting callers: their place, skills and data kept; offered when an agent becomes Ready.
    for name in [name for name in s if name.startswith("waiting-")]:
        sc = s[name]
        stack.wait_event(sc.iid, "recovered", timeout=15)
        now_row = row(stack, sc.iid)
        assert now_row["queued_at"] == rows[name]["queued_at"], f"{name} lost their place in line"
        assert now_row["skills"] == {"billing": 3}, now_row["skills"]
        assert now_row["collected"] == {"account": remembered["accounts"][sc.iid]}, now_row["collected"]
    set_state(stack, "1015", "ready")  # Ready, but without the billing skill these callers need
    set_state(stack, "1010", "ready")
    first = s["waiting-1"]
    leg = w.incoming("1010", timeout=15)
    assert leg.header("X-Lianluo-Interaction") == first.iid, "the first in line goes first"
    assert leg.header("X-Lianluo-Data") == f"account={remembered['accounts'][first.iid]}"
    leg.answer(play=w.wav(AGENT_HZ), loop=True)
    stack.wait_event(first.iid, "connected", timeout=10)
    first.agents["1010"] = leg
    assert not w.rang("1015"), "1015 (Ready, without the billing skill) was offered a billing caller"
    first.after_app = "taken up: place, skill and account kept; offered to the Ready expert"
    for name in ("waiting-2", "waiting-3"):
        s[name].after_app = "taken up: waits on in its place (no Ready agent has the skill)"

    # The callback is still waiting, and is dialled once its agent is Ready.
    cb = remembered["callback"]
    assert cb["id"] in [
        c["id"] for c in ok(stack, "GET", "/api/callbacks?open=1") if c["status"] == "waiting"
    ]
    set_state(stack, CALLBACK_AGENT, "ready")
    agent_leg = w.incoming(CALLBACK_AGENT, timeout=20)
    assert agent_leg.header("X-Lianluo-Callback") == cb["id"]
    agent_leg.answer(play=w.wav(AGENT_HZ), loop=True)
    cust = w.outside(CALLBACK_NUMBER, timeout=20)
    cust.answer(play=w.wav(CALLER_HZ), loop=True)
    eventually(
        lambda: stack.query("SELECT status FROM callbacks WHERE id = %s", cb["id"])[0][0] == "completed",
        15,
        "the callback connected",
    )
    attempt_iid = eventually(
        lambda: stack.interaction("callback_id = %s AND answered_at IS NOT NULL", cb["id"]), 10, "the attempt"
    )["id"]
    w.add(Scene("callback", "callback waiting in line", str(attempt_iid), None, {CALLBACK_AGENT: agent_leg}))
    w.scenes["callback"].after_app = "still waiting after the restart; dialled once its agent was Ready"
    # A second callback waits behind it, through the Asterisk restart to come.
    remembered["callback-2"] = ok(
        stack, "POST", "/api/callbacks", {"phone": CALLBACK_NUMBER_2, "queue": "callbacks"}, 201
    )

    # Controls still work on surviving calls: resume the held call, complete the consultation.
    held = s["held"]
    assert held.caller is not None
    control(stack, held.iid, "resume")
    held.caller.record(w.rec("resumed"))
    held.caller.wait_rx_audio(held.caller.rx_audio_seconds() + 2.5, timeout=10)
    assert tone_seconds(held.caller.recording(), AGENT_HZ) > 1.5, (
        "the held caller is not back with their agent"
    )
    held.after_app += "; resumed after the restart"
    held.tones = (AGENT_HZ,)
    consulting = s["consult"]
    assert consulting.caller is not None
    control(stack, consulting.iid, "complete")
    consulting.agents.pop("1004").wait_disconnected(timeout=10)
    consulting.caller.record(w.rec("completed"))
    consulting.caller.wait_rx_audio(consulting.caller.rx_audio_seconds() + 2.5, timeout=10)
    assert tone_seconds(consulting.caller.recording(), SECOND_HZ) > 1.5, "the caller is not with agent 1005"
    consulting.after_app += "; consultation completed after the restart"
    eventually(lambda: agents(stack)["1004"]["state"] == "wrap_up", 10, "1004 in wrap-up")


def open_interactions(stack: Stack) -> dict[str, dict[str, Any]]:
    rows = stack.query("SELECT id, queue FROM interactions WHERE ended_at IS NULL")
    return {str(r[0]): {"queue": r[1]} for r in rows}


def ended_counts(stack: Stack) -> dict[str, int]:
    rows = stack.query(
        "SELECT i.id, count(e.id) FROM interactions i LEFT JOIN interaction_events e"
        " ON e.interaction_id = i.id AND e.kind = 'ended' GROUP BY i.id"
    )
    return {str(r[0]): int(r[1]) for r in rows}


def kill_asterisk(w: World, remembered: dict[str, Any]) -> dict[str, float]:
    """Phase 2: SIGKILL Asterisk. Every call in progress is closed as dropped, once; its agents go
    to wrap-up or Ready by their queue's rule; nobody is offered a dead caller; new calls work."""
    stack = w.stack
    cb2 = remembered["callback-2"]["id"]
    waiting_cb = eventually(
        lambda: stack.interaction("callback_id = %s AND ended_at IS NULL", cb2), 10, "callback 2 in line"
    )
    in_progress = open_interactions(stack)
    del in_progress[str(waiting_cb["id"])]  # not a call: no channel in Asterisk yet
    names = {sc.iid: name for name, sc in w.scenes.items()}
    expected = {n for n in names.values() if n not in ("voicemail", "dialer")}
    strangers = {i: (row(stack, i), kinds(stack, i)) for i in in_progress if i not in names}
    assert {names.get(i, i) for i in in_progress} == expected, strangers or in_progress
    holding = {a: v["interaction_id"] for a, v in agents(stack).items() if v["interaction_id"] in in_progress}
    restarts = stack.health()[1]["asterisk"]["restarts"]
    pids = stack.asterisk_pids()
    legs = w.pool.marks()
    killed = time.time()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def closed() -> bool:
        return all(ended(stack, i) for i in in_progress)

    eventually(closed, 30, "every call in progress closed")
    all_closed = time.time() - killed
    counts = ended_counts(stack)
    for iid in in_progress:
        r = row(stack, iid)
        assert r["outcome"] == "dropped", (names.get(iid), r["outcome"])
        assert counts[iid] == 1, (names.get(iid), counts[iid])
        assert not events_since(stack, iid, "offered", killed), f"{names.get(iid)}: a dead caller was offered"
        w.scenes[names[iid]].after_pbx = "closed: dropped, one `ended` event"

    def freed() -> bool:
        now = agents(stack)
        for agent_id, iid in holding.items():
            queue = in_progress[iid]["queue"]
            want = "wrap_up" if queue == "general" else "ready"
            is_ = now[agent_id]
            moved_on = is_["interaction_id"] not in (None, iid) and is_["state"] in (
                "reserved",
                "ringing",
                "on_call",
            )
            assert is_["state"] == want or moved_on, (agent_id, queue, is_)
        return True

    eventually(freed, 15, "the agents of dropped calls freed by their queue's rule")
    health = eventually(
        lambda: (h := stack.health())[0] == 200 and h[1]["asterisk"]["restarts"] > restarts and h,
        30,
        "healthy",
    )
    assert health and pids[0] not in stack.asterisk_pids()
    left = w.pool.hang_up_everything(legs)  # the phones' legs of calls the dead Asterisk had

    # A new call after the restart: answered by the IVR, put through to the Ready agent at once.
    dialled = time.time()
    call, iid = w.caller(7, "after-asterisk", "13600000061")
    call.send_dtmf("1")
    try:
        leg = w.incoming(SPARE, timeout=15)
    except PhoneTimeout as exc:  # what the app made of it, for whoever reads the failure
        seen = f"{agents(stack)[SPARE]}; the call: {kinds(stack, iid)}"
        raise AssertionError(f"{SPARE} not rung: {seen}") from exc
    leg.answer(play=w.wav(AGENT_HZ), loop=True)
    stack.wait_event(iid, "connected", timeout=10)
    through = time.time() - dialled
    w.add(Scene("new-1", "(new call after Asterisk restarted)", iid, call, {SPARE: leg}))
    w.scenes["new-1"].after_pbx = f"served: dial to agent talking {through:.2f} s"

    # The callback that waited through it is dialled as if nothing happened.
    agent_leg = w.incoming(CALLBACK_AGENT, timeout=20)
    assert agent_leg.header("X-Lianluo-Callback") == cb2
    agent_leg.answer(play=w.wav(AGENT_HZ), loop=True)
    w.outside(CALLBACK_NUMBER_2, timeout=20).answer(play=w.wav(CALLER_HZ), loop=True)
    eventually(
        lambda: stack.query("SELECT status FROM callbacks WHERE id = %s", cb2)[0][0] == "completed",
        15,
        "callback 2 connected",
    )
    tries = stack.query(
        "SELECT id, outcome FROM interactions WHERE callback_id = %s ORDER BY arrived_at", cb2
    )
    assert [t[1] for t in tries] == [None], f"callback 2's tries: {tries}"
    w.add(Scene("callback-2", "(callback waiting in line during the Asterisk restart)", str(tries[0][0])))
    w.scenes[
        "callback-2"
    ].after_pbx = "still waiting after Asterisk restarted; dialled, connected at first try"
    agent_leg.hangup()
    print(f"\nAsterisk SIGKILL -> every call closed {all_closed:.2f} s; {left} stale phone legs hung up")
    return {"closed": all_closed, "new_call": through}


def stop_database(w: World, postgres: PrivatePostgres) -> dict[str, float]:
    """Phase 3: stop PostgreSQL while calls go on, place new calls meanwhile, start it again:
    every row and event arrives, and the agents' history has no gap."""
    stack = w.stack
    set_state(stack, "1001", "ready")
    set_state(stack, "1002", "ready")
    postgres.stop("fast")
    down = time.time()
    talking: dict[str, tuple[RemoteCall, RemoteCall, str]] = {}
    for n, ani in enumerate(("13600000071", "13600000072"), 1):
        call = w.place(7, ani, f"outage-{n}")
        call.wait_confirmed(timeout=15)  # the IVR answers (the customer lookup gives up after 1 s)
        call.send_dtmf("1")
        _, leg = w.ring_any([a for a in GENERAL if a != SPARE], timeout=20)
        leg.answer(play=w.wav(AGENT_HZ), loop=True)
        iid = leg.header("X-Lianluo-Interaction")
        assert iid is not None
        call.wait_rx_audio(call.rx_audio_seconds() + 2.0, timeout=10)
        talking[f"outage-{n}"] = (call, leg, iid)
    first = w.scenes["new-1"]
    assert first.caller is not None
    first.caller.hangup()  # a call ends while the database is down
    set_state(stack, "1003", "not_ready", "break")  # and an agent changes state
    outage = time.time() - down
    postgres.start()
    up = time.time()
    for name, (call, leg, iid) in talking.items():
        assert tone_seconds(call.recording(), AGENT_HZ) > 1.0, f"{name}: the caller did not reach the agent"
        want = ["arrived", "answered_by_ivr", "dtmf", "queued", "offered", "connected"]
        eventually(partial(has_events, stack, iid, want), 30, f"{name}'s events")
        journey = kinds(stack, iid)
        assert all(journey.count(k) == 1 for k in want), f"{name}: events lost or doubled: {journey}"
        w.add(Scene(name, "(new call during the database outage)", iid, call, {"agent": leg}))
    written = time.time() - up
    assert eventually(partial(ended, stack, first.iid), 15, "the call ended in the outage")
    for name, (call, _, iid) in talking.items():
        call.hangup()
        eventually(partial(ended, stack, iid), 15, f"{name} ended")
        w.scenes[name].after_pbx = "served during the outage; every event written afterwards"

    def no_gap() -> bool:
        live = agents(stack)
        stored = dict(
            stack.query(
                "SELECT DISTINCT ON (agent_id) agent_id, to_state FROM agent_state_events"
                " ORDER BY agent_id, at DESC, id DESC"
            )
        )
        assert {a: stored.get(a, "logged_out") for a in live} == {a: v["state"] for a, v in live.items()}
        return True

    eventually(no_gap, 15, "the stored agent states to match the live ones")
    print(
        f"\nPostgreSQL down {outage:.1f} s with calls going on; all written {written:.1f} s after it was back"
    )
    return {"outage": outage, "written": written}


def check_nothing_lost(w: World, remembered: dict[str, Any], app_pid: int) -> None:
    """Afterwards: every interaction ended once with the right outcome, no callback, message or
    dial attempt lost, new calls served, and nothing of the killed app still running."""
    stack = w.stack
    # New calls are served.
    call, iid = w.caller(7, "last", "13600000081")
    call.send_dtmf("1")
    set_state(stack, SPARE, "ready")
    _, leg = w.ring_any(GENERAL, timeout=20)
    leg.answer(play=w.wav(AGENT_HZ), loop=True)
    stack.wait_event(iid, "connected", timeout=10)
    call.hangup()
    w.add(Scene("last", "(new call at the end)", iid, call))
    w.scenes["last"].after_pbx = "served"

    expected = {"voicemail": {"voicemail"}, "dialer": {"abandoned", "completed"}}
    for name in ("new-1", "outage-1", "outage-2", "last", "callback-2"):
        expected[name] = {"completed"}

    def all_ended() -> bool:
        return not open_interactions(stack)

    eventually(all_ended, 20, "every interaction to end")
    counts = ended_counts(stack)
    assert all(n == 1 for n in counts.values()), {i: n for i, n in counts.items() if n != 1}
    for name, sc in w.scenes.items():
        outcome = row(stack, sc.iid)["outcome"]
        assert outcome in expected.get(name, {"dropped"}), (name, outcome)
    for iid in counts:  # the calls of the database outage are there with their whole journey
        # A call we place settles the customer's language before it is answered.
        journey = [k for k in kinds(stack, iid) if k != "language"]
        assert journey[0] in ("arrived", "dialer_answered", "callback_attempt"), journey
    assert stack.query("SELECT count(*) FROM dial_attempts WHERE ended_at IS NULL")[0][0] == 0
    stuck = stack.query(
        "SELECT id, status FROM callbacks WHERE status NOT IN ('waiting', 'completed', 'cancelled')"
    )
    assert not stuck, f"callbacks lost or stuck: {stuck}"
    assert stack.query("SELECT count(*) FROM voicemails")[0][0] == 1
    left = [pid for pid in app_processes(stack.config_path) if pid != app_pid]
    assert not left, f"processes of the killed app still running: {left}"


def print_table(w: World, before: dict[str, dict[str, Any]], times: dict[str, float]) -> None:
    lines = ["", "state before the kill → after the app's SIGKILL and restart → after Asterisk's SIGKILL"]
    for sc in w.scenes.values():
        lines.append(f"  {sc.name:<12} {sc.state:<40} → {sc.after_app or '-'} → {sc.after_pbx or '-'}")
    for agent_id, why in (
        (SPARE, "Ready"),
        ("1010", "Not Ready (lunch)"),
        ("1015", "Not Ready (meeting)"),
        (CALLBACK_AGENT, "Not Ready (training)"),
        ("1008", "wrap-up"),
    ):
        was = before[agent_id]
        detail = " ".join(
            x
            for x in (
                was["state"],
                was["not_ready_reason"],
                was["wrap_up_until"] and "until " + was["wrap_up_until"],
            )
            if x
        )
        lines.append(f"  agent {agent_id:<6} {why:<40} → as it was after the restart ({detail})")
    lines.append(
        f"{times['legs']:.0f} SIP legs up at the app's SIGKILL,"
        f" {times['dialer_kill_ms']:.0f} ms after the dialer's customer answered"
    )
    lines.append(
        f"restart gap: SIGKILL → app healthy {times['healthy']:.2f} s; → every surviving call followed again"
        f" (its `recovered` event) {times['followed']:.2f} s"
    )
    lines.append(
        f"Asterisk SIGKILL → every call closed as dropped {times['closed']:.2f} s; new call to an agent"
        f" {times['new_call']:.2f} s after dialling"
    )
    lines.append(
        f"PostgreSQL outage {times['outage']:.1f} s with calls placed and answered; everything written"
        f" {times['written']:.1f} s after it was back"
    )
    text = "\n".join(lines)
    print(text)
    (REPO / "test-artifacts" / "chaos-table.txt").write_text(text + "\n")


def test_calls_in_every_state_survive_the_app_asterisk_and_the_database_dying(
    stack: Stack, postgres: PrivatePostgres, pool: PhonePool, tmp_path: Path
) -> None:
    w = World(stack, pool, tmp_path)
    remembered = build_every_state(w)
    before = agents(stack)
    rows = {name: row(stack, sc.iid) for name, sc in w.scenes.items()}
    assert before["1008"]["state"] == "wrap_up" and before[SPARE]["state"] == "ready"

    times = kill_and_restart_app(w)
    assert stack.proc is not None
    app_pid = stack.proc.pid
    assert w.dialer_customer is not None
    check_taken_up(w, before, rows, remembered, times, w.dialer_customer)
    times |= kill_asterisk(w, remembered)
    times |= stop_database(w, postgres)
    check_nothing_lost(w, remembered, app_pid)
    print_table(w, before, times)
