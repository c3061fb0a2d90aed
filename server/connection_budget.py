"""How many Postgres connections each worker of `serve --workers N` may hold.

Every worker holds its pool (up to VOXSOUTH_DB_POOL_SIZE connections under load) and three of
its own (the feed's LISTEN, the feed sequencer's, the event writer's). N defaults to the number
of CPUs, so on a larger machine N full pools outgrow Postgres's `max_connections` (100 by
default, the embedded one's too), and under load workers would start failing to connect ("too
many clients"), webhooks and writes with them. The parent, which starts them, fits their pools
to what Postgres allows before the first one runs, and refuses to start when not even a small
pool each fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import VoxsouthError
from storage.db import Executor

OWN_CONNECTIONS = 3
"""Connections a worker opens besides its pool: the feed's LISTEN, the feed sequencer's and the
event writer's (server/writer_thread.py)."""
SMALLEST_POOL = 2
LEFT_FOR_OTHERS = 10
"""Connections kept free for everything else on the database: `voxsouth admin`, migrations of
the next deploy, monitoring, a psql session."""


class ConnectionBudgetError(VoxsouthError):
    """Not even the smallest pool per worker fits in Postgres's connections."""


@dataclass(frozen=True, slots=True)
class PostgresLimits:
    max_connections: int
    reserved: int
    """Kept for superusers (and replication): `superuser_reserved_connections` and
    `reserved_connections` (Postgres 16)."""


async def postgres_limits(conn: Executor) -> PostgresLimits:
    row = await conn.fetchrow(
        """SELECT current_setting('max_connections')::int AS max_connections,
                  current_setting('superuser_reserved_connections')::int
                  + COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved"""
    )
    assert row is not None
    return PostgresLimits(row["max_connections"], row["reserved"])


def pool_size_per_worker(workers: int, pool_size: int, limits: PostgresLimits) -> int:
    """`pool_size`, or less so that `workers` workers fit; raises ConnectionBudgetError when not
    even SMALLEST_POOL each does."""
    usable = limits.max_connections - limits.reserved - LEFT_FOR_OTHERS
    fits = usable // workers - OWN_CONNECTIONS
    if fits < SMALLEST_POOL:
        need = workers * (SMALLEST_POOL + OWN_CONNECTIONS) + limits.reserved + LEFT_FOR_OTHERS
        raise ConnectionBudgetError(
            f"{workers} workers need at least {need} Postgres connections, and its "
            f"max_connections is {limits.max_connections}: lower VOXSOUTH_WORKERS or raise "
            "max_connections"
        )
    return min(pool_size, fits)
