"""Organizations, phone numbers, calls and stream status: the rows webhooks create and move.

Status callbacks may arrive late, twice or out of order; `apply_call_status` only ever moves a
call forward (queued → initiated → ringing → in-progress → unknown → a terminal state), so a
stale or repeated callback changes nothing. `unknown` is ours, never SignalWire's: a call closed
because its process died and its final callback never came (storage.processes).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from storage.db import QUERY_TIMEOUT_S, Executor

TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
PROGRESS_STATUSES = ("queued", "initiated", "ringing", "in-progress")
CALL_STATUSES = frozenset(PROGRESS_STATUSES) | TERMINAL_STATUSES
"""What SignalWire reports."""
LOST_STATUS = "unknown"
"""A call closed without its final status callback (storage.processes). Not terminal: the real
end, should its callback still come, replaces it."""
STORED_STATUSES = CALL_STATUSES | {LOST_STATUS}
_RANKED = (*PROGRESS_STATUSES, LOST_STATUS)


def status_rank(status: str) -> int:
    return len(_RANKED) if status in TERMINAL_STATUSES else _RANKED.index(status)


@dataclass(frozen=True, slots=True)
class NumberRoute:
    org_id: uuid.UUID
    number: str
    dial_target: str | None
    consent_default: Literal["one_party", "all_party"] = "all_party"
    consent_mode: Literal["speech", "ask", "keypad"] = "speech"
    survey_id: uuid.UUID | None = None
    """Inbound calls to the number take this survey."""


@dataclass(frozen=True, slots=True)
class CallRef:
    id: uuid.UUID
    org_id: uuid.UUID
    status: str


async def create_org(
    conn: Executor,
    name: str,
    consent_default: Literal["one_party", "all_party"] = "all_party",
    *,
    consent_mode: Literal["speech", "ask", "keypad"] = "speech",
    implied_by_notice: bool = False,
) -> uuid.UUID:
    """`consent_default` applies to calls whose parties' jurisdiction is not known;
    `consent_mode` is the prompt the platform plays; `implied_by_notice` takes a notice as
    consent on calls where one party's consent is enough."""
    org_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO organizations (name, consent_default, consent_mode,
                                      consent_implied_by_notice)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        name,
        consent_default,
        consent_mode,
        implied_by_notice,
        timeout=QUERY_TIMEOUT_S,
    )
    return org_id


async def add_phone_number(
    conn: Executor,
    org_id: uuid.UUID,
    number: str,
    dial_target: str | None = None,
) -> None:
    """Adds the number to the org, or moves its dial target; raises UniqueViolationError when the
    number belongs to another org."""
    result = await conn.execute(
        """INSERT INTO phone_numbers (org_id, number, dial_target) VALUES ($1, $2, $3)
           ON CONFLICT (number) DO UPDATE SET dial_target = EXCLUDED.dial_target
           WHERE phone_numbers.org_id = EXCLUDED.org_id""",
        org_id,
        number,
        dial_target,
        timeout=QUERY_TIMEOUT_S,
    )
    if result.endswith(" 0"):
        raise asyncpg.UniqueViolationError(f"{number} belongs to another organization")


async def route_number(conn: Executor, number: str) -> NumberRoute | None:
    row = await conn.fetchrow(
        """SELECT n.org_id, n.number, n.dial_target, o.consent_default, o.consent_mode,
                  n.survey_id
           FROM phone_numbers n JOIN organizations o ON o.id = n.org_id WHERE n.number = $1""",
        number,
        timeout=QUERY_TIMEOUT_S,
    )
    if row is None:
        return None
    return NumberRoute(
        row["org_id"], row["number"], row["dial_target"], row["consent_default"],
        row["consent_mode"], row["survey_id"],
    )  # fmt: skip


async def open_call(
    conn: Executor,
    *,
    org_id: uuid.UUID,
    call_sid: str,
    account_sid: str | None,
    direction: str,
    from_number: str,
    to_number: str,
    status: str,
    consent_rule: Literal["one_party", "all_party"] | None = None,
    consent_rule_reason: str | None = None,
) -> CallRef:
    """Creates the call row; a re-delivered voice webhook gets the same row back."""
    row = await conn.fetchrow(
        """INSERT INTO calls (org_id, call_sid, account_sid, direction, from_number, to_number,
                              status, consent_rule, consent_rule_reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (call_sid) DO UPDATE SET updated_at = calls.updated_at
           RETURNING id, org_id, status""",
        org_id,
        call_sid,
        account_sid,
        direction,
        from_number,
        to_number,
        status if status in CALL_STATUSES else "queued",
        consent_rule,
        consent_rule_reason,
        timeout=QUERY_TIMEOUT_S,
    )
    assert row is not None
    return CallRef(row["id"], row["org_id"], row["status"])


