"""Health endpoints and the Prometheus scrape endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from control.app_keys import POOL
from storage.migrate import is_current


class Health:
    def __init__(self, transcription_ready: Callable[[], bool]) -> None:
        self._transcription_ready = transcription_ready

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/health/live", self.live, name="health_live"),
            web.get("/health/ready", self.ready, name="health_ready"),
            web.get("/metrics", self.metrics, name="metrics"),
        ]

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        checks = {"database": False, "migrations": False, "transcription": False}
        try:
            async with asyncio.timeout(2.0):
                async with request.app[POOL].acquire() as conn:
                    checks["database"] = await conn.fetchval("SELECT true") is True
                    checks["migrations"] = await is_current(conn)
        except Exception:  # any failure to reach the database means "not ready"
            pass
        checks["transcription"] = self._transcription_ready()
        ok = all(checks.values())
        return web.json_response(
            {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
