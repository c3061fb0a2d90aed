"""The event writer (storage/event_writer.py) on a thread and event loop of its own
(server.loop_thread), with its own connection, so that its round trips to Postgres do not wait
behind the media streams.

A batch is a handful of round trips (BEGIN, the tenant, the statements, COMMIT, the pool's
reset), and on the media server's loop each one waits for that loop's next turn, which with
hundreds of streams is tens of milliseconds: with 200 cloud-transcribed calls on one loop,
batches took 0.4 s at p95, most of the time from a final result to its row. On a loop of its
own, a round trip waits at most for the interpreter's switch interval (5 ms).

`submit` hands events over without blocking (FIFO, so in order); everything else the writer
promises (journaling, replay, order, `close`) is the EventWriter's, unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from media.events import MediaEvent
from server.loop_thread import LoopThread
from storage.db import create_pool
from storage.event_writer import EventWriter
from storage.journal import Journal


class WriterThread:
    """An async context manager: entered, the writer runs on its thread (entering fails if its
    connection cannot be made); left, it writes or journals what it holds, and the thread
    ends."""

    def __init__(self, dsn: str, journal_dir: Path) -> None:
        self._dsn = dsn
        self._journal_dir = journal_dir
        self._thread = LoopThread(self._start, "event-writer")
        self._writer: EventWriter | None = None
        self._sent = 0
        """Events handed over, from any thread (the media plane's, a test's): under `_sending`."""
        self._sending = threading.Lock()
        self._taken = 0
        """Events the writer has taken (written by the writer's thread only)."""

    async def _start(self, stack: AsyncExitStack) -> EventWriter:
        # One connection: the writer runs one write at a time (a replay, or a write given up
        # on, holds the others back), and every connection counts against Postgres's limit.
        pool = await create_pool(self._dsn, min_size=1, max_size=1)
        stack.push_async_callback(pool.close)
        writer = await stack.enter_async_context(EventWriter(pool, Journal(self._journal_dir)))
        self._writer = writer
        return writer

    async def __aenter__(self) -> WriterThread:
        await self._thread.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._thread.__aexit__(*exc)

    def submit(self, *events: MediaEvent) -> None:
        """Never blocks (EventWriter.submit, on the writer's loop): `events` are handed over
        together, so that a batch the writer takes has all of them or the start of them."""
        assert self._thread.running, "submit while the writer is not running"
        with self._sending:
            self._sent += len(events)
        self._thread.call(lambda writer: self._take(writer, events))

    def _take(self, writer: EventWriter, events: tuple[MediaEvent, ...]) -> None:
        for event in events:
            writer.submit(event)
        self._taken += len(events)

    @property
    def idle(self) -> bool:
        """All submitted is in Postgres (nothing on its way to the writer either)."""
        return self._sent == self._taken and (self._writer is None or self._writer.idle)

    def wait_until(self, predicate: Callable[[], bool]) -> asyncio.Future[None]:
        """EventWriter.wait_until, `predicate` checked on the writer's thread from now on,
        behind every event submitted before (bound it with a timeout; cancelling the future
        cancels the wait there)."""
        return self._thread.run(lambda writer: writer.wait_until(predicate))
