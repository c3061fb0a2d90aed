"""The feed's sequencer at work: a late commit holds back no one and still comes in order, and
when the process that positions the feed goes (killed, or stopping), another takes over."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from control.feed import FeedHub, Subscription
from control.feed_sequencer import FeedSequencer
from storage import calls, feed
from storage.db import Pool
from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
TAKEOVER_S = 0.1
"""A standby's tries, quicker here than the default so the tests take less time."""

LEADER_PROCESS = """
import asyncio, sys
from control.feed_sequencer import FeedSequencer

async def main() -> None:
    async with FeedSequencer(sys.argv[1]) as sequencer:
        await sequencer.leading.wait()
        print("leading", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def next_event(sub: Subscription) -> dict[str, Any]:
    async with asyncio.timeout(timeout(5)):
        event = await sub.next()
    assert event is not None, sub.reason
    return event


async def write(pool: Pool, org_id: uuid.UUID, n: object) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await feed.append(conn, org_id, None, "call_status", {"n": n})


@asynccontextmanager
async def subscribed(pool: Pool, dsn: str, org_id: uuid.UUID) -> AsyncIterator[Subscription]:
    async with FeedHub(pool, dsn) as hub:
        async with asyncio.timeout(timeout(5)):
            await hub.listening.wait()
        sub = hub.subscribe(org_id)
        try:
            yield sub
        finally:
            hub.unsubscribe(sub)


async def leading(sequencer: FeedSequencer) -> None:
    async with asyncio.timeout(timeout(5)):
        await sequencer.leading.wait()


async def test_a_writer_that_started_first_and_commits_last_holds_back_no_one_and_comes_after(
    pool: Pool, pg_dsn: str
) -> None:
    org_id = await calls.create_org(pool, "Sequencer late commit")
    async with subscribed(pool, pg_dsn, org_id) as sub, FeedSequencer(pg_dsn):
        async with pool.acquire() as slow:
            started_first = slow.transaction()
            await started_first.start()
            await feed.append(slow, org_id, None, "call_status", {"n": "slow"})
            for n in range(3):
                await write(pool, org_id, n)
            # Delivered while the first writer is still open: it holds back no one...
            seen = [await next_event(sub) for _ in range(3)]
            assert [e["data"]["n"] for e in seen] == [0, 1, 2]
            # ...and its row, inserted before theirs, has no position while uncommitted.
            assert sub.queue.empty()
            assert await feed.read_since(pool, org_id, seen[-1]["id"], 10) == []
            await started_first.commit()
        late = await next_event(sub)
    assert late["data"] == {"n": "slow"}
    assert late["id"] > max(e["id"] for e in seen)
    # A supervisor who had seen the others and resumes after them gets it.
    [resumed] = await feed.read_since(pool, org_id, seen[-1]["id"], 10)
    assert resumed == late


async def test_when_the_leaders_process_is_killed_another_takes_over(
    pool: Pool, pg_dsn: str
) -> None:
    org_id = await calls.create_org(pool, "Sequencer takeover")
    leader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEADER_PROCESS, pg_dsn, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert leader.stdout is not None
        async with asyncio.timeout(timeout(20)):
            assert await leader.stdout.readline() == b"leading\n"
        async with (
            subscribed(pool, pg_dsn, org_id) as sub,
            FeedSequencer(pg_dsn, takeover_s=TAKEOVER_S) as standby,
        ):
            await write(pool, org_id, "by the leader")
            assert (await next_event(sub))["data"]["n"] == "by the leader"
            assert not standby.leading.is_set()
            leader.kill()
            await leader.wait()
            await write(pool, org_id, "while no one leads")
            await leading(standby)
            await write(pool, org_id, "by the new leader")
            after = [await next_event(sub) for _ in range(2)]
    finally:
        if leader.returncode is None:
            leader.kill()
            await leader.wait()
    assert [e["data"]["n"] for e in after] == ["while no one leads", "by the new leader"]


async def test_a_leader_that_stops_positions_what_is_left_and_hands_over(
    pool: Pool, pg_dsn: str
) -> None:
    org_id = await calls.create_org(pool, "Sequencer handover")
    first = FeedSequencer(pg_dsn, every_s=3600)  # no poll: only its last batch positions
    await first.__aenter__()
    try:
        await leading(first)
        async with FeedSequencer(pg_dsn, takeover_s=TAKEOVER_S) as second:
            await write(pool, org_id, "last of the old leader")
            await first.__aexit__(None, None, None)
            [row] = await feed.read_since(pool, org_id, 0, 10)
            assert row["data"]["n"] == "last of the old leader"
            await leading(second)
    finally:
        await first.__aexit__(None, None, None)


async def test_a_leader_whose_connection_is_cut_reconnects_and_leads_again(
    pool: Pool, pg_dsn: str
) -> None:
    org_id = await calls.create_org(pool, "Sequencer reconnect")
    async with (
        subscribed(pool, pg_dsn, org_id) as sub,
        FeedSequencer(pg_dsn, takeover_s=TAKEOVER_S) as sequencer,
    ):
        await leading(sequencer)
        cut = await pool.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE application_name = 'voxsouth-feed-sequencer'
                 AND datname = current_database()"""
        )
        assert cut == 1
        await write(pool, org_id, "after the cut")
        assert (await next_event(sub))["data"]["n"] == "after the cut"


async def test_a_leader_whose_batch_fails_in_the_client_reconnects_and_leads_again(
    pool: Pool, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg refused a connection whose session Postgres had ended while it was idle
    ("another operation is in progress", seen once in the test above): the sequencer that met
    it stopped for good, and with it every process's feed."""
    org_id = await calls.create_org(pool, "Sequencer client fault")
    sequence = feed.sequence
    failures = [asyncpg.exceptions.InternalClientError("cannot switch to state 12")]

    async def failing_once(conn: Any, max_rows: int = feed.SEQUENCE_BATCH) -> int | None:
        if failures:
            raise failures.pop()
        return await sequence(conn, max_rows)

    monkeypatch.setattr(feed, "sequence", failing_once)
    async with (
        subscribed(pool, pg_dsn, org_id) as sub,
        FeedSequencer(pg_dsn, takeover_s=TAKEOVER_S) as sequencer,
    ):
        await write(pool, org_id, "after the fault")
        assert (await next_event(sub))["data"]["n"] == "after the fault"
        assert failures == [] and sequencer.leading.is_set()
