"""The event writer against a real Postgres that goes away: nothing is lost, nothing doubled."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from control.feed_sequencer import FeedSequencer
from media.events import (
    ConsentEvidence,
    EscalationRaised,
    MediaEvent,
    StreamStarted,
    StreamStopped,
    TrackStats,
    TranscriptSegment,
)
from storage import calls
from storage.db import Pool, create_pool
from storage.event_writer import NOTIFY_CHANNEL, PARK_AFTER_S, EventWriter, write_events
from storage.journal import Journal
from storage.tenancy import tenant
from tests.conftest import timeout
from tests.support.pg_proxy import PgProxy


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[tuple[PgProxy, str]]:
    proxy = PgProxy(pg_dsn)
    dsn = await proxy.start()
    yield proxy, dsn
    await proxy.close()


def segments(org_id: uuid.UUID, call_id: uuid.UUID, stream_sid: str, n: int) -> list[MediaEvent]:
    return [
        TranscriptSegment(
            org_id=org_id,
            call_id=call_id,
            stream_sid=stream_sid,
            track="inbound",
            start_ms=i * 1000,
            end_ms=i * 1000 + 500,
            text=f"words {i}",
            confidence=0.9,
            is_final=True,
            engine="test",
        )  # fmt: skip
        for i in range(n)
    ]


class Notifications:
    """Event ids announced on the notify channel, and a way to wait for a set of them."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._changed = asyncio.Event()

    def __call__(self, _c: object, _pid: int, _channel: str, payload: object) -> None:
        assert isinstance(payload, str)
        self.seen.add(json.loads(payload)["event_id"])
        self._changed.set()

    async def wait_for(self, events: list[MediaEvent]) -> None:
        wanted = {str(e.event_id) for e in events}
        async with asyncio.timeout(timeout(15)):
            while not wanted <= self.seen:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def notifications(pg_dsn: str, feed_sequencer: FeedSequencer) -> AsyncIterator[Notifications]:
    """Feed rows' announcements, which the sequencer makes once it has positioned them."""
    conn = await asyncpg.connect(pg_dsn)
    listener = Notifications()
    await conn.add_listener(NOTIFY_CHANNEL, listener)
    yield listener
    await conn.close()


