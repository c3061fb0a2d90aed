"""The retention sweeper: deletes each org's call data once it is older than the org keeps it
(storage.retention holds the policies and the deletions).

Every process runs it every `every_s`, and a Postgres advisory lock lets one sweep at a time:
the others skip that round. A sweep works org by org and kind by kind in batches, each its own
short transaction, up to `max_batches` per org and kind (the rest waits for the next sweep, so
one org's backlog cannot hold up the others for long). A recording's audio is deleted at
SignalWire first and its row after; one SignalWire does not delete stays listed and is tried
again next time. What a sweep deleted is counted (`voxsouth_retention_deleted_total`) and put
in each org's audit log as counts, never content.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from control.metrics import RETENTION_DELETED, RETENTION_FAILURES
from control.periodic import Periodic
from control.signalwire import SignalWireClient, SignalWireError
from storage import accounts, retention
from storage.db import Pool

log = logging.getLogger(__name__)

SWEEP_LOCK = "voxsouth.retention"
"""The advisory lock (hashed) that one sweeping process holds."""


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    every_s: float = 3600.0
    batch: int = 1000
    """Rows per delete (one short transaction)."""
    max_batches: int = 50
    """Batches per org and kind in one sweep."""


class RetentionSweeper:
    def __init__(
        self, pool: Pool, client: SignalWireClient | None, config: RetentionConfig
    ) -> None:
        self._pool = pool
        self._client = client
        self._config = config
        self._periodic = Periodic("retention-sweeper", config.every_s, self.sweep)
        self._warned_unconfigured = False

    async def sweep(self) -> Counter[retention.Kind] | None:
        """One sweep over every org with a policy; None when another process is sweeping."""
        async with self._pool.acquire() as holder:
            if not await holder.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", SWEEP_LOCK):
                return None
            try:
                return await self._sweep_orgs()
            finally:
                await holder.execute("SELECT pg_advisory_unlock(hashtext($1))", SWEEP_LOCK)

    def start(self) -> None:
        """Sweeps every `every_s` until `aclose`."""
        self._periodic.start()

    async def aclose(self) -> None:
        await self._periodic.aclose()

    async def _sweep_orgs(self) -> Counter[retention.Kind]:
        async with self._pool.acquire() as conn:
            orgs = await retention.policies(conn)
        total: Counter[retention.Kind] = Counter()
        for org_id, policy in orgs:
            deleted: Counter[retention.Kind] = Counter()
            for kind, days in policy.items():
                if days is not None:
                    deleted[kind] = await self._sweep_kind(org_id, kind, days)
            deleted = +deleted  # the kinds that lost something
            if not deleted:
                continue
            for kind, n in deleted.items():
                RETENTION_DELETED.labels(kind).inc(n)
            log.info("retention: org %s lost %s", org_id, dict(deleted))
            async with self._pool.acquire() as conn:
                await accounts.record_audit(
                    conn, org_id=org_id, actor_type="system", actor_id=None,
                    action="retention.sweep", resource_type="org", resource_id=str(org_id),
                    after={str(kind): n for kind, n in deleted.items()},
                )  # fmt: skip
            total += deleted
        return total

    async def _sweep_kind(self, org_id: uuid.UUID, kind: retention.Kind, days: int) -> int:
        deleted = 0
        for _ in range(self._config.max_batches):
            if kind == "recordings":
                n, done = await self._recordings_batch(org_id, days)
            else:
                n = await retention.delete_expired(
                    self._pool, kind, org_id, days, self._config.batch
                )
                done = n < self._config.batch
            deleted += n
            if done:
                break
        return deleted

    async def _recordings_batch(self, org_id: uuid.UUID, days: int) -> tuple[int, bool]:
        """(recordings deleted, whether this sweep is done with the org's): a batch in which
        SignalWire failed ends it, so the same recordings are not asked for again and again."""
        if self._client is None:
            if not self._warned_unconfigured:
                self._warned_unconfigured = True
                log.warning("SignalWire REST credentials are not configured: recordings past"
                            " their retention are kept")  # fmt: skip
            return 0, True
        async with self._pool.acquire() as conn:
            sids = await retention.expired_recordings(conn, org_id, days, self._config.batch)
        deleted, failed = 0, False
        for sid in sids:
            try:
                await self._client.delete_recording(sid)
            except SignalWireError as exc:
                RETENTION_FAILURES.labels("recordings").inc()
                log.error("retention: recording %s not deleted at SignalWire: %s", sid, exc)
                failed = True
                continue
            async with self._pool.acquire() as conn:
                deleted += await retention.forget_recording(conn, org_id, sid)
        return deleted, failed or len(sids) < self._config.batch
