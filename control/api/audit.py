"""The audit log, read-only: there is no route that changes or deletes it."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from control.api.bodies import plain
from control.api.openapi import Query, doc
from control.app_keys import POOL, REQUEST_ID
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from storage import accounts
from storage.db import Executor
from storage.tenancy import tenant


async def record(
    conn: Executor,
    request: web.Request,
    action: str,
    *,
    resource_type: str,
    resource_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Audits what the authenticated caller just did, in the caller's transaction."""
    who = principal(request)
    await accounts.record_audit(
        conn,
        org_id=who.org_id,
        actor_type=who.actor_type,
        actor_id=who.actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=request.get(REQUEST_ID),
        client_addr=request.remote,
        before=before,
        after=after,
    )


def routes() -> list[web.RouteDef]:
    return [web.get("/api/audit-logs", list_audit_logs)]


@doc(
    "Read the organization's audit trail, newest first",
    query=(
        Query("action", {"type": "string"}),
        Query("actor_id", {"type": "string", "format": "uuid"}),
        Query("before", {"type": "integer"}, "next_before of the previous page"),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    ),
)
@requires(Action.AUDIT_READ)
async def list_audit_logs(request: web.Request) -> web.Response:
    q = request.query
    try:
        actor_id = uuid.UUID(q["actor_id"]) if "actor_id" in q else None
        before = int(q["before"]) if "before" in q else None
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= 500 or (before is not None and not 1 <= before < 2**63):
            raise ValueError
    except ValueError:
        raise ApiError(
            400, "INVALID_QUERY", "actor_id must be a uuid, before a record id, limit 1-500"
        ) from None
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await accounts.list_audit(
            conn,
            org_id,
            action=q.get("action"),
            actor_id=actor_id,
            before_id=before,
            limit=limit,
        )
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return web.json_response({"records": plain(rows), "next_before": next_before})
