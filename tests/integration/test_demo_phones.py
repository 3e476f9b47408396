"""scripts/demo_phones.py, the phones of the README's outbound walk-through, as a newcomer runs it.

The customers' role is called by a real SIP phone (pjsua2, in this process) the way the center's
dialer calls it: it must ring, answer a moment later, say its greeting (heard on the caller's
recording), keep the caller's audio, and hang up by itself. The agent's role must refuse, with the
file and the known agents named, an agent the secrets file does not have.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import best_match, tone_seconds, write_tone
from tests.support.sip_phone import PhoneLab
from tests.support.stack import REPO, eventually

SCRIPT = REPO / "scripts" / "demo_phones.py"
NUMBER = "13800138001"


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Output:
    """The script's printed lines, collected by a thread as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@pytest.fixture
def customers(tmp_path: Path) -> Iterator[tuple[Output, str, Path]]:
    port = free_udp_port("127.0.0.2")
    record_dir = tmp_path / "customers"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "customers",
            "--listen",
            f"127.0.0.2:{port}",
            "--answer-after",
            "1",
            "--talk",
            "4",
            "--record-dir",
            str(record_dir),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    out = Output(proc)
    try:
        eventually(lambda: out.has("listening on"), 20, "the customers' network to listen")
        yield out, f"127.0.0.2:{port}", record_dir
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0, "\n".join(out.lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_customer_rings_answers_says_hello_listens_and_hangs_up(
    customers: tuple[Output, str, Path], tmp_path: Path
) -> None:
    out, address, record_dir = customers
    center_voice = write_tone(tmp_path / "center.wav", 700, 3.0)
    heard = tmp_path / "heard.wav"
    hello = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(tmp_path / "raw.wav"), "Hello?"], check=True)
    subprocess.run(
        ["sox", str(tmp_path / "raw.wav"), "-r", "8000", "-c", "1", "-b", "16", str(hello)], check=True
    )
    with PhoneLab(log_dir=tmp_path) as lab:
        dialer = lab.phone("127.0.0.1")
        call = dialer.call(f"sip:{NUMBER}@{address}", play=center_voice, record=heard)
        call.wait_early(timeout=10)
        rang = time.monotonic()
        call.wait_confirmed(timeout=10)
        assert time.monotonic() - rang >= 0.8, "a person lets it ring a moment before answering"
        call.wait_disconnected(timeout=15)  # the customer hangs up by themselves
        assert call.disconnected_at is not None and call.confirmed_at is not None
        assert 3.0 <= call.disconnected_at - call.confirmed_at <= 8.0
    assert best_match(call.recording(), hello) >= 0.5, "the dialler heard the customer's Hello?"
    eventually(lambda: out.has(f"{NUMBER} hangs up"), 5, "the customer's line saying it hung up")
    assert any(f"{NUMBER} is ringing" in line for line in out.lines)
    assert any(f"{NUMBER} answered" in line for line in out.lines)
    kept = eventually(lambda: list(record_dir.glob(f"{NUMBER}-*.wav")), 5, "the customer's recording")
    assert tone_seconds(kept[0], 700) >= 1.5, "the customer's recording has what the center said"


def test_an_agent_missing_from_the_secrets_file_is_refused_by_name(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("agent_passwords:\n  '1002': not-this-one\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "agent", "1001", "--secrets", str(secrets)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert f"no agent 1001 in {secrets}" in done.stderr and "1002" in done.stderr
    assert "not-this-one" not in done.stdout + done.stderr, "a password is never printed"