@dataclass(frozen=True, slots=True)
class CallRow:
    id: uuid.UUID
    org_id: uuid.UUID
    direction: str
    from_number: str
    to_number: str


async def call_by_sid(conn: Executor, call_sid: str) -> CallRow | None:
    row = await conn.fetchrow(
        """SELECT id, org_id, direction, from_number, to_number FROM calls
           WHERE call_sid = $1""",
        call_sid,
        timeout=QUERY_TIMEOUT_S,
    )
    return None if row is None else CallRow(**dict(row))


async def call_admission(
    conn: Executor, call_id: uuid.UUID, org_id: uuid.UUID
) -> dict[str, Any] | None:
    """What the media plane needs when a call's stream opens: its status and consent state,
    and what the org chose to transcribe it (no engine: the deployment's)."""
    row = await conn.fetchrow(
        """SELECT c.status, c.consent_rule, c.recording_consent, c.consent_verified_by,
                  c.secure_mode, o.secure_caller_words,
                  o.consent_mode, o.consent_implied_by_notice, o.rules_seeded, o.redact_kinds,
                  t.engine AS transcription_engine, t.api_key_sealed,
                  (SELECT e.detector FROM consent_events e
                   WHERE e.call_id = c.id AND e.kind = 'disclosure' AND e.detector LIKE 'laml_%'
                   ORDER BY e.created_at LIMIT 1) AS played_by,
                  -- The call's streams a media server has opened so far (status callbacks
                  -- make rows with no owner), for a stream resuming the call here.
                  (SELECT min(s.started_at) FROM media_streams s
                   WHERE s.call_id = c.id AND s.owner_id IS NOT NULL) AS streams_began_at,
                  (SELECT array_agg(s.stream_sid) FROM media_streams s
                   WHERE s.call_id = c.id AND s.owner_id IS NOT NULL) AS stream_connections,
                  -- When they last heard the call, once none is open (a stream lost with its
                  -- process ended at that process's last heartbeat).
                  (SELECT CASE WHEN bool_or(s.status = 'streaming') THEN NULL
                               ELSE max(s.stopped_at) END
                   FROM media_streams s
                   WHERE s.call_id = c.id AND s.owner_id IS NOT NULL) AS streams_heard_until,
                  -- The rules that fired on the call so far, and where each last did.
                  ARRAY(SELECT (e.rule_name, max(e.end_ms)) FROM escalations e
                        WHERE e.call_id = c.id GROUP BY e.rule_name) AS fired
           FROM calls c JOIN organizations o ON o.id = c.org_id
                LEFT JOIN org_transcription t ON t.org_id = c.org_id
           WHERE c.id = $1 AND c.org_id = $2""",
        call_id,
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return None if row is None else dict(row)


async def apply_call_status(
    conn: Executor,
    *,
    call_sid: str,
    status: str,
    sequence: int | None,
    at: datetime,
    duration_seconds: int | None,
) -> Literal["applied", "stale", "unknown_call"]:
    """Moves the call forward to `status`; never backwards, never out of a terminal state. An
    applied status goes to the supervisors' feed in the same statement (atomic, and one round
    trip: under load every round trip waits a turn of the media loop while holding a pooled
    connection)."""
    row = await conn.fetchrow(
        """WITH moved AS (
               UPDATE calls SET
                   status = $2,
                   status_sequence = GREATEST(status_sequence, $3),
                   answered_at = CASE WHEN $2 = 'in-progress' THEN COALESCE(answered_at, $4)
                                      ELSE answered_at END,
                   -- `unknown`'s end was a guess (when its streams were lost): the callback
                   -- knows.
                   ended_at = CASE WHEN NOT $5 THEN ended_at
                                   WHEN status = $10 THEN $4
                                   ELSE COALESCE(ended_at, $4) END,
                   duration_seconds = COALESCE($6, duration_seconds),
                   updated_at = now()
               WHERE call_sid = $1
                 AND COALESCE(array_position($7::text[], status), $8) < $9
               RETURNING id, org_id
           ), fed AS (
               -- storage.feed.append's row, for the call it moved.
               INSERT INTO feed_events (org_id, call_id, type, payload)
               SELECT org_id, id, 'call_status', $11::jsonb FROM moved
           )
           SELECT EXISTS (SELECT 1 FROM moved) AS applied,
                  EXISTS (SELECT 1 FROM calls WHERE call_sid = $1) AS known""",
        call_sid,
        status,
        sequence,
        at,
        status in TERMINAL_STATUSES,
        duration_seconds,
        list(_RANKED),
        len(_RANKED) + 1,  # terminal: array_position is NULL, so rank len+1 (never exceeded)
        status_rank(status) + 1,  # array_position is 1-based
        LOST_STATUS,
        json.dumps({"status": status}),
        timeout=QUERY_TIMEOUT_S,
    )
    assert row is not None
    if row["applied"]:
        return "applied"
    return "stale" if row["known"] else "unknown_call"


async def apply_stream_status(
    conn: Executor,
    *,
    call_sid: str,
    stream_sid: str,
    name: str | None,
    event: str,
    error: str | None,
    at: datetime,
) -> bool:
    """Records a stream statusCallback; a stopped or failed stream never goes back to streaming.
    Returns False when the call is unknown."""
    status = {"stream-started": "streaming", "stream-stopped": "stopped"}.get(event, "failed")
    result = await conn.execute(
        """INSERT INTO media_streams (org_id, call_id, stream_sid, name, status, error,
                                      started_at, stopped_at)
           SELECT org_id, id, $2, $3, $4, $5,
                  CASE WHEN $4 = 'streaming' THEN $6::timestamptz END,
                  CASE WHEN $4 <> 'streaming' THEN $6::timestamptz END
           FROM calls WHERE call_sid = $1
           ON CONFLICT (stream_sid, connection) DO UPDATE SET
               name = COALESCE(media_streams.name, EXCLUDED.name),
               status = CASE WHEN media_streams.status = 'streaming' THEN EXCLUDED.status
                             ELSE media_streams.status END,
               error = COALESCE(media_streams.error, EXCLUDED.error),
               started_at = COALESCE(media_streams.started_at, EXCLUDED.started_at),
               stopped_at = COALESCE(media_streams.stopped_at, EXCLUDED.stopped_at)""",
        call_sid,
        stream_sid,
        name,
        status,
        error,
        at,
        timeout=QUERY_TIMEOUT_S,
    )
    return not result.endswith(" 0")


async def call_report(conn: Executor, call_sid: str) -> dict[str, Any] | None:
    """The call with its streams and transcript, as plain data (the simulator prints it)."""
    call = await conn.fetchrow(
        "SELECT * FROM calls WHERE call_sid = $1", call_sid, timeout=QUERY_TIMEOUT_S
    )
    if call is None:
        return None
    streams = await conn.fetch(
        "SELECT * FROM media_streams WHERE call_id = $1 ORDER BY created_at",
        call["id"],
        timeout=QUERY_TIMEOUT_S,
    )
    segments = await conn.fetch(
        """SELECT speaker, track, start_ms, end_ms, text, confidence, engine
           FROM transcript_segments WHERE call_id = $1 ORDER BY start_ms, track""",
        call["id"],
        timeout=QUERY_TIMEOUT_S,
    )
    escalations = await conn.fetch(
        """SELECT rule_name, severity, track, start_ms, evidence FROM escalations
           WHERE call_id = $1 ORDER BY start_ms""",
        call["id"],
        timeout=QUERY_TIMEOUT_S,
    )
    return {
        "call": dict(call),
        "streams": [dict(s) for s in streams],
        "transcript": [dict(s) for s in segments],
        "escalations": [dict(e) for e in escalations],
    }


_CALL_COLUMNS = """id, call_sid, direction, from_number, to_number, status, started_at,
    answered_at, ended_at, duration_seconds, disposition, disposition_notes, recording_consent,
    consent_verified_by, consent_rule, consent_rule_reason, consent_decided_at, recording_state,
    escalated, escalation_time, audio_lost_ms, utterances_skipped, started_by, secure_mode"""


async def list_calls(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    status: str | None = None,
    direction: str | None = None,
    escalated: bool | None = None,
    consent: Literal["granted", "refused", "unknown"] | None = None,
    started_from: datetime | None = None,
    started_before: datetime | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """An org's calls, newest first; `after` is the (started_at, id) of the last row seen."""
    rows = await conn.fetch(
        f"""SELECT {_CALL_COLUMNS} FROM calls
            WHERE org_id = $1
              AND ($2::text IS NULL OR status = $2)
              AND ($3::text IS NULL OR direction = $3)
              AND ($4::boolean IS NULL OR escalated = $4)
              AND ($5::timestamptz IS NULL OR started_at >= $5)
              AND ($6::timestamptz IS NULL OR started_at < $6)
              AND ($7::timestamptz IS NULL OR (started_at, id) < ($7, $8::uuid))
              AND ($10::text IS NULL
                   OR ($10 = 'granted' AND recording_consent)
                   OR ($10 = 'refused' AND NOT recording_consent)
                   OR ($10 = 'unknown' AND recording_consent IS NULL))
            ORDER BY started_at DESC, id DESC
            LIMIT $9""",
        org_id,
        status,
        direction,
        escalated,
        started_from,
        started_before,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        consent,
        timeout=QUERY_TIMEOUT_S,
    )
    return [dict(r) for r in rows]


async def get_call(
    conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID, *, with_transcript: bool
) -> dict[str, Any] | None:
    """One of the org's calls with its streams (and transcript when asked); None otherwise."""
    call = await conn.fetchrow(
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE org_id = $1 AND id = $2",
        org_id,
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )
    if call is None:
        return None
    result = dict(call)
    # The call's parts, each a list of rows in its own order (the transcript only if asked).
    parts = {
        "streams": """SELECT stream_sid, connection, offset_ms, name, status, codec,
                             sample_rate, tracks, restarted_after,
                             frames_received_inbound, frames_received_outbound,
                             frames_lost_inbound, frames_lost_outbound, audio_lost_ms,
                             utterances_skipped, transcription_error_inbound,
                             transcription_error_outbound, end_reason, error, started_at, stopped_at
                      FROM media_streams WHERE org_id = $1 AND call_id = $2
                      ORDER BY created_at, connection""",
        "consent_events": """SELECT id, kind, detector, verdict, track, offset_ms, evidence,
                                    segment_id, actor, occurred_at
                             FROM consent_events WHERE org_id = $1 AND call_id = $2
                             ORDER BY occurred_at""",
        "escalations": """SELECT id, rule_name, kind, severity, track, start_ms, end_ms,
                                 evidence, raised_at, status
                          FROM escalations WHERE org_id = $1 AND call_id = $2
                          ORDER BY raised_at""",
        # As SignalWire's status callbacks reported them; the audio stays at SignalWire. Not
        # its URL: SignalWire's media URLs are public, whoever holds one can listen (no role
        # check, no audit), so it stays here, for the server's own use.
        "recordings": """SELECT recording_sid, status, url IS NOT NULL AS has_audio, duration_s,
                                channels, created_at, updated_at
                         FROM recordings WHERE org_id = $1 AND call_id = $2
                         ORDER BY created_at, recording_sid""",
    }
    if with_transcript:
        parts["transcript"] = """SELECT id, speaker, track, start_ms, end_ms, text, confidence,
                                        is_final, engine, words
                                 FROM transcript_segments WHERE org_id = $1 AND call_id = $2
                                 ORDER BY start_ms, track"""
    for name, query in parts.items():
        rows = await conn.fetch(query, org_id, call_id, timeout=QUERY_TIMEOUT_S)
        result[name] = [dict(r) for r in rows]
    for segment in result.get("transcript", ()):
        words = segment["words"]
        segment["words"] = None if words is None else json.loads(words)
    # What was redacted from its words, counted by kind (for every role: it says nothing of
    # what was said).
    redactions = await conn.fetch(
        """SELECT kind, count(*) AS n FROM transcript_segments, unnest(redacted) AS kind
           WHERE org_id = $1 AND call_id = $2 GROUP BY kind ORDER BY kind""",
        org_id,
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )
    result["redactions"] = {r["kind"]: r["n"] for r in redactions}
    return result


async def update_call(
    conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID, changes: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Applies `changes` (column → value; columns chosen by the caller, never by a client) to
    one of the org's calls; returns its (before, after) values of those columns."""
    columns = sorted(changes)
    before = await conn.fetchrow(
        f"SELECT {', '.join(columns)} FROM calls WHERE org_id = $1 AND id = $2 FOR UPDATE",
        org_id,
        call_id,
        timeout=QUERY_TIMEOUT_S,
    )
    if before is None:
        return None
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
    after = await conn.fetchrow(
        f"""UPDATE calls SET {assignments}, updated_at = now() WHERE org_id = $1 AND id = $2
            RETURNING {", ".join(columns)}""",
        org_id,
        call_id,
        *(changes[c] for c in columns),
        timeout=QUERY_TIMEOUT_S,
    )
    assert after is not None
    return dict(before), dict(after)


async def list_numbers(conn: Executor, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, number, dial_target, created_at FROM phone_numbers WHERE org_id = $1 "
        "ORDER BY number",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return [dict(r) for r in rows]


async def delete_number(
    conn: Executor, org_id: uuid.UUID, number_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "DELETE FROM phone_numbers WHERE org_id = $1 AND id = $2 RETURNING number, dial_target",
        org_id,
        number_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return dict(row) if row else None


async def list_caller_ids(conn: Executor, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, number, name, verified_at, created_at FROM caller_ids WHERE org_id = $1 "
        "ORDER BY number",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return [dict(r) for r in rows]


async def allowed_from_numbers(conn: Executor, org_id: uuid.UUID) -> set[str]:
    """The org's own numbers and its verified caller IDs: what outbound calls may show."""
    rows = await conn.fetch(
        """SELECT number FROM phone_numbers WHERE org_id = $1
           UNION SELECT number FROM caller_ids WHERE org_id = $1 AND verified_at IS NOT NULL""",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return {r["number"] for r in rows}
