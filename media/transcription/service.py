"""Runs an engine off the event loop, in a bounded pool, without ever blocking a stream.

`submit` never waits: the queue is bounded, and when it is full one waiting utterance is
skipped (its future resolves to None and `voxsouth_dropped_work_total{kind=...}` counts it):
under overload a stream loses some transcripts, never its audio path. Which one is chosen, not
whatever came last: every utterance has a rank (0 matters most, e.g. an answer to a consent
request), workers take the best-ranked first and a full queue skips the worst-ranked, oldest
first within a rank. A rank is asked for when it is needed, not when the utterance arrives: an
answer queued before its question was heard ranks as an answer once the question is.
`submit_if_idle` is for work that may turn out useless (an early decode): it is taken only by a
worker that would otherwise wait, so it never delays work that counts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from media import metrics
from media.transcription.engine import Transcription, TranscriptionEngine

log = logging.getLogger(__name__)


Rank = Callable[[], int]
"""How much an utterance's words matter now: 0 most; asked each time the queue chooses."""


def _first_rank() -> int:
    return 0


@dataclass(slots=True)
class _Job:
    pcm16: bytes
    sample_rate: int
    future: asyncio.Future[Transcription | None]
    rank: Rank
    queued_at: float = field(default_factory=time.monotonic)


class TranscriptionService:
    def __init__(self, engine: TranscriptionEngine, workers: int, max_queue: int) -> None:
        self.engine = engine
        self._workers = workers
        self._max_queue = max_queue
        self._queue: list[_Job] = []
        """In arrival order; short (`max_queue`), so choosing by rank scans it."""
        self._ready = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="transcribe"
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0

    async def __aenter__(self) -> TranscriptionService:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for job in self._queue:
            job.future.cancel()
        self._queue.clear()
        # A decode in flight finishes in its thread; wait for it without blocking the loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        metrics.TRANSCRIPTION_QUEUE.set(0)

    def submit(
        self, pcm16: bytes, sample_rate: int, rank: Rank = _first_rank
    ) -> asyncio.Future[Transcription | None]:
        future: asyncio.Future[Transcription | None] = asyncio.get_running_loop().create_future()
        job = _Job(pcm16, sample_rate, future, rank)
        if len(self._queue) >= self._max_queue:
            # The worst-ranked, oldest first among equals; the newcomer itself if it ranks worse.
            ranks = [j.rank() for j in self._queue]
            worst = max(range(len(ranks)), key=lambda i: (ranks[i], -i))
            if rank() > ranks[worst]:
                future.set_result(None)
                metrics.DROPPED_WORK.labels("transcription_queue_full").inc()
                return future
            skipped = self._queue.pop(worst)
            if not skipped.future.done():
                skipped.future.set_result(None)
            metrics.DROPPED_WORK.labels("transcription_queue_full").inc()
        self._queue.append(job)
        metrics.TRANSCRIPTION_QUEUE.set(len(self._queue))
        self._ready.set()
        return future

    def submit_if_idle(
        self, pcm16: bytes, sample_rate: int
    ) -> asyncio.Future[Transcription | None] | None:
        """`submit`, if a worker is free and nothing waits; else None (nothing queued)."""
        if self._queue or self._busy >= self._workers:
            return None
        return self.submit(pcm16, sample_rate)

    def _take(self) -> _Job:
        """The best-ranked job, the oldest among equals."""
        ranks = [j.rank() for j in self._queue]
        return self._queue.pop(min(range(len(ranks)), key=ranks.__getitem__))

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            job = self._take()
            metrics.TRANSCRIPTION_QUEUE.set(len(self._queue))
            if job.future.done():  # the stream gave up on it
                continue
            started = time.perf_counter()
            self._busy += 1
            try:
                result = await loop.run_in_executor(
                    self._executor, self.engine.transcribe, job.pcm16, job.sample_rate
                )
            except Exception:
                log.exception("transcription failed")
                metrics.DROPPED_WORK.labels("transcription_error").inc()
                result = None
            finally:
                self._busy -= 1
            metrics.TRANSCRIPTION_SECONDS.observe(time.perf_counter() - started)
            if not job.future.done():
                job.future.set_result(result)
