"""Persists the media plane's events in batches, and never loses one.

`submit` never blocks (the media loop calls it). A single writer task takes up to `batch_max`
events at a time, writes them in one transaction and adds each to the supervisors' feed
(storage/feed.py), whose `NOTIFY voxsouth_events` comes once the feed's sequencer has positioned
the committed rows, so a listener always finds them.

When Postgres is unreachable, or has not taken a batch within `park_after_s` (2 s), the batch
goes to the local journal, and so does everything after it, as it arrives, until the journal
has been replayed: events wait in memory about two seconds at most, however long Postgres
takes to fail. Replays run one at a time beside the journaling (retries back off
exponentially), and nothing else writes while one runs or while a write given up on is still
ending: events reach Postgres in the order they happened. When the in-memory queue is full,
`submit` writes the event straight to the journal. Writes are idempotent by event id, so a
replay may repeat safely, including a batch whose write was given up on but committed after
all.
A batch Postgres refuses as invalid is retried one event at a time; the invalid ones go to the
journal's rejected file and are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from media.events import (
    SPEAKER_BY_TRACK,
    ConsentEvidence,
    DtmfReceived,
    EscalationRaised,
    MediaEvent,
    StreamStarted,
    StreamStopped,
    TranscriptPartial,
    TranscriptSegment,
    event_to_dict,
)
from storage import consent, feed, metrics
from storage.db import QUERY_TIMEOUT_S, UNAVAILABLE_ERRORS, Connection, Pool, cancel_promptly
from storage.journal import Journal
from storage.tenancy import enter_tenant

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = feed.NOTIFY_CHANNEL

PARK_AFTER_S = 2.0
"""How long a batch of new events may take to write before it is journaled instead. A batch
takes milliseconds (voxsouth_db_write_seconds); the margin is for a loop busy with many streams,
where each statement's round trip waits its turn, and journaling would only add work."""

FEED_TYPES: dict[type[MediaEvent], str] = {
    StreamStarted: "stream_started",
    StreamStopped: "stream_stopped",
    TranscriptSegment: "transcript",
    DtmfReceived: "dtmf",
    ConsentEvidence: "consent",
    EscalationRaised: "escalation",
}

# owner_id: the process serving the stream; a row the stream statusCallback made first has none.
# restarted_after: set when the control plane restarted the stream (a node lost mid-call).
_STREAM_STARTED = """
INSERT INTO media_streams (org_id, call_id, stream_sid, name, codec, sample_rate, tracks,
                           status, started_at, owner_id, connection, offset_ms, restarted_after)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'streaming', $8, $9, $10, $11, $12)
ON CONFLICT (stream_sid, connection) DO UPDATE SET
    name = COALESCE(media_streams.name, EXCLUDED.name),
    owner_id = COALESCE(EXCLUDED.owner_id, media_streams.owner_id),
    restarted_after = COALESCE(media_streams.restarted_after, EXCLUDED.restarted_after),
    codec = EXCLUDED.codec,
    sample_rate = EXCLUDED.sample_rate,
    tracks = EXCLUDED.tracks,
    started_at = LEAST(media_streams.started_at, EXCLUDED.started_at)"""

_STREAM_STOPPED = """
INSERT INTO media_streams (org_id, call_id, stream_sid, status, frames_received_inbound,
                           frames_received_outbound, frames_lost_inbound, frames_lost_outbound,
                           audio_lost_ms, messages_lost, end_reason, stopped_at,
                           utterances_skipped, transcription_error_inbound,
                           transcription_error_outbound, connection)
VALUES ($1, $2, $3, 'stopped', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (stream_sid, connection) DO UPDATE SET
    status = CASE WHEN media_streams.status = 'failed' THEN 'failed' ELSE 'stopped' END,
    frames_received_inbound = EXCLUDED.frames_received_inbound,
    frames_received_outbound = EXCLUDED.frames_received_outbound,
    frames_lost_inbound = EXCLUDED.frames_lost_inbound,
    frames_lost_outbound = EXCLUDED.frames_lost_outbound,
    audio_lost_ms = EXCLUDED.audio_lost_ms,
    utterances_skipped = EXCLUDED.utterances_skipped,
    transcription_error_inbound = EXCLUDED.transcription_error_inbound,
    transcription_error_outbound = EXCLUDED.transcription_error_outbound,
    messages_lost = EXCLUDED.messages_lost,
    end_reason = EXCLUDED.end_reason,
    stopped_at = COALESCE(media_streams.stopped_at, EXCLUDED.stopped_at)"""

