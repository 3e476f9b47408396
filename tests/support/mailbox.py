"""A local SMTP server (aiosmtpd) for the tests that follow a message the center e-mails
(voicemail, fax): what it received, found by words in the subject."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    """What the local SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # the name aiosmtpd calls
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
        return "250 OK"

    def about(self, words: str) -> EmailMessage | None:
        """The first message whose subject holds `words`."""
        with self._lock:
            return next((m for m in self.messages if words in str(m["Subject"])), None)


@contextmanager
def serving(port: int) -> Iterator[Mailbox]:
    """A mailbox listening on 127.0.0.1:`port` for as long as the block runs."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
