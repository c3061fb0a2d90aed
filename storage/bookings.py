"""Bookings: a call placed at a time someone asked for (a callback), in their time zone.

A booking is a campaign of kind `booking` with one target, its first attempt due at the booked
time and calling hours all day (the time was asked for), so the dialler (control.dialler)
places it like any campaign's call: the do-not-call list, the calls-per-second budget, retries
after busy or no-answer, a process that dies mid-attempt. Rescheduling moves the target's due
time while it waits; cancelling cancels the campaign.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, time
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor, with_json

_VIEW = """SELECT c.id, c.org_id, c.name, c.status, c.flow, c.from_number, c.max_attempts,
                  c.created_by, c.created_at, c.remind_email, c.remind_before_min, t.number,
                  t.time_zone, t.next_at, t.state, t.attempts, t.outcome, t.call_id
           FROM campaigns c JOIN campaign_targets t ON t.campaign_id = c.id
           WHERE c.org_id = $1 AND c.kind = 'booking'"""


async def create(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    name: str,
    number: str,
    time_zone: str,
    at: datetime,
    flow: dict[str, Any],
    from_number: str,
    max_attempts: int,
    retry_s: dict[str, int],
    created_by: str,
    remind_email: str | None = None,
    remind_before_min: int | None = None,
) -> dict[str, Any]:
    """A booking due at `at` (aware); run it in a transaction."""
    campaign_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO campaigns (org_id, kind, name, status, flow, from_number, max_concurrent,
                                  window_start, window_end, max_attempts, retry_s, created_by,
                                  started_at, remind_email, remind_before_min)
           VALUES ($1, 'booking', $2, 'running', $3, $4, 1, $5, $6, $7, $8, $9, now(), $10, $11)
           RETURNING id""",
        org_id, name, json.dumps(flow), from_number, time(0), time(23, 59, 59, 999999),
        max_attempts, json.dumps(retry_s), created_by, remind_email, remind_before_min,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    await conn.execute(
        """INSERT INTO campaign_targets (campaign_id, org_id, number, time_zone, next_at)
           VALUES ($1, $2, $3, $4, $5)""",
        campaign_id, org_id, number, time_zone, at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    booking = await get(conn, org_id, campaign_id)
    assert booking is not None
    return booking


async def get(conn: Executor, org_id: uuid.UUID, booking_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"{_VIEW} AND c.id = $2", org_id, booking_id, timeout=QUERY_TIMEOUT_S)
    return None if row is None else with_json(row, "flow")


async def list_bookings(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    due_from: datetime | None,
    due_before: datetime | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[dict[str, Any]]:
    """The org's bookings by due time, soonest first; `after`: the last row's due time and id,
    for the page after it."""
    at, last = after if after is not None else (None, None)
    rows = await conn.fetch(
        f"""{_VIEW} AND ($2::timestamptz IS NULL OR t.next_at >= $2)
                    AND ($3::timestamptz IS NULL OR t.next_at < $3)
                    AND ($5::timestamptz IS NULL OR (t.next_at, c.id) > ($5, $6))
            ORDER BY t.next_at, c.id LIMIT $4""",
        org_id, due_from, due_before, limit, at, last, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "flow") for r in rows]


async def reschedule(
    conn: Executor, org_id: uuid.UUID, booking_id: uuid.UUID, at: datetime
) -> bool:
    """Moves a booking still waiting for its call to `at`, with its attempts afresh (a time
    someone chose again, not a retry); False when it is not waiting (being called, called, or
    cancelled)."""
    status: str = await conn.execute(
        """UPDATE campaign_targets t SET next_at = $3, attempts = 0, outcome = NULL,
                                         updated_at = now()
           FROM campaigns c
           WHERE c.id = t.campaign_id AND c.org_id = $1 AND c.id = $2 AND c.kind = 'booking'
             AND c.status = 'running' AND t.state = 'pending'""",
        org_id, booking_id, at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "UPDATE 0"
