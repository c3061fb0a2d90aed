"""Caller IDs: numbers an org does not own on SignalWire but may call from, once SignalWire
has verified them. Adding one makes SignalWire call the number and read a six-digit code;
submitting the code verifies it."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import doc
from control.api.outbound import signalwire_client, unavailable
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.numbers import E164
from control.permissions import Action
from control.signalwire import SignalWireRejected, SignalWireUnavailable
from storage import calls
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/caller-ids", list_caller_ids),
        web.post("/api/caller-ids", add_caller_id),
        web.post("/api/caller-ids/{caller_id}/verify", verify_caller_id),
        web.delete("/api/caller-ids/{caller_id}", remove_caller_id),
    ]


class CallerIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(pattern=E164)
    name: str | None = Field(default=None, max_length=100)


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[0-9]{6}$")


@doc("List caller IDs and whether each is verified")
@requires(Action.NUMBERS_READ)
async def list_caller_ids(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await calls.list_caller_ids(conn, org_id)
    return web.json_response({"caller_ids": plain(rows)})


@doc("Add a caller ID: SignalWire calls it and reads a code", body=CallerIdBody, status=201,
     errors=(409, 503))  # fmt: skip
@requires(Action.NUMBERS_MANAGE)
async def add_caller_id(request: web.Request) -> web.Response:
    body = await parse_body(request, CallerIdBody)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        exists = await conn.fetchval(
            "SELECT true FROM caller_ids WHERE org_id = $1 AND number = $2", org_id, body.number
        )
    if exists:
        raise ApiError(409, "CALLER_ID_EXISTS", "that caller ID is already added")
    client = signalwire_client(request)
    try:
        created = await client.create_verified_caller_id(body.number, body.name)
    except SignalWireRejected as exc:
        raise ApiError(422, "SIGNALWIRE_REJECTED", exc.message,
                       {"signalwire_code": exc.code}) from None  # fmt: skip
    except SignalWireUnavailable as exc:
        raise unavailable(exc) from None
    try:
        async with tenant(request.app[POOL], org_id) as conn:
            row_id = await conn.fetchval(
                """INSERT INTO caller_ids (org_id, number, name, signalwire_id, verified_at)
                   VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END) RETURNING id""",
                org_id, body.number, body.name, created.id, created.verified,
            )  # fmt: skip
            await audit.record(conn, request, "caller_id.add", resource_type="caller_id",
                               resource_id=str(row_id), after=body.model_dump())  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ApiError(409, "CALLER_ID_EXISTS", "that caller ID is already added") from None
    return web.json_response(
        plain({"id": row_id, "number": body.number, "verified": created.verified}), status=201
    )


@doc("Submit the code SignalWire read out", body=VerifyBody, errors=(404, 503))
@requires(Action.NUMBERS_MANAGE)
async def verify_caller_id(request: web.Request) -> web.Response:
    body = await parse_body(request, VerifyBody)
    row_id, org_id = path_uuid(request, "caller_id", "caller ID"), principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        row = await conn.fetchrow(
            "SELECT signalwire_id, number FROM caller_ids WHERE org_id = $1 AND id = $2",
            org_id, row_id,
        )  # fmt: skip
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no such caller ID")
    client = signalwire_client(request)
    try:
        result = await client.submit_caller_id_code(row["signalwire_id"], body.code)
    except SignalWireRejected as exc:
        raise ApiError(422, "CODE_REJECTED", "SignalWire did not accept that code",
                       {"signalwire_code": exc.code}) from None  # fmt: skip
    except SignalWireUnavailable as exc:
        raise unavailable(exc) from None
    async with tenant(request.app[POOL], org_id) as conn:
        if result.verified:
            await conn.execute(
                "UPDATE caller_ids SET verified_at = COALESCE(verified_at, now()) "
                "WHERE org_id = $1 AND id = $2",
                org_id, row_id,
            )  # fmt: skip
        await audit.record(
            conn, request, "caller_id.verify", resource_type="caller_id",
            resource_id=str(row_id), after={"verified": result.verified},
        )  # fmt: skip
    return web.json_response(
        {"id": str(row_id), "number": row["number"], "verified": result.verified}
    )


@doc("Remove a caller ID", status=204, errors=(404, 503))
@requires(Action.NUMBERS_MANAGE)
async def remove_caller_id(request: web.Request) -> web.Response:
    row_id, org_id = path_uuid(request, "caller_id", "caller ID"), principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        row = await conn.fetchrow(
            "DELETE FROM caller_ids WHERE org_id = $1 AND id = $2 RETURNING signalwire_id, number",
            org_id, row_id,
        )  # fmt: skip
        if row is None:
            raise ApiError(404, "NOT_FOUND", "no such caller ID")
        client = signalwire_client(request)  # its 503 rolls our delete back too
        try:
            await client.delete_caller_id(row["signalwire_id"])
        except SignalWireRejected:
            pass  # already gone on SignalWire's side: ours goes too
        except SignalWireUnavailable as exc:
            raise unavailable(exc) from None  # rolls our delete back: retry later
        await audit.record(conn, request, "caller_id.remove", resource_type="caller_id",
                           resource_id=str(row_id), before={"number": row["number"]})  # fmt: skip
    return web.Response(status=204)
