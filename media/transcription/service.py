"""Runs an engine off the event loop, in a bounded pool, without ever blocking a stream.

`submit` never waits: the queue is bounded, and when it is full the oldest waiting utterance
is skipped (its future resolves to None and `voxsouth_dropped_work_total{kind=...}` counts
it): under overload a stream loses some transcripts, never its audio path. `submit_if_idle`
is for work that may turn out useless (an early decode): it is taken only by a worker that
would otherwise wait, so it never delays work that counts.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from dataclasses import dataclass, field

from media import metrics
from media.transcription.engine import Transcription, TranscriptionEngine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    pcm16: bytes
    sample_rate: int
    future: asyncio.Future[Transcription | None]
    queued_at: float = field(default_factory=time.monotonic)


class TranscriptionService:
    def __init__(self, engine: TranscriptionEngine, workers: int, max_queue: int) -> None:
        self.engine = engine
        self._workers = workers
        self._max_queue = max_queue
        self._queue: collections.deque[_Job] = collections.deque()
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
        while self._queue:
            self._queue.popleft().future.cancel()
        # A decode in flight finishes in its thread; wait for it without blocking the loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        metrics.TRANSCRIPTION_QUEUE.set(0)

    def submit(self, pcm16: bytes, sample_rate: int) -> asyncio.Future[Transcription | None]:
        future: asyncio.Future[Transcription | None] = asyncio.get_running_loop().create_future()
        if len(self._queue) >= self._max_queue:
            oldest = self._queue.popleft()
            if not oldest.future.done():
                oldest.future.set_result(None)
            metrics.DROPPED_WORK.labels("transcription_queue_full").inc()
        self._queue.append(_Job(pcm16, sample_rate, future))
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

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            job = self._queue.popleft()
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
