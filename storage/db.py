"""The asyncpg pool: one per process, created in the app's lifecycle.

Every query runs with a timeout; the pool's size is the bound on database concurrency.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
import asyncpg.pool

log = logging.getLogger(__name__)

T = TypeVar("T")

QUERY_TIMEOUT_S = 5.0
"""Default `timeout=` for a single statement from a request or the writer."""

Pool = asyncpg.Pool
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of our own or one borrowed from the pool."""
Executor = Connection | Pool
"""Anything a single statement can run on."""

UNAVAILABLE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    # A connection whose session Postgres ended while it sat idle (pg_terminate_backend, a
    # failover) can be left in a state asyncpg refuses to use ("cannot switch to state 12;
    # another operation is in progress"): it is gone, not wrong.
    asyncpg.exceptions.InternalClientError,
)
"""Errors that mean "Postgres is not there right now", as opposed to "this data is wrong"."""


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


_detached: set[asyncio.Task[object]] = set()
"""Work `cancel_promptly` stopped waiting for, held until it ends (the loop keeps only weak
references to tasks)."""


async def cancel_promptly(work: Awaitable[T]) -> T:
    """Awaits `work` in a task of its own; cancelling the caller (a timeout running out)
    cancels that task and returns at once.

    Plain cancellation is not prompt with Postgres frozen: a cancelled query's connection goes
    back to the pool only once Postgres has acknowledged the cancel (asyncpg waits up to the
    command timeout for that, shielded from further cancellation), so a 2 s deadline became 7.
    Here that cleanup finishes in the background, holding its connection until then."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        _detached.add(task)
        task.add_done_callback(_forget)
        raise


def _forget(task: asyncio.Task[object]) -> None:
    _detached.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("abandoned database work ended with %r", exc)


def with_json(row: Any, *fields: str) -> dict[str, Any]:
    """A row as a dict, its `fields` (jsonb, which asyncpg hands over as text) parsed."""
    found = dict(row)
    for name in fields:
        found[name] = json.loads(found[name])
    return found
