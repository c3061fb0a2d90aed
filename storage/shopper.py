"""Secret-shopper scripts and the scores of calls against them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor, with_json


async def create_script(
    conn: Executor, org_id: uuid.UUID, name: str, moments: list[dict[str, Any]], created_by: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO shopper_scripts (org_id, name, moments, created_by)
           VALUES ($1, $2, $3, $4) RETURNING id, name, moments, created_by, created_at""",
        org_id, name, json.dumps(moments), created_by, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return with_json(row, "moments")


async def get_script(
    conn: Executor, org_id: uuid.UUID, script_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT id, name, moments, created_by, created_at FROM shopper_scripts
           WHERE org_id = $1 AND id = $2""",
        org_id, script_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else with_json(row, "moments")


async def list_scripts(conn: Executor, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, name, moments, created_by, created_at FROM shopper_scripts
           WHERE org_id = $1 ORDER BY created_at DESC""",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "moments") for r in rows]


async def call_for_scoring(
    conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The call (direction, numbers, status, start) and its final segments in call order."""
    call = await conn.fetchrow(
        """SELECT id, direction, from_number, to_number, status, started_at FROM calls
           WHERE org_id = $1 AND id = $2""",
        org_id, call_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if call is None:
        return None
    segments = await conn.fetch(
        """SELECT speaker, start_ms, text FROM transcript_segments
           WHERE org_id = $1 AND call_id = $2 AND is_final ORDER BY start_ms""",
        org_id, call_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return dict(call), [dict(s) for s in segments]


async def save_score(
    conn: Executor, org_id: uuid.UUID, script_id: uuid.UUID, call: dict[str, Any],
    agent_number: str, score: float, moments: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    """The call's score against the script (scoring it again replaces it)."""
    row = await conn.fetchrow(
        """INSERT INTO shopper_scores (org_id, script_id, call_id, agent_number, score, moments,
                                       call_started)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (script_id, call_id) DO UPDATE SET
               score = EXCLUDED.score, moments = EXCLUDED.moments, scored_at = now()
           RETURNING call_id, agent_number, score, moments, call_started, scored_at""",
        org_id, script_id, call["id"], agent_number, score, json.dumps(moments),
        call["started_at"], timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return with_json(row, "moments")


async def scores(
    conn: Executor, org_id: uuid.UUID, script_id: uuid.UUID, agent_number: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT call_id, agent_number, score, moments, call_started, scored_at
           FROM shopper_scores
           WHERE org_id = $1 AND script_id = $2 AND ($3::text IS NULL OR agent_number = $3)
           ORDER BY call_started DESC LIMIT $4""",
        org_id, script_id, agent_number, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "moments") for r in rows]


async def trend(conn: Executor, org_id: uuid.UUID, script_id: uuid.UUID) -> list[dict[str, Any]]:
    """Per agent number and week (of the calls' start), the calls scored and their mean."""
    rows = await conn.fetch(
        """SELECT agent_number, date_trunc('week', call_started) AS week, count(*) AS calls,
                  round(avg(score)::numeric, 1)::float AS mean_score
           FROM shopper_scores WHERE org_id = $1 AND script_id = $2
           GROUP BY agent_number, week ORDER BY agent_number, week""",
        org_id, script_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]
