"""Call recordings: who may start or stop one, and what SignalWire reports about them.

A call's `recording_state` moves through claims, so that of all the processes hearing the same
notification exactly one acts, and a recording exists only where consent allows:

    none ─claim_start→ starting ─started→ recording ─claim_stop→ stopping ─stopped→ stopped
    starting ─start_failed→ none              stopping ─stop_failed→ recording
    starting ─release_stale_starts→ none     (the claiming process died mid-start)
    none, starting ─account_for→ recording   (SignalWire reports a recording the call lacked)
    recording ─claim_pause→ pausing ─settle→ paused ─claim_resume→ resuming ─settle→ recording
    pausing ─settle→ stopping   (the pause failed: the recording is stopped instead)
    paused ─claim_stop→ stopping    pausing, resuming ─release_stale_pauses→ recording, paused

A call in secure mode (payments) is not started, and its recording is paused while it lasts.

Consent allows recording when the call's jurisdiction needs one party's consent and the other
party has not refused (`one_party` and `recording_consent` not false), or when the other party
granted it (`recording_consent` true) whatever the rule. A call whose rule is not decided yet
(NULL) is treated as all-party: nothing until consent is granted. A stopped recording is not
started again on the same call.

These functions run as the pool's owner role (the recording controller serves every org); the
API reads a call's recordings with the call (`storage.calls.get_call`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from storage.calls import TERMINAL_STATUSES
from storage.db import QUERY_TIMEOUT_S, Executor
from storage.secure_mode import PauseBehavior

CONSENT_ALLOWS = """COALESCE(
    (consent_rule = 'one_party' AND recording_consent IS DISTINCT FROM false) OR recording_consent,
    false)"""
"""SQL over a `calls` row: whether consent allows recording it now (never NULL)."""

FINAL_STATUSES = ("completed", "absent", "failed", "deleted")
"""Recording statuses after which no other status callback for it changes its status."""


async def claim_start(conn: Executor, call_id: uuid.UUID) -> str | None:
    """Claims the right to start the call's recording ('none' → 'starting'); returns the
    CallSid to start it on, or None when consent does not allow it, the call is over, or the
    recording was already claimed (here or by another process) or has been stopped."""
    call_sid: str | None = await conn.fetchval(
        f"""UPDATE calls SET recording_state = 'starting', recording_claimed_at = now(),
                             updated_at = now()
            WHERE id = $1 AND recording_state = 'none' AND status <> ALL($2::text[])
              AND NOT secure_mode AND {CONSENT_ALLOWS}
            RETURNING call_sid""",
        call_id,
        sorted(TERMINAL_STATUSES),
        timeout=QUERY_TIMEOUT_S,
    )
    return call_sid


async def started(conn: Executor, call_id: uuid.UUID, recording_sid: str) -> bool:
    """Records the SID of the recording the claim started ('starting' → 'recording').

    Returns whether consent still allows it. False means it was refused while the start was in
    flight (a refusal finds nothing to stop while the state is 'starting'), so the caller must
    stop the recording now: `claim_stop`, then SignalWire.
    """
    allowed: bool | None = await conn.fetchval(
        f"""UPDATE calls SET recording_state = 'recording', recording_sid = $2,
                             updated_at = now()
            WHERE id = $1 AND (recording_state = 'starting'
                               -- its status callback came first and adopted it
                               OR (recording_state = 'recording' AND recording_sid = $2))
            RETURNING {CONSENT_ALLOWS}""",
        call_id,
        recording_sid,
        timeout=QUERY_TIMEOUT_S,
    )
    return bool(allowed)


async def start_failed(conn: Executor, call_id: uuid.UUID) -> None:
    """The start did not happen: 'starting' → 'none', so a later trigger may try again."""
    await conn.execute(
        """UPDATE calls SET recording_state = 'none', updated_at = now()
           WHERE id = $1 AND recording_state = 'starting'""",
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )


async def release_stale_starts(conn: Executor, older_than_s: float) -> list[uuid.UUID]:
    """Releases the start claims of calls still going that were made longer ago than any start
    takes ('starting' → 'none'): their process died before it could finish or fail. Returns the
    calls, for the caller to try again (the claims then check consent afresh). A start that
    did reach SignalWire before the process died is reported by its status callback, and
    `account_for` keeps or stops it."""
    rows = await conn.fetch(
        """UPDATE calls SET recording_state = 'none', updated_at = now()
           WHERE recording_state = 'starting'
             AND recording_claimed_at < now() - make_interval(secs => $1)
             AND status <> ALL($2::text[])
           RETURNING id""",
        older_than_s,
        sorted(TERMINAL_STATUSES),
        timeout=QUERY_TIMEOUT_S,
    )
    return [r["id"] for r in rows]


async def claim_stop(conn: Executor, call_id: uuid.UUID) -> tuple[str, str] | None:
    """Claims the right to stop the call's recording ('recording' or 'paused' → 'stopping');
    returns (CallSid, RecordingSid), or None when nothing is recording or another claim has it."""
    row = await conn.fetchrow(
        """UPDATE calls SET recording_state = 'stopping', updated_at = now()
           WHERE id = $1 AND recording_state IN ('recording', 'paused')
             AND recording_sid IS NOT NULL
           RETURNING call_sid, recording_sid""",
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return None if row is None else (row["call_sid"], row["recording_sid"])


async def stopped(conn: Executor, call_id: uuid.UUID) -> None:
    """'stopping' → 'stopped': SignalWire stopped the recording (or had already)."""
    await conn.execute(
        """UPDATE calls SET recording_state = 'stopped', updated_at = now()
           WHERE id = $1 AND recording_state = 'stopping'""",
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )


async def stop_failed(conn: Executor, call_id: uuid.UUID) -> None:
    """The stop did not happen: 'stopping' → 'recording', so a later claim may try again."""
    await conn.execute(
        """UPDATE calls SET recording_state = 'recording', updated_at = now()
           WHERE id = $1 AND recording_state = 'stopping'""",
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )


@dataclass(frozen=True, slots=True)
class PauseClaim:
    """A claim to pause the recording of a call in secure mode."""

    org_id: uuid.UUID
    call_sid: str
    recording_sid: str
    behavior: PauseBehavior
    """The org's choice: SignalWire's `PauseBehavior`."""
    at_ms: int
    """Now, on the call's clock (from its first stream), for an alert should the pause fail."""