# Derived from the streams, so a replayed StreamStopped cannot count its loss twice.
_CALL_LOSSES = """
UPDATE calls SET (audio_lost_ms, utterances_skipped) = (
    SELECT COALESCE(sum(audio_lost_ms), 0), COALESCE(sum(utterances_skipped), 0)
    FROM media_streams WHERE call_id = $1)
WHERE id = $1"""

# One statement for a run of segments: under load a batch is mostly segments, and each round
# trip waits for the event loop that also carries the media.
_SEGMENTS = """
INSERT INTO transcript_segments (id, org_id, call_id, stream_sid, track, speaker, start_ms,
                                 end_ms, text, confidence, is_final, engine, spoken_at, words,
                                 redacted)
SELECT id, $1, call_id, stream_sid, track, speaker, start_ms, end_ms, text, confidence,
       is_final, engine, spoken_at, words::jsonb, string_to_array(redacted, ',')
FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[],
            $9::text[], $10::real[], $11::bool[], $12::text[], $13::timestamptz[], $14::text[],
            $15::text[])
     AS s(id, call_id, stream_sid, track, speaker, start_ms, end_ms, text, confidence,
          is_final, engine, spoken_at, words, redacted)
ON CONFLICT (id) DO NOTHING"""

_DTMF = """
INSERT INTO dtmf_events (id, org_id, call_id, stream_sid, track, digit, offset_ms, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING"""


_CONSENT_EVENT = """
INSERT INTO consent_events (id, org_id, call_id, kind, detector, verdict, track, offset_ms,
                            evidence, segment_id, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO NOTHING"""

# rule_id is kept only while the rule exists: a rule deleted mid-call must not make the
# escalation unwritable.
_ESCALATION = """
INSERT INTO escalations (id, org_id, call_id, rule_id, rule_name, kind, severity, track,
                         start_ms, end_ms, evidence, segment_id, raised_at)
VALUES ($1, $2, $3, (SELECT id FROM escalation_rules WHERE id = $4), $5, $6, $7, $8, $9, $10,
        $11, $12, $13)
ON CONFLICT (id) DO NOTHING"""

_CALL_ESCALATED = """
UPDATE calls SET escalated = true, escalation_time = LEAST(escalation_time, $2), updated_at = now()
WHERE id = $1"""


def _payload(event: MediaEvent) -> dict[str, Any]:
    """The event as its feed row and notification carry it: the org is the row's, not data."""
    payload = event_to_dict(event)
    del payload["org_id"]
    return payload


def _superseded(events: Sequence[MediaEvent]) -> set[int]:
    """Indexes of partials that a later partial or final of the same track in the batch
    replaces on every screen anyway: under load, batches grow and fewer go out."""
    replaced: set[int] = set()
    seen: set[tuple[str, str]] = set()
    for at in range(len(events) - 1, -1, -1):
        e = events[at]
        if isinstance(e, TranscriptPartial | TranscriptSegment):
            key = (e.stream_sid, e.track)
            if isinstance(e, TranscriptPartial) and key in seen:
                replaced.add(at)
            seen.add(key)
    return replaced


