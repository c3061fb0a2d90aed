"""Idempotency keys on a real Postgres: claim once, replay, refuse a different request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import calls, idempotency
from storage.db import Pool
from storage.idempotency import Stored


async def test_a_key_is_claimed_once_then_replayed_and_refused_for_another_request(
    pool: Pool,
) -> None:
    org_id = await calls.create_org(pool, "Idempotent org")
    now = datetime.now(UTC)
    assert await idempotency.claim(pool, org_id, "k1", b"request-a", now) == "claimed"
    assert await idempotency.claim(pool, org_id, "k1", b"request-a", now) == "in_progress"
    await idempotency.complete(pool, org_id, "k1", 201, {"sid": "CA1"})
    assert await idempotency.claim(pool, org_id, "k1", b"request-a", now) == Stored(
        201, {"sid": "CA1"}
    )
    assert await idempotency.claim(pool, org_id, "k1", b"request-b", now) == "mismatch"
    # Another org's identical key is its own.
    other = await calls.create_org(pool, "Other idempotent org")
    assert await idempotency.claim(pool, other, "k1", b"request-b", now) == "claimed"


async def test_a_released_or_expired_key_can_be_used_again(pool: Pool) -> None:
    org_id = await calls.create_org(pool, "Retrying org")
    now = datetime.now(UTC)
    assert await idempotency.claim(pool, org_id, "k", b"r", now) == "claimed"
    await idempotency.release(pool, org_id, "k")  # the first attempt failed with a 5xx
    assert await idempotency.claim(pool, org_id, "k", b"r", now) == "claimed"
    await idempotency.complete(pool, org_id, "k", 201, {"n": 1})
    later = now + idempotency.TTL + timedelta(seconds=1)
    assert await idempotency.claim(pool, org_id, "k", b"other", later) == "claimed"
    await idempotency.release(pool, org_id, "k")
