"""The app's helper processes die with it.

A stand-in app (a small Python process) starts what the app starts: the pocketsphinx recognizer
from the real factory (two worker processes and multiprocessing's resource tracker), a prompt
synthesis (the TTS worker and, with the espeak-ng engine, the synthesiser it runs) and an
``asterisk -rx`` command. The synthesiser and Asterisk are stand-ins that never answer, so both
are still running when the app is SIGKILLed. Then no process of its tree may remain. A normal
close must still stop the workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from app.adapters.speech import SpeechSettings, recognizer_from_settings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

REPO = Path(__file__).resolve().parents[2]
SPEECH_WORKERS = min(2, os.cpu_count() or 1)  # the factory's default pool size
NEVER = 3600  # seconds the stand-ins sleep; distinct values below tell them apart

# The stand-in app; argv[1] is a scratch directory. Run with `-c`, so spawn re-imports no main.
APP = """
import asyncio, sys
from pathlib import Path
from app.adapters.asterisk_instance import AsteriskProcess, InstancePaths
from app.adapters.prompts import Prompt, PromptCache
from app.adapters.speech import SpeechSettings, recognizer_from_settings

async def main(scratch: Path) -> None:
    recognizer = recognizer_from_settings(SpeechSettings())  # as app.bootstrap does
    await recognizer.start()
    cache = PromptCache(scratch / "cache", engine="espeak-ng", attempts=1, timeout=3600)
    asterisk = AsteriskProcess(scratch, InstancePaths.under(scratch, "pbx"))
    await asyncio.gather(cache.render(Prompt("hello")), asterisk.cli("core show uptime", 3600))

asyncio.run(main(Path(sys.argv[1])))
"""

ROLES: dict[str, Callable[[str], bool]] = {
    "speech worker": lambda cmd: "multiprocessing.spawn" in cmd,
    "resource tracker": lambda cmd: "multiprocessing.resource_tracker" in cmd,
    "tts worker": lambda cmd: "app.adapters.tts_worker" in cmd,
    "espeak-ng (stand-in)": lambda cmd: cmd == f"sleep {NEVER + 1}",
    "asterisk -rx (stand-in)": lambda cmd: cmd == f"sleep {NEVER + 2}",
}
EXPECTED = {role: 1 for role in ROLES} | {"speech worker": SPEECH_WORKERS}


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    started: int  # clock ticks after boot: a later process reusing the pid differs here
    state: str
    cmdline: str
    rss_kb: int

    @property
    def role(self) -> str:
        return next((role for role, match in ROLES.items() if match(self.cmdline)), "?")

    def __str__(self) -> str:
        return f"{self.pid} {self.role} ({self.rss_kb / 1024:.0f} MB RSS, {self.state}): {self.cmdline[:100]}"


def read_proc(pid: int) -> Proc | None:
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        cmdline = (base / "cmdline").read_bytes()
        status = (base / "status").read_text()
    except OSError:  # gone, or not ours to read
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold anything
    rss = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return Proc(pid, int(fields[1]), int(fields[19]), fields[0], text, rss[0] if rss else 0)


def mapped_files(pid: int) -> set[str]:
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {fields[5] for fields in (line.split(maxsplit=5) for line in lines) if len(fields) == 6}


def descendants(root: int) -> list[Proc]:
    procs = [p for p in map(read_proc, (int(d) for d in os.listdir("/proc") if d.isdigit())) if p]
    found, parents = [], {root}
    for _ in range(len(procs)):  # breadth first, one generation per pass
        generation = [p for p in procs if p.ppid in parents and p not in found]
        if not generation:
            break
        found += generation
        parents = {p.pid for p in generation}
    return found


def still_running(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    # A zombie holds no memory; it waits for whoever adopted it to reap it.
    return now is not None and now.started == proc.started and now.state != "Z"


T = TypeVar("T")


def poll(probe: Callable[[], T | None], timeout: float, what: str, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            extra = f"\n--- app log ---\n{log.read_text()}" if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(0.05)
    return found


def stand_in(path: Path, seconds: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexec sleep {seconds}\n")
    path.chmod(0o755)


def test_a_killed_app_leaves_no_process_behind(tmp_path: Path) -> None:
    stand_in(tmp_path / "bin" / "espeak-ng", NEVER + 1)
    stand_in(tmp_path / "sbin" / "asterisk", NEVER + 2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        app = subprocess.Popen(
            [sys.executable, "-c", APP, str(tmp_path)], env=env, stdout=out, stderr=out, cwd=tmp_path
        )
    tree: list[Proc] = []
    semaphores: set[Path] = set()
    try:

        def all_up() -> list[Proc] | None:
            if app.poll() is not None:
                raise AssertionError(f"the app exited with {app.returncode}:\n{log.read_text()}")
            procs = descendants(app.pid)
            roles = [p.role for p in procs]
            return procs if all(roles.count(r) == n for r, n in EXPECTED.items()) else None

        tree = poll(all_up, 120.0, f"the app's processes {EXPECTED}", log)
        assert len(tree) == sum(EXPECTED.values()), "\n".join(map(str, tree))
        # multiprocessing's named semaphores, which the resource tracker unlinks once all its
        # clients are gone; mapped by the app, so listed in its /proc/PID/maps.
        semaphores = {Path(m) for m in mapped_files(app.pid) if m.startswith("/dev/shm/sem.")}

        app.send_signal(signal.SIGKILL)
        app.wait()

        def all_gone() -> bool | None:
            return True if not any(map(still_running, tree)) else None

        try:
            poll(all_gone, 15.0, "the app's processes to end")
        except AssertionError:
            left = "\n".join(str(p) for p in tree if still_running(p))
            raise AssertionError(f"left running after the app was killed:\n{left}") from None
        assert semaphores, "expected the pool's semaphores in the app's maps"
        assert not [s for s in semaphores if s.exists()], "semaphores left in /dev/shm"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        for proc in tree:  # whatever a failing run left behind
            if still_running(proc):
                os.kill(proc.pid, signal.SIGKILL)
        for semaphore in semaphores:
            semaphore.unlink(missing_ok=True)


async def test_close_stops_the_speech_workers() -> None:
    before = {p.pid for p in descendants(os.getpid())}
    recognizer = recognizer_from_settings(SpeechSettings())
    await recognizer.start()
    try:
        new = [p for p in descendants(os.getpid()) if p.pid not in before]
        workers = [p for p in new if p.role == "speech worker"]
        assert len(workers) == SPEECH_WORKERS, "\n".join(map(str, new))
        silence = await recognizer.recognize(bytes(16000), 8000, ["yes", "no"])  # runs in a worker
        assert silence.phrase is None
    finally:
        await recognizer.close()
    # close() joins the workers, so they are gone (not zombies) as soon as it returns.
    assert [str(p) for p in workers if read_proc(p.pid) is not None] == []


def test_a_worker_whose_parent_died_before_it_asked_exits() -> None:
    """The kernel signals only deaths after the request; an earlier one shows as a new parent."""
    code = "import sys, app.adapters.parent_death as p; p.die_with_parent(int(sys.argv[1])); print('on')"
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(parent_pid: int) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-c", code, str(parent_pid)], capture_output=True, env=env)
        return done.returncode, done.stdout.decode()

    assert run(os.getpid()) == (0, "on\n")
    assert run(1) == (1, "")  # as if we had died and init had adopted it