async def until(writer: EventWriter, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(timeout(10)):
        await writer.wait_until(predicate)


def fast_writer(pool: Pool, folder: Path) -> EventWriter:
    return EventWriter(pool, Journal(folder), retry_initial_s=0.05, retry_max_s=0.2)


async def count_segments(pool: Pool, call_id: uuid.UUID) -> int:
    value = await pool.fetchval(
        "SELECT count(*) FROM transcript_segments WHERE call_id = $1", call_id
    )
    assert isinstance(value, int)
    return value


async def test_events_written_during_an_outage_arrive_once_postgres_is_back(
    proxy: tuple[PgProxy, str],
    pool: Pool,
    call_ids: tuple[uuid.UUID, uuid.UUID],
    notifications: Notifications,
    tmp_path: Path,
) -> None:
    pg_proxy, proxied_dsn = proxy
    org_id, call_id = call_ids
    stream_sid = str(uuid.uuid4())
    proxied = await create_pool(proxied_dsn, max_size=2)
    try:
        async with fast_writer(proxied, tmp_path) as writer:
            before = [
                StreamStarted(
                    org_id=org_id,
                    call_id=call_id,
                    stream_sid=stream_sid,
                    call_sid="x",
                    stream_name=None,
                    tracks=("inbound",),
                    encoding="audio/x-mulaw",
                    sample_rate=8000,
                ),  # fmt: skip
                *segments(org_id, call_id, stream_sid, 3),
            ]
            for event in before:
                writer.submit(event)
            await notifications.wait_for(before)

            pg_proxy.cut()
            during = segments(org_id, call_id, stream_sid, 5)[3:] + [
                StreamStopped(
                    org_id=org_id,
                    call_id=call_id,
                    stream_sid=stream_sid,
                    reason="stop",
                    tracks=(
                        TrackStats(
                            track="inbound", frames_received=10, frames_lost=1, audio_lost_ms=20
                        ),
                    ),
                    messages_lost=1,
                )  # fmt: skip
            ]
            for event in during:
                writer.submit(event)
            # At least these: a batch whose commit the cut interrupted is journaled too, and
            # replayed idempotently.
            await until(writer, lambda: writer.journal_pending >= len(during))
            assert await count_segments(pool, call_id) == 3

            pg_proxy.restore()
            await notifications.wait_for(during)
            await until(writer, lambda: writer.idle)
    finally:
        await proxied.close()

    assert await count_segments(pool, call_id) == 5
    row = await pool.fetchrow(
        "SELECT status, audio_lost_ms FROM media_streams WHERE stream_sid = $1", stream_sid
    )
    assert row is not None and dict(row) == {"status": "stopped", "audio_lost_ms": 20}
    assert await pool.fetchval("SELECT audio_lost_ms FROM calls WHERE id = $1", call_id) == 20
    assert not (tmp_path / "events.jsonl").exists()


def stream_started(org_id: uuid.UUID, call_id: uuid.UUID, stream_sid: str) -> StreamStarted:
    return StreamStarted(
        org_id=org_id, call_id=call_id, stream_sid=stream_sid, call_sid="x", stream_name=None,
        tracks=("inbound",), encoding="audio/x-mulaw", sample_rate=8000,
    )  # fmt: skip


def stream_stopped(org_id: uuid.UUID, call_id: uuid.UUID, stream_sid: str) -> StreamStopped:
    return StreamStopped(
        org_id=org_id, call_id=call_id, stream_sid=stream_sid, reason="stop",
        tracks=(TrackStats(track="inbound", frames_received=10, frames_lost=1, audio_lost_ms=20),),
        messages_lost=1,
    )  # fmt: skip


async def journaled_within(writer: EventWriter, count: int, seconds: float) -> None:
    """Waits until `count` events are in the journal, failing past `seconds`."""
    async with asyncio.timeout(timeout(seconds)):
        await writer.wait_until(lambda: writer.journal_pending >= count)


async def test_a_frozen_postgres_holds_events_in_memory_two_seconds_at_most(
    proxy: tuple[PgProxy, str],
    pool: Pool,
    call_ids: tuple[uuid.UUID, uuid.UUID],
    notifications: Notifications,
    tmp_path: Path,
) -> None:
    pg_proxy, proxied_dsn = proxy
    org_id, call_id = call_ids
    stream_sid = str(uuid.uuid4())
    events = [
        stream_started(org_id, call_id, stream_sid),
        *segments(org_id, call_id, stream_sid, 5),
    ]
    before, first, second = (
        events[:2],
        events[2:4],
        [*events[4:], stream_stopped(org_id, call_id, stream_sid)],
    )
    proxied = await create_pool(proxied_dsn, max_size=2)
    try:
        async with fast_writer(proxied, tmp_path) as writer:
            for event in before:
                writer.submit(event)
            await notifications.wait_for(before)

            pg_proxy.freeze()  # nothing fails, nothing answers: only a deadline notices
            for event in first:
                writer.submit(event)
            # The write they are in hangs; the journal takes them when its time is up.
            await journaled_within(writer, len(first), PARK_AFTER_S + 1)
            # Later ones go to the journal at once, while Postgres work hangs in the background.
            for event in second:
                writer.submit(event)
            await journaled_within(writer, len(first) + len(second), 1)
            assert await count_segments(pool, call_id) == 1

            pg_proxy.thaw()
            await notifications.wait_for(first + second)
            await until(writer, lambda: writer.idle)
    finally:
        await proxied.close()

    # Each once, though the frozen write may have committed before its replay did.
    ids = [e.event_id for e in events if isinstance(e, TranscriptSegment)]
    assert await count_segments(pool, call_id) == len(ids) == 5
    fed = await pool.fetchval(
        "SELECT count(*) FROM feed_events WHERE call_id = $1 AND type = 'transcript'", call_id
    )
    assert fed == 5
    assert await pool.fetchval("SELECT audio_lost_ms FROM calls WHERE id = $1", call_id) == 20
    assert not (tmp_path / "events.jsonl").exists()


async def test_the_journal_outlives_the_process_and_replays_at_the_next_start(
    proxy: tuple[PgProxy, str],
    pool: Pool,
    call_ids: tuple[uuid.UUID, uuid.UUID],
    notifications: Notifications,
    tmp_path: Path,
) -> None:
    pg_proxy, proxied_dsn = proxy
    org_id, call_id = call_ids
    events = segments(org_id, call_id, str(uuid.uuid4()), 4)
    proxied = await create_pool(proxied_dsn, max_size=2)
    pg_proxy.cut()
    try:
        writer = fast_writer(proxied, tmp_path)
        async with writer:
            for event in events:
                writer.submit(event)
        # Shut down with Postgres unreachable: everything is on disk, nothing in Postgres.
        assert Journal(tmp_path).pending == 4
        assert await count_segments(pool, call_id) == 0
    finally:
        await proxied.close()

    # The next process starts with Postgres back, and a journal to replay.
    async with fast_writer(pool, tmp_path) as restarted:
        await notifications.wait_for(events)
        await until(restarted, lambda: restarted.idle)
    assert await count_segments(pool, call_id) == 4


def test_a_line_torn_by_a_crash_does_not_swallow_the_next_event(
    call_ids: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    org_id, call_id = call_ids
    before, after = segments(org_id, call_id, "s", 2), segments(org_id, call_id, "t", 1)
    Journal(tmp_path).append(before)
    path = Journal(tmp_path).path
    with path.open("a", encoding="utf-8") as f:
        f.write('{"type": "transcript_segment", "org_id"')  # the crash, mid-append
    restarted = Journal(tmp_path)
    restarted.append(after)
    assert restarted.read() == ([*before, *after], 3)


def test_events_journaled_while_a_replay_runs_are_kept_for_the_next(
    call_ids: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    org_id, call_id = call_ids
    older, newer = segments(org_id, call_id, "s", 2), segments(org_id, call_id, "t", 1)
    journal = Journal(tmp_path)
    journal.append(older)
    replayed, lines = journal.read()
    journal.append(newer)  # the writer journals new events while the replay writes
    journal.consume(lines)
    assert (replayed, journal.pending) == (older, 1)
    assert Journal(tmp_path).read() == (newer, 1)
    journal.consume(1)
    assert not journal.path.exists() and journal.pending == 0


async def test_replaying_events_already_written_does_not_double_them(
    pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID], notifications: Notifications, tmp_path: Path
) -> None:
    org_id, call_id = call_ids
    events = segments(org_id, call_id, str(uuid.uuid4()), 3)
    async with fast_writer(pool, tmp_path / "a") as writer:
        for event in events:
            writer.submit(event)
        await notifications.wait_for(events)
    Journal(tmp_path / "b").append(events)  # as if a crash hit between commit and cleanup
    async with fast_writer(pool, tmp_path / "b") as writer:
        await until(writer, lambda: writer.idle)
    assert await count_segments(pool, call_id) == 3


async def test_a_calls_redactions_are_counted_by_kind_once_however_often_replayed(
    pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID], notifications: Notifications, tmp_path: Path
) -> None:
    org_id, call_id = call_ids
    plain, card, both = segments(org_id, call_id, str(uuid.uuid4()), 3)
    assert isinstance(card, TranscriptSegment) and isinstance(both, TranscriptSegment)
    events = [
        plain,
        dataclasses.replace(card, text="it's [card]", redacted=("card",)),
        dataclasses.replace(both, text="[card], or call [phone]", redacted=("card", "phone")),
    ]
    for folder in ("a", "b"):  # the second time as a replay of the journal
        Journal(tmp_path / folder).append(events)
        async with fast_writer(pool, tmp_path / folder) as writer:
            await until(writer, lambda: writer.idle)
    await notifications.wait_for(events)
    async with tenant(pool, org_id) as conn:
        call = await calls.get_call(conn, org_id, call_id, with_transcript=False)
    assert call is not None
    assert call["redactions"] == {"card": 2, "phone": 1}


async def test_an_event_postgres_refuses_is_set_aside_and_the_rest_still_land(
    pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID], notifications: Notifications, tmp_path: Path
) -> None:
    org_id, call_id = call_ids
    [orphan] = segments(org_id, uuid.uuid4(), "s", 1)  # no such call: a foreign key violation
    good = segments(org_id, call_id, "s", 2)
    async with fast_writer(pool, tmp_path) as writer:
        for event in [good[0], orphan, good[1]]:
            writer.submit(event)
        await notifications.wait_for(good)
    assert await count_segments(pool, call_id) == 2
    [rejected] = (tmp_path / "rejected.jsonl").read_text().splitlines()
    record = json.loads(rejected)
    assert record["event"]["event_id"] == str(orphan.event_id)
    assert "foreign key" in record["error"]


