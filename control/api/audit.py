"""The audit log, read-only: there is no route that changes or deletes it."""

from __future__ import annotations

import uuid

from aiohttp import web

from control.api.bodies import plain
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from storage import accounts
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [web.get("/api/audit-logs", list_audit_logs)]


@requires(Action.AUDIT_READ)
async def list_audit_logs(request: web.Request) -> web.Response:
    q = request.query
    try:
        actor_id = uuid.UUID(q["actor_id"]) if "actor_id" in q else None
        before = int(q["before"]) if "before" in q else None
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= 500:
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
