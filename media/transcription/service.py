"""Runs an engine off the event loop, in a bounded pool, without ever blocking a stream.

`submit` never waits: the queue is bounded, and when it is full one waiting utterance is
skipped (its future resolves to None and `voxsouth_dropped_work_total{kind=...}` counts it):
under overload a stream loses some transcripts, never its audio path. Which one is chosen, not
whatever came last: every utterance has a rank (0 matters most, e.g. an answer to a consent
request), workers take the best-ranked first and a full queue skips the worst-ranked, oldest
first within a rank. A rank is asked for when it is needed, not when the utterance arrives: an
answer queued before its question was heard ranks as an answer once the question is.
`submit_if_idle` is for work that may turn out useless (an early decode, a partial): it is taken
only by a worker that would otherwise wait, so it never delays work that counts.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

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
    spare: bool = False
    """Nice-to-have work (`submit_if_spare`): not counted in the load it is shed by."""


LOAD_WINDOW_S = 3.0
"""How far back `TranscriptionService.load` looks: a few utterances' worth of decodes."""
SPARE_LOAD = 0.5
"""Below this load, nice-to-have work (partials) may use a worker (`submit_if_spare`)."""


class TranscriptionService:
    def __init__(
        self,
        engine: TranscriptionEngine,
        workers: int,
        max_queue: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
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
        self._decodes: collections.deque[tuple[float, float]] = collections.deque()
        """(start, end) of recent decodes, oldest first (`load`)."""
        self._running: dict[int, float] = {}
        """When each decode under way started, by its job's id."""

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
        return self._enqueue(job)

    def _enqueue(self, job: _Job) -> asyncio.Future[Transcription | None]:
        self._queue.append(job)
        metrics.TRANSCRIPTION_QUEUE.set(len(self._queue))
        self._ready.set()
        return job.future

    def submit_if_idle(
        self, pcm16: bytes, sample_rate: int, *, spare: bool = False
    ) -> asyncio.Future[Transcription | None] | None:
        """`submit`, if a worker is free and nothing waits; else None (nothing queued)."""
        if self._queue or self._busy >= self._workers:
            return None
        future: asyncio.Future[Transcription | None] = asyncio.get_running_loop().create_future()
        return self._enqueue(_Job(pcm16, sample_rate, future, _first_rank, spare))

    def submit_if_spare(
        self, pcm16: bytes, sample_rate: int
    ) -> asyncio.Future[Transcription | None] | None:
        """`submit_if_idle` for work that is only nice to have (a partial): only while the
        workers have headroom (work that counts kept them busy less than `SPARE_LOAD` of the
        last `LOAD_WINDOW_S`), and with another worker left free (where there is more than one)
        for an utterance that ends meanwhile. Else None: such work stops under load before it
        can delay any that counts."""
        needed = 2 if self._workers > 1 else 1
        if self._workers - self._busy < needed or self.load() >= SPARE_LOAD:
            return None
        return self.submit_if_idle(pcm16, sample_rate, spare=True)

    def load(self) -> float:
        """The share of the workers' time spent on work that counts (all but spare work) over
        the last `LOAD_WINDOW_S`."""
        now = self._clock()
        since = now - LOAD_WINDOW_S
        while self._decodes and self._decodes[0][1] <= since:
            self._decodes.popleft()
        busy = sum(end - max(start, since) for start, end in self._decodes)
        busy += sum(now - max(start, since) for start in self._running.values())
        return busy / (LOAD_WINDOW_S * self._workers)

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
            if not job.spare:
                self._running[id(job)] = self._clock()
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
                if not job.spare:
                    self._decodes.append((self._running.pop(id(job)), self._clock()))
            metrics.TRANSCRIPTION_SECONDS.observe(time.perf_counter() - started)
            if not job.future.done():
                job.future.set_result(result)
