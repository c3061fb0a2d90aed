"""Consent decided outside the media plane: an agent's verification and the keypad flow.

A person's verification (`user:…`, `api_key:…`) always wins; the keypad answer is a detector
(`detector:keypad`) and, like the speech detectors, never replaces a person's verdict. Every
decision is kept as evidence in `consent_events` and goes to the supervisors' feed, whose
notification also reaches the media plane on every node (held transcripts are released or
dropped there).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from media.events import ConsentVerdict
from storage import feed
from storage.db import QUERY_TIMEOUT_S, Executor


async def disclosure_played(
    conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID, *, detector: str, text: str
) -> None:
    """Evidence that the platform played the disclosure (LaML `<Say>` or the consent
    `<Gather>` prompt) before the call's audio: once per call, however often the webhook
    is re-delivered."""
    await conn.execute(
        """INSERT INTO consent_events (id, org_id, call_id, kind, detector, offset_ms, evidence,
                                       occurred_at)
           VALUES ($1, $2, $3, 'disclosure', $4, 0, $5, now())
           ON CONFLICT (id) DO NOTHING""",
        uuid.uuid5(call_id, "disclosure_played"), org_id, call_id, detector, text,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def record_verdict(
    conn: Executor,
    org_id: uuid.UUID,
    call_id: uuid.UUID,
    verdict: ConsentVerdict,
    *,
    detector: str,
    evidence: str,
    event_id: uuid.UUID | None = None,
) -> bool:
    """A detector's verdict reached outside the media plane (the keypad flow); returns whether
    it became the call's verdict. Run it inside the org's tenant transaction. Evidence with an
    `event_id` already stored is not stored (or fed) again."""
    now = datetime.now(UTC)
    applied = await apply_detected_verdict(conn, org_id, call_id, verdict, detector, now)
    await add_evidence(
        conn, org_id, call_id, verdict, detector=detector, evidence=evidence, actor=None,
        applied=applied, at=now, event_id=event_id,
    )  # fmt: skip
    return applied


async def apply_detected_verdict(
    conn: Executor,
    org_id: uuid.UUID,
    call_id: uuid.UUID,
    verdict: ConsentVerdict,
    detector: str,
    at: datetime,
) -> bool:
    """Makes a detector's verdict the call's (`consent_verified_by` "detector:<name>"); returns
    whether it did. A person's verdict ("user:…", "api_key:…") is never replaced, nor a newer
    one by an older one (a journal replay)."""
    applied = await conn.fetchval(
        """UPDATE calls SET recording_consent = ($3 = 'granted'),
                            consent_verified_by = 'detector:' || $4,
                            consent_decided_at = $5, updated_at = now()
           WHERE org_id = $1 AND id = $2
             AND (consent_verified_by IS NULL OR consent_verified_by LIKE 'detector:%')
             AND (consent_decided_at IS NULL OR consent_decided_at <= $5)
           RETURNING true""",
        org_id, call_id, verdict, detector, at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return bool(applied)


async def add_evidence(
    conn: Executor,
    org_id: uuid.UUID,
    call_id: uuid.UUID,
    verdict: ConsentVerdict,
    *,
    detector: str,
    evidence: str,
    actor: str | None,
    applied: bool,
    at: datetime,
    event_id: uuid.UUID | None = None,
) -> None:
    """The evidence row and its feed entry for a verdict decided by a person (`actor`) or a
    detector outside the media plane."""
    kind = "manual" if actor else "answer"
    event_id = event_id or uuid.uuid4()
    stored = await conn.fetchval(
        """INSERT INTO consent_events (id, org_id, call_id, kind, detector, verdict, evidence,
                                       actor, occurred_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (id) DO NOTHING RETURNING true""",
        event_id, org_id, call_id, kind, detector, verdict, evidence, actor, at,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if not stored:
        return
    payload: dict[str, Any] = {
        "type": "ConsentEvidence",
        "event_id": str(event_id),
        "call_id": str(call_id),
        "kind": kind,
        "detector": detector,
        "verdict": verdict,
        "evidence": evidence,
        "actor": actor,
        "applied": applied,
        "by_person": actor is not None,
        "occurred_at": at.isoformat(),
    }
    await feed.append(conn, org_id, call_id, "consent", payload, event_id)
