"""`GET /api/health/dependencies`: the services the server leans on, as an admin needs them
when something is wrong: SignalWire (its circuit and its last request), transcription, email
(the SMTP server probed now, and the org's outbox), the org's outbound webhooks, and TTS.

`/health/ready` keeps to what this process needs to serve; this report is behind sign-in (it
names hosts and errors) and probes, so it is for people, not for a balancer's checks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from control.api.openapi import doc
from control.api.outbound import SIGNALWIRE
from control.app_keys import POOL, PROMPTS
from control.auth import principal, requires
from control.permissions import Action
from storage import outbox_health
from storage.tenancy import tenant

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class DependenciesConfig:
    transcription_engine: str
    transcription_fallback: str
    smtp_host: str | None
    smtp_port: int
    resend: bool = False
    """Email goes through Resend's HTTP API (not probed: it is on the internet)."""


DEPENDENCIES = web.AppKey("dependencies", DependenciesConfig)


def routes() -> list[web.RouteDef]:
    return [web.get("/api/health/dependencies", dependencies)]


async def _probe(host: str, port: int) -> dict[str, Any]:
    """Whether a TCP connection to the server opens, and how long it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            _reader, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        return {"reachable": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"reachable": True, "latency_ms": round((time.monotonic() - started) * 1000)}


@doc("The services the server depends on: reachable, latency, last error, circuit state")
@requires(Action.HEALTH_READ)
async def dependencies(request: web.Request) -> web.Response:
    config = request.app[DEPENDENCIES]
    client = request.app.get(SIGNALWIRE)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        email_queue = await outbox_health.email(conn, org_id)
        webhooks = await outbox_health.webhooks(conn, org_id)
    service = "resend" if config.resend else "smtp" if config.smtp_host else None
    email: dict[str, Any] = {"configured": service is not None, "service": service, **email_queue}
    if service == "smtp" and config.smtp_host is not None:
        email["smtp"] = await _probe(config.smtp_host, config.smtp_port)
    return web.json_response({
        "signalwire": client.health() if client is not None else {"configured": False},
        "transcription": {"engine": config.transcription_engine,
                          "fallback": config.transcription_fallback},
        "email": email,
        "webhooks": webhooks,
        "tts": {name: engine.health() for name, engine in request.app[PROMPTS].engines.items()}
        or {"configured": False},
    })  # fmt: skip
