"""Which calls a lost process left unheard, and the claims that give each to one process
(storage.restreams), on a real Postgres.

The claim is global, so an autouse fixture puts every call other tests left behind out of its
reach; time is moved by back-dating rows, never by waiting.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest

from media.events import StreamStarted, StreamStopped
from storage import calls, processes, restreams
from storage.db import Pool
from storage.event_writer import write_events
from storage.restreams import Claimed, UnheardCall
from tests.storage.test_processes import expire, open_call, register

ALL = 100


@pytest.fixture(autouse=True)
async def only_this_tests_calls(pool: Pool) -> None:
    await put_out_of_reach(pool)


async def put_out_of_reach(pool: Pool) -> None:
    """Every call now in the database counts as given up on its current loss."""
    await pool.execute(
        """UPDATE calls c SET restream_next_at = 'infinity',
               restream_lost_at = (SELECT s.stopped_at FROM media_streams s
                                   WHERE s.call_id = c.id AND s.owner_id IS NOT NULL
                                   ORDER BY s.started_at DESC, s.connection DESC LIMIT 1)"""
    )


async def start(pool: Pool, call: calls.CallRef, owner: uuid.UUID, sid: str | None = None) -> str:
    sid = sid or str(uuid.uuid4())
    started = StreamStarted(
        org_id=call.org_id, call_id=call.id, stream_sid=sid, call_sid="x", stream_name=None,
        tracks=("inbound",), encoding="audio/x-mulaw", sample_rate=8000, server_id=owner,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [started])
    return sid


async def stop(pool: Pool, call: calls.CallRef, sid: str) -> None:
    stopped = StreamStopped(
        org_id=call.org_id, call_id=call.id, stream_sid=sid, reason="stop", tracks=(),
        messages_lost=0,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [stopped])


async def lose(pool: Pool, call: calls.CallRef) -> datetime:
    """A stream of the call on a process that dies; returns when the loss is stamped."""
    dead = await register(pool, alive=True)
    sid = await start(pool, call, dead)
    await expire(pool, dead)
    await processes.close_lost_streams(pool)
    lost_at: datetime = await pool.fetchval(
        "SELECT stopped_at FROM media_streams WHERE stream_sid = $1", sid
    )
    return lost_at


async def claim(
    pool: Pool, *, limit: int = ALL, hold_s: float = 60.0, max_attempts: int = 3
) -> tuple[list[Claimed], list[UnheardCall]]:
    return await restreams.claim_unheard_calls(
        pool, limit=limit, hold_s=hold_s,
        attempt_of=lambda c: c.attempts + 1 if c.attempts < max_attempts else None,
    )  # fmt: skip


async def given_up_on(pool: Pool, call_id: uuid.UUID) -> bool:
    given_up: bool = await pool.fetchval(
        "SELECT restream_next_at = 'infinity' FROM calls WHERE id = $1", call_id
    )
    return given_up


async def due_now(pool: Pool, call_id: uuid.UUID) -> None:
    await pool.execute("UPDATE calls SET restream_next_at = now() WHERE id = $1", call_id)


async def test_only_live_calls_whose_last_stream_died_with_its_process_are_unheard(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    unheard = await open_call(pool, org_number)
    await lose(pool, unheard)

    ended = await open_call(pool, org_number)
    await lose(pool, ended)
    await pool.execute("UPDATE calls SET status = 'completed' WHERE id = $1", ended.id)

    closed_as_unknown = await open_call(pool, org_number)
    await lose(pool, closed_as_unknown)
    await pool.execute("UPDATE calls SET status = 'unknown' WHERE id = $1", closed_as_unknown.id)

    heard_again = await open_call(pool, org_number)  # a stream took it up on a live process
    await lose(pool, heard_again)
    await start(pool, heard_again, await register(pool, alive=True))

    resumed_then_stopped = await open_call(pool, org_number)  # heard again, then it stopped
    await lose(pool, resumed_then_stopped)
    sid = await start(pool, resumed_then_stopped, await register(pool, alive=True))
    await stop(pool, resumed_then_stopped, sid)

    stopped = await open_call(pool, org_number)  # never lost: its stream stopped as usual
    await stop(pool, stopped, await start(pool, stopped, await register(pool, alive=True)))

    still_open = await open_call(pool, org_number)  # its process lives
    await start(pool, still_open, await register(pool, alive=True))

    claimed, given_up = await claim(pool)

    assert [c.call.id for c in claimed] == [unheard.id]
    assert given_up == []
    call = claimed[0].call
    assert (call.org_id, call.attempts, claimed[0].attempt) == (unheard.org_id, 0, 1)
    assert call.call_sid == await pool.fetchval(
        "SELECT call_sid FROM calls WHERE id = $1", unheard.id
    )


async def test_a_claimed_call_is_held_then_counted_again_and_given_up_after_the_last(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    call = await open_call(pool, org_number)
    lost_at = await lose(pool, call)

    [first], _ = await claim(pool, max_attempts=2)
    assert (first.attempt, first.call.lost_at) == (1, lost_at)
    assert await claim(pool, max_attempts=2) == ([], [])  # held while its stream may land

    await due_now(pool, call.id)  # no stream came of it in time
    [second], _ = await claim(pool, max_attempts=2)
    assert (second.attempt, second.call.attempts) == (2, 1)

    await due_now(pool, call.id)
    given_up = UnheardCall(call.id, call.org_id, second.call.call_sid, lost_at, 2)
    assert await claim(pool, max_attempts=2) == ([], [given_up])
    assert await given_up_on(pool, call.id)  # never again for this loss
    assert await claim(pool, max_attempts=2) == ([], [])


async def test_settling_sets_the_next_try_or_gives_the_loss_up(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    call = await open_call(pool, org_number)
    lost_at = await lose(pool, call)
    await claim(pool)

    await restreams.settle(pool, call.id, lost_at, 0.0)  # a failure, tried again at once
    [again], _ = await claim(pool)
    assert again.attempt == 2

    # A settle for another loss than the one counted changes nothing.
    await restreams.settle(pool, call.id, lost_at.replace(year=2000), 0.0)
    assert await claim(pool) == ([], [])

    await restreams.settle(pool, call.id, lost_at, None)  # SignalWire says it is over
    assert await claim(pool) == ([], [])
    assert await given_up_on(pool, call.id)


async def test_a_restarted_stream_lost_in_turn_is_a_new_loss_counted_afresh(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    call = await open_call(pool, org_number)
    await lose(pool, call)
    for _ in range(3):
        await claim(pool)
        await due_now(pool, call.id)
    assert (await claim(pool))[0] == []  # the first loss's attempts are spent

    second_loss = await lose(pool, call)  # a later stream of it took it up, and died too

    [claimed], _ = await claim(pool)
    assert (claimed.attempt, claimed.call.lost_at) == (1, second_loss)


async def test_concurrent_claims_take_each_call_once(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    lost = [await open_call(pool, org_number) for _ in range(12)]
    for call in lost:
        await lose(pool, call)

    rounds = await asyncio.gather(*(claim(pool, limit=5) for _ in range(4)))
    rounds += await asyncio.gather(*(claim(pool, limit=5) for _ in range(4)))

    taken = [c.call.id for claimed, _ in rounds for c in claimed]
    assert sorted(taken) == sorted(call.id for call in lost)  # every call, none twice
    assert all(len(claimed) <= 5 for claimed, _ in rounds)


async def test_the_oldest_loss_is_claimed_first(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    newer, older = await open_call(pool, org_number), await open_call(pool, org_number)
    await lose(pool, newer)
    await lose(pool, older)
    await pool.execute(
        "UPDATE media_streams SET stopped_at = stopped_at - interval '1 minute' WHERE call_id = $1",
        older.id,
    )
    [first], _ = await claim(pool, limit=1)
    assert first.call.id == older.id