async def test_a_full_queue_spills_to_the_journal_instead_of_dropping(
    pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID], notifications: Notifications, tmp_path: Path
) -> None:
    org_id, call_id = call_ids
    events = segments(org_id, call_id, "s", 6)
    writer = EventWriter(pool, Journal(tmp_path), max_queue=2, retry_initial_s=0.05)
    for event in events:  # the writer task is not running yet: the queue fills
        writer.submit(event)
    assert writer.journal_pending == 4
    async with writer:
        await notifications.wait_for(events)
    assert await count_segments(pool, call_id) == 6


def answer(org_id: uuid.UUID, call_id: uuid.UUID, verdict: str, at_s: int) -> ConsentEvidence:
    return ConsentEvidence(
        org_id=org_id, call_id=call_id, stream_sid="s", kind="answer", detector="caller_speech",
        verdict=verdict, track="inbound", offset_ms=at_s * 1000, evidence=verdict,  # type: ignore[arg-type]
        occurred_at=datetime(2026, 11, 25, 12, 0, at_s, tzinfo=UTC),
    )  # fmt: skip


async def consent_of(pool: Pool, call_id: uuid.UUID) -> tuple[bool | None, str | None]:
    row = await pool.fetchrow(
        "SELECT recording_consent, consent_verified_by FROM calls WHERE id = $1", call_id
    )
    assert row is not None
    return row["recording_consent"], row["consent_verified_by"]


