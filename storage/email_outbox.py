"""The email outbox: messages queued by requests and events, sent by control.email.

pending ─claim→ sending ─sent→ sent      sending ─retry→ pending     sending ─give_up→ failed
pending ─cancel→ cancelled (a booking cancelled before its reminder went)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from storage.db import QUERY_TIMEOUT_S, Executor


async def queue(
    conn: Executor, org_id: uuid.UUID | None, kind: str, to: str, subject: str, body: str,
    *, at: datetime | None = None, dedupe_key: str | None = None,
) -> bool:  # fmt: skip
    """Queues a message, to go at `at` (now when None); False when `dedupe_key` was queued."""
    queued: bool = await conn.fetchval(
        """WITH row AS (
               INSERT INTO email_outbox (org_id, kind, to_address, subject, body, dedupe_key,
                                         next_at)
               VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, now()))
               ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM row)""",
        org_id, kind, to, subject, body, dedupe_key, at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return queued


async def rewrite(conn: Executor, dedupe_key: str, at: datetime, body: str) -> bool:
    """Moves a message still waiting to `at`, with a new body (a booking rescheduled)."""
    status: str = await conn.execute(
        """UPDATE email_outbox SET next_at = $2, body = $3
           WHERE dedupe_key = $1 AND status = 'pending'""",
        dedupe_key, at, body, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "UPDATE 0"


async def cancel(conn: Executor, dedupe_key: str) -> bool:
    status: str = await conn.execute(
        """UPDATE email_outbox SET status = 'cancelled'
           WHERE dedupe_key = $1 AND status = 'pending'""",
        dedupe_key, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "UPDATE 0"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    to: str
    subject: str
    body: str
    attempts: int
    created_at: datetime


async def claim(conn: Executor, limit: int) -> list[Claimed]:
    rows = await conn.fetch(
        """WITH due AS MATERIALIZED (
               SELECT id FROM email_outbox WHERE status = 'pending' AND next_at <= now()
               ORDER BY next_at, id LIMIT $1 FOR UPDATE SKIP LOCKED
           )
           UPDATE email_outbox e SET status = 'sending', claimed_at = now(),
                                     attempts = e.attempts + 1
           FROM due WHERE e.id = due.id
           RETURNING e.id, e.kind, e.to_address, e.subject, e.body, e.attempts, e.created_at""",
        limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [Claimed(r["id"], r["kind"], r["to_address"], r["subject"], r["body"],
                    r["attempts"], r["created_at"]) for r in rows]  # fmt: skip


async def settle(
    conn: Executor, message_id: int, status: str, *, error: str | None,
    next_at: datetime | None = None,
) -> None:  # fmt: skip
    await conn.execute(
        """UPDATE email_outbox SET status = $2, last_error = $3, next_at = COALESCE($4, next_at),
                  sent_at = CASE WHEN $2 = 'sent' THEN now() END
           WHERE id = $1 AND status = 'sending'""",
        message_id, status, error, next_at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def release_stale(conn: Executor, older_than_s: float) -> int:
    status: str = await conn.execute(
        """UPDATE email_outbox SET status = 'pending'
           WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => $1)""",
        older_than_s, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return int(status.split()[-1])
