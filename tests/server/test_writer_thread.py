"""The event writer on its own thread (server/writer_thread.py): events handed over from the
media loop reach Postgres in order, even while that loop is too busy to run anything."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest

from server.writer_thread import WriterThread
from storage.db import Pool
from tests.conftest import timeout
from tests.storage.test_event_writer import segments


async def stored_texts(pool: Pool, call_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT text FROM transcript_segments WHERE call_id = $1 ORDER BY start_ms", call_id
    )
    return [r["text"] for r in rows]


async def test_events_land_in_order_while_the_submitting_loop_is_blocked(
    tmp_path: Path, pg_dsn: str, pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_id, call_id = call_ids
    events = segments(org_id, call_id, "MZ-thread", 50)
    async with WriterThread(pg_dsn, tmp_path) as writer:
        for event in events:
            writer.submit(event)
        written = threading.Event()

        def all_written() -> bool:  # checked on the writer's thread
            if writer.idle:
                written.set()
            return writer.idle

        waiting = writer.wait_until(all_written)
        # This loop now blocks, as it does under a burst of media work: the writer goes on.
        assert written.wait(timeout(10)), "nothing was written while the loop was blocked"
        await asyncio.wait_for(waiting, timeout(5))
    assert await stored_texts(pool, call_id) == [f"words {i}" for i in range(50)]


async def test_leaving_writes_what_was_submitted_just_before(
    tmp_path: Path, pg_dsn: str, pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_id, call_id = call_ids
    async with WriterThread(pg_dsn, tmp_path) as writer:
        for event in segments(org_id, call_id, "MZ-leaving", 20):
            writer.submit(event)
    assert len(await stored_texts(pool, call_id)) == 20
    assert not (tmp_path / "events.jsonl").exists()  # written, not journaled


async def test_a_writer_that_cannot_reach_postgres_fails_the_start(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        async with WriterThread("postgresql://voxsouth@127.0.0.1:9/none", tmp_path):
            pass
