"""Escalation rules (per org) and the escalations raised on calls, with their handling."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from storage.db import QUERY_TIMEOUT_S, Executor

RULE_COLUMNS = """id, name, kind, severity, cooldown_s, params, enabled, notify, created_at,
    updated_at"""
ESCALATION_COLUMNS = """e.id, e.call_id, e.rule_id, e.rule_name, e.kind, e.severity, e.track,
    e.start_ms, e.end_ms, e.evidence, e.segment_id, e.raised_at, e.status, e.assigned_to,
    e.acknowledged_by, e.acknowledged_at, e.resolved_by, e.resolved_at, e.resolution_notes"""
Status = Literal["open", "acknowledged", "resolved"]


def _rule(row: Any) -> dict[str, Any]:
    rule = dict(row)
    rule["params"] = json.loads(rule["params"])
    return rule


async def list_rules(
    conn: Executor, org_id: uuid.UUID, *, enabled_only: bool = False
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {RULE_COLUMNS} FROM escalation_rules
            WHERE org_id = $1 AND (enabled OR NOT $2) ORDER BY name""",
        org_id, enabled_only, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [_rule(r) for r in rows]


async def get_rule(conn: Executor, org_id: uuid.UUID, rule_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {RULE_COLUMNS} FROM escalation_rules WHERE org_id = $1 AND id = $2 FOR UPDATE",
        org_id, rule_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else _rule(row)


async def create_rule(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    name: str,
    kind: str,
    severity: str,
    cooldown_s: int,
    params: dict[str, Any],
    enabled: bool = True,
    notify: list[str] | None = None,
) -> dict[str, Any]:
    """Raises asyncpg.UniqueViolationError when the org already has a rule of that name.
    `notify`: addresses emailed when the rule raises an escalation."""
    row = await conn.fetchrow(
        f"""INSERT INTO escalation_rules (org_id, name, kind, severity, cooldown_s, params,
                                          enabled, notify)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {RULE_COLUMNS}""",
        org_id, name, kind, severity, cooldown_s, json.dumps(params), enabled, notify or [],
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return _rule(row)


async def update_rule(
    conn: Executor, org_id: uuid.UUID, rule_id: uuid.UUID, rule: dict[str, Any]
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""UPDATE escalation_rules
            SET name = $3, kind = $4, severity = $5, cooldown_s = $6, params = $7, enabled = $8,
                notify = $9, updated_at = now()
            WHERE org_id = $1 AND id = $2 RETURNING {RULE_COLUMNS}""",
        org_id, rule_id, rule["name"], rule["kind"], rule["severity"], rule["cooldown_s"],
        json.dumps(rule["params"]), rule["enabled"], rule.get("notify") or [],
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else _rule(row)


async def delete_rule(conn: Executor, org_id: uuid.UUID, rule_id: uuid.UUID) -> bool:
    result = await conn.execute(
        "DELETE FROM escalation_rules WHERE org_id = $1 AND id = $2",
        org_id, rule_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return result != "DELETE 0"


async def list_escalations(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    status: Status | None = None,
    severity: str | None = None,
    call_id: uuid.UUID | None = None,
    assigned_to: uuid.UUID | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first; `before` is the (raised_at, id) of the last row of the previous page."""
    rows = await conn.fetch(
        f"""SELECT {ESCALATION_COLUMNS}, c.call_sid, c.from_number, c.to_number
            FROM escalations e JOIN calls c ON c.id = e.call_id
            WHERE e.org_id = $1
              AND ($2::text IS NULL OR e.status = $2)
              AND ($3::text IS NULL OR e.severity = $3)
              AND ($4::uuid IS NULL OR e.call_id = $4)
              AND ($5::uuid IS NULL OR e.assigned_to = $5)
              AND ($6::timestamptz IS NULL OR (e.raised_at, e.id) < ($6, $7::uuid))
            ORDER BY e.raised_at DESC, e.id DESC
            LIMIT $8""",
        org_id, status, severity, call_id, assigned_to,
        before[0] if before else None, before[1] if before else None, limit,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def get_escalation(
    conn: Executor, org_id: uuid.UUID, escalation_id: uuid.UUID, *, for_update: bool = False
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""SELECT {ESCALATION_COLUMNS}, c.call_sid, c.from_number, c.to_number
            FROM escalations e JOIN calls c ON c.id = e.call_id
            WHERE e.org_id = $1 AND e.id = $2 {"FOR UPDATE OF e" if for_update else ""}""",
        org_id, escalation_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else dict(row)


async def change_escalation(
    conn: Executor, org_id: uuid.UUID, escalation_id: uuid.UUID, changes: dict[str, Any]
) -> None:
    """Sets the given columns (chosen by the caller, never by a client)."""
    columns = sorted(changes)
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
    await conn.execute(
        f"UPDATE escalations SET {assignments} WHERE org_id = $1 AND id = $2",
        org_id, escalation_id, *(changes[c] for c in columns), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def is_member(conn: Executor, org_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM memberships WHERE org_id = $1 AND user_id = $2",
        org_id, user_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return bool(found)


async def seed_default_rules(
    conn: Executor, org_id: uuid.UUID, defaults: list[dict[str, Any]]
) -> bool:
    """Adds `defaults` the first time the org's rules are needed; True when it did. Run it
    in a transaction, so the org is marked seeded only with its rules in place."""
    seeded = await conn.fetchval(
        """UPDATE organizations SET rules_seeded = true WHERE id = $1 AND NOT rules_seeded
           RETURNING true""",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if not seeded:
        return False
    for rule in defaults:
        await create_rule(conn, org_id, **rule)
    return True
