"""A second Asterisk from the same build, playing someone outside the center (the customers'
phone network, a customer's fax machine): its own directories and config under `root`, listening
on 127.0.0.2 (the carrier's address) on a port of its own. Subclasses write the config and add
what their peer does; this runs the process: boot, CLI, stop.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.stack import _terminate_with_parent, eventually, free_sip_port, installed_asterisk_prefix


class PeerAsterisk:
    name = "peer"  # what boot errors call it ("the fax machine", "the customers")
    dirs: tuple[str, ...] = ()  # directories under root besides Asterisk's own

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = Path("/nonexistent")  # the cached Asterisk install, found at start
        self.port = free_sip_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "asterisk.conf"

    @property
    def contact(self) -> str:
        """Where Lianluo's carrier trunk reaches this peer."""
        return f"sip:127.0.0.2:{self.port}"

    def prepare(self) -> None:
        """The directories, with the install found; subclasses then write their files."""
        self.prefix = installed_asterisk_prefix()
        for d in ("etc", "run", "log", "lib", "spool", "data", *self.dirs):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        docs = self.root / "data" / "documentation"  # Asterisk refuses to start without it
        if not docs.exists():
            docs.symlink_to(self.prefix / "var/lib/asterisk/documentation")

    def launch(self) -> None:
        """Start the configured Asterisk and wait until it has fully booted."""
        self.proc = subprocess.Popen(
            [str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-f", "-n"],
            stdin=subprocess.DEVNULL,
            stdout=(self.root / "log" / "stdout.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent,  # never left running after a crashed test run
        )
        eventually(self._booted, 30, f"{self.name}'s Asterisk to boot")

    def _booted(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.root / "log" / "stdout.log").read_text()[-2000:]
            raise RuntimeError(f"{self.name}'s Asterisk exited: {log}")
        return "fully booted" in self.cli("core waitfullybooted", timeout=5)

    def cli(self, command: str, timeout: float = 10) -> str:
        done = subprocess.run(
            [str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
