"""Calls: list and read, scoped to the caller's organization."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, allowed
from storage import calls
from storage.tenancy import tenant

MAX_PAGE = 200
CONSENT = ("granted", "refused", "unknown")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/calls", list_calls),
        web.get("/api/calls/{call_id}", get_call),
        web.patch("/api/calls/{call_id}", update_call),
        web.post("/api/calls/{call_id}/consent", record_consent),
    ]


class CallUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disposition: str | None = Field(default=None, max_length=100)
    disposition_notes: str | None = Field(default=None, max_length=10_000)


class ConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recording_consent: bool


@doc("Set a call's disposition or notes", body=CallUpdate, errors=(404,))
@requires(Action.CALLS_UPDATE)
async def update_call(request: web.Request) -> web.Response:
    body = await parse_body(request, CallUpdate)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(422, "VALIDATION_FAILED", "nothing to change", {"fields": []})
    return await _change_call(request, changes, "call.update")


@doc("Record recording consent verified by an agent", body=ConsentBody, errors=(404,))
@requires(Action.CONSENT_RECORD)
async def record_consent(request: web.Request) -> web.Response:
    """An agent's own verification of recording consent: it wins over any detector."""
    body = await parse_body(request, ConsentBody)
    who = principal(request)
    verifier = f"{who.actor_type}:{who.actor_id}"
    changes = {"recording_consent": body.recording_consent, "consent_verified_by": verifier}
    return await _change_call(request, changes, "call.consent")


async def _change_call(request: web.Request, changes: dict[str, Any], action: str) -> web.Response:
    call_id = call_id_of(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        result = await calls.update_call(conn, org_id, call_id, changes)
        if result is None:
            raise ApiError(404, "NOT_FOUND", "no such call")
        before, after = result
        await audit.record(
            conn, request, action, resource_type="call", resource_id=str(call_id),
            before=plain(before), after=plain(after),
        )  # fmt: skip
    return web.json_response(plain({"id": call_id, **after}))


def call_id_of(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "call_id", "call")


@doc(
    "List the organization's calls, newest first",
    query=(
        Query("status", {"type": "string"}, "call status"),
        Query("direction", {"type": "string"}, "inbound, outbound-api, outbound-dial"),
        Query("escalated", {"type": "boolean"}),
        Query("consent", {"type": "string", "enum": list(CONSENT)}, "recording consent"),
        Query("from", {"type": "string", "format": "date-time"}, "started at or after"),
        Query("to", {"type": "string", "format": "date-time"}, "started before"),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    ),
)
@requires(Action.CALLS_READ)
async def list_calls(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status")
    if status is not None and status not in calls.CALL_STATUSES:
        raise _bad_query("status", f"one of {', '.join(sorted(calls.CALL_STATUSES))}")
    limit = _int(q.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    consent = q.get("consent")
    if consent is not None and consent not in CONSENT:
        raise _bad_query("consent", "granted, refused or unknown")
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
            consent=consent,  # type: ignore[arg-type]  # checked against CONSENT above
            started_from=started_from,
            started_before=started_before,
            after=after,
            limit=limit,
        )
    next_cursor = (
        _encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if len(rows) == limit else None
    )
    return web.json_response({"calls": plain(rows), "next_cursor": next_cursor})


@doc("A call with its streams (and transcript, for roles that may read it)", errors=(404,))
@requires(Action.CALLS_READ)
async def get_call(request: web.Request) -> web.Response:
    who = principal(request)
    call_id = call_id_of(request)
    with_transcript = allowed(who.role, Action.TRANSCRIPTS_READ)
    async with tenant(request.app[POOL], who.org_id) as conn:
        call = await calls.get_call(conn, who.org_id, call_id, with_transcript=with_transcript)
        if call is None:  # another org's call is "no such call" too: nothing leaks
            raise ApiError(404, "NOT_FOUND", "no such call")
        if with_transcript:
            await audit.record(
                conn, request, "transcript.read", resource_type="call", resource_id=str(call_id)
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
