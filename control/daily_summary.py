"""The daily summary email: yesterday's calls, consent and escalations, to each org's owners
and admins. Every process (with email configured) tries each hour from `hour_utc` on; the
outbox's key per org, day and address queues each summary once."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from storage import daily_summary, email_outbox
from storage.db import Pool

log = logging.getLogger(__name__)


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


class DailySummaries:
    def __init__(self, pool: Pool, hour_utc: int) -> None:
        self._pool = pool
        self._hour_utc = hour_utc
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def run() -> None:
            while True:
                try:
                    await queue_summaries(self._pool, datetime.now(UTC), self._hour_utc)
                except Exception:
                    log.exception("daily summaries not queued; the next hour tries again")
                await asyncio.sleep(3600)  # a period, not a wait for an event

        self._task = asyncio.create_task(run(), name="daily-summaries")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
