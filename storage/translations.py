"""Translations of ended calls' transcripts into their org's chosen language.

A call is claimed for translation (`claim_calls`: ended, its org translating, not translated,
not claimed in the last `stale_after_s`), its final segments translated by control.translation,
and the translations stored with the call marked done (`store`), in one transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from storage.calls import LOST_STATUS, TERMINAL_STATUSES
from storage.db import QUERY_TIMEOUT_S, Executor


async def get_language(conn: Executor, org_id: uuid.UUID) -> str | None:
    language: str | None = await conn.fetchval(
        "SELECT translate_to FROM organizations WHERE id = $1", org_id, timeout=QUERY_TIMEOUT_S
    )
    return language


async def set_language(conn: Executor, org_id: uuid.UUID, language: str | None) -> None:
    await conn.execute(
        "UPDATE organizations SET translate_to = $2 WHERE id = $1",
        org_id, language, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def claim_calls(conn: Executor, limit: int, stale_after_s: float) -> list[dict[str, Any]]:
    """Ended calls of translating orgs with something said, not yet translated: claimed."""
    rows = await conn.fetch(
        """WITH due AS MATERIALIZED (
               SELECT c.id FROM calls c JOIN organizations o ON o.id = c.org_id
               WHERE o.translate_to IS NOT NULL AND c.translated_at IS NULL
                 AND c.status = ANY($1::text[])
                 AND (c.translation_claimed_at IS NULL
                      OR c.translation_claimed_at < now() - make_interval(secs => $3))
                 AND EXISTS (SELECT 1 FROM transcript_segments s WHERE s.call_id = c.id)
               ORDER BY c.ended_at NULLS FIRST LIMIT $2 FOR UPDATE OF c SKIP LOCKED
           )
           UPDATE calls c SET translation_claimed_at = now()
           FROM due, organizations o
           WHERE c.id = due.id AND o.id = c.org_id
           RETURNING c.id, c.org_id, o.translate_to""",
        sorted(TERMINAL_STATUSES | {LOST_STATUS}), limit, stale_after_s,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def segments(conn: Executor, call_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, text FROM transcript_segments
           WHERE call_id = $1 AND is_final ORDER BY start_ms, track""",
        call_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def store(
    conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID, language: str, engine: str,
    translated: list[tuple[uuid.UUID, str]],
) -> None:  # fmt: skip
    """The call's translations, and the call marked translated (run it in a transaction)."""
    await conn.execute(
        """INSERT INTO segment_translations (segment_id, org_id, call_id, language, text, engine)
           SELECT id, $1, $2, $3, text, $4 FROM unnest($5::uuid[], $6::text[]) AS t(id, text)
           ON CONFLICT (segment_id) DO NOTHING""",
        org_id, call_id, language, engine, [i for i, _ in translated],
        [t for _, t in translated], timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    await conn.execute(
        "UPDATE calls SET translated_at = now() WHERE id = $1", call_id, timeout=QUERY_TIMEOUT_S
    )


async def of_call(conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT s.id AS segment_id, s.speaker, s.start_ms, s.text AS original,
                  t.language, t.text, t.engine
           FROM segment_translations t JOIN transcript_segments s ON s.id = t.segment_id
           WHERE t.org_id = $1 AND t.call_id = $2 ORDER BY s.start_ms, s.track""",
        org_id, call_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]