async def claim_pause(conn: Executor, call_id: uuid.UUID) -> PauseClaim | None:
    """Claims the right to pause the recording of a call in secure mode ('recording' →
    'pausing'); None when the call is not in secure mode, nothing is recording, or another
    claim has it."""
    row = await conn.fetchrow(
        """UPDATE calls c SET recording_state = 'pausing', recording_claimed_at = now(),
                              updated_at = now()
           FROM organizations o
           WHERE c.id = $1 AND o.id = c.org_id AND c.secure_mode
             AND c.recording_state = 'recording' AND c.recording_sid IS NOT NULL
           RETURNING c.org_id, c.call_sid, c.recording_sid, o.secure_pause_behavior,
                     (SELECT GREATEST(0, extract(epoch FROM now() - min(s.started_at)) * 1000)
                      FROM media_streams s WHERE s.call_id = c.id) AS at_ms""",
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )
    if row is None:
        return None
    return PauseClaim(
        org_id=row["org_id"],
        call_sid=row["call_sid"],
        recording_sid=row["recording_sid"],
        behavior=row["secure_pause_behavior"],
        at_ms=int(row["at_ms"] or 0),
    )


async def claim_resume(conn: Executor, call_id: uuid.UUID) -> tuple[str, str] | None:
    """Claims the right to resume a paused recording once secure mode is off ('paused' →
    'resuming'), if consent still allows it; returns (CallSid, RecordingSid) or None."""
    row = await conn.fetchrow(
        f"""UPDATE calls SET recording_state = 'resuming', recording_claimed_at = now(),
                             updated_at = now()
            WHERE id = $1 AND recording_state = 'paused' AND NOT secure_mode
              AND status <> ALL($2::text[]) AND {CONSENT_ALLOWS}
            RETURNING call_sid, recording_sid""",
        call_id,
        sorted(TERMINAL_STATUSES),
        timeout=QUERY_TIMEOUT_S,
    )
    return None if row is None else (row["call_sid"], row["recording_sid"])


async def settle(conn: Executor, call_id: uuid.UUID, claimed: str, to: str) -> None:
    """Ends a pause or resume claim: `claimed` ('pausing' or 'resuming') → `to`."""
    await conn.execute(
        """UPDATE calls SET recording_state = $3, updated_at = now()
           WHERE id = $1 AND recording_state = $2""",
        call_id,
        claimed,
        to,
        timeout=QUERY_TIMEOUT_S,
    )


async def release_stale_pauses(conn: Executor, older_than_s: float) -> list[uuid.UUID]:
    """Releases pause and resume claims whose process died mid-request ('pausing' →
    'recording', 'resuming' → 'paused'): returns the calls, for the caller to follow their
    secure mode again (a pause asked twice is harmless)."""
    rows = await conn.fetch(
        """UPDATE calls SET recording_state = CASE recording_state WHEN 'pausing'
                                THEN 'recording' ELSE 'paused' END, updated_at = now()
           WHERE recording_state IN ('pausing', 'resuming')
             AND recording_claimed_at < now() - make_interval(secs => $1)
             AND status <> ALL($2::text[])
           RETURNING id""",
        older_than_s,
        sorted(TERMINAL_STATUSES),
        timeout=QUERY_TIMEOUT_S,
    )
    return [r["id"] for r in rows]


