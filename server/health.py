"""Health endpoints and the Prometheus scrape endpoint."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from control.app_keys import POOL
from storage.db import Pool, cancel_promptly
from storage.migrate import is_current

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
"""Each check's budget; they run side by side, so /health/ready answers within about this
(a probe's timeout should be longer: a timed-out probe says less than a 503)."""


class Health:
    def __init__(
        self,
        transcription_ready: Callable[[], bool],
        draining: Callable[[], bool] = lambda: False,
        check_timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self._transcription_ready = transcription_ready
        self._draining = draining
        self._check_timeout_s = check_timeout_s
        self._registry = _scrape_registry()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/health/live", self.live, name="health_live"),
            web.get("/health/ready", self.ready, name="health_ready"),
            web.get("/metrics", self.metrics, name="metrics"),
        ]

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        if self._draining():  # stopping (server.drain): send new calls elsewhere
            return web.json_response({"status": "draining", "checks": {}}, status=503)
        pool = request.app[POOL]
        deadline = asyncio.get_running_loop().time() + self._check_timeout_s
        database, migrations = await asyncio.gather(
            _within("database", _answers(pool), deadline),
            _within("migrations", _migrated(pool), deadline),
        )
        checks = {
            "database": database,
            "migrations": migrations,
            "transcription": self._transcription_ready(),
        }
        ok = all(checks.values())
        return web.json_response(
            {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _scrape_registry() -> CollectorRegistry:
    """What /metrics reads: this process's registry, or, in a worker of several
    (server.workers sets PROMETHEUS_MULTIPROC_DIR, where every worker keeps its figures), all
    the workers' figures merged, so a scrape reaching any worker sees the whole server."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
    return registry


async def _within(name: str, check: Awaitable[bool], deadline: float) -> bool:
    """The check's answer, or False when it fails or is not done by `deadline` (acquiring a
    connection included, and without waiting for a cancelled query's cleanup)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await cancel_promptly(check)
    except Exception as exc:  # any failure to reach the database means "not ready"
        log.info("readiness check %s failed: %r", name, exc)
        return False


async def _answers(pool: Pool) -> bool:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT true") is True


async def _migrated(pool: Pool) -> bool:
    async with pool.acquire() as conn:
        return await is_current(conn)
