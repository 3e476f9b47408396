"""The demo's mail server: aiosmtpd keeps every message the center sends in a Maildir under
var_dir, so voicemail and fax e-mails can be read on a machine with no mail server.

It listens on 127.0.0.1 only and takes mail for anyone: it is a catcher, never a relay. aiosmtpd
runs it on its own thread and loop (its Maildir handler writes files, which must not block ours).
"""

from __future__ import annotations

import logging
import mailbox
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

log = logging.getLogger(__name__)


class MailCatcher:
    def __init__(self, maildir: Path, port: int) -> None:
        self.maildir = maildir
        self.port = port
        self._controller: Controller | None = None

    def start(self) -> None:
        """Blocks briefly (aiosmtpd waits until its server answers): call it in a worker thread."""
        # aiosmtpd logs every SMTP command at INFO: a line per word of each message.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        mailbox.Maildir(self.maildir, create=True)
        self.maildir.chmod(0o700)  # voicemail audio and faxes are personal data
        controller = Controller(Mailbox(self.maildir), hostname="127.0.0.1", port=self.port)
        controller.start()
        self._controller = controller
        log.info("mail catcher on 127.0.0.1:%d keeps mail in %s", self.port, self.maildir)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def count(self) -> int:
        return len(mailbox.Maildir(self.maildir, create=False))
