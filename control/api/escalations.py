"""Escalations raised on the org's calls: list, read, acknowledge, resolve, assign.

An escalation moves open → acknowledged → resolved (resolving an open one directly is fine).
Repeating an acknowledgement changes nothing; acting on a resolved escalation is a 409. Every
change is audited and goes to the supervisors' feed as `escalation_updated`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import decode_cursor, encode_cursor, parse_choice, parse_int, parse_uuid
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from storage import escalations, feed
from storage.db import Connection
from storage.tenancy import tenant

MAX_PAGE = 200
STATUSES = ("open", "acknowledged", "resolved")
SEVERITIES = ("low", "medium", "high", "critical")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/escalations", list_escalations),
        web.get("/api/escalations/{escalation_id}", get_escalation),
        web.post("/api/escalations/{escalation_id}/acknowledge", acknowledge),
        web.post("/api/escalations/{escalation_id}/resolve", resolve),
        web.post("/api/escalations/{escalation_id}/assign", assign),
    ]


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notes: str = Field(default="", max_length=10_000)


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: uuid.UUID | None
    """A member of the org, or null to unassign."""


@doc(
    "List escalations, newest first",
    query=(
        Query("status", {"type": "string", "enum": list(STATUSES)}),
        Query("severity", {"type": "string", "enum": list(SEVERITIES)}),
        Query("call_id", {"type": "string", "format": "uuid"}),
        Query("assigned_to", {"type": "string", "format": "uuid"}),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    ),
)
@requires(Action.ESCALATIONS_READ)
async def list_escalations(request: web.Request) -> web.Response:
    q = request.query
    status = parse_choice(q.get("status"), "status", STATUSES)
    severity = parse_choice(q.get("severity"), "severity", SEVERITIES)
    call_id = parse_uuid(q.get("call_id"), "call_id")
    assigned_to = parse_uuid(q.get("assigned_to"), "assigned_to")
    limit = parse_int(q.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    before = decode_cursor(q.get("cursor"))
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await escalations.list_escalations(
            conn, org_id, status=status, severity=severity, call_id=call_id,  # type: ignore[arg-type]
            assigned_to=assigned_to, before=before, limit=limit,
        )  # fmt: skip
    last = rows[-1] if len(rows) == limit else None
    next_cursor = encode_cursor(last["raised_at"], last["id"]) if last else None
    return web.json_response({"escalations": plain(rows), "next_cursor": next_cursor})


@doc("One escalation", errors=(404,))
@requires(Action.ESCALATIONS_READ)
async def get_escalation(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        row = await escalations.get_escalation(conn, org_id, _escalation_id(request))
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no such escalation")
    return web.json_response(plain(row))


@doc("Acknowledge an escalation (someone is on it)", errors=(404, 409))
@requires(Action.ESCALATIONS_HANDLE)
async def acknowledge(request: web.Request) -> web.Response:
    async def change(row: dict[str, Any], actor: str, now: datetime) -> dict[str, Any]:
        _not_resolved(row)
        if row["status"] == "acknowledged":
            return {}
        return {"status": "acknowledged", "acknowledged_by": actor, "acknowledged_at": now}

    return await _change(request, "escalation.acknowledge", change)


@doc("Resolve an escalation, with notes", body=ResolveBody, errors=(404, 409))
@requires(Action.ESCALATIONS_HANDLE)
async def resolve(request: web.Request) -> web.Response:
    body = await parse_body(request, ResolveBody)

    async def change(row: dict[str, Any], actor: str, now: datetime) -> dict[str, Any]:
        _not_resolved(row)
        changes: dict[str, Any] = {
            "status": "resolved",
            "resolved_by": actor,
            "resolved_at": now,
            "resolution_notes": body.notes or None,
        }
        if row["acknowledged_at"] is None:
            changes |= {"acknowledged_by": actor, "acknowledged_at": now}
        return changes

    return await _change(request, "escalation.resolve", change)


@doc("Assign an escalation to a member of the org (or unassign)", body=AssignBody,
     errors=(404, 409))  # fmt: skip
@requires(Action.ESCALATIONS_HANDLE)
async def assign(request: web.Request) -> web.Response:
    body = await parse_body(request, AssignBody)

    async def change(row: dict[str, Any], actor: str, now: datetime) -> dict[str, Any]:
        _not_resolved(row)
        return {} if row["assigned_to"] == body.user_id else {"assigned_to": body.user_id}

    async def check(conn: Connection, org_id: uuid.UUID) -> None:
        if body.user_id is not None and not await escalations.is_member(conn, org_id, body.user_id):
            raise ApiError(
                422, "VALIDATION_FAILED", "the body is invalid",
                {"fields": [{"field": "user_id", "message": "not a member of this org"}]},
            )  # fmt: skip

    return await _change(request, "escalation.assign", change, check)


Change = Callable[[dict[str, Any], str, datetime], Awaitable[dict[str, Any]]]
"""(the escalation's row, the actor, now) → the columns to set; empty for no change."""
Check = Callable[[Connection, uuid.UUID], Awaitable[None]]


def _not_resolved(row: dict[str, Any]) -> None:
    if row["status"] == "resolved":
        raise ApiError(409, "ESCALATION_RESOLVED", "the escalation is already resolved")


async def _change(
    request: web.Request, action: str, change: Change, check: Check | None = None
) -> web.Response:
    who = principal(request)
    escalation_id = _escalation_id(request)
    actor = f"{who.actor_type}:{who.actor_id}"
    now = datetime.now(UTC)
    async with tenant(request.app[POOL], who.org_id) as conn:
        if check is not None:
            await check(conn, who.org_id)
        row = await escalations.get_escalation(conn, who.org_id, escalation_id, for_update=True)
        if row is None:
            raise ApiError(404, "NOT_FOUND", "no such escalation")
        changes = await change(row, actor, now)
        if changes:
            await escalations.change_escalation(conn, who.org_id, escalation_id, changes)
            before = {k: row[k] for k in changes}
            await audit.record(
                conn, request, action, resource_type="escalation",
                resource_id=str(escalation_id), before=plain(before), after=plain(changes),
            )  # fmt: skip
            row |= changes
            await feed.append(
                conn, who.org_id, row["call_id"], "escalation_updated",
                {**plain(row), "action": action, "actor": actor},
            )  # fmt: skip
    return web.json_response(plain(row))


def _escalation_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "escalation_id", "escalation")
