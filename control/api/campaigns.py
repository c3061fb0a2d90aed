"""Outbound campaigns: a call flow played to a set of voice targets, under limits.

A campaign is made as a draft, given targets (by tag or by id), then started; the dialler
(control.dialler) calls its targets in their local calling hours, at most `max_concurrent` at a
time (and the org's cap over all its campaigns), within SignalWire's calls-per-second budget,
trying again after busy, no-answer and failed calls with a growing wait. Pause, resume and
cancel act at once on what has not been called; calls in flight end as they would.
"""

from __future__ import annotations

import uuid
from datetime import time
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from control.api import audit
from control.api.bodies import invalid_field, parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import decode_cursor, encode_cursor, parse_int
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, Feature, plan_includes
from storage import audio, calls, campaigns, surveys
from storage.db import Connection
from storage.tenancy import tenant

MAX_PAGE = 200
E164 = r"^\+[1-9][0-9]{6,14}$"


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/campaigns", list_campaigns),
        web.post("/api/campaigns", create_campaign),
        web.get("/api/campaigns/{campaign_id}", get_campaign),
        web.post("/api/campaigns/{campaign_id}/targets", enroll_targets),
        web.get("/api/campaigns/{campaign_id}/results", campaign_results),
        web.get("/api/org/campaign-limits", get_limits),
        web.put("/api/org/campaign-limits", put_limits),
        *(
            web.post(f"/api/campaigns/{{campaign_id}}/{action}", _mover(action))
            for action in ("start", "pause", "resume", "cancel")
        ),
    ]


class Flow(BaseModel):
    """What an answered call hears, after the org's recording disclosure: exactly one of a
    text said (`say`: in the org's voice, `/api/org/voice`), an audio file played (`play`, an
    https URL, or `play_clip`, one of the org's clips from `/api/audio`), a connection to a
    number (`connect`: an agent's line), or one of the org's surveys (`survey`)."""

    model_config = ConfigDict(extra="forbid")
    say: str | None = Field(default=None, min_length=1, max_length=4000)
    play: HttpUrl | None = None
    play_clip: uuid.UUID | None = None
    connect: str | None = Field(default=None, pattern=E164)
    survey: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one(self) -> Flow:
        given = (self.say, self.play, self.play_clip, self.connect, self.survey)
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of say, play, play_clip, connect and survey")
        if self.play is not None and self.play.scheme != "https":
            raise ValueError("play takes an https URL")
        return self


class Window(BaseModel):
    """Calling hours in each target's local time (default 8:00–21:00, every day)."""

    model_config = ConfigDict(extra="forbid")
    start: time = time(8, 0)
    end: time = time(21, 0)
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: list(range(7)), min_length=1, max_length=7
    )
    """Weekdays, Monday 0."""

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time of day, without an offset (each target's own)")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start >= self.end:
            raise ValueError("start must be before end (a window does not cross midnight)")
        return self


class Retries(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=10)
    busy_s: int = Field(default=300, ge=60, le=86_400)
    no_answer_s: int = Field(default=900, ge=60, le=86_400)
    failed_s: int = Field(default=1800, ge=60, le=86_400)


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=200)
    flow: Flow
    from_: str = Field(alias="from", pattern=E164)
    """One of the org's numbers."""
    max_concurrent: int = Field(default=5, ge=1, le=500)
    window: Window = Field(default_factory=Window)
    retries: Retries = Field(default_factory=Retries)
    on_machine: Literal["hangup", "message"] = "hangup"
    """An answering machine: hang up, or leave the flow as a message."""


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrent: int = Field(ge=1, le=1000)
    """Calls all of the org's campaigns (and bookings) may have in flight at once."""


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    target_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=10_000)


async def require_own_number(conn: Connection, org_id: uuid.UUID, number: str) -> None:
    """A campaign's or a booking's calls come from one of the org's own numbers: the answered
    call's webhook finds the org by it. 422 FROM_NOT_ALLOWED otherwise."""
    if number not in {n["number"] for n in await calls.list_numbers(conn, org_id)}:
        fields = [{"field": "from", "message": "not one of your numbers"}]
        raise ApiError(422, "FROM_NOT_ALLOWED", "from must be one of your numbers",
                       {"fields": fields})  # fmt: skip


def _campaign_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "campaign_id", "campaign")


def _view(campaign: dict[str, Any]) -> dict[str, Any]:
    view = dict(campaign)
    view["from"] = view.pop("from_number")
    view["window"] = {"start": view.pop("window_start"), "end": view.pop("window_end"),
                      "days": view.pop("window_days")}  # fmt: skip
    retry = view.pop("retry_s")
    view["retries"] = {
        "max_attempts": view.pop("max_attempts"), "busy_s": retry.get("busy"),
        "no_answer_s": retry.get("no-answer"), "failed_s": retry.get("failed"),
    }  # fmt: skip
    return dict(plain(view))


