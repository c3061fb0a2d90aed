"""Calls a lost process left unheard, claimed for a new media stream (issue 18, node loss).

A call is *unheard* when it has not ended, the last stream a media server opened for it was
closed as `process_lost` (storage.processes), and no stream of it is open. A surviving process
claims a few such calls at a time (`claim_unheard_calls`) and asks SignalWire to stream each
again (control.restream). The claim is the row lock (SKIP LOCKED: another sweeper takes other
calls) and `restream_next_at`, which holds the call while the request is under way and its
stream lands, so any number of processes share the work and each call is asked for by one at
a time. What an attempt makes of the call next (when to try again, or never for this loss) is
decided by the caller (control.restreaming) and stored by `settle`.

Attempts count per loss: `restream_lost_at` names the loss (the lost stream's stopped_at) the
count is for, so a restarted stream that is lost in turn starts afresh. These rows are org data
but this runs on the process's own connection, outside any tenant, as the sweep does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from storage.calls import PROGRESS_STATUSES
from storage.db import QUERY_TIMEOUT_S, Executor, Pool
from storage.processes import LOST_REASON


@dataclass(frozen=True, slots=True)
class UnheardCall:
    """A call whose last stream was lost with its process, or closed as its process stopped,
    as a claim finds it."""

    id: uuid.UUID
    org_id: uuid.UUID
    call_sid: str
    lost_at: datetime
    """When its last stream was lost (its process's last heartbeat): names the loss."""
    attempts: int
    """Attempts already made to stream it again after this loss."""
    reason: str = LOST_REASON
    """How its last stream ended: `process_lost`, or `server_shutdown` (its process stopped,
    at the end of a drain or with none, while the call went on)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    call: UnheardCall
    attempt: int
    """This attempt's number for the loss, from 1."""


AttemptOf = Callable[[UnheardCall], int | None]
"""A call found unheard → this attempt's number, or None to give up on its loss."""


# The last stream a media server opened for the call (by start; a row only a status callback
# made has no owner) is the lost one, and none of its streams is open: nobody hears it. Due
# when its loss is new to the bookkeeping, or its hold or retry time has passed ('infinity'
# once given up). Oldest loss first.
_UNHEARD = """
SELECT c.id, c.org_id, c.call_sid, last.stopped_at AS lost_at, last.end_reason AS reason,
       CASE WHEN c.restream_lost_at = last.stopped_at THEN c.restream_attempts ELSE 0 END
           AS attempts
FROM calls c
CROSS JOIN LATERAL (
    SELECT s.end_reason, s.stopped_at FROM media_streams s
    WHERE s.call_id = c.id AND s.owner_id IS NOT NULL
    ORDER BY s.started_at DESC, s.connection DESC
    LIMIT 1
) last
WHERE c.status = ANY($1::text[])
  AND c.id IN (SELECT call_id FROM media_streams
               WHERE end_reason IN ('process_lost', 'server_shutdown'))  -- migration 0039's index
  AND last.end_reason IN ('process_lost', 'server_shutdown')
  AND NOT EXISTS (SELECT 1 FROM media_streams s
                  WHERE s.call_id = c.id AND s.owner_id IS NOT NULL AND s.status = 'streaming')
  AND (c.restream_lost_at IS DISTINCT FROM last.stopped_at OR c.restream_next_at <= now())
ORDER BY last.stopped_at, c.created_at
LIMIT $2
FOR UPDATE OF c SKIP LOCKED"""

_HOLD = """
UPDATE calls SET restream_lost_at = $2, restream_attempts = $3,
                 restream_next_at = CASE WHEN $4::float8 IS NULL THEN 'infinity'::timestamptz
                                         ELSE now() + make_interval(secs => $4) END
WHERE id = $1"""


async def claim_unheard_calls(
    pool: Pool, *, limit: int, hold_s: float, attempt_of: AttemptOf
) -> tuple[list[Claimed], list[UnheardCall]]:
    """Claims up to `limit` unheard calls that are due: each one `attempt_of` numbers is held
    for `hold_s` (no other claim takes it meanwhile); each it gives up on is left alone for
    the rest of its loss. Returns (the claimed, the given up)."""
    claimed: list[Claimed] = []
    given_up: list[UnheardCall] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_UNHEARD, list(PROGRESS_STATUSES), limit, timeout=QUERY_TIMEOUT_S)
        for row in rows:
            call = UnheardCall(
                row["id"],
                row["org_id"],
                row["call_sid"],
                row["lost_at"],
                row["attempts"],
                row["reason"],
            )
            attempt = attempt_of(call)
            if attempt is None:
                given_up.append(call)
                await conn.execute(
                    _HOLD, call.id, call.lost_at, call.attempts, None, timeout=QUERY_TIMEOUT_S
                )
            else:
                claimed.append(Claimed(call, attempt))
                await conn.execute(
                    _HOLD, call.id, call.lost_at, attempt, hold_s, timeout=QUERY_TIMEOUT_S
                )
    return claimed, given_up


async def settle(
    conn: Executor, call_id: uuid.UUID, lost_at: datetime, retry_in_s: float | None
) -> None:
    """After an attempt for the loss at `lost_at`: the call may be claimed again in
    `retry_in_s`, or (None) never again for this loss. Nothing changes if a newer loss has
    taken over the bookkeeping meanwhile."""
    await conn.execute(
        """UPDATE calls SET restream_next_at =
               CASE WHEN $3::float8 IS NULL THEN 'infinity'::timestamptz
                    ELSE now() + make_interval(secs => $3) END
           WHERE id = $1 AND restream_lost_at = $2""",
        call_id,
        lost_at,
        retry_in_s,
        timeout=QUERY_TIMEOUT_S,
    )
