"""Tenant-scoped database work: the second wall between organizations.

Queries always filter by org_id themselves. Inside `tenant(pool, org_id)` they also run as
the non-superuser role `voxsouth_app` with the org set for the transaction, so Postgres row-level
security (migration 0003) refuses every row of another org, even to a query that forgot its
filter. The role and the org are transaction-local: the connection goes back to the pool clean.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.db import QUERY_TIMEOUT_S, Connection, Pool

TENANT_ROLE = "voxsouth_app"


async def enter_tenant(conn: Connection, org_id: uuid.UUID) -> None:
    """Inside a transaction: act as the tenant role, for `org_id` only, until it ends."""
    await conn.execute(
        "SELECT set_config('role', $1, true), set_config('voxsouth.org_id', $2, true)",
        TENANT_ROLE,
        str(org_id),
        timeout=QUERY_TIMEOUT_S,
    )


@asynccontextmanager
async def tenant(pool: Pool, org_id: uuid.UUID) -> AsyncIterator[Connection]:
    async with pool.acquire() as conn, conn.transaction():
        await enter_tenant(conn, org_id)
        yield conn
