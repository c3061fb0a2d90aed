"""Migrations on a real Postgres: in order, once, even when two processes start together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage import calls, feed
from storage.migrate import available, is_current, migrate
from tests.conftest import _with_database


@pytest.fixture
async def empty_db(pg_dsn: str) -> AsyncIterator[str]:
    name = f"voxsouth_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield _with_database(pg_dsn, name)
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


async def test_two_processes_migrating_at_once_apply_each_migration_once(empty_db: str) -> None:
    first, second = await asyncpg.connect(empty_db), await asyncpg.connect(empty_db)
    try:
        assert not await is_current(first)
        applied = await asyncio.gather(migrate(first), migrate(second))
        # One of them applied everything, the other found nothing left to do.
        assert sorted(len(a) for a in applied) == [0, len(available())]
        assert await is_current(first)
        versions = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in available()]
        assert await migrate(first) == []  # idempotent
    finally:
        await first.close()
        await second.close()


def test_migrations_are_numbered_from_0001_without_gaps() -> None:
    versions = [m.version for m in available()]
    assert versions == list(range(1, len(versions) + 1))


async def test_feed_rows_keep_their_positions_through_the_sequencer_migration(
    empty_db: str,
) -> None:
    [sequencer] = [m.version for m in available() if m.name == "feed_sequencer"]
    conn = await asyncpg.connect(empty_db)
    try:
        await migrate(conn, up_to=sequencer - 1)
        org_id = await calls.create_org(conn, "Fed before the sequencer")
        for n in range(3):
            async with conn.transaction():  # positioned at commit, as migration 0009 did
                await feed.append(conn, org_id, None, "call_status", {"n": n})
        before = await feed.read_since(conn, org_id, 0, 10)
        assert [e["data"]["n"] for e in before] == [0, 1, 2]
        await migrate(conn)
        assert await feed.read_since(conn, org_id, 0, 10) == before
        async with conn.transaction():
            await feed.append(conn, org_id, None, "call_status", {"n": 3})
        assert await feed.sequence(conn) == 1
        after = await feed.read_since(conn, org_id, 0, 10)
    finally:
        await conn.close()
    assert after[:3] == before
    assert after[3]["data"] == {"n": 3} and after[3]["id"] > before[-1]["id"]
