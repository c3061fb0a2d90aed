"""The event writer (storage/event_writer.py) on a thread and event loop of its own, with its
own connection, so that its round trips to Postgres do not wait behind the media streams.

A batch is a handful of round trips (BEGIN, the tenant, the statements, COMMIT, the pool's
reset), and on the media server's loop each one waits for that loop's next turn, which with
hundreds of streams is tens of milliseconds: with 200 cloud-transcribed calls on one loop,
batches took 0.4 s at p95, most of the time from a final result to its row. On a loop of its
own, a round trip waits at most for the interpreter's switch interval (5 ms).

`submit` hands the event over without blocking (FIFO, so in order); everything else the
writer promises (journaling, replay, order, `close`) is the EventWriter's, unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path

import uvloop

from media.events import MediaEvent
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: EventWriter | None = None
        self._stop: asyncio.Event | None = None
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._sent = 0
        """Events handed over (written by the caller's thread only)."""
        self._taken = 0
        """Events the writer has taken (written by the writer's thread only)."""

    async def __aenter__(self) -> WriterThread:
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._main, args=(started,), name="event-writer", daemon=True
        )
        thread.start()
        await asyncio.wrap_future(started)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.wrap_future(self._ended)

    def submit(self, event: MediaEvent) -> None:
        """Never blocks (EventWriter.submit, on the writer's loop)."""
        assert self._loop is not None, "submit before the writer started"
        self._sent += 1
        self._loop.call_soon_threadsafe(self._take, event)

    def _take(self, event: MediaEvent) -> None:
        assert self._writer is not None
        self._writer.submit(event)
        self._taken += 1

    @property
    def idle(self) -> bool:
        """All submitted is in Postgres (nothing on its way to the writer either)."""
        return self._sent == self._taken and (self._writer is None or self._writer.idle)

    def wait_until(self, predicate: Callable[[], bool]) -> asyncio.Future[None]:
        """EventWriter.wait_until, `predicate` checked on the writer's thread from now on,
        behind every event submitted before (bound it with a timeout; cancelling the future
        cancels the wait there)."""
        assert self._loop is not None and self._writer is not None
        waiting = asyncio.run_coroutine_threadsafe(self._writer.wait_until(predicate), self._loop)
        return asyncio.wrap_future(waiting)

    def _main(self, started: concurrent.futures.Future[None]) -> None:
        loop = uvloop.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(started))
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            self._ended.set_exception(exc)
        else:
            self._ended.set_result(None)
        finally:
            loop.close()

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        # One connection: the writer runs one write at a time (a replay, or a write given up
        # on, holds the others back), and every connection counts against Postgres's limit.
        pool = await create_pool(self._dsn, min_size=1, max_size=1)
        try:
            async with EventWriter(pool, Journal(self._journal_dir)) as writer:
                self._writer = writer
                self._stop = asyncio.Event()
                started.set_result(None)
                await self._stop.wait()
        finally:
            await pool.close()
