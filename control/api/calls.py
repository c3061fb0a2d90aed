"""Calls: list and read, scoped to the caller's organization."""

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
from control.api.query import (
    bad_query,
    decode_cursor,
    encode_cursor,
    parse_bool,
    parse_int,
    parse_time,
)
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, allowed
from media.events import ConsentVerdict
from storage import calls, consent
from storage.db import Connection
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
    now = datetime.now(UTC)
    changes = {
        "recording_consent": body.recording_consent,
        "consent_verified_by": verifier,
        "consent_decided_at": now,
    }
    verdict: ConsentVerdict = "granted" if body.recording_consent else "refused"

    async def evidence(conn: Connection) -> None:
        await consent.add_evidence(
            conn, who.org_id, call_id_of(request), verdict, detector="agent",
            evidence="verified by an agent", actor=verifier, applied=True, at=now,
        )  # fmt: skip

    return await _change_call(request, changes, "call.consent", also=evidence)


async def _change_call(
    request: web.Request,
    changes: dict[str, Any],
    action: str,
    also: Callable[[Connection], Awaitable[None]] | None = None,
) -> web.Response:
    call_id = call_id_of(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        result = await calls.update_call(conn, org_id, call_id, changes)
        if result is None:
            raise ApiError(404, "NOT_FOUND", "no such call")
        if also is not None:
            await also(conn)
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
    if status is not None and status not in calls.STORED_STATUSES:
        raise bad_query("status", f"one of {', '.join(sorted(calls.STORED_STATUSES))}")
    limit = parse_int(q.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    consent = q.get("consent")
    if consent is not None and consent not in CONSENT:
        raise bad_query("consent", "granted, refused or unknown")
    org_id = principal(request).org_id
    escalated = parse_bool(q.get("escalated"), "escalated")
    started_from, started_before = parse_time(q.get("from"), "from"), parse_time(q.get("to"), "to")
    after = decode_cursor(q.get("cursor"))
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
        encode_cursor(rows[-1]["started_at"], rows[-1]["id"]) if len(rows) == limit else None
    )
    return web.json_response({"calls": plain(rows), "next_cursor": next_cursor})


@doc(
    "A call with its streams, consent evidence, escalations and recordings (and transcript, for "
    "roles that may read it)",
    errors=(404,),
)
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
