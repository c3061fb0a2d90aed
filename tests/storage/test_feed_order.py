"""Feed positions follow commit order, so resuming after the last position seen misses nothing."""

from __future__ import annotations

import asyncio

from storage import calls, feed
from storage.db import Pool
from storage.tenancy import tenant
from tests.conftest import timeout


async def test_a_row_committed_late_comes_after_every_row_a_supervisor_has_seen(
    pool: Pool,
) -> None:
    org_id = await calls.create_org(pool, "Feed order org")
    async with pool.acquire() as slow, pool.acquire() as quick:
        started_first = slow.transaction()
        await started_first.start()
        await feed.append(slow, org_id, None, "call_status", {"status": "inserted first"})
        async with quick.transaction():
            await feed.append(quick, org_id, None, "call_status", {"status": "committed first"})
        # A supervisor reads the feed now, then the first transaction commits.
        [seen] = await feed.read_since(pool, org_id, 0, 10)
        assert seen["data"] == {"status": "committed first"}
        await started_first.commit()
    async with tenant(pool, org_id) as conn:
        missed = await feed.read_since(conn, org_id, seen["id"], 10)
        latest = await feed.latest_id(conn, org_id)
    assert [e["data"] for e in missed] == [{"status": "inserted first"}]
    assert latest == missed[0]["id"] > seen["id"]


async def test_the_announcement_carries_the_rows_position(pool: Pool) -> None:
    org_id = await calls.create_org(pool, "Feed announcement org")
    announced: asyncio.Queue[str] = asyncio.Queue()

    def on_notify(*args: object) -> None:
        announced.put_nowait(str(args[-1]))

    async with pool.acquire() as listener:
        await listener.add_listener(feed.NOTIFY_CHANNEL, on_notify)
        try:
            async with pool.acquire() as conn, conn.transaction():
                assert await feed.append(conn, org_id, None, "call_status", {"status": "ringing"})
            payload = await asyncio.wait_for(announced.get(), timeout(5))
        finally:
            await listener.remove_listener(feed.NOTIFY_CHANNEL, on_notify)
    [row] = await feed.read_since(pool, org_id, 0, 10)
    assert f'"id":{row["id"]}' in payload.replace(" ", "")
    [(owner, by_id)] = await feed.read_ids(pool, [row["id"]])
    assert owner == org_id and by_id == row