async def write_events(conn: Connection, events: Sequence[MediaEvent]) -> None:
    """Writes one batch in one transaction (the caller's, which ends the tenant role), in
    order, each with its feed row and notification. Partials are not stored: the latest of
    each track goes out at the end of the batch, in one statement (nothing of that track
    follows it in the batch)."""
    current_org = None
    replaced = _superseded(events)
    partials: list[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]] = []
    segments: list[TranscriptSegment] = []  # a run of them, one org's, not written yet
    for at, e in enumerate(events):
        if isinstance(e, TranscriptPartial):
            if at not in replaced:
                partials.append((e.org_id, e.call_id, _payload(e)))
            continue
        if segments and (not isinstance(e, TranscriptSegment) or e.org_id != current_org):
            await _write_segments(conn, segments)
            segments = []
        if e.org_id != current_org:
            # Each event is written as its own org's tenant: row-level security checks that
            # the media plane writes only into the org its stream token named.
            await enter_tenant(conn, e.org_id)
            current_org = e.org_id
        if isinstance(e, TranscriptSegment):
            segments.append(e)
            continue
        payload = _payload(e)
        if isinstance(e, StreamStarted):
            await conn.execute(
                _STREAM_STARTED, e.org_id, e.call_id, e.stream_sid, e.stream_name, e.encoding,
                e.sample_rate, list(e.tracks), e.occurred_at, e.server_id, e.connection,
                e.offset_ms, e.restarted_after,
            )  # fmt: skip
        elif isinstance(e, StreamStopped):
            by_track = {t.track: t for t in e.tracks}
            inbound, outbound = by_track.get("inbound"), by_track.get("outbound")
            await conn.execute(
                _STREAM_STOPPED, e.org_id, e.call_id, e.stream_sid,
                inbound.frames_received if inbound else 0,
                outbound.frames_received if outbound else 0,
                inbound.frames_lost if inbound else 0,
                outbound.frames_lost if outbound else 0,
                sum(t.audio_lost_ms for t in e.tracks), e.messages_lost, e.reason[:64],
                e.occurred_at, sum(t.utterances_skipped for t in e.tracks),
                inbound.transcription_error if inbound else None,
                outbound.transcription_error if outbound else None,
                e.connection,
            )  # fmt: skip
            await conn.execute(_CALL_LOSSES, e.call_id)
        elif isinstance(e, DtmfReceived):
            await conn.execute(
                _DTMF, e.event_id, e.org_id, e.call_id, e.stream_sid, e.track, e.digit,
                e.offset_ms, e.occurred_at,
            )  # fmt: skip
        elif isinstance(e, ConsentEvidence):
            await conn.execute(
                _CONSENT_EVENT, e.event_id, e.org_id, e.call_id, e.kind, e.detector, e.verdict,
                e.track, e.offset_ms, e.evidence, e.segment_id, e.occurred_at,
            )  # fmt: skip
            if e.verdict is not None:
                payload["applied"] = await consent.apply_detected_verdict(
                    conn, e.org_id, e.call_id, e.verdict, e.detector, e.occurred_at
                )
        elif isinstance(e, EscalationRaised):
            await conn.execute(
                _ESCALATION, e.event_id, e.org_id, e.call_id, e.rule_id, e.rule_name, e.kind,
                e.severity, e.track, e.start_ms, e.end_ms, e.evidence, e.segment_id,
                e.occurred_at,
            )  # fmt: skip
            await conn.execute(_CALL_ESCALATED, e.call_id, e.occurred_at)
        await feed.append(conn, e.org_id, e.call_id, FEED_TYPES[type(e)], payload, e.event_id)
    if segments:
        await _write_segments(conn, segments)
    if partials:
        await feed.announce_partials(conn, partials)


async def _write_segments(conn: Connection, segments: Sequence[TranscriptSegment]) -> None:
    """One org's segments (its tenant entered), with their feed rows, in two statements."""
    payloads = [_payload(e) for e in segments]
    columns = list(zip(*(
        (e.event_id, e.call_id, e.stream_sid, e.track, SPEAKER_BY_TRACK[e.track], e.start_ms,
         e.end_ms, e.text, e.confidence, e.is_final, e.engine, e.occurred_at,
         json.dumps(p["words"]) if e.words else None, ",".join(e.redacted))
        for e, p in zip(segments, payloads, strict=True)
    ), strict=True))  # fmt: skip
    await conn.execute(_SEGMENTS, segments[0].org_id, *columns, timeout=QUERY_TIMEOUT_S)
    await feed.append_many(
        conn,
        segments[0].org_id,
        [(e.call_id, FEED_TYPES[TranscriptSegment], p, e.event_id)
         for e, p in zip(segments, payloads, strict=True)],
    )  # fmt: skip


