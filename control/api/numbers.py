"""The organization's phone numbers: which called numbers reach it, and where they ring."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import doc
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.numbers import E164
from control.permissions import Action
from storage import calls
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/numbers", list_numbers),
        web.post("/api/numbers", add_number),
        web.delete("/api/numbers/{number_id}", remove_number),
    ]


class NumberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(pattern=E164)
    dial_target: str | None = Field(default=None, pattern=E164)


@doc("List the organization's phone numbers")
@requires(Action.NUMBERS_READ)
async def list_numbers(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await calls.list_numbers(conn, org_id)
    return web.json_response({"numbers": plain(rows)})


@doc("Add a phone number (and where it rings)", body=NumberBody, status=201, errors=(409,))
@requires(Action.NUMBERS_MANAGE)
async def add_number(request: web.Request) -> web.Response:
    body = await parse_body(request, NumberBody)
    org_id = principal(request).org_id
    try:
        async with tenant(request.app[POOL], org_id) as conn:
            await calls.add_phone_number(conn, org_id, body.number, body.dial_target)
            await audit.record(
                conn, request, "number.add", resource_type="phone_number",
                resource_id=body.number, after=body.model_dump(),
            )  # fmt: skip
    except asyncpg.UniqueViolationError:
        # Says nothing about who has it: another org's numbers are not ours to reveal.
        raise ApiError(409, "NUMBER_TAKEN", "that number is already in use") from None
    return web.json_response(body.model_dump(), status=201)


@doc("Remove a phone number", status=204, errors=(404,))
@requires(Action.NUMBERS_MANAGE)
async def remove_number(request: web.Request) -> web.Response:
    number_id = path_uuid(request, "number_id", "number")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        removed = await calls.delete_number(conn, org_id, number_id)
        if removed is None:
            raise ApiError(404, "NOT_FOUND", "no such number")
        await audit.record(
            conn, request, "number.remove", resource_type="phone_number",
            resource_id=str(number_id), before=removed,
        )  # fmt: skip
    return web.Response(status=204)