RecordingFate = Literal["ours", "adopted", "stop", "unknown_call"]


async def account_for(conn: Executor, call_sid: str, recording_sid: str) -> RecordingFate:
    """What to do with a recording SignalWire reports in progress on the call:

    - "ours": it is the call's recording; the claims look after it;
    - "adopted": the call had none ('none' or 'starting': a start whose answer was lost to a
      timeout or a crash did land) and consent allows one, so it is the call's now
      ('recording'), and a refusal will stop it;
    - "stop": nobody may keep it: consent does not allow it, or the call has another;
    - "unknown_call": no such call.
    """
    row = await conn.fetchrow(
        f"""WITH call AS (
                SELECT id, recording_sid, recording_state, {CONSENT_ALLOWS} AS allowed
                FROM calls WHERE call_sid = $1 FOR UPDATE
            ),
            adopted AS (
                UPDATE calls SET recording_state = 'recording', recording_sid = $2,
                                 updated_at = now()
                FROM call
                WHERE calls.id = call.id AND call.allowed AND NOT calls.secure_mode
                  AND call.recording_state IN ('none', 'starting')
                RETURNING 1
            )
            SELECT COALESCE(call.recording_sid = $2, false) AS ours,
                   EXISTS (SELECT 1 FROM adopted) AS adopted
            FROM call""",
        call_sid,
        recording_sid,
        timeout=QUERY_TIMEOUT_S,
    )
    if row is None:
        return "unknown_call"
    if row["ours"]:
        return "ours"
    return "adopted" if row["adopted"] else "stop"


async def apply_status(
    conn: Executor,
    *,
    call_sid: str,
    recording_sid: str,
    status: str,
    url: str | None,
    duration_s: int | None,
    channels: int | None,
) -> bool:
    """Upserts the recording a status callback reports, under the call (and its org) found by
    CallSid; returns False when the call is unknown.

    Callbacks may arrive late, twice or out of order: a final status (completed, absent, …)
    is never replaced by an earlier one (in-progress, paused), and a callback without a URL,
    duration or channel count keeps what an earlier one said. A RecordingSid already filed
    under another call is left alone.
    """
    known: bool = await conn.fetchval(
        """WITH call AS (SELECT id, org_id FROM calls WHERE call_sid = $1),
           upserted AS (
               INSERT INTO recordings (org_id, call_id, recording_sid, status, url, duration_s,
                                       channels)
               SELECT org_id, id, $2, $3, $4, $5, $6 FROM call
               ON CONFLICT (recording_sid) DO UPDATE SET
                   status = CASE WHEN recordings.status = ANY($7::text[])
                                      AND NOT EXCLUDED.status = ANY($7::text[])
                                 THEN recordings.status ELSE EXCLUDED.status END,
                   url = COALESCE(EXCLUDED.url, recordings.url),
                   duration_s = COALESCE(EXCLUDED.duration_s, recordings.duration_s),
                   channels = COALESCE(EXCLUDED.channels, recordings.channels),
                   updated_at = now()
               WHERE recordings.call_id = EXCLUDED.call_id
               RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM call)""",
        call_sid,
        recording_sid,
        status,
        url,
        duration_s,
        channels,
        list(FINAL_STATUSES),
        timeout=QUERY_TIMEOUT_S,
    )
    return known


async def media_of(
    conn: Executor, org_id: uuid.UUID, recording_sid: str
) -> tuple[str | None, str] | None:
    """The org's recording's media URL at SignalWire (None until SignalWire reported one) and
    its status; None if the org has no such recording. Run on the org's tenant connection."""
    row = await conn.fetchrow(
        "SELECT url, status FROM recordings WHERE org_id = $1 AND recording_sid = $2",
        org_id,
        recording_sid,
        timeout=QUERY_TIMEOUT_S,
    )
    return None if row is None else (row["url"], row["status"])


async def delete(conn: Executor, org_id: uuid.UUID, recording_sid: str) -> bool:
    """Forgets the org's recording (once SignalWire has deleted its audio); False if none."""
    status = await conn.execute(
        "DELETE FROM recordings WHERE org_id = $1 AND recording_sid = $2",
        org_id,
        recording_sid,
        timeout=QUERY_TIMEOUT_S,
    )
    return bool(status != "DELETE 0")
