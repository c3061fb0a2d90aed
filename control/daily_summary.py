"""The daily summary email: yesterday's calls, consent and escalations, to each org's owners
and admins. Every process (with email configured) tries every ten minutes from `hour_utc` on;
the outbox's key per org, day and address queues each summary once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import daily_summary, email_outbox
from storage.db import Pool


async def queue_summaries(pool: Pool, now: datetime, hour_utc: int) -> int:
    """Queues yesterday's summaries once `now` is past `hour_utc`; returns how many were new."""
    if now.hour < hour_utc:
        return 0
    day = (now - timedelta(days=1)).date()
    queued = 0
    async with pool.acquire() as conn:
        for activity in await daily_summary.days_activity(conn, day):
            text = daily_summary.summary_text(activity, day)
            for address in activity["recipients"] or ():
                queued += await email_outbox.queue(
                    conn, activity["org_id"], "daily_summary", address,
                    f"{activity['name']}: your calls on {day:%d %B}", text,
                    dedupe_key=daily_summary.summary_key(activity["org_id"], day, address),
                )  # fmt: skip
    return queued


async def queue_due(pool: Pool, hour_utc: int) -> int:
    """`queue_summaries` now."""
    return await queue_summaries(pool, datetime.now(UTC), hour_utc)
