"""Calls: list and read, scoped to the caller's organization."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from aiohttp import web

from control.api.bodies import plain
from control.app_keys import POOL, REQUEST_ID
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, allowed
from storage import accounts, calls
from storage.tenancy import tenant

MAX_PAGE = 200


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/calls", list_calls),
        web.get("/api/calls/{call_id}", get_call),
    ]


@requires(Action.CALLS_READ)
async def list_calls(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status")
    if status is not None and status not in calls.CALL_STATUSES:
        raise _bad_query("status", f"one of {', '.join(sorted(calls.CALL_STATUSES))}")
    limit = _int(q.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    org_id = principal(request).org_id
    escalated = _bool(q.get("escalated"), "escalated")
    started_from, started_before = _time(q.get("from"), "from"), _time(q.get("to"), "to")
    after = _cursor(q.get("cursor"))
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await calls.list_calls(
            conn,
            org_id,
            status=status,
            direction=q.get("direction"),
            escalated=escalated,
            started_from=started_from,
            started_before=started_before,
            after=after,
            limit=limit,
        )
    next_cursor = (
        _encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if len(rows) == limit else None
    )
    return web.json_response({"calls": plain(rows), "next_cursor": next_cursor})


@requires(Action.CALLS_READ)
async def get_call(request: web.Request) -> web.Response:
    who = principal(request)
    try:
        call_id = uuid.UUID(request.match_info["call_id"])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", "no such call") from None
    with_transcript = allowed(who.role, Action.TRANSCRIPTS_READ)
    async with tenant(request.app[POOL], who.org_id) as conn:
        call = await calls.get_call(conn, who.org_id, call_id, with_transcript=with_transcript)
        if call is None:  # another org's call is "no such call" too: nothing leaks
            raise ApiError(404, "NOT_FOUND", "no such call")
        if with_transcript:
            await accounts.record_audit(
                conn,
                org_id=who.org_id,
                actor_type=who.actor_type,
                actor_id=who.actor_id,
                action="transcript.read",
                resource_type="call",
                resource_id=str(call_id),
                request_id=request.get(REQUEST_ID),
                client_addr=request.remote,
            )
    return web.json_response(plain(call))


def _bad_query(name: str, expected: str) -> ApiError:
    return ApiError(
        400,
        "INVALID_QUERY",
        f"query parameter {name} is invalid",
        {"fields": [{"field": name, "message": f"expected {expected}"}]},
    )


def _int(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise _bad_query(name, f"a whole number from {low} to {high}")
    return int(value)


def _bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise _bad_query(name, "true or false")
    return value == "true"


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad_query(name, "an ISO 8601 time with a UTC offset") from None
    if parsed.tzinfo is None:
        raise _bad_query(name, "an ISO 8601 time with a UTC offset")
    return parsed


def _encode_cursor(started_at: datetime, call_id: uuid.UUID) -> str:
    raw = f"{started_at.isoformat()}|{call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        started, _, call_id = raw.partition("|")
        parsed = datetime.fromisoformat(started), uuid.UUID(call_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_query("cursor", "a cursor from a previous page") from None
    if parsed[0].tzinfo is None:
        raise _bad_query("cursor", "a cursor from a previous page")
    return parsed
