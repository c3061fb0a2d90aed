"""Process leases and the sweep of what a dead process left open, on a real Postgres.

Leases are made to run out by moving `expires_at` into the past, not by waiting; the sweep is
global, so each test looks only at its own rows.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from media.events import StreamStarted, StreamStopped
from storage import calls, processes
from storage.db import Pool
from storage.event_writer import write_events


async def register(pool: Pool, *, alive: bool) -> uuid.UUID:
    process_id = uuid.uuid4()
    await processes.renew(pool, process_id, host="test", pid=1, lease_s=60)
    if not alive:
        await expire(pool, process_id)
    return process_id


async def expire(pool: Pool, process_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE server_processes SET expires_at = now() - interval '1 second' WHERE id = $1",
        process_id,
    )


async def open_call(pool: Pool, org_number: tuple[uuid.UUID, str]) -> calls.CallRef:
    org_id, number = org_number
    return await calls.open_call(
        pool, org_id=org_id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550199999", to_number=number, status="in-progress",
    )  # fmt: skip


async def open_stream(pool: Pool, call: calls.CallRef, owner: uuid.UUID | None) -> str:
    """A stream opened through the event writer, as the media plane of `owner` would."""
    sid = str(uuid.uuid4())
    started = StreamStarted(
        org_id=call.org_id, call_id=call.id, stream_sid=sid, call_sid="x", stream_name=None,
        tracks=("inbound",), encoding="audio/x-mulaw", sample_rate=8000, server_id=owner,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [started])
    return sid


async def stream_row(pool: Pool, sid: str) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT status, end_reason, owner_id, started_at, stopped_at FROM media_streams "
        "WHERE stream_sid = $1",
        sid,
    )
    assert row is not None
    return dict(row)


async def call_status(pool: Pool, call_id: uuid.UUID) -> str:
    status: str = await pool.fetchval("SELECT status FROM calls WHERE id = $1", call_id)
    return status


async def test_only_streams_of_a_process_whose_lease_ran_out_are_closed(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    dead, alive = await register(pool, alive=False), await register(pool, alive=True)
    call = await open_call(pool, org_number)
    lost = await open_stream(pool, call, dead)
    kept = await open_stream(pool, call, alive)
    unowned = await open_stream(pool, call, None)
    gone = await open_stream(pool, call, uuid.uuid4())  # an owner with no registration at all

    closed = {s.stream_sid for s in await processes.close_lost_streams(pool)}

    assert {lost, gone} <= closed and not {kept, unowned} & closed
    row = await stream_row(pool, lost)
    assert (row["status"], row["end_reason"], row["owner_id"]) == ("stopped", "process_lost", dead)
    heartbeat = await pool.fetchval("SELECT heartbeat_at FROM server_processes WHERE id = $1", dead)
    assert heartbeat is None  # nothing of it left open: its registration is gone
    assert row["stopped_at"] is not None and row["stopped_at"] >= row["started_at"]
    assert (await stream_row(pool, kept))["status"] == "streaming"
    assert (await stream_row(pool, unowned))["status"] == "streaming"
    fed = await pool.fetch(
        "SELECT payload->>'stream_sid' AS sid FROM feed_events "
        "WHERE call_id = $1 AND type = 'stream_stopped' AND payload->>'reason' = 'process_lost'",
        call.id,
    )
    assert {r["sid"] for r in fed} == {lost, gone}
    assert lost not in {s.stream_sid for s in await processes.close_lost_streams(pool)}


async def test_two_sweepers_at_once_close_each_stream_once(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    dead = await register(pool, alive=False)
    call = await open_call(pool, org_number)
    sids = {await open_stream(pool, call, dead) for _ in range(20)}

    first, second = await asyncio.gather(
        processes.close_lost_streams(pool, batch=15), processes.close_lost_streams(pool, batch=15)
    )
    rest = await processes.close_lost_streams(pool)

    mine = [s.stream_sid for s in (*first, *second, *rest) if s.stream_sid in sids]
    assert sorted(mine) == sorted(sids)  # every one closed, none twice


async def test_the_real_end_written_later_replaces_process_lost(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    """A process cut off from Postgres past its lease was swept, but it was alive: its own
    StreamStopped, written when Postgres is back, tells how the stream really ended."""
    owner = await register(pool, alive=False)
    call = await open_call(pool, org_number)
    sid = await open_stream(pool, call, owner)
    await processes.close_lost_streams(pool)
    stopped = StreamStopped(
        org_id=call.org_id, call_id=call.id, stream_sid=sid, reason="stop", tracks=(),
        messages_lost=0,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [stopped])
    assert (await stream_row(pool, sid))["end_reason"] == "stop"
    await processes.renew(pool, owner, host="test", pid=1, lease_s=60)  # back, registered again
    assert await pool.fetchval(
        "SELECT expires_at > now() FROM server_processes WHERE id = $1", owner
    )


async def test_a_call_whose_streams_were_lost_is_unknown_only_after_the_timeout(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    dead, alive = await register(pool, alive=False), await register(pool, alive=True)
    abandoned, still_streaming = (
        await open_call(pool, org_number),
        await open_call(pool, org_number),
    )
    await open_stream(pool, abandoned, dead)
    await open_stream(pool, still_streaming, dead)
    await open_stream(pool, still_streaming, alive)  # a second stream, served elsewhere
    await processes.close_lost_streams(pool)

    assert abandoned.id not in await processes.close_abandoned_calls(pool, after_s=3600)
    assert await call_status(pool, abandoned.id) == "in-progress"

    closed = await processes.close_abandoned_calls(pool, after_s=0)
    assert abandoned.id in closed and still_streaming.id not in closed
    assert await call_status(pool, abandoned.id) == "unknown"
    assert await call_status(pool, still_streaming.id) == "in-progress"
    assert abandoned.id not in await processes.close_abandoned_calls(pool, after_s=0)  # once


@pytest.mark.parametrize(
    ("late", "outcome", "status"),
    [("in-progress", "stale", "unknown"), ("completed", "applied", "completed")],
)
async def test_a_status_callback_after_unknown_names_the_real_end(
    pool: Pool, org_number: tuple[uuid.UUID, str], late: str, outcome: str, status: str
) -> None:
    dead = await register(pool, alive=False)
    call = await open_call(pool, org_number)
    await open_stream(pool, call, dead)
    await processes.close_lost_streams(pool)
    await processes.close_abandoned_calls(pool, after_s=0)
    sid = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call.id)
    ended = datetime(2030, 1, 1, tzinfo=UTC)

    applied = await calls.apply_call_status(
        pool, call_sid=sid, status=late, sequence=5, at=ended, duration_seconds=None
    )

    assert applied == outcome
    row = await pool.fetchrow("SELECT status, ended_at FROM calls WHERE id = $1", call.id)
    assert row is not None and row["status"] == status
    assert (row["ended_at"] == ended) is (status == "completed")


async def test_deregister_removes_the_registration(pool: Pool) -> None:
    process_id = await register(pool, alive=True)
    await processes.deregister(pool, process_id)
    assert (
        await pool.fetchval("SELECT count(*) FROM server_processes WHERE id = $1", process_id) == 0
    )
