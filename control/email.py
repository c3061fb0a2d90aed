"""Sends the email outbox (storage.email_outbox) through an SMTP server (aiosmtplib) or
Resend's HTTP API.

Resend (https://resend.com/docs/api-reference/emails/send-email): `POST {base}/emails` with
`Authorization: Bearer <key>` and JSON `{"from", "to": [..], "subject", "text"}`; 200 answers
`{"id"}`; errors are `{"statusCode", "name", "message"}` (validation_error, invalid_from_address
and the like: refused for good; 429 rate_limit_exceeded with `retry-after`, and 5xx: tried
again). The message's outbox id goes as its `Idempotency-Key`, so a retry after a lost answer
sends it once.

Requests and events only queue messages, so a mail server that is slow or away never holds up
a call or a request. Every process runs a sender; the outbox's claims make one send each
message. A message the server refuses or that cannot reach it is tried again after a minute,
doubling up to an hour, for a day; then it fails. What happened is counted by kind
(`voxsouth_emails_total`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Literal

import aiohttp
import aiosmtplib

from control.metrics import EMAILS
from control.periodic import Periodic
from control.retries import next_try
from storage import email_outbox
from storage.db import Pool

log = logging.getLogger(__name__)


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
class ResendConfig:
    api_key: str
    sender: str = "Voxsouth <noreply@localhost>"
    base_url: str = "https://api.resend.com"
    timeout_s: float = 15.0


class EmailRefused(Exception):
    """The service refused the message for good (a bad address, say): not tried again."""


Transport = Callable[["email_outbox.Claimed"], Awaitable[None]]
"""Sends one message; raises EmailRefused, or anything else for a failure worth a retry."""


@dataclass(frozen=True, slots=True)
class SenderConfig:
    every_s: float = 5.0
    batch: int = 20
    first_retry_s: float = 60.0
    stale_after_s: float = 300.0


def smtp_transport(config: SmtpConfig) -> Transport:
    async def send(claimed: email_outbox.Claimed) -> None:
        message = EmailMessage()
        message["From"] = config.sender
        message["To"] = claimed.to
        message["Subject"] = claimed.subject
        message.set_content(claimed.body)
        try:
            await aiosmtplib.send(
                message, hostname=config.host, port=config.port, username=config.username,
                password=config.password, use_tls=config.security == "tls",
                start_tls=config.security == "starttls", timeout=config.timeout_s,
            )  # fmt: skip
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise EmailRefused(str(exc)) from exc

    return send


def resend_transport(config: ResendConfig, session: aiohttp.ClientSession) -> Transport:
    async def send(claimed: email_outbox.Claimed) -> None:
        headers = {"Authorization": f"Bearer {config.api_key}",
                   "Idempotency-Key": f"voxsouth-email-{claimed.id}"}  # fmt: skip
        body = {"from": config.sender, "to": [claimed.to], "subject": claimed.subject,
                "text": claimed.body}  # fmt: skip
        async with session.post(
            f"{config.base_url.rstrip('/')}/emails", json=body, headers=headers,
            timeout=aiohttp.ClientTimeout(total=config.timeout_s),
        ) as resp:  # fmt: skip
            if resp.status == 200:
                return
            answer = await resp.text()
            error = f"Resend answered {resp.status}: {answer[:300]}"
            if 400 <= resp.status < 500 and resp.status != 429:
                raise EmailRefused(error)
            raise OSError(error)

    return send


class EmailSender:
    def __init__(self, pool: Pool, transport: Transport, config: SenderConfig) -> None:
        self._pool = pool
        self._transport = transport
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
        refused = False
        try:
            await self._transport(message)
            error = None
        except EmailRefused as exc:
            error, refused = f"refused: {exc}"[:500], True
        except (aiosmtplib.SMTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn:
            if error is None:
                await email_outbox.settle(conn, message.id, "sent", error=None)
                EMAILS.labels(message.kind, "sent").inc()
                return
            retry_at = next_try(message.attempts, message.created_at, now,
                                self._config.first_retry_s)  # fmt: skip
            if refused or retry_at is None:
                await email_outbox.settle(conn, message.id, "failed", error=error)
                EMAILS.labels(message.kind, "failed").inc()
                log.warning("email %d (%s) given up: %s", message.id, message.kind, error)
                return
            await email_outbox.settle(conn, message.id, "pending", error=error, next_at=retry_at)
            EMAILS.labels(message.kind, "retry").inc()
