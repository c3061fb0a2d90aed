"""Which server processes are alive, and closing what a dead one left open.

A process registers at start and renews its lease every few seconds (`renew`); the media
streams it opens carry its id (`media_streams.owner_id`, from `StreamStarted.server_id`). A
stream still `streaming` whose owner holds no live lease was left by a process that died
(kill -9, a lost host): `close_lost_streams` ends it as `process_lost`. A call whose streams
were lost that way, and whose final status callback has still not come `after_s` later, is
closed as `unknown` by `close_abandoned_calls`; its callback, should it come after all, replaces
that (storage.calls). Where SignalWire REST credentials exist, such calls are first claimed a few
at a time (`claim_calls_to_ask`) and looked up at SignalWire (control.call_reconcile); one it
says is still live is marked so (`mark_live`), and its timeout counts from then. Any number of
processes may sweep at once: each row is closed once, and each call asked by one at a time.

Lease times are Postgres's `now()`, so the hosts' clocks need not agree. These tables are not
org data: this runs on the process's own connection, outside any tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from storage import feed
from storage.calls import LOST_STATUS, PROGRESS_STATUSES
from storage.db import QUERY_TIMEOUT_S, Executor, Pool

LOST_REASON = "process_lost"
SWEEP_BATCH = 500
"""Streams closed per transaction: a host lost with hundreds of calls takes a few sweeps, each
holding its row locks briefly."""


@dataclass(frozen=True, slots=True)
class LostStream:
    org_id: uuid.UUID
    call_id: uuid.UUID
    stream_sid: str
    stopped_at: datetime


async def renew(
    conn: Executor, process_id: uuid.UUID, *, host: str, pid: int, lease_s: float
) -> None:
    """Registers the process, or extends its lease. An upsert, so a process cut off from
    Postgres for longer than its lease, and swept meanwhile, registers again when it is back."""
    await conn.execute(
        """INSERT INTO server_processes (id, host, pid, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))
           ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at""",
        process_id,
        host,
        pid,
        lease_s,
        timeout=QUERY_TIMEOUT_S,
    )


async def deregister(conn: Executor, process_id: uuid.UUID) -> None:
    """A clean shutdown: anything of ours still open is another process's to close at once."""
    await conn.execute(
        "DELETE FROM server_processes WHERE id = $1", process_id, timeout=QUERY_TIMEOUT_S
    )


# SKIP LOCKED: a row another sweeper (or the writer, ending the stream for real) holds is left
# to it. The end is the owner's last heartbeat, the last moment it was known alive (not before
# the stream began); frame counts stay as last written.
_CLOSE_LOST = """
WITH lost AS (
    SELECT s.id FROM media_streams s
    WHERE s.status = 'streaming' AND s.owner_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM server_processes p
                      WHERE p.id = s.owner_id AND p.expires_at > now())
    LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE media_streams s
   SET status = 'stopped', end_reason = $1,
       stopped_at = GREATEST(s.started_at, COALESCE(
           (SELECT p.heartbeat_at FROM server_processes p WHERE p.id = s.owner_id), now()))
  FROM lost WHERE s.id = lost.id
RETURNING s.org_id, s.call_id, s.stream_sid, s.stopped_at"""

# A dead process's registration goes once nothing it opened is left open.
_FORGET_DEAD = """
DELETE FROM server_processes p
WHERE p.expires_at <= now()
  AND NOT EXISTS (SELECT 1 FROM media_streams s
                  WHERE s.owner_id = p.id AND s.status = 'streaming')"""


