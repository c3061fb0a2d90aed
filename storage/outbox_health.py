"""How an org's queues of outgoing messages stand, for /api/health/dependencies."""

from __future__ import annotations

import uuid
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor


async def email(conn: Executor, org_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'failed'
                                   AND created_at > now() - interval '1 day') AS failed_last_day,
                  (SELECT last_error FROM email_outbox
                   WHERE org_id = $1 AND last_error IS NOT NULL
                   ORDER BY id DESC LIMIT 1) AS last_error
           FROM email_outbox WHERE org_id = $1""",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return dict(row) if row is not None else {}


async def webhooks(conn: Executor, org_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status = 'failed'
                                   AND created_at > now() - interval '1 day') AS failed_last_day
           FROM webhook_deliveries WHERE org_id = $1""",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return dict(row) if row is not None else {}
