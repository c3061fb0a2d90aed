"""Sends the email outbox (storage.email_outbox) through an SMTP server (aiosmtplib).

Requests and events only queue messages, so a mail server that is slow or away never holds up
a call or a request. Every process runs a sender; the outbox's claims make one send each
message. A message the server refuses or that cannot reach it is tried again after a minute,
doubling up to an hour, for a day; then it fails. What happened is counted by kind
(`voxsouth_emails_total`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from control.metrics import EMAILS
from control.periodic import Periodic
from storage import email_outbox
from storage.db import Pool

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(days=1)
MAX_RETRY_S = 3600.0


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    """STARTTLS on the submission port, TLS from the start (465), or none (a local relay)."""
    sender: str = "Voxsouth <noreply@localhost>"
    timeout_s: float = 15.0


@dataclass(frozen=True, slots=True)
class SenderConfig:
    every_s: float = 5.0
    batch: int = 20
    first_retry_s: float = 60.0
    stale_after_s: float = 300.0


async def send_smtp(config: SmtpConfig, to: str, subject: str, body: str) -> None:
    """One message through the SMTP server; raises aiosmtplib's errors (or OSError)."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    await aiosmtplib.send(
        message, hostname=config.host, port=config.port, username=config.username,
        password=config.password, use_tls=config.security == "tls",
        start_tls=config.security == "starttls", timeout=config.timeout_s,
    )  # fmt: skip


class EmailSender:
    def __init__(self, pool: Pool, smtp: SmtpConfig, config: SenderConfig) -> None:
        self._pool = pool
        self._smtp = smtp
        self._config = config
        self._periodic = Periodic("email-sender", config.every_s, self.tick)

    def start(self) -> None:
        self._periodic.start()

    async def aclose(self) -> None:
        await self._periodic.aclose()

    async def tick(self) -> int:
        """Sends what is due; returns how many messages were tried."""
        async with self._pool.acquire() as conn:
            await email_outbox.release_stale(conn, self._config.stale_after_s)
            due = await email_outbox.claim(conn, self._config.batch)
        await asyncio.gather(*(self._send(m) for m in due))
        return len(due)

    async def _send(self, message: email_outbox.Claimed) -> None:
        try:
            await send_smtp(self._smtp, message.to, message.subject, message.body)
            error = None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn:
            if error is None:
                await email_outbox.settle(conn, message.id, "sent", error=None)
                EMAILS.labels(message.kind, "sent").inc()
                return
            delay = min(self._config.first_retry_s * 2 ** (message.attempts - 1), MAX_RETRY_S)
            retry_at = now + timedelta(seconds=delay)
            if retry_at - message.created_at > GIVE_UP_AFTER:
                await email_outbox.settle(conn, message.id, "failed", error=error)
                EMAILS.labels(message.kind, "failed").inc()
                log.warning("email %d (%s) given up: %s", message.id, message.kind, error)
                return
            await email_outbox.settle(conn, message.id, "pending", error=error, next_at=retry_at)
            EMAILS.labels(message.kind, "retry").inc()
