"""How late this process's event loop runs: the media server's measure of its own load.

A frame waits in its socket while the loop is busy with others, so the loop's lateness is the
delay every frame of every stream pays on top of its own processing. A callback is asked for
every `every_s`; when `consecutive` of them in a row ran more than `threshold_s` late, the loop
is behind, until one runs on time: new streams are then refused (media.server), so that the
streams already running keep real time. One late callback is not enough: a single stall (a
model loading, a garbage collection) passes, and refusing a call's only stream for it would
lose all of that call's audio.

`LagTracker` is the decision, sans-I/O; `LoopLagMonitor` the timer around it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType

from media import metrics


class LagTracker:
    def __init__(self, threshold_s: float, consecutive: int = 5) -> None:
        self.threshold_s = threshold_s
        self._consecutive = consecutive
        self._late_in_a_row = 0

    def record(self, lag_s: float) -> None:
        """A callback ran `lag_s` after it was due."""
        self._late_in_a_row = self._late_in_a_row + 1 if lag_s > self.threshold_s else 0

    @property
    def behind(self) -> bool:
        return self._late_in_a_row >= self._consecutive


class LoopLagMonitor:
    """Samples the running loop's lateness every `every_s` while entered (`async with`)."""

    def __init__(
        self,
        tracker: LagTracker,
        every_s: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = tracker
        self._every_s = every_s
        self._monotonic = monotonic
        self._handle: asyncio.TimerHandle | None = None

    def behind(self) -> bool:
        return self.tracker.behind

    async def __aenter__(self) -> LoopLagMonitor:
        self._schedule()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _schedule(self) -> None:
        due = self._monotonic() + self._every_s
        self._handle = asyncio.get_running_loop().call_later(self._every_s, self._sample, due)

    def _sample(self, due: float) -> None:
        now = self._monotonic()
        lag = max(0.0, now - due)
        self.tracker.record(lag)
        metrics.LOOP_LAG.observe(lag)
        self._schedule()