async def write(pool: Pool, *events: MediaEvent) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, events)


async def test_a_detected_verdict_never_replaces_a_persons_nor_a_newer_one(
    pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_id, call_id = call_ids
    await write(pool, answer(org_id, call_id, "refused", 20))
    assert await consent_of(pool, call_id) == (False, "detector:caller_speech")
    await write(pool, answer(org_id, call_id, "granted", 10))  # older, replayed late
    assert await consent_of(pool, call_id) == (False, "detector:caller_speech")
    await pool.execute(
        "UPDATE calls SET recording_consent = true, consent_verified_by = 'user:x' WHERE id = $1",
        call_id,
    )
    await write(pool, answer(org_id, call_id, "refused", 30))
    assert await consent_of(pool, call_id) == (True, "user:x")
    # Every answer is kept as evidence, and the feed says which ones decided.
    applied = await pool.fetch(
        """SELECT (payload->>'applied')::boolean AS applied FROM feed_events
           WHERE call_id = $1 AND type = 'consent' ORDER BY id""",
        call_id,
    )
    assert [r["applied"] for r in applied] == [True, False, False]
    assert (
        await pool.fetchval("SELECT count(*) FROM consent_events WHERE call_id = $1", call_id) == 3
    )


async def test_an_escalation_of_a_rule_deleted_mid_call_is_still_written(
    pool: Pool, call_ids: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_id, call_id = call_ids
    raised = EscalationRaised(
        org_id=org_id, call_id=call_id, stream_sid="s", rule_id=uuid.uuid4(),
        rule_name="gone", kind="phrase", severity="high", track="inbound", start_ms=0,
        end_ms=900, evidence="manager",
    )  # fmt: skip
    await write(pool, raised, raised)  # a replay repeats it: written once
    row = await pool.fetchrow(
        "SELECT rule_id, rule_name FROM escalations WHERE id = $1", raised.event_id
    )
    assert row is not None and (row["rule_id"], row["rule_name"]) == (None, "gone")
    fed = await pool.fetchval(
        "SELECT count(*) FROM feed_events WHERE event_id = $1", raised.event_id
    )
    assert fed == 1
    flags = await pool.fetchrow(
        "SELECT escalated, escalation_time FROM calls WHERE id = $1", call_id
    )
    assert (
        flags is not None and flags["escalated"] and flags["escalation_time"] == raised.occurred_at
    )
