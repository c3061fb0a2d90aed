"""Phone surveys, their answers per call, and their results."""

from __future__ import annotations

import json
import uuid
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor, with_json

_COLUMNS = "id, name, questions, closing, created_by, created_at"


async def create(
    conn: Executor, org_id: uuid.UUID, name: str, questions: list[dict[str, Any]],
    closing: str, created_by: str,
) -> dict[str, Any]:  # fmt: skip
    row = await conn.fetchrow(
        f"""INSERT INTO surveys (org_id, name, questions, closing, created_by)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
        org_id, name, json.dumps(questions), closing, created_by, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return with_json(row, "questions")


async def get(conn: Executor, org_id: uuid.UUID, survey_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM surveys WHERE org_id = $1 AND id = $2",
        org_id, survey_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else with_json(row, "questions")


async def list_surveys(conn: Executor, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM surveys WHERE org_id = $1 ORDER BY created_at DESC",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "questions") for r in rows]


async def attach_to_number(
    conn: Executor, org_id: uuid.UUID, number: str, survey_id: uuid.UUID | None
) -> bool:
    """Inbound calls to the org's `number` take the survey (None: none); False when the org
    has no such number."""
    status: str = await conn.execute(
        "UPDATE phone_numbers SET survey_id = $3 WHERE org_id = $1 AND number = $2",
        org_id, number, survey_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "UPDATE 0"


async def record_answer(
    conn: Executor, org_id: uuid.UUID, survey_id: uuid.UUID, call_id: uuid.UUID, question: int,
    *, value: str | None, digits: str | None, speech: str | None, confidence: float | None,
) -> None:  # fmt: skip
    """One answer; a repeated webhook keeps the first."""
    await conn.execute(
        """INSERT INTO survey_answers (org_id, survey_id, call_id, question, value, digits,
                                       speech, confidence)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (call_id, survey_id, question) DO NOTHING""",
        org_id, survey_id, call_id, question, value, digits, speech, confidence,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def results(conn: Executor, org_id: uuid.UUID, survey_id: uuid.UUID) -> dict[str, Any]:
    """Per question, how many calls answered, and the answers' values counted (spoken answers
    are counted, not listed: `answers` has them)."""
    rows = await conn.fetch(
        """SELECT question, value, count(*) AS n FROM survey_answers
           WHERE org_id = $1 AND survey_id = $2 GROUP BY question, value""",
        org_id, survey_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    calls = await conn.fetchval(
        "SELECT count(DISTINCT call_id) FROM survey_answers WHERE org_id = $1 AND survey_id = $2",
        org_id, survey_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    per_question: dict[int, dict[str, Any]] = {}
    for r in rows:
        q = per_question.setdefault(r["question"], {"answered": 0, "unreadable": 0, "values": {}})
        if r["value"] is None:
            q["unreadable"] += r["n"]
        else:
            q["answered"] += r["n"]
            q["values"][r["value"]] = r["n"]
    return {"calls": calls, "questions": per_question}


async def answers(
    conn: Executor, org_id: uuid.UUID, survey_id: uuid.UUID, *, limit: int, with_speech: bool
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT call_id, question, value, digits, speech, confidence, answered_at
           FROM survey_answers WHERE org_id = $1 AND survey_id = $2
           ORDER BY answered_at DESC, question LIMIT $3""",
        org_id, survey_id, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    found = [dict(r) for r in rows]
    if not with_speech:
        for a in found:
            a.pop("speech")
    return found