@doc(
    "List the organization's campaigns, newest first",
    query=(
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    ),
)
@requires(Action.CAMPAIGNS_READ)
async def list_campaigns(request: web.Request) -> web.Response:
    limit = parse_int(request.query.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    after = decode_cursor(request.query.get("cursor"))
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await campaigns.list_campaigns(conn, org_id, after=after, limit=limit)
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
    return web.json_response({"campaigns": [_view(r) for r in rows], "next_cursor": cursor})


@doc("Make a campaign (a draft: give it targets, then start it)", body=CampaignBody,
     status=201, errors=(403, 422))  # fmt: skip
@requires(Action.CAMPAIGNS_MANAGE)
async def create_campaign(request: web.Request) -> web.Response:
    who = principal(request)
    if not plan_includes(who.plan, Feature.CAMPAIGNS):
        raise ApiError(403, "PLAN_REQUIRED", "your plan does not include campaigns")
    body = await parse_body(request, CampaignBody)
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        await require_own_number(conn, who.org_id, body.from_)
        if body.flow.survey is not None and not await surveys.get(
            conn, who.org_id, body.flow.survey
        ):
            raise invalid_field("flow.survey", "no such survey")
        if body.flow.play_clip is not None and not await audio.get(
            conn, who.org_id, body.flow.play_clip
        ):
            raise invalid_field("flow.play_clip", "no such audio clip")
        created = await campaigns.create(conn, who.org_id, {
            "name": body.name,
            "flow": body.flow.model_dump(mode="json", exclude_none=True),
            "from_number": body.from_,
            "max_concurrent": body.max_concurrent,
            "window_start": body.window.start,
            "window_end": body.window.end,
            "window_days": sorted(set(body.window.days)),
            "max_attempts": body.retries.max_attempts,
            "retry_s": {"busy": body.retries.busy_s, "no-answer": body.retries.no_answer_s,
                        "failed": body.retries.failed_s},
            "on_machine": body.on_machine,
            "created_by": f"{who.actor_type}:{who.actor_id}",
        })  # fmt: skip
        view = _view(created)
        await audit.record(conn, request, "campaign.create", resource_type="campaign",
                           resource_id=str(created["id"]), after=view)  # fmt: skip
    return web.json_response(view, status=201)


@doc("A campaign with its progress: targets by state, and finished ones by outcome",
     errors=(404,))  # fmt: skip
@requires(Action.CAMPAIGNS_READ)
async def get_campaign(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        campaign = await campaigns.get(conn, org_id, _campaign_id(request))
    if campaign is None:
        raise ApiError(404, "NOT_FOUND", "no such campaign")
    return web.json_response(_view(campaign))


@doc("Add voice targets to a campaign: those with a tag, these ids, or (with neither) all",
     body=EnrollBody, errors=(404, 409))  # fmt: skip
@requires(Action.CAMPAIGNS_MANAGE)
async def enroll_targets(request: web.Request) -> web.Response:
    body = await parse_body(request, EnrollBody)
    campaign_id = _campaign_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        campaign = await campaigns.get(conn, org_id, campaign_id)
        if campaign is None:
            raise ApiError(404, "NOT_FOUND", "no such campaign")
        if campaign["status"] in ("cancelled", "completed"):
            raise ApiError(409, "CAMPAIGN_OVER", f"the campaign is {campaign['status']}")
        added = await campaigns.enroll(conn, org_id, campaign_id, tag=body.tag,
                                       target_ids=body.target_ids)  # fmt: skip
        await audit.record(conn, request, "campaign.enroll", resource_type="campaign",
                           resource_id=str(campaign_id),
                           after={"tag": body.tag, "added": added})  # fmt: skip
    return web.json_response({"added": added})


@doc(
    "Each target's state, attempts, last outcome and call, by number",
    query=(
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("after", {"type": "string"}, "the last number of the previous page"),
    ),
    errors=(404,),
)
@requires(Action.CAMPAIGNS_READ)
async def campaign_results(request: web.Request) -> web.Response:
    limit = parse_int(request.query.get("limit"), "limit", default=100, low=1, high=MAX_PAGE)
    campaign_id = _campaign_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        if await campaigns.get(conn, org_id, campaign_id) is None:
            raise ApiError(404, "NOT_FOUND", "no such campaign")
        rows = await campaigns.results(conn, org_id, campaign_id,
                                       after=request.query.get("after"), limit=limit)  # fmt: skip
    after = rows[-1]["number"] if len(rows) == limit else None
    return web.json_response({"targets": plain(rows), "next_after": after})


def _mover(action: campaigns.Action) -> Any:
    @doc(f"{action.capitalize()} a campaign", errors=(404, 409))
    @requires(Action.CAMPAIGNS_MANAGE)
    async def move(request: web.Request) -> web.Response:
        campaign_id = _campaign_id(request)
        org_id = principal(request).org_id
        async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
            outcome, campaign = await campaigns.move(conn, org_id, campaign_id, action)
            if campaign is None:
                raise ApiError(404, "NOT_FOUND", "no such campaign")
            if outcome == "not_allowed":
                raise ApiError(409, "CAMPAIGN_STATE",
                               f"a {campaign['status']} campaign cannot {action}")  # fmt: skip
            await audit.record(conn, request, f"campaign.{action}", resource_type="campaign",
                               resource_id=str(campaign_id))  # fmt: skip
        return web.json_response(_view(campaign))

    move.__name__ = f"{action}_campaign"
    return move


@doc("How many calls the organization's campaigns may have in flight at once")
@requires(Action.CAMPAIGNS_READ)
async def get_limits(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        cap = await campaigns.org_cap(conn, org_id)
    return web.json_response({"max_concurrent": cap})


@doc("Set how many calls the organization's campaigns may have in flight at once",
     body=LimitsBody, errors=(422,))  # fmt: skip
@requires(Action.CAMPAIGN_LIMITS_MANAGE)
async def put_limits(request: web.Request) -> web.Response:
    body = await parse_body(request, LimitsBody)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await campaigns.org_cap(conn, org_id)
        await campaigns.set_org_cap(conn, org_id, body.max_concurrent)
        await audit.record(conn, request, "org.campaign_limits.set", resource_type="org",
                           resource_id=str(org_id), before={"max_concurrent": before},
                           after={"max_concurrent": body.max_concurrent})  # fmt: skip
    return web.json_response({"max_concurrent": body.max_concurrent})
