"""The supervisors' feed, as stored: one row per thing a supervisor sees happen, in order.

A feed row is written in the same transaction as the change it announces, and `NOTIFY
voxsouth_events` carries only its id, org, call and type (far under NOTIFY's 8000-byte limit):
every process's feed hub reads the row itself, and a client that reconnects is served what it
missed from the table.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor

NOTIFY_CHANNEL = "voxsouth_events"

# One round trip: the row, and its announcement (sent by Postgres at commit).
_APPEND = """
WITH row AS (
    INSERT INTO feed_events (org_id, call_id, event_id, type, payload)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id
)
SELECT id, pg_notify($6, json_strip_nulls(json_build_object(
    'id', id, 'org_id', $1::uuid, 'call_id', $2::uuid, 'type', $4::text,
    'event_id', $3::uuid))::text)
FROM row"""


async def append(
    conn: Executor,
    org_id: uuid.UUID,
    call_id: uuid.UUID | None,
    type_: str,
    payload: dict[str, Any],
    event_id: uuid.UUID | None = None,
) -> int | None:
    """Adds a feed row and announces it at commit; None when `event_id` was already fed."""
    feed_id: int | None = await conn.fetchval(
        _APPEND, org_id, call_id, event_id, type_, json.dumps(payload), NOTIFY_CHANNEL,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return feed_id


async def read_since(
    conn: Executor, org_id: uuid.UUID, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """The org's feed rows after `after_id`, oldest first, at most `limit`."""
    rows = await conn.fetch(
        """SELECT id, call_id, type, payload, created_at FROM feed_events
           WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3""",
        org_id, after_id, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [_row(r) for r in rows]


async def read_ids(conn: Executor, ids: list[int]) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Feed rows by id, with their org (for the hub, which serves every org)."""
    rows = await conn.fetch(
        """SELECT id, org_id, call_id, type, payload, created_at FROM feed_events
           WHERE id = ANY($1::bigint[]) ORDER BY id""",
        ids, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [(r["org_id"], _row(r)) for r in rows]


async def latest_id(conn: Executor, org_id: uuid.UUID) -> int:
    value = await conn.fetchval(
        "SELECT COALESCE(max(id), 0) FROM feed_events WHERE org_id = $1",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return int(value)


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "type": r["type"],
        "call_id": str(r["call_id"]) if r["call_id"] else None,
        "at": r["created_at"].isoformat(),
        "data": json.loads(r["payload"]),
    }
