"""Voice targets (the numbers an org calls) and its do-not-call list.

Numbers are taken in any usual spelling and stored in E.164; a target's time zone is inferred
from its number where the number's prefix has one, and must be given otherwise (campaigns call
in the target's local hours). `POST /api/voice-targets/import` takes a CSV file and reports
every rejected row with its line. Every outbound path checks the do-not-call list.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import invalid_field, parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import (
    bad_query,
    decode_cursor,
    decode_keyed_cursor,
    encode_cursor,
    parse_choice,
    parse_int,
)
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from control.targets import Target, TargetError, make_target, normalise_number, parse_csv
from storage import targets
from storage.tenancy import tenant

MAX_PAGE = 200
MAX_IMPORT_BYTES = 5 * 1024 * 1024
"""A CSV of the most rows a file may hold (control.targets.MAX_ROWS) fits well within it."""


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/voice-targets", list_targets),
        web.post("/api/voice-targets", create_target),
        web.post("/api/voice-targets/import", import_targets),
        web.get("/api/voice-targets/{target_id}", get_target),
        web.patch("/api/voice-targets/{target_id}", update_target),
        web.delete("/api/voice-targets/{target_id}", delete_target),
        web.get("/api/do-not-call", list_do_not_call),
        web.post("/api/do-not-call", add_do_not_call),
        web.delete("/api/do-not-call/{number}", remove_do_not_call),
    ]


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=3, max_length=40)
    """Any usual spelling; without a country code it is read as a US number."""
    name: str | None = Field(default=None, max_length=200)
    time_zone: str | None = Field(default=None, max_length=64)
    """An IANA name; inferred from the number when left out (where it can be)."""
    tags: list[str] = Field(default_factory=list, max_length=50)
    fields: dict[str, str] = Field(default_factory=dict)


class TargetChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    time_zone: str | None = Field(default=None, max_length=64)
    tags: list[str] | None = Field(default=None, max_length=50)
    fields: dict[str, str] | None = None


class DoNotCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=3, max_length=40)
    reason: str | None = Field(default=None, max_length=500)


def _invalid(exc: TargetError) -> ApiError:
    return invalid_field(exc.field, exc.message)


def _row(target: Target) -> dict[str, Any]:
    return {
        "number": target.number, "name": target.name, "time_zone": target.time_zone,
        "time_zone_set": target.time_zone_set, "tags": list(target.tags),
        "fields": target.fields,
    }  # fmt: skip


def _target_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "target_id", "voice target")


@doc(
    "List the organization's voice targets, newest first",
    query=(
        Query("tag", {"type": "string"}, "only targets with this tag"),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    ),
)
@requires(Action.TARGETS_READ)
async def list_targets(request: web.Request) -> web.Response:
    q = request.query
    limit = parse_int(q.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    after = decode_cursor(q.get("cursor"))
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await targets.list_targets(conn, org_id, tag=q.get("tag"), after=after,
                                          limit=limit)  # fmt: skip
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
    return web.json_response({"targets": plain(rows), "next_cursor": cursor})


@doc("Add a voice target", body=TargetBody, status=201, errors=(409, 422))
@requires(Action.TARGETS_MANAGE)
async def create_target(request: web.Request) -> web.Response:
    body = await parse_body(request, TargetBody)
    try:
        target = make_target(body.number, name=body.name, time_zone=body.time_zone,
                             tags=tuple(body.tags), fields=body.fields)  # fmt: skip
    except TargetError as exc:
        raise _invalid(exc) from None
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        [(target_id, outcome)] = await targets.save_targets(
            conn, org_id, [_row(target)], replace=False
        )
        if outcome != "added":
            raise ApiError(409, "DUPLICATE", f"{target.number} is already a voice target")
        saved = await targets.get_target(conn, org_id, target_id)
        assert saved is not None
        await audit.record(
            conn, request, "voice_target.create", resource_type="voice_target",
            resource_id=str(saved["id"]), after=plain(saved),
        )  # fmt: skip
    return web.json_response(plain(saved), status=201)


@doc(
    "Add voice targets from a CSV file (text/csv): columns number (required), name, time_zone, "
    "tags (separated by ; or |), and any other column as a custom field",
    query=(
        Query(
            "on_duplicate",
            {"type": "string", "enum": ["update", "skip"]},
            "what a number already a target gets: this row's values (default), or kept",
        ),
    ),  # fmt: skip
    errors=(413, 415, 422),
)
@requires(Action.TARGETS_MANAGE)
async def import_targets(request: web.Request) -> web.Response:
    on_duplicate = parse_choice(request.query.get("on_duplicate"), "on_duplicate",
                                ("update", "skip")) or "update"  # fmt: skip
    if request.content_type != "text/csv":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send the file as text/csv")
    text = await _read_csv(request)
    try:
        parsed = parse_csv(text)
    except TargetError as exc:
        raise _invalid(exc) from None
    org_id = principal(request).org_id
    outcomes: dict[str, int] = {"added": 0, "updated": 0, "unchanged": 0}
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if parsed.targets:
            saved = await targets.save_targets(
                conn, org_id, [_row(t) for _line, t in parsed.targets],
                replace=on_duplicate == "update",
            )  # fmt: skip
            for _id, outcome in saved:
                outcomes[outcome] += 1
        report = {
            **outcomes,
            "rejected": [{"line": r.row, "field": r.field, "message": r.message}
                         for r in parsed.rejected],
        }  # fmt: skip
        await audit.record(
            conn, request, "voice_target.import", resource_type="voice_target",
            resource_id=None, after={**outcomes, "rejected": len(parsed.rejected)},
        )  # fmt: skip
    return web.json_response(report)


async def _read_csv(request: web.Request) -> str:
    """The body, read past the app's small JSON limit up to MAX_IMPORT_BYTES (413 beyond)."""
    if (request.content_length or 0) > MAX_IMPORT_BYTES:
        raise ApiError(413, "BODY_TOO_LARGE", f"a file is at most {MAX_IMPORT_BYTES} bytes")
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_IMPORT_BYTES:
            raise ApiError(413, "BODY_TOO_LARGE", f"a file is at most {MAX_IMPORT_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")  # spreadsheets often write a byte-order mark
    except UnicodeDecodeError:
        raise ApiError(422, "VALIDATION_FAILED", "the file is not UTF-8 text") from None


