"""This process's lease in Postgres, and the sweep that closes what dead processes left open.

Held from `__aenter__` to `__aexit__`: registers the process (a failure there fails the start),
then every `every_s` renews the lease and sweeps (storage.processes). A renewal or sweep that
fails is logged and tried again at the next tick: should Postgres stay away past the lease,
other processes close this one's streams as `process_lost`, and its own StreamStopped, written
when Postgres is back, puts the real end in place.

With a SignalWire client, each sweep also asks SignalWire about a few calls left open by a lost
process (control.call_reconcile) before the `unknown` timeout rule runs. The renewal comes first
in every tick and the asking has its own small budget, so SignalWire never holds up the lease.
Whoever is told of lost streams (`when_streams_lost`, e.g. control.restream, which starts the
calls' streams again) hears of them at once and does its work in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType

from control.call_reconcile import ReconcileConfig, reconcile_lost_calls
from control.signalwire import SignalWireClient
from storage import processes
from storage.db import UNAVAILABLE_ERRORS, Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    every_s: float
    """How often the lease is renewed and the sweep runs."""
    lease_s: float
    """How long a renewal keeps the process alive in others' eyes."""
    call_unknown_after_s: float
    """How long after its streams were lost a call without its final callback is `unknown`."""
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    """Asking SignalWire about such calls, where a client is given."""


class ProcessLease:
    def __init__(
        self, pool: Pool, config: LeaseConfig, signalwire: SignalWireClient | None = None
    ) -> None:
        self.id = uuid.uuid4()
        self._pool = pool
        self._config = config
        self._signalwire = signalwire
        # However it is configured, asking may take only a slice of the lease, so that the
        # renewal after this tick still comes well before the lease runs out.
        self._reconcile = replace(
            config.reconcile, budget_s=min(config.reconcile.budget_s, config.lease_s / 4)
        )
        self._task: asyncio.Task[None] | None = None
        self._on_lost: list[Callable[[], None]] = []

    def when_streams_lost(self, callback: Callable[[], None]) -> None:
        """`callback()` after each tick that closed streams of a lost process. It must not
        block (the lease's renewal waits for it): wake a task, no more."""
        self._on_lost.append(callback)

    async def __aenter__(self) -> ProcessLease:
        await self.tick()  # registered before any stream opens; what a predecessor left, closed
        self._task = asyncio.create_task(self._run(), name="process-lease")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await processes.deregister(self._pool, self.id)
        except UNAVAILABLE_ERRORS as error:
            # Nothing lost: the lease runs out on its own, a little later.
            log.warning("could not deregister process %s: %s", self.id, error)

    async def tick(self) -> None:
        """Renews the lease, then closes lost streams and abandoned calls."""
        await processes.renew(
            self._pool,
            self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            lease_s=self._config.lease_s,
        )
        lost_count = 0
        while lost := await processes.close_lost_streams(self._pool):
            log.warning("closed %d streams whose process was lost", len(lost))
            lost_count += len(lost)
            if len(lost) < processes.SWEEP_BATCH:
                break
        if lost_count:
            for callback in self._on_lost:
                callback()
        if self._signalwire is not None:
            try:
                if asked := await reconcile_lost_calls(
                    self._pool, self._signalwire, self._reconcile
                ):
                    log.info("asked SignalWire about lost calls: %s", asked)
            except UNAVAILABLE_ERRORS as error:
                # The timeout rule below still runs; the next tick asks again.
                log.warning("could not claim lost calls to ask SignalWire about: %r", error)
        if closed := await processes.close_abandoned_calls(
            self._pool, self._config.call_unknown_after_s
        ):
            log.warning("closed %d calls as unknown: their process was lost", len(closed))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._config.every_s)  # a period, not a wait on anything
            try:
                await self.tick()
            except Exception:
                log.exception("process lease renewal or sweep failed; the next tick tries again")
