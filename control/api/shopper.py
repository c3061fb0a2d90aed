"""Secret shopper: scripts of the moments a call should have (and must not), and calls scored
against them from their transcripts (control.shopper), with a trend per line tested.

A shopper call is placed (`POST /api/calls`, a campaign) or received like any other, and
transcribed live; once it has ended, `POST /api/shopper-scripts/{id}/score {"call_id"}` scores
it: which moments were met, where in the call, with the words that matched.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import bad_query, parse_int
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from control.shopper import score_call
from control.targets import TargetError, normalise_number
from storage import calls, shopper
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/shopper-scripts", list_scripts),
        web.post("/api/shopper-scripts", create_script),
        web.get("/api/shopper-scripts/{script_id}", get_script),
        web.post("/api/shopper-scripts/{script_id}/score", score),
        web.get("/api/shopper-scripts/{script_id}/scores", list_scores),
        web.get("/api/shopper-scripts/{script_id}/trend", trend),
    ]


class Moment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    kind: Literal["expected", "forbidden"] = "expected"
    phrases: list[str] = Field(min_length=1, max_length=20)
    """Ways of saying it; a segment close to any one meets the moment."""
    speaker: Literal["agent", "caller", "any"] = "agent"
    weight: float = Field(default=1.0, gt=0, le=100)


class ScriptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    moments: list[Moment] = Field(min_length=1, max_length=50)


class ScoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: uuid.UUID


def _script_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "script_id", "shopper script")


@doc("The organization's secret-shopper scripts")
@requires(Action.SHOPPER_READ)
async def list_scripts(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await shopper.list_scripts(conn, org_id)
    return web.json_response({"scripts": plain(rows)})


@doc("Write a secret-shopper script", body=ScriptBody, status=201, errors=(422,))
@requires(Action.SHOPPER_MANAGE)
async def create_script(request: web.Request) -> web.Response:
    body = await parse_body(request, ScriptBody)
    who = principal(request)
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        script = await shopper.create_script(
            conn, who.org_id, body.name, [m.model_dump() for m in body.moments],
            f"{who.actor_type}:{who.actor_id}",
        )  # fmt: skip
        await audit.record(conn, request, "shopper_script.create", resource_type="shopper_script",
                           resource_id=str(script["id"]), after=plain(script))  # fmt: skip
    return web.json_response(plain(script), status=201)


@doc("A secret-shopper script", errors=(404,))
@requires(Action.SHOPPER_READ)
async def get_script(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        script = await shopper.get_script(conn, org_id, _script_id(request))
    if script is None:
        raise ApiError(404, "NOT_FOUND", "no such shopper script")
    return web.json_response(plain(script))


@doc("Score an ended call against the script, from its transcript", body=ScoreBody,
     errors=(404, 409))  # fmt: skip
@requires(Action.SHOPPER_MANAGE)
async def score(request: web.Request) -> web.Response:
    body = await parse_body(request, ScoreBody)
    script_id = _script_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        script = await shopper.get_script(conn, org_id, script_id)
        if script is None:
            raise ApiError(404, "NOT_FOUND", "no such shopper script")
        found = await shopper.call_for_scoring(conn, org_id, body.call_id)
        if found is None:
            raise ApiError(404, "NOT_FOUND", "no such call")
        call, segments = found
        if call["status"] not in calls.TERMINAL_STATUSES:
            raise ApiError(409, "CALL_NOT_ENDED", "a call is scored once it has ended")
        value, moments = score_call(script["moments"], segments)
        # The line tested: the number the shopper called, or called us from.
        line = (
            call["to_number"] if call["direction"].startswith("outbound") else call["from_number"]
        )
        saved = await shopper.save_score(conn, org_id, script_id, call, line, value,
                                         [asdict(m) for m in moments])  # fmt: skip
        await audit.record(conn, request, "shopper.score", resource_type="call",
                           resource_id=str(body.call_id),
                           after={"script_id": str(script_id), "score": value})  # fmt: skip
    return web.json_response(plain(saved))


@doc(
    "The calls scored against the script, newest first",
    query=(
        Query("agent_number", {"type": "string"}, "only calls to this line"),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    ),
    errors=(404,),
)
@requires(Action.SHOPPER_READ)
async def list_scores(request: web.Request) -> web.Response:
    limit = parse_int(request.query.get("limit"), "limit", default=100, low=1, high=500)
    line = request.query.get("agent_number")
    if line is not None:
        try:
            # Any spelling; a "+" left unencoded in the URL arrives as a space.
            line = normalise_number(line)
        except TargetError:
            raise bad_query("agent_number", "a phone number") from None
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        if await shopper.get_script(conn, org_id, _script_id(request)) is None:
            raise ApiError(404, "NOT_FOUND", "no such shopper script")
        rows = await shopper.scores(conn, org_id, _script_id(request), line, limit)
    return web.json_response({"scores": plain(rows)})


@doc("Per line tested and week, the calls scored and their mean score", errors=(404,))
@requires(Action.SHOPPER_READ)
async def trend(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        if await shopper.get_script(conn, org_id, _script_id(request)) is None:
            raise ApiError(404, "NOT_FOUND", "no such shopper script")
        rows = await shopper.trend(conn, org_id, _script_id(request))
    return web.json_response({"trend": plain(rows)})
