"""Sends the outbound webhooks' queue (storage.outbound_webhooks) to the orgs' endpoints.

Every process runs a sender; the queue's claims make one send each delivery. A delivery is a
POST of the event's JSON, signed:

    Voxsouth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

with `Voxsouth-Event` (its type) and `Voxsouth-Delivery` (its id, the same on every retry: a
receiver that saw it already may drop it). A 2xx answer delivers it; anything else (another
status, a redirect, a timeout, an address refused) is tried again after 30 s, doubling up to an
hour, until a day has passed since the event; then it fails, and an admin may replay it.

Endpoints must resolve to public addresses (SSRF): the check runs when an endpoint is
registered and again at every connection (a resolver that refuses private, loopback,
link-local and reserved addresses), so a name that later points inside is refused too, unless
`allow_private` (development and tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from control.metrics import WEBHOOK_DELIVERIES
from control.periodic import Periodic
from control.retries import next_try
from control.sealed import Sealer
from storage import outbound_webhooks
from storage.db import Pool

log = logging.getLogger(__name__)

FIRST_RETRY_S = 30.0


def public_address(address: str) -> bool:
    """Whether an IP address is one an endpoint may have: not private, loopback, link-local,
    multicast, reserved or unspecified (IPv4-mapped IPv6 judged as the IPv4 it maps)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified
    )  # fmt: skip


class AddressRefused(OSError):
    """An endpoint's name resolved to an address webhooks may not reach."""


class PublicResolver(AbstractResolver):
    """aiohttp's resolver, refusing any name with a non-public address among its answers."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if any(not public_address(r["host"]) for r in found):
            raise AddressRefused(f"{host} resolves to an address webhooks may not reach")
        return found

    async def close(self) -> None:
        await self._inner.close()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Voxsouth-Signature` header's value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    every_s: float = 1.0
    batch: int = 50
    timeout_s: float = 10.0
    allow_private: bool = False
    stale_after_s: float = 300.0
    first_retry_s: float = FIRST_RETRY_S


class WebhookSender:
    def __init__(self, pool: Pool, sealer: Sealer, config: DeliveryConfig) -> None:
        self._pool = pool
        self._sealer = sealer
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._periodic = Periodic("webhook-sender", config.every_s, self.tick)

    async def __aenter__(self) -> WebhookSender:
        connector = aiohttp.TCPConnector(
            resolver=None if self._config.allow_private else PublicResolver(), limit=100
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self._config.timeout_s)
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._periodic.aclose()
        if self._session is not None:
            await self._session.close()

    def start(self) -> None:
        self._periodic.start()

    async def tick(self) -> int:
        """Sends what is due (at most `batch`, concurrently); returns how many were tried."""
        async with self._pool.acquire() as conn:
            await outbound_webhooks.release_stale(conn, self._config.stale_after_s)
            due = await outbound_webhooks.claim(conn, self._config.batch)
        await asyncio.gather(*(self._send(d) for d in due))
        return len(due)

    async def _send(self, delivery: outbound_webhooks.Claimed) -> None:
        assert self._session is not None
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        http_status: int | None = None
        try:
            secret = self._sealer.open(delivery.secret_sealed, delivery.org_id)
            headers = {
                "Content-Type": "application/json",
                "Voxsouth-Signature": signature(secret, int(time.time()), body),
                "Voxsouth-Event": delivery.event,
                "Voxsouth-Delivery": str(delivery.id),
            }
            async with self._session.post(
                delivery.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                http_status = resp.status
                await resp.read()
            error = None if 200 <= http_status < 300 else f"answered {http_status}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        await self._settle(delivery, http_status, error)

    async def _settle(
        self, delivery: outbound_webhooks.Claimed, http_status: int | None, error: str | None
    ) -> None:
        now = datetime.now(UTC)
        async with self._pool.acquire() as conn:
            if error is None:
                await outbound_webhooks.settle(conn, delivery.id, "delivered",
                                               http_status=http_status, error=None)  # fmt: skip
                WEBHOOK_DELIVERIES.labels("delivered").inc()
                return
            retry_at = next_try(delivery.attempts, delivery.created_at, now,
                                self._config.first_retry_s)  # fmt: skip
            if retry_at is None:
                await outbound_webhooks.settle(conn, delivery.id, "failed",
                                               http_status=http_status, error=error)  # fmt: skip
                WEBHOOK_DELIVERIES.labels("failed").inc()
                log.warning("webhook delivery %d given up: %s", delivery.id, error)
                return
            await outbound_webhooks.settle(conn, delivery.id, "pending", http_status=http_status,
                                           error=error, next_at=retry_at)  # fmt: skip
            WEBHOOK_DELIVERIES.labels("retry").inc()


async def check_endpoint(url: str, *, allow_private: bool) -> str | None:
    """Why webhooks may not be sent to `url` (None when they may): https only, and a host
    whose every address is public, unless `allow_private`."""
    try:
        parts = URL(url)
    except ValueError:
        return "not a URL"
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        return "an endpoint is an https URL"
    if not parts.host:
        return "the URL has no host"
    if allow_private:
        return None
    try:
        found = await asyncio.get_running_loop().getaddrinfo(parts.host, parts.port or 443)
    except (OSError, ValueError):  # ValueError: a name IDNA cannot encode
        return f"{parts.host} does not resolve"
    addresses = {str(info[4][0]) for info in found}
    if not addresses or any(not public_address(a) for a in addresses):
        return f"{parts.host} resolves to an address webhooks may not reach"
    return None
