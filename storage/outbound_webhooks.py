"""Outbound webhooks: an org's endpoints and the durable queue of deliveries to them.

Deliveries are queued by a trigger on the feed (migration 0030), in the transaction that
announces the event. A delivery moves through claims, so that one process sends it:

    pending ─claim→ sending ─delivered→ delivered
                    sending ─retry→ pending (at next_at)    sending ─give_up→ failed
                    sending ─release_stale→ pending (its process died mid-send)
    failed, delivered ─replay→ pending

Only the oldest undelivered delivery of an endpoint and call is claimable, so each endpoint
hears a call's events in order. The sender's functions run as the pool's owner role.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from storage.db import QUERY_TIMEOUT_S, Executor, with_json

EVENTS: Final = (
    "call.started", "call.ended", "consent.decided", "escalation.raised",
    "escalation.acknowledged", "escalation.resolved", "survey.completed", "campaign.finished",
)  # fmt: skip
"""What an endpoint may ask for (migration 0030's webhook_event_of names the same)."""

_ENDPOINT = "id, url, events, active, created_by, created_at"


async def create_endpoint(
    conn: Executor, org_id: uuid.UUID, url: str, events: list[str], secret_sealed: bytes,
    created_by: str,
) -> dict[str, Any]:  # fmt: skip
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints (org_id, url, events, secret_sealed, created_by)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_ENDPOINT}""",
        org_id, url, events, secret_sealed, created_by, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    assert row is not None  # an insert returns its row
    return dict(row)


async def list_endpoints(conn: Executor, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def deactivate(conn: Executor, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    """Stops new deliveries to the endpoint (its log stays); pending ones are dropped."""
    status: str = await conn.execute(
        "UPDATE webhook_endpoints SET active = false WHERE org_id = $1 AND id = $2 AND active",
        org_id, endpoint_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if status == "UPDATE 0":
        return False
    await conn.execute(
        """UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint removed'
           WHERE endpoint_id = $1 AND status = 'pending'""",
        endpoint_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return True


async def deliveries(
    conn: Executor, org_id: uuid.UUID, endpoint_id: uuid.UUID, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, event, call_id, payload, status, attempts, next_at, last_status,
                  last_error, created_at, delivered_at
           FROM webhook_deliveries WHERE org_id = $1 AND endpoint_id = $2
           ORDER BY id DESC LIMIT $3""",
        org_id, endpoint_id, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "payload") for r in rows]


async def replay(conn: Executor, org_id: uuid.UUID, delivery_id: int) -> bool:
    """Sends a delivered or failed delivery again (to an endpoint still active)."""
    status: str = await conn.execute(
        """UPDATE webhook_deliveries d SET status = 'pending', next_at = now(),
                  created_at = now(), last_error = NULL
           FROM webhook_endpoints e
           WHERE d.org_id = $1 AND d.id = $2 AND e.id = d.endpoint_id AND e.active
             AND d.status IN ('delivered', 'failed')""",
        org_id, delivery_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "UPDATE 0"


# --- the sender's side (owner role, every org) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    org_id: uuid.UUID
    url: str
    secret_sealed: bytes
    event: str
    payload: dict[str, Any]
    attempts: int
    """Attempts made, this one included."""
    created_at: datetime


async def claim(conn: Executor, limit: int) -> list[Claimed]:
    """Claims up to `limit` due deliveries, each the oldest undelivered one of its endpoint and
    call (a call's events go out in order)."""
    rows = await conn.fetch(
        """WITH due AS MATERIALIZED (
               SELECT d.id FROM webhook_deliveries d
               WHERE d.status = 'pending' AND d.next_at <= now()
                 AND NOT EXISTS (
                     SELECT 1 FROM webhook_deliveries earlier
                     WHERE earlier.endpoint_id = d.endpoint_id AND earlier.call_id = d.call_id
                       AND earlier.id < d.id AND earlier.status IN ('pending', 'sending'))
               ORDER BY d.id LIMIT $1 FOR UPDATE SKIP LOCKED
           )
           UPDATE webhook_deliveries d SET status = 'sending', claimed_at = now(),
                                           attempts = d.attempts + 1
           FROM due, webhook_endpoints e
           WHERE d.id = due.id AND e.id = d.endpoint_id
           RETURNING d.id, d.org_id, e.url, e.secret_sealed, d.event, d.payload, d.attempts,
                     d.created_at""",
        limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [
        Claimed(r["id"], r["org_id"], r["url"], r["secret_sealed"], r["event"],
                with_json(r, "payload")["payload"], r["attempts"], r["created_at"])
        for r in rows
    ]  # fmt: skip


async def settle(
    conn: Executor, delivery_id: int, status: str, *, http_status: int | None,
    error: str | None, next_at: datetime | None = None,
) -> None:  # fmt: skip
    """Ends a claim: `delivered`, `pending` again at `next_at`, or `failed` for good."""
    await conn.execute(
        """UPDATE webhook_deliveries
           SET status = $2, last_status = $3, last_error = $4,
               next_at = COALESCE($5, next_at),
               delivered_at = CASE WHEN $2 = 'delivered' THEN now() END
           WHERE id = $1 AND status = 'sending'""",
        delivery_id, status, http_status, error, next_at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def release_stale(conn: Executor, older_than_s: float) -> int:
    """Claims whose process died mid-send go back to pending (the receiver may hear it twice:
    deliveries are at least once, and each carries its id)."""
    status: str = await conn.execute(
        """UPDATE webhook_deliveries SET status = 'pending'
           WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => $1)""",
        older_than_s, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return int(status.split()[-1])