@doc("A voice target", errors=(404,))
@requires(Action.TARGETS_READ)
async def get_target(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        target = await targets.get_target(conn, org_id, _target_id(request))
    if target is None:
        raise ApiError(404, "NOT_FOUND", "no such voice target")
    return web.json_response(plain(target))


@doc("Change a voice target's name, time zone, tags or fields", body=TargetChanges,
     errors=(404, 422))  # fmt: skip
@requires(Action.TARGETS_MANAGE)
async def update_target(request: web.Request) -> web.Response:
    body = await parse_body(request, TargetChanges)
    target_id = _target_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await targets.get_target(conn, org_id, target_id)
        if before is None:
            raise ApiError(404, "NOT_FOUND", "no such voice target")
        given = body.model_dump(exclude_unset=True)
        try:
            checked = make_target(
                before["number"],
                name=given.get("name", before["name"]),
                time_zone=given.get("time_zone", before["time_zone"] if before["time_zone_set"]
                                    else None),
                tags=tuple(given["tags"] if given.get("tags") is not None else before["tags"]),
                fields=given["fields"] if given.get("fields") is not None else before["fields"],
            )  # fmt: skip
        except TargetError as exc:
            raise _invalid(exc) from None
        changes = {k: v for k, v in _row(checked).items() if k != "number"}
        after = await targets.update_target(conn, org_id, target_id, changes)
        await audit.record(
            conn, request, "voice_target.update", resource_type="voice_target",
            resource_id=str(target_id), before=plain(before), after=plain(after),
        )  # fmt: skip
    return web.json_response(plain(after))


@doc("Remove a voice target", status=204, errors=(404,))
@requires(Action.TARGETS_MANAGE)
async def delete_target(request: web.Request) -> web.Response:
    target_id = _target_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if not await targets.delete_target(conn, org_id, target_id):
            raise ApiError(404, "NOT_FOUND", "no such voice target")
        await audit.record(conn, request, "voice_target.delete", resource_type="voice_target",
                           resource_id=str(target_id))  # fmt: skip
    return web.Response(status=204)


@doc(
    "The organization's do-not-call list, newest first, a page at a time",
    query=(
        Query("number", {"type": "string"}, "only this number's entry, if listed"),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    ),
)
@requires(Action.TARGETS_READ)
async def list_do_not_call(request: web.Request) -> web.Response:
    q = request.query
    limit = parse_int(q.get("limit"), "limit", default=100, low=1, high=MAX_PAGE)
    after = decode_keyed_cursor(q.get("cursor"))
    number = None
    if (asked := q.get("number")) is not None:
        try:
            number = normalise_number(asked)
        except TargetError:
            raise bad_query("number", "a phone number") from None
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await targets.list_do_not_call(conn, org_id, limit=limit, after=after, number=number)
    last = rows[-1] if len(rows) == limit else None
    cursor = encode_cursor(last["created_at"], last["number"]) if last is not None else None
    return web.json_response({"numbers": plain(rows), "next_cursor": cursor})


@doc("Put a number on the do-not-call list", body=DoNotCallBody, status=201, errors=(422,))
@requires(Action.DO_NOT_CALL_ADD)
async def add_do_not_call(request: web.Request) -> web.Response:
    body = await parse_body(request, DoNotCallBody)
    try:
        number = normalise_number(body.number)
    except TargetError as exc:
        raise _invalid(exc) from None
    who = principal(request)
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        added = await targets.add_do_not_call(
            conn, who.org_id, number, body.reason, f"{who.actor_type}:{who.actor_id}"
        )
        if added:
            await audit.record(conn, request, "do_not_call.add", resource_type="do_not_call",
                               resource_id=number)  # fmt: skip
    outcome: Literal["added", "already listed"] = "added" if added else "already listed"
    return web.json_response({"number": number, "outcome": outcome}, status=201 if added else 200)


@doc("Take a number off the do-not-call list", status=204, errors=(404,))
@requires(Action.DO_NOT_CALL_REMOVE)
async def remove_do_not_call(request: web.Request) -> web.Response:
    try:
        number = normalise_number(request.match_info["number"])
    except TargetError:
        raise ApiError(404, "NOT_FOUND", "that number is not on the list") from None
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if not await targets.remove_do_not_call(conn, org_id, number):
            raise ApiError(404, "NOT_FOUND", "that number is not on the list")
        await audit.record(conn, request, "do_not_call.remove", resource_type="do_not_call",
                           resource_id=number)  # fmt: skip
    return web.Response(status=204)
