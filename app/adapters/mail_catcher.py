"""The demo's mail server: aiosmtpd keeps every message the center sends in a Maildir under
var_dir, so voicemail and fax e-mails can be read on a machine with no mail server.

It listens on 127.0.0.1 only and takes mail for anyone: it is a catcher, never a relay. aiosmtpd
runs it on its own thread and loop (its Maildir handler writes files, which must not block ours).
It keeps at most `max_bytes` in all: past that, new mail is refused (452, "try later"), so
whatever can reach a loopback port cannot fill the disk through it; the center logs the refusal
and keeps the voicemail or fax it was mailing.
"""

from __future__ import annotations

import contextlib
import logging
import mailbox
import os
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

log = logging.getLogger(__name__)


def maildir_bytes(maildir: Path) -> int:
    """What the Maildir's messages take (new, cur and tmp)."""
    total = 0
    for sub in ("new", "cur", "tmp"):
        with contextlib.suppress(FileNotFoundError), os.scandir(maildir / sub) as entries:
            total += sum(e.stat().st_size for e in entries if e.is_file())
    return total


class _MailboxWithinLimit(Mailbox):
    def __init__(self, maildir: Path, max_bytes: int) -> None:
        super().__init__(maildir)
        self.root = maildir
        self.max_bytes = max_bytes

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        size = len(envelope.content or b"")
        if maildir_bytes(self.root) + size > self.max_bytes:
            log.warning(
                "mail catcher refused a %d-byte message: %s is at its limit, %d bytes (mail_catcher.max_mb)",
                size, self.root, self.max_bytes,
            )  # fmt: skip
            return "452 4.3.1 The mail catcher is full (mail_catcher.max_mb): read or delete its mail"
        return str(await super().handle_DATA(server, session, envelope))


class MailCatcher:
    def __init__(self, maildir: Path, port: int, max_bytes: int = 500 * 1024 * 1024) -> None:
        self.maildir = maildir
        self.port = port
        self.max_bytes = max_bytes
        self._controller: Controller | None = None

    def start(self) -> None:
        """Blocks briefly (aiosmtpd waits until its server answers): call it in a worker thread."""
        # aiosmtpd logs every SMTP command at INFO: a line per word of each message.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        mailbox.Maildir(self.maildir, create=True)
        self.maildir.chmod(0o700)  # voicemail audio and faxes are personal data
        controller = Controller(
            _MailboxWithinLimit(self.maildir, self.max_bytes),
            hostname="127.0.0.1",
            port=self.port,
            data_size_limit=min(self.max_bytes, 32 * 1024 * 1024),  # one message (aiosmtpd's default)
        )
        controller.start()
        self._controller = controller
        log.info("mail catcher on 127.0.0.1:%d keeps mail in %s", self.port, self.maildir)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def count(self) -> int:
        return len(mailbox.Maildir(self.maildir, create=False))
