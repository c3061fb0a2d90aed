"""The asyncpg pool: one per process, created in the app's lifecycle.

Every query runs with a timeout; the pool's size is the bound on database concurrency.
"""

from __future__ import annotations

import asyncpg
import asyncpg.pool

QUERY_TIMEOUT_S = 5.0
"""Default `timeout=` for a single statement from a request or the writer."""

Pool = asyncpg.Pool
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of our own or one borrowed from the pool."""
Executor = Connection | Pool
"""Anything a single statement can run on."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=QUERY_TIMEOUT_S,
        timeout=QUERY_TIMEOUT_S,
        # A statement the server sees stuck beyond this is cancelled there too.
        server_settings={"statement_timeout": "15s", "application_name": "voxsouth"},
    )
