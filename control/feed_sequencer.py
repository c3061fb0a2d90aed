"""The feed's sequencer: gives committed feed rows their positions. Every server process runs one.

Writers only insert feed rows (storage/feed.py). One sequencer at a time leads: it holds a
session advisory lock on a connection of its own and positions rows in batches
(`feed.sequence`), woken every `every_s`, or at once by `poke`. It polls because the other way
to be woken, a NOTIFY from each writer, would take Postgres's notification lock, which is held
through the writer's commit: the one queue for every node's commits that the sequencer exists
to remove. The others stand by and try for the lock every `takeover_s`: when the leader's
process dies its connection closes, Postgres releases the lock, and one of them leads from its
next try. A leader whose process hangs falls silent on its connection, which Postgres ends after
`idle_session_timeout` (LEADER_SILENT_S), with the same effect.

Leading only decides who polls: a batch takes its own lock (migration 0038), so one run by
anyone else (a test, an old leader's last statement) is safe too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from control import metrics
from storage import feed
from storage.db import QUERY_TIMEOUT_S, UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

POLL_S = 0.02
"""How often the leader looks for rows to position: the most it adds to a row's way to the
supervisors (half that on average; bench/feed_writers.py measures it)."""
TAKEOVER_S = 0.5
"""How often a standby tries to lead: about the longest the feed waits once a leader is gone."""
LEADER_SILENT_S = 10
"""Postgres ends the session of a leader silent for this long (its process hung or vanished)."""
_LEADER_LOCK = "voxsouth.feed_events.sequencer"
_RECONNECT_MIN_S = 0.1
_RECONNECT_MAX_S = 5.0


class FeedSequencer:
    """From `__aenter__` to `__aexit__`: leads when it can, stands by otherwise. Leaving, a
    leader positions what is left (its own process's last rows, most likely) first."""

    def __init__(
        self,
        dsn: str,
        *,
        every_s: float = POLL_S,
        takeover_s: float = TAKEOVER_S,
        batch: int = feed.SEQUENCE_BATCH,
    ) -> None:
        self._dsn = dsn
        self._every_s = every_s
        self._takeover_s = takeover_s
        self._batch = batch
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.leading = asyncio.Event()
        """Set while this process is the one positioning the feed."""

    async def __aenter__(self) -> FeedSequencer:
        self._task = asyncio.create_task(self._run(), name="feed-sequencer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            if self.leading.is_set():  # a standby has nothing to finish: it just goes
                async with asyncio.timeout(QUERY_TIMEOUT_S):
                    await asyncio.shield(self._task)  # its last batch, then it returns
        except TimeoutError:
            log.warning("feed sequencer did not finish its last batch in time; cancelled")
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """Look for rows now rather than at the next poll (does nothing on a standby)."""
        self._wake.set()

    async def _run(self) -> None:
        delay = _RECONNECT_MIN_S
        while not self._stopping.is_set():
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=QUERY_TIMEOUT_S,
                    server_settings={
                        "application_name": "voxsouth-feed-sequencer",
                        "statement_timeout": "15s",
                        "idle_session_timeout": f"{LEADER_SILENT_S}s",
                    },
                )
            except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("feed sequencer: no Postgres (%s); again in %.1f s", exc, delay)
                await self._rest(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            delay = _RECONNECT_MIN_S
            try:
                await self._serve(conn)
            except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("feed sequencer lost Postgres (%s); reconnecting", exc)
                await self._rest(delay)
            except Exception:
                # Nothing may end it: without a sequencer no process's feed moves on.
                log.exception("feed sequencer failed; reconnecting")
                await self._rest(delay)
            finally:
                if self.leading.is_set():
                    log.info("this process no longer positions the feed")
                self.leading.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def _serve(self, conn: asyncpg.Connection) -> None:
        while not await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtext($1))", _LEADER_LOCK, timeout=QUERY_TIMEOUT_S
        ):
            if await self._rest(self._takeover_s):
                return
        self.leading.set()
        log.info("this process now positions the feed")
        while True:
            stopping = self._stopping.is_set()  # before the batch: rows committed till now
            positioned = await feed.sequence(conn, self._batch)
            if positioned:
                metrics.FEED_POSITIONED.inc(positioned)
            if stopping:
                return
            if positioned != self._batch:  # a full batch means more are waiting: no pause
                await self._nap()

    async def _nap(self) -> None:
        """Until the next poll, or `poke` (a poll period, not a wait standing in for an event).
        Never as long as LEADER_SILENT_S, whatever `every_s` says: Postgres would end the
        session of a leader that is only slow to poll."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(self._every_s, LEADER_SILENT_S / 2)):
                await self._wake.wait()
        self._wake.clear()

    async def _rest(self, seconds: float) -> bool:
        """Waits `seconds`, or until the sequencer is stopping; returns whether it is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return self._stopping.is_set()
