"""SIGTERM's grace period: stop being chosen, carry the calls already here to their end.

While draining, `/health/ready` answers 503 `draining` (a balancer or Kubernetes stops sending
new calls) and the streams already open carry on; the server stops once none is open, or when
`VOXSOUTH_DRAIN_TIMEOUT_S` has passed (what is still open then is closed as `server_shutdown`),
or at a second signal. New streams are still taken while draining: one that reaches this server
before the balancer has noticed would otherwise lose its call's audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

POLL_S = 0.1
"""How often the open streams are counted: streams end at their callers' pace, so a tenth of a
second more before stopping costs nothing."""


class Drain:
    def __init__(self, open_streams: Callable[[], int]) -> None:
        self._open_streams = open_streams
        self.draining = False

    async def run(self, timeout_s: float, interrupted: asyncio.Event) -> int:
        """Drains until no stream is open, `timeout_s` passes or `interrupted` is set; returns
        how many streams were still open."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        log.info("draining: %d streams open, for up to %g s", self._open_streams(), timeout_s)
        while (left := self._open_streams()) and not interrupted.is_set():
            if (remaining := deadline - loop.time()) <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupted.wait(), min(POLL_S, remaining))
        log.info("drained: %d streams still open", left)
        return left
