"""When a durable queue's item (an email, a webhook delivery) is tried again after a failure."""

from __future__ import annotations

from datetime import datetime, timedelta

GIVE_UP_AFTER = timedelta(days=1)
MAX_RETRY_S = 3600.0


def next_try(
    attempts: int, created_at: datetime, now: datetime, first_retry_s: float
) -> datetime | None:
    """After the `attempts`-th failure: `first_retry_s` later, doubling with each attempt, at
    most an hour apart; None (give up) once that would pass a day since the item was queued."""
    delay = min(first_retry_s * 2 ** (attempts - 1), MAX_RETRY_S)
    retry_at = now + timedelta(seconds=delay)
    return None if retry_at - created_at > GIVE_UP_AFTER else retry_at
