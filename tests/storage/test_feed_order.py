"""Feed positions follow the order rows are positioned in, never ahead of a commit, so resuming
after the last position seen misses nothing (migration 0038: the sequencer's batches)."""

from __future__ import annotations

import asyncio
import uuid

from storage import calls, feed
from storage.db import Pool
from storage.tenancy import tenant
from tests.conftest import timeout


async def positioned(pool: Pool) -> None:
    """What the sequencer does each time it wakes: positions every committed row (there may be
    other tests' rows too), batch by batch. A batch refused (None) is another sequencer's,
    running: its rows are not readable until it ends, so try again."""
    while (count := await feed.sequence(pool)) is None or count == feed.SEQUENCE_BATCH:
        pass


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
        await positioned(pool)
        # A supervisor reads the feed now, then the first transaction commits.
        [seen] = await feed.read_since(pool, org_id, 0, 10)
        assert seen["data"] == {"status": "committed first"}
        await started_first.commit()
    await positioned(pool)
    async with tenant(pool, org_id) as conn:
        missed = await feed.read_since(conn, org_id, seen["id"], 10)
        latest = await feed.latest_id(conn, org_id)
    assert [e["data"] for e in missed] == [{"status": "inserted first"}]
    assert latest == missed[0]["id"] > seen["id"]


async def test_a_row_is_neither_read_nor_counted_until_positioned(pool: Pool) -> None:
    org_id = await calls.create_org(pool, "Feed unpositioned org")
    async with pool.acquire() as conn, conn.transaction():
        await feed.append(conn, org_id, None, "call_status", {"status": "ringing"})
    # Committed, but no sequencer has run: no one may see a position for it yet, or a reader
    # could skip it by resuming after a later one.
    assert await feed.read_since(pool, org_id, 0, 10) == []
    assert await feed.latest_id(pool, org_id) == 0
    await positioned(pool)
    [row] = await feed.read_since(pool, org_id, 0, 10)
    assert await feed.latest_id(pool, org_id) == row["id"]


async def test_one_transactions_rows_keep_their_order_and_later_batches_come_after(
    pool: Pool,
) -> None:
    org_id = await calls.create_org(pool, "Feed batch order org")
    async with pool.acquire() as conn, conn.transaction():
        await feed.append_many(
            conn, org_id, [(None, "call_status", {"n": n}, uuid.uuid4()) for n in range(3)]
        )
        await feed.append(conn, org_id, None, "call_status", {"n": 3})
    await positioned(pool)
    async with pool.acquire() as conn, conn.transaction():
        await feed.append(conn, org_id, None, "call_status", {"n": 4})
    await positioned(pool)
    rows = await feed.read_since(pool, org_id, 0, 10)
    assert [r["data"]["n"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["id"] for r in rows] == sorted({r["id"] for r in rows})


async def test_only_one_batch_runs_at_a_time(pool: Pool) -> None:
    org_id = await calls.create_org(pool, "Feed batch lock org")
    async with pool.acquire() as conn, conn.transaction():
        await feed.append(conn, org_id, None, "call_status", {"status": "ringing"})
    async with pool.acquire() as first, first.transaction():
        await feed.sequence(first)  # its lock held until this transaction ends
        assert await feed.sequence(pool) is None  # another batch: refused, not waiting
    assert await feed.sequence(pool) is not None


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
            await positioned(pool)
            [row] = await feed.read_since(pool, org_id, 0, 10)
            async with asyncio.timeout(timeout(5)):
                while f'"id":{row["id"]},' not in (await announced.get()).replace(" ", ""):
                    pass  # another test's row, positioned in the same batch
        finally:
            await listener.remove_listener(feed.NOTIFY_CHANNEL, on_notify)
    [(owner, by_id)] = await feed.read_ids(pool, [row["id"]])
    assert owner == org_id and by_id == row
