"""SIPp callers for call-limit tests and the flood benchmark (benchmarks/sipp/flood.xml).

Each caller is one SIPp process bound to its own 127.0.0.x source address, so the center sees
distinct SIP peers on one machine. Its log says, per call marker, when the INVITE went out and
whether it was answered (200) or refused (503); a call with neither got something else.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SCENARIO = Path(__file__).resolve().parents[2] / "benchmarks" / "sipp" / "flood.xml"
# SIPp's [timestamp] is a date and time, then the epoch seconds.
LINE = re.compile(r"^(START|ANSWERED|REFUSED) .*?(\d{9,11}\.\d{6})\s+(\d+)$")


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class CallerLog:
    started: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    refused: dict[str, float] = field(default_factory=dict)

    @property
    def unanswered(self) -> set[str]:
        """Calls that got neither 200 nor 503 (a timeout or another error)."""
        return set(self.started) - set(self.answered) - set(self.refused)

    def setup_ms(self) -> list[float]:
        """INVITE sent -> 200 received, per answered call, sorted."""
        return sorted((self.answered[m] - self.started[m]) * 1000 for m in self.answered if m in self.started)


@dataclass
class Caller:
    """A SIPp caller placing `calls` calls at `rate` calls/s from `source` to `did`."""

    source: str
    server_port: int
    did: str
    rate: float
    calls: int
    run_code: int  # fixed width: the first digits of each call's marker (its caller ID)
    hold_ms: int
    work: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.work / f"flood-{self.run_code}.log"

    def start(self) -> None:
        cmd = [
            "sipp", f"127.0.0.1:{self.server_port}",
            "-sf", str(SCENARIO),
            "-s", self.did,
            "-i", self.source,
            "-p", str(free_udp_port(self.source)),
            "-mi", self.source,
            "-mp", str(free_udp_port(self.source)),
            "-r", str(self.rate),
            "-m", str(self.calls),
            "-l", str(self.calls),
            "-d", str(self.hold_ms),
            "-key", "run", str(self.run_code),
            "-trace_logs", "-log_file", str(self.log_path),
            "-timeout", f"{int(self.calls / self.rate + self.hold_ms / 1000 + 60)}s",
            "-nostdin",
        ]  # fmt: skip
        out = open(self.work / f"flood-{self.run_code}.out", "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def wait(self, timeout: float) -> CallerLog:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"SIPp caller {self.run_code} from {self.source} did not finish") from None
        return self.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def read(self) -> CallerLog:
        log = CallerLog()
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        for line in text.splitlines():
            m = LINE.match(line.strip())
            if m:
                kind, at, marker = m.group(1), float(m.group(2)), m.group(3)
                {"START": log.started, "ANSWERED": log.answered, "REFUSED": log.refused}[kind][marker] = at
        return log


def run_callers(callers: list[Caller], timeout: float) -> list[CallerLog]:
    """Start every caller at once and wait for all of them."""
    for c in callers:
        c.start()
    deadline = time.monotonic() + timeout
    try:
        return [c.wait(max(1.0, deadline - time.monotonic())) for c in callers]
    finally:
        for c in callers:
            c.stop()