async def close_lost_streams(pool: Pool, batch: int = SWEEP_BATCH) -> list[LostStream]:
    """Ends up to `batch` streams whose owner's lease ran out, each with a `stream_stopped`
    on the supervisors' feed; returns them."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_CLOSE_LOST, LOST_REASON, batch, timeout=QUERY_TIMEOUT_S)
        lost = [
            LostStream(r["org_id"], r["call_id"], r["stream_sid"], r["stopped_at"]) for r in rows
        ]
        for s in lost:
            payload = {"stream_sid": s.stream_sid, "reason": LOST_REASON, "tracks": []}
            await feed.append(conn, s.org_id, s.call_id, "stream_stopped", payload)
        await conn.execute(_FORGET_DEAD, timeout=QUERY_TIMEOUT_S)
    return lost


# A call not yet ended, with a stream lost with its process, none still open, the last closed
# (and SignalWire's last word that it is live, if any) over `after_s` ago. The row lock
# re-checks the status: two sweepers close it once.
_CLOSE_ABANDONED = """
WITH abandoned AS (
    SELECT c.id, max(s.stopped_at) AS lost_at
    FROM calls c JOIN media_streams s ON s.call_id = c.id
    WHERE c.status = ANY($1::text[])
      AND c.id IN (SELECT call_id FROM media_streams WHERE end_reason = $2)
    GROUP BY c.id
    HAVING bool_and(s.status <> 'streaming')
       AND GREATEST(max(s.stopped_at), c.remote_live_at) < now() - make_interval(secs => $3)
)
UPDATE calls c
   SET status = $4, ended_at = COALESCE(c.ended_at, a.lost_at), updated_at = now()
  FROM abandoned a
 WHERE c.id = a.id AND c.status = ANY($1::text[])
RETURNING c.org_id, c.id"""


async def close_abandoned_calls(pool: Pool, after_s: float) -> list[uuid.UUID]:
    """Closes as `unknown` the calls whose streams all ended with their process at least
    `after_s` ago and whose final status callback has not come; returns their ids."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            _CLOSE_ABANDONED,
            list(PROGRESS_STATUSES),
            LOST_REASON,
            after_s,
            LOST_STATUS,
            timeout=QUERY_TIMEOUT_S,
        )
        for r in rows:
            await feed.append(conn, r["org_id"], r["id"], "call_status", {"status": LOST_STATUS})
    return [r["id"] for r in rows]


# The same calls the timeout rule looks at (not yet ended, a stream lost with its process, none
# still open), with no wait after the loss: asking is cheap, and a call that ended while its
# callback is on the way gets its real end either way. Not asked in the last `every_s`; the
# least recently asked first. SKIP LOCKED and the stamp make the claim: another sweeper skips
# the row now and for `every_s`.
_CLAIM_TO_ASK = """
WITH due AS (
    SELECT c.id FROM calls c
    WHERE c.status = ANY($1::text[])
      AND c.id IN (SELECT call_id FROM media_streams WHERE end_reason = $2)
      AND NOT EXISTS (SELECT 1 FROM media_streams s
                      WHERE s.call_id = c.id AND s.status = 'streaming')
      AND (c.remote_checked_at IS NULL
           OR c.remote_checked_at < now() - make_interval(secs => $3))
    ORDER BY c.remote_checked_at NULLS FIRST, c.created_at
    LIMIT $4
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE calls c SET remote_checked_at = now() FROM due WHERE c.id = due.id
RETURNING c.call_sid"""


async def claim_calls_to_ask(pool: Pool, *, limit: int, every_s: float) -> list[str]:
    """Claims up to `limit` calls left open by a lost process to look up at SignalWire, none
    asked (by any process) in the last `every_s`; returns their CallSids."""
    rows = await pool.fetch(
        _CLAIM_TO_ASK, list(PROGRESS_STATUSES), LOST_REASON, every_s, limit,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [r["call_sid"] for r in rows]


async def mark_live(conn: Executor, call_sid: str) -> bool:
    """SignalWire says the call is still live: the `unknown` timeout counts from now. False if
    the call has ended meanwhile (its callback came)."""
    result = await conn.execute(
        "UPDATE calls SET remote_live_at = now() WHERE call_sid = $1 AND status = ANY($2::text[])",
        call_sid,
        list(PROGRESS_STATUSES),
        timeout=QUERY_TIMEOUT_S,
    )
    return not result.endswith(" 0")
