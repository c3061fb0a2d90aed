"""The supervisors' live feed: one hub per process, fed by Postgres LISTEN/NOTIFY.

Every change a supervisor sees is a row of `feed_events` (storage/feed.py), announced on
`voxsouth_events` once committed and positioned, by the feed's sequencer (whichever process
leads it: control/feed_sequencer.py). The hub holds one listening
connection, reads each announced row once and hands it to the subscribers of that row's org.
Handing over never waits: each subscriber has a bounded queue, and one that falls behind is
marked, told to resync, and dropped, so a slow browser never slows the media plane or anyone
else. A subscriber that comes back with the id of the last event it saw is served the rows
after it from the table, then the live ones (with the overlap removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from control import metrics
from storage import feed
from storage.db import UNAVAILABLE_ERRORS, Pool

log = logging.getLogger(__name__)

FeedObserver = Callable[[dict[str, Any]], None]
"""Sees every feed event of every org once per process (must not block)."""

QUEUE_SIZE = 1_000
"""Events a subscriber may have waiting before it is told to resync."""
BACKLOG_MAX = 5_000
"""Missed events served on reconnect; beyond this the client must resync from the API."""
_RECONNECT_MAX_S = 5.0


@dataclass(eq=False)
class Subscription:
    org_id: uuid.UUID
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""
    """Why it ended: `fell_behind`, `feed_interrupted` (events may have been missed while the
    hub had no connection) or `server_shutdown`."""

    def offer(self, event: dict[str, Any]) -> None:
        if self.ended.is_set():
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            metrics.FEED_OVERFLOWS.inc()
            self.end("fell_behind")

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()

    async def next(self) -> dict[str, Any] | None:
        """The next event, or None once the subscription has ended (see `reason`)."""
        if self.ended.is_set():
            return None
        get = asyncio.ensure_future(self.queue.get())
        lost = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait((get, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not get.done():
                get.cancel()
        return None if self.ended.is_set() else get.result()


class FeedHub:
    def __init__(self, pool: Pool, dsn: str, *, observer: FeedObserver | None = None) -> None:
        self._pool = pool
        self._dsn = dsn
        self._observer = observer
        self._subscribers: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._announced: list[int] = []
        self._wake = asyncio.Event()
        self._connection_lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the hub holds its LISTEN connection."""

    async def __aenter__(self) -> FeedHub:
        self._task = asyncio.create_task(self._run(), name="feed-hub")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, org_id: uuid.UUID) -> Subscription:
        sub = Subscription(org_id)
        self._subscribers[org_id].add(sub)
        metrics.FEED_SUBSCRIBERS.inc()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.org_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            metrics.FEED_SUBSCRIBERS.dec()
            if not subs:
                del self._subscribers[sub.org_id]

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            note = json.loads(payload) if isinstance(payload, str) else None
            feed_id = int(note["id"]) if isinstance(note, dict) else None
        except (ValueError, KeyError, TypeError):
            feed_id = None
        if feed_id is None:
            log.warning("ignored a malformed feed notification")
            return
        self._announced.append(feed_id)
        self._wake.set()

    def _partial(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        """An interim transcript: its content is in the notification (it has no row), and it
        goes straight to the org's subscribers. Like everything here, it never waits."""
        try:
            note: Any = json.loads(payload) if isinstance(payload, str) else None
            org_id = uuid.UUID(note["org_id"])
            data = note["data"]
            event = {
                "type": "transcript_partial",
                "call_id": note["call_id"],
                "at": data["occurred_at"],
                "data": data,
            }
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed partial notification")
            return
        for sub in self._subscribers.get(org_id, ()):
            sub.offer(event)
        metrics.FEED_EVENTS.labels("transcript_partial").inc()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen()
                delay = 0.1
            except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("feed hub lost Postgres (%s); reconnecting in %.1f s", exc, delay)
            except Exception:
                # Nothing may end it: without its hub no supervisor here hears anything.
                log.exception("feed hub failed; reconnecting in %.1f s", delay)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        self._connection_lost.clear()
        conn.add_termination_listener(lambda _c: self._connection_lost.set())
        try:
            await conn.add_listener(feed.NOTIFY_CHANNEL, self._notified)
            await conn.add_listener(feed.PARTIALS_CHANNEL, self._partial)
            self.listening.set()
            while not self._connection_lost.is_set():
                waiter = asyncio.ensure_future(self._wake.wait())
                lost = asyncio.ensure_future(self._connection_lost.wait())
                try:
                    await asyncio.wait((waiter, lost), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    lost.cancel()
                self._wake.clear()
                await self._deliver_announced()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
        # While no one listened, announcements were lost: subscribers must resync.
        self.end_all("feed_interrupted")

    def end_all(self, reason: str) -> None:
        """Ends every subscription (at shutdown, so feed handlers return at once)."""
        for subs in self._subscribers.values():
            for sub in subs:
                sub.end(reason)

    async def _deliver_announced(self) -> None:
        ids, self._announced = self._announced, []
        if not ids:
            return
        try:
            rows = await feed.read_ids(self._pool, ids)
        except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
            self._announced[:0] = ids  # read them on the next wake-up
            raise
        for org_id, event in rows:
            if self._observer is not None:
                try:
                    self._observer(event)
                except Exception:
                    log.exception("feed observer failed on %s", event["type"])
            for sub in self._subscribers.get(org_id, ()):
                sub.offer(event)
            metrics.FEED_EVENTS.labels(event["type"]).inc()


def redact(event: dict[str, Any], *, transcripts: bool) -> dict[str, Any]:
    """Transcript text (final or partial) only for roles that may read transcripts."""
    if transcripts or event["type"] not in ("transcript", "transcript_partial"):
        return event
    return {**event, "data": {**event["data"], "text": None}}
