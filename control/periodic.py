"""Work a process does every so often (the dialler, the senders, the sweepers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `work` every `every_s` in a task, until `aclose`. The period comes first, so that
    processes starting together do not all act at once; a failure is logged and the next period
    tries again."""

    def __init__(self, name: str, every_s: float, work: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._every_s = every_s
        self._work = work
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)  # a period, not a wait for an event
            try:
                await self._work()
            except Exception:
                log.exception("%s failed; the next run tries again", self._name)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
