"""Voice targets (the numbers an org calls) and its do-not-call list."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor, with_json

_COLUMNS = "id, number, name, time_zone, time_zone_set, tags, fields, created_at, updated_at"


async def list_targets(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    tag: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The org's targets, newest first; `after` is the (created_at, id) of the last one seen."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM voice_targets
            WHERE org_id = $1 AND ($2::text IS NULL OR tags @> ARRAY[$2])
              AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $5""",
        org_id, tag, after[0] if after else None, after[1] if after else None, limit,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "fields") for r in rows]


async def get_target(
    conn: Executor, org_id: uuid.UUID, target_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM voice_targets WHERE org_id = $1 AND id = $2",
        org_id, target_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else with_json(row, "fields")


async def save_targets(
    conn: Executor, org_id: uuid.UUID, targets: Sequence[dict[str, Any]], *, replace: bool
) -> list[tuple[uuid.UUID, str]]:
    """Adds targets (dicts with number, name, time_zone, time_zone_set, tags, fields) in one
    statement. A number the org already has is replaced when `replace`, else left as it is.
    Returns (id, "added" | "updated" | "unchanged") per target, in order."""
    rows = await conn.fetch(
        f"""WITH given AS (
                SELECT * FROM ROWS FROM (jsonb_to_recordset($2::jsonb)
                    AS (number text, name text, time_zone text, time_zone_set boolean,
                        tags text[], fields jsonb)) WITH ORDINALITY
            ),
            saved AS (
                INSERT INTO voice_targets (org_id, number, name, time_zone, time_zone_set,
                                           tags, fields)
                SELECT $1, number, name, time_zone, time_zone_set, tags, fields
                FROM given ORDER BY ordinality
                ON CONFLICT (org_id, number) DO UPDATE SET
                    name = EXCLUDED.name, time_zone = EXCLUDED.time_zone,
                    time_zone_set = EXCLUDED.time_zone_set, tags = EXCLUDED.tags,
                    fields = EXCLUDED.fields, updated_at = now()
                WHERE {"true" if replace else "false"}
                RETURNING id, number, (xmax = 0) AS added
            )
            -- A row the statement adds is not in its snapshot of voice_targets: its id comes
            -- from RETURNING; a row left unchanged is.
            SELECT COALESCE(saved.id, v.id) AS id,
                   CASE WHEN saved.number IS NULL THEN 'unchanged'
                        WHEN saved.added THEN 'added' ELSE 'updated' END AS outcome
            FROM given LEFT JOIN saved USING (number)
                 LEFT JOIN voice_targets v ON v.org_id = $1 AND v.number = given.number
            ORDER BY ordinality""",
        org_id, json.dumps(list(targets)), timeout=QUERY_TIMEOUT_S * 4,
    )  # fmt: skip
    return [(r["id"], r["outcome"]) for r in rows]


async def update_target(
    conn: Executor, org_id: uuid.UUID, target_id: uuid.UUID, changes: dict[str, Any]
) -> dict[str, Any] | None:
    """Applies `changes` (columns chosen by the caller, never by a client)."""
    if "fields" in changes:
        changes = {**changes, "fields": json.dumps(changes["fields"])}
    columns = list(changes)
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
    row = await conn.fetchrow(
        f"""UPDATE voice_targets SET {assignments}, updated_at = now()
            WHERE org_id = $1 AND id = $2 RETURNING {_COLUMNS}""",
        org_id, target_id, *changes.values(), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else with_json(row, "fields")


async def delete_target(conn: Executor, org_id: uuid.UUID, target_id: uuid.UUID) -> bool:
    status: str = await conn.execute(
        "DELETE FROM voice_targets WHERE org_id = $1 AND id = $2",
        org_id, target_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "DELETE 0"


# --- do not call ---------------------------------------------------------------------------


async def list_do_not_call(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, str] | None = None,
    number: str | None = None,
) -> list[dict[str, Any]]:
    """The org's list, newest first, a page at a time (`after`: the last row's created_at and
    number), or the one entry for `number`."""
    at, last = after if after is not None else (None, None)
    rows = await conn.fetch(
        """SELECT number, reason, added_by, created_at FROM do_not_call
           WHERE org_id = $1 AND ($2::text IS NULL OR number = $2)
             AND ($3::timestamptz IS NULL OR created_at < $3
                  OR (created_at = $3 AND number > $4))
           ORDER BY created_at DESC, number LIMIT $5""",
        org_id, number, at, last, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def add_do_not_call(
    conn: Executor, org_id: uuid.UUID, number: str, reason: str | None, added_by: str
) -> bool:
    """False when the number was on the list already."""
    added: bool = await conn.fetchval(
        """WITH row AS (
               INSERT INTO do_not_call (org_id, number, reason, added_by)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM row)""",
        org_id, number, reason, added_by, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return added


async def remove_do_not_call(conn: Executor, org_id: uuid.UUID, number: str) -> bool:
    status: str = await conn.execute(
        "DELETE FROM do_not_call WHERE org_id = $1 AND number = $2",
        org_id, number, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "DELETE 0"


async def on_do_not_call(conn: Executor, org_id: uuid.UUID, numbers: Iterable[str]) -> set[str]:
    """Those of `numbers` the org must not call."""
    rows = await conn.fetch(
        "SELECT number FROM do_not_call WHERE org_id = $1 AND number = ANY($2::text[])",
        org_id, list(numbers), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return {r["number"] for r in rows}