class EventWriter:
    def __init__(
        self,
        pool: Pool,
        journal: Journal,
        *,
        batch_max: int = 500,
        max_queue: int = 50_000,
        park_after_s: float = PARK_AFTER_S,
        retry_initial_s: float = 0.25,
        retry_max_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._journal = journal
        self._batch_max = batch_max
        # None wakes the writer (close(), a background write ending), never an event.
        self._queue: asyncio.Queue[MediaEvent | None] = asyncio.Queue(max_queue)
        self._park_after = park_after_s
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[MediaEvent] = []
        self._replaying: asyncio.Task[bool] | None = None
        self._abandoned: asyncio.Task[bool] | None = None
        """A write given up on (its batch journaled), cancelled and still ending."""
        self._stopping = False
        self._progress = asyncio.Event()
        metrics.JOURNAL_PENDING.set(journal.pending)

    @property
    def journal_pending(self) -> int:
        return self._journal.pending

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in flight, nothing journaled: all submitted is in Postgres."""
        return (
            self._queue.empty()
            and not self._inflight
            and not self._journal.pending
            and not self._background_busy()
        )

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Waits until `predicate()` holds, re-checked after every write, park and replay
        (bound it with a timeout)."""
        while not predicate():
            self._progress.clear()
            await self._progress.wait()

    def submit(self, event: MediaEvent) -> None:
        """Never blocks: a full queue sends the event straight to the journal (a partial
        transcript is dropped instead: by the time it could be replayed it means nothing)."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            if isinstance(event, TranscriptPartial):
                metrics.PARTIALS_DROPPED.inc()
                return
            self._journal.append((event,))
            metrics.EVENTS_JOURNALED.inc()
            metrics.JOURNAL_PENDING.set(self._journal.pending)
            return
        metrics.WRITER_QUEUE.set(self._queue.qsize())

    async def __aenter__(self) -> EventWriter:
        self._task = asyncio.create_task(self._run(), name="event-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Lets the batch in progress and a replay under way finish, writes what is queued,
        journals whatever is left when `timeout_s` runs out (or Postgres is away), and syncs
        the journal to disk."""
        self._stopping = True
        self._wake()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._task is not None:
            # Cancelled at the deadline if a write hangs; then its batch is written again below.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout_at(deadline):
                    await self._task
            self._task = None
        await self._settle_background(deadline - loop.time())
        rest = [*self._inflight, *self._drain_queue(self._queue.qsize())]
        self._inflight = []
        if rest:
            written = False
            if not self._journal.pending and not self._background_busy():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(max(deadline, loop.time() + 1.0)):
                        written = await cancel_promptly(self._write(rest))
            if not written:
                self._park(rest)
        self._journal.sync()

    async def _settle_background(self, timeout_s: float) -> None:
        """Gives a replay (and a write given up on) until `timeout_s` to end; cancels them
        then. What they had not written is in the journal for the next start."""
        running = {t for t in (self._replaying, self._abandoned) if t is not None and not t.done()}
        if running:
            _done, late = await asyncio.wait(running, timeout=max(0.0, timeout_s))
            for task in late:
                task.cancel()

    def _wake(self) -> None:
        self._progress.set()
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes the writer anyway
            self._queue.put_nowait(None)

    def _background_busy(self) -> bool:
        return any(t is not None and not t.done() for t in (self._replaying, self._abandoned))

    def _in_background(self, task: asyncio.Task[bool]) -> asyncio.Task[bool]:
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled():
            task.exception()  # seen here; a replay's error is raised by the loop that reads it
        self._wake()

    def _drain_queue(self, limit: int) -> list[MediaEvent]:
        batch: list[MediaEvent] = []
        while len(batch) < limit:
            try:
                event = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if event is not None:
                batch.append(event)
        return batch

    def _park(self, batch: Sequence[MediaEvent]) -> None:
        kept = [e for e in batch if not isinstance(e, TranscriptPartial)]
        metrics.PARTIALS_DROPPED.inc(len(batch) - len(kept))
        if kept:
            self._journal.append(kept)
        metrics.EVENTS_JOURNALED.inc(len(kept))
        metrics.JOURNAL_PENDING.set(self._journal.pending)
        self._progress.set()

    async def _run(self) -> None:
        backoff = self._retry_initial
        next_retry = 0.0
        while not self._stopping:
            if self._journal.pending or self._background_busy():
                # New events go straight to the journal, behind the older ones there, while
                # replays drain it in the background, one at a time.
                busy = self._background_busy()
                batch = await self._next_batch(None if busy else next_retry - time.monotonic())
                if batch:
                    self._park(batch)
                if (replay := self._replaying) is not None and replay.done():
                    self._replaying = None
                    if replay.result():
                        backoff, next_retry = self._retry_initial, 0.0
                    else:
                        next_retry = time.monotonic() + backoff
                        backoff = min(backoff * 2, self._retry_max)
                ready = not self._background_busy() and time.monotonic() >= next_retry
                if ready and self._journal.pending:
                    self._replaying = self._in_background(asyncio.create_task(self._replay()))
                self._progress.set()
                continue
            batch = await self._next_batch(None)
            if batch and not await self._write_or_park(batch):
                next_retry = time.monotonic() + backoff
                backoff = min(backoff * 2, self._retry_max)
            self._progress.set()

    async def _write_or_park(self, batch: list[MediaEvent]) -> bool:
        """Writes a batch of new events, or journals it when Postgres is away or has not taken
        it within `park_after_s` (False then): new events never wait on a stuck Postgres."""
        self._inflight = batch
        write = asyncio.create_task(self._write(batch))
        try:
            done, _ = await asyncio.wait({write}, timeout=self._park_after)
        except asyncio.CancelledError:
            # close() gave up on us: it parks the batch itself, since this write is still ending.
            write.cancel()
            self._abandoned = self._in_background(write)
            raise
        self._inflight = []
        if done and write.result():
            return True
        if not done:
            # Cancelled, not awaited: its end waits on Postgres. Should it commit after all,
            # the replay writes the same events again, which changes nothing.
            write.cancel()
            self._abandoned = self._in_background(write)
            metrics.DB_WRITE_FAILURES.labels("slow").inc()
            log.warning(
                "Postgres took over %.1f s for %d events; journaling", self._park_after, len(batch)
            )
        self._park(batch)
        return False

    async def _next_batch(self, wait_s: float | None) -> list[MediaEvent]:
        """Waits for at least one event (up to `wait_s`), then takes what else is queued."""
        try:
            async with asyncio.timeout(None if wait_s is None else max(0.0, wait_s)):
                first = await self._queue.get()
        except TimeoutError:
            return []
        if first is None:  # a wake-up call
            return []
        batch = [first, *self._drain_queue(self._batch_max - 1)]
        metrics.WRITER_QUEUE.set(self._queue.qsize())
        return batch

    async def _replay(self) -> bool:
        events, lines = self._journal.read()
        for start in range(0, len(events), self._batch_max):
            if not await self._write(events[start : start + self._batch_max]):
                return False
        log.info("replayed %d journaled events into Postgres", len(events))
        # Only what was read: events journaled while this ran are the next replay's.
        self._journal.consume(lines)
        metrics.JOURNAL_PENDING.set(self._journal.pending)
        return True

    async def _write(self, batch: Sequence[MediaEvent]) -> bool:
        """True when every event is either in Postgres or rejected as invalid; False when
        Postgres is unavailable (nothing was committed)."""
        started = time.perf_counter()
        try:
            await self._transaction(batch)
        except UNAVAILABLE_ERRORS as exc:
            metrics.DB_WRITE_FAILURES.labels("unavailable").inc()
            log.warning("Postgres unavailable for %d events: %s", len(batch), exc)
            return False
        except asyncpg.PostgresError:
            metrics.DB_WRITE_FAILURES.labels("invalid").inc()
            return await self._write_one_by_one(batch)
        metrics.DB_WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_WRITTEN.inc(len(batch))
        return True

    async def _write_one_by_one(self, batch: Sequence[MediaEvent]) -> bool:
        for event in batch:
            try:
                await self._transaction((event,))
            except UNAVAILABLE_ERRORS:
                return False
            except asyncpg.PostgresError as exc:
                log.error("Postgres rejected %s %s: %s", type(event).__name__, event.event_id, exc)
                self._journal.reject(event, str(exc))
                metrics.EVENTS_REJECTED.inc()
            else:
                metrics.EVENTS_WRITTEN.inc()
        return True

    async def _transaction(self, batch: Sequence[MediaEvent]) -> None:
        async with asyncio.timeout(QUERY_TIMEOUT_S * 2):
            async with self._pool.acquire() as conn, conn.transaction():
                await write_events(conn, batch)
