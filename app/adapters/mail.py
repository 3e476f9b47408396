"""Outgoing e-mail over SMTP (stdlib smtplib, run in a worker thread: it blocks)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from pathlib import Path

from app.config import SmtpSettings
from app.errors import AppError


class MailError(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("mail-error", message, {}, 502)


async def send_mail(
    smtp: SmtpSettings,
    to: tuple[str, ...],
    subject: str,
    body: str,
    attachment: Path | None = None,
    attachment_type: tuple[str, str] = ("audio", "wav"),
) -> None:
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(body)
    if attachment is not None:
        data = await asyncio.to_thread(attachment.read_bytes)
        msg.add_attachment(
            data, maintype=attachment_type[0], subtype=attachment_type[1], filename=attachment.name
        )
    await asyncio.to_thread(_send, smtp, msg)


def _send(smtp: SmtpSettings, msg: EmailMessage) -> None:
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"could not send mail through {smtp.host}:{smtp.port}: {exc}") from exc
