"""Waiting on what the server stores, without a clock: re-check a query each time Postgres
announces a feed row (a stream opened or closed, a segment, an alert, a call's status)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from storage import feed
from storage.db import Pool
from tests.conftest import timeout


class Changes:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._changed = asyncio.Event()

    def notified(self, *_: object) -> None:
        self._changed.set()

    async def until(self, query: str, *args: object) -> None:
        """Waits until `query` returns true, bounded by a timeout."""
        async with asyncio.timeout(timeout(20)):
            while True:
                self._changed.clear()  # before the check: a change during it is not missed
                if await self._pool.fetchval(query, *args):
                    return
                await self._changed.wait()


@asynccontextmanager
async def watching(pool: Pool, dsn: str) -> AsyncIterator[Changes]:
    changes = Changes(pool)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(feed.NOTIFY_CHANNEL, changes.notified)
        yield changes
    finally:
        await conn.close()
