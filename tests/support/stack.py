"""Run the real contact center for end-to-end tests: `python -m app run` as a subprocess.

Each test session gets its own database, var dir and free ports, so tests never collide
with `make run` or with another test run on the same machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import yaml
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll until `check` returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f": {last_error}" if last_error else "")
    )


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh database on the server of DATABASE_URL (else 127.0.0.1:5432), dropped afterwards,
    so test sessions and benchmark runs never collide with each other or with `make run`."""
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg.conninfo.make_conninfo(server, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def installed_asterisk_prefix() -> Path:
    """LIANLUO_ASTERISK_PREFIX, else the cached build (scripts/install-asterisk builds it if missing)."""
    env = os.environ.get("LIANLUO_ASTERISK_PREFIX")
    if env:
        return Path(env)
    out = subprocess.run(
        [str(REPO / "scripts" / "install-asterisk")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


# Ports this test process has handed out. The kernel may give a just-closed
# ephemeral port again, and one config then names the same port twice (CI once
# got web.port equal to asterisk.ami_port); a port is handed out once per process.
_HANDED_OUT: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port not handed out before")


def free_sip_port() -> int:
    """A port free for both UDP (SIP) and TCP, so nothing else grabs it meanwhile."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


@dataclass
class Stack:
    """One running Lianluo (app + its Asterisk) with the test's config."""

    config_path: Path
    var_dir: Path
    db_url: str
    asterisk_prefix: Path
    log_path: Path
    settings: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)
    log_level: str = "DEBUG"

    @property
    def sip_port(self) -> int:
        return int(self.settings["asterisk"]["sip_port"])

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.settings['web']['port']}"

    @property
    def secrets(self) -> dict[str, Any]:
        data = yaml.safe_load((self.var_dir / "secrets.yaml").read_text())
        assert isinstance(data, dict)
        return data

    def agent_password(self, agent_id: str) -> str:
        return str(self.secrets["agent_passwords"][agent_id])

    def start(self, timeout: float = 90.0) -> None:
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "run",
                "--config",
                str(self.config_path),
                "--log-level",
                self.log_level,
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                **self.env,
                "DATABASE_URL": self.db_url,
                "LIANLUO_ASTERISK_PREFIX": str(self.asterisk_prefix),
            },
            # If the test process dies (even by a C-level abort in a SIP peer), the app gets
            # SIGTERM and shuts its Asterisk down instead of being left running.
            preexec_fn=_terminate_with_parent,
        )
        log.close()
        eventually(self._healthy, timeout, f"Lianluo to report healthy (log: {self.log_path})")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"Lianluo exited with {self.proc.returncode}; log: {self.log_path}\n{self.tail()}"
            )
        status, _ = self.health()
        return status == 200

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.web_url + "/health", timeout=3) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return 0, {}

    def kill(self) -> None:
        """SIGKILL the app only: Asterisk (its own session) keeps the calls up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"Lianluo did not stop within {timeout:.0f} s on SIGINT") from None

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """Call the supervisor API with the generated token (or the one given)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.web_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token if token is not None else self.secrets['api_token']}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        status, agents = self.api("GET", "/api/agents")
        assert status == 200, agents
        return next(a for a in agents if a["id"] == agent_id)

    def cli(self, command: str) -> str:
        """Asterisk's own CLI on this stack's instance (asterisk -rx)."""
        return subprocess.run(
            [
                str(self.asterisk_prefix / "sbin/asterisk"),
                "-C",
                str(self.var_dir / "asterisk" / self.settings["asterisk"]["instance"] / "etc/asterisk.conf"),
                "-rx",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout

    def asterisk_pids(self) -> list[int]:
        return asterisk_pids_for(self.var_dir)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- database -------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def interaction(self, where: str, *params: Any) -> dict[str, Any] | None:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute(f"SELECT * FROM interactions WHERE {where} ORDER BY arrived_at DESC LIMIT 1", params)
            return cur.fetchone()

    def interaction_row(self, where: str, *params: Any) -> dict[str, Any]:
        """`interaction`, for a row that must exist: its absence is an error here."""
        row = self.interaction(where, *params)
        if row is None:
            raise LookupError(f"no interaction where {where} {params}")
        return row

    def events(self, interaction_id: Any) -> list[tuple[str, dict[str, Any]]]:
        rows = self.query(
            "SELECT kind, data FROM interaction_events WHERE interaction_id = %s ORDER BY id", interaction_id
        )
        return [(r[0], r[1]) for r in rows]

    def wait_event(self, interaction_id: Any, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            for k, data in self.events(interaction_id):
                if k == kind:
                    return data or {"_": True}
            return None

        return eventually(check, timeout, f"event {kind!r} of interaction {interaction_id}")


def _terminate_with_parent() -> None:
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def asterisk_pids_for(var_dir: Path) -> list[int]:
    marker = str(var_dir.resolve() / "asterisk").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"sbin/asterisk" in cmdline and marker in cmdline and b"-rx" not in cmdline:
            pids.append(int(proc.name))
    return pids


def write_config(path: Path, var_dir: Path, instance: str = "main", **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "center_name": "Lianluo test",
        "ari_app": "lianluo",
        "var_dir": str(var_dir),
        "asterisk": {
            "instance": instance,
            "sip_bind": "127.0.0.1",
            "sip_port": free_sip_port(),
            "http_port": free_port(),
            "ami_port": free_port(),
            "rtp_start": 30000,
            "rtp_end": 30999,
        },
        "carrier": {"name": "carrier", "match": ["127.0.0.2"], "dids": ["7000"]},
        "agents": [{"id": "1001", "name": "Alice Wang"}, {"id": "1002", "name": "Bob Li"}],
        "ivr": {
            "greeting": [
                {"text": "Welcome to Lianluo. To speak with an agent, press 1.", "lang": "en"},
                {"text": "欢迎致电联络。人工服务请按1。", "lang": "zh"},
            ],
            "digit_timeout_s": 5,
            "attempts": 2,
        },
        "queues": [{"name": "general", "strategy": "longest_idle", "ring_timeout_s": 8, "wrap_up_s": 0}],
        "web": {"host": "127.0.0.1", "port": free_port()},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    path.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    return settings
