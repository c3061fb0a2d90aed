"""Idempotency keys: the first response to a key is kept and replayed for `TTL`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from storage.db import QUERY_TIMEOUT_S, Executor

TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: Any


async def claim(
    conn: Executor, org_id: uuid.UUID, key: str, request_hash: bytes, now: datetime
) -> Literal["claimed", "in_progress", "mismatch"] | Stored:
    """Claims the key for this request, or says why not: the stored response to replay, a
    first request still running, or a different request under the same key."""
    # An expired key is free again.
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2 AND created_at < $3",
        org_id,
        key,
        now - TTL,
        timeout=QUERY_TIMEOUT_S,
    )
    claimed = await conn.fetchval(
        """INSERT INTO idempotency_keys (org_id, key, request_hash, created_at)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        org_id,
        key,
        request_hash,
        now,
        timeout=QUERY_TIMEOUT_S,
    )
    if claimed:
        return "claimed"
    row = await conn.fetchrow(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE org_id = $1 AND key = $2",
        org_id,
        key,
        timeout=QUERY_TIMEOUT_S,
    )
    if row is None:  # expired and deleted by a concurrent request: treat as running
        return "in_progress"
    if bytes(row["request_hash"]) != request_hash:
        return "mismatch"
    if row["status"] is None:
        return "in_progress"
    return Stored(row["status"], json.loads(row["body"]))


async def complete(conn: Executor, org_id: uuid.UUID, key: str, status: int, body: Any) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, body = $4::jsonb WHERE org_id = $1 AND key = $2",
        org_id,
        key,
        status,
        json.dumps(body),
        timeout=QUERY_TIMEOUT_S,
    )


async def release(conn: Executor, org_id: uuid.UUID, key: str) -> None:
    """Forgets a claim whose request failed in a way worth retrying (a 5xx)."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2 AND status IS NULL",
        org_id,
        key,
        timeout=QUERY_TIMEOUT_S,
    )
