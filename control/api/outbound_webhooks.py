"""An org's outbound webhooks: endpoints told of its calls' events, and their delivery log.

`POST /api/webhooks {"url", "events"}` registers an endpoint and answers, once, the secret its
deliveries are signed with (control.webhook_delivery documents the signature). The log lists
each delivery with its attempts and last answer; a delivered or failed one can be replayed.
"""

from __future__ import annotations

import secrets
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import invalid_field, parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import parse_int
from control.api.transcription import SEALER
from control.app_keys import POOL, WEBHOOKS_ALLOW_PRIVATE
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from control.webhook_delivery import check_endpoint
from storage import outbound_webhooks
from storage.tenancy import tenant

Event = Literal[
    "call.started", "call.ended", "consent.decided", "escalation.raised",
    "escalation.acknowledged", "escalation.resolved", "survey.completed", "campaign.finished",
]  # fmt: skip


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/webhooks", list_endpoints),
        web.post("/api/webhooks", create_endpoint),
        web.delete("/api/webhooks/{endpoint_id}", remove_endpoint),
        web.get("/api/webhooks/{endpoint_id}/deliveries", list_deliveries),
        web.post("/api/webhooks/deliveries/{delivery_id}/replay", replay_delivery),
    ]


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000)
    events: list[Event] = Field(min_length=1, max_length=len(outbound_webhooks.EVENTS))


@doc("The organization's webhook endpoints (never their secrets)")
@requires(Action.WEBHOOKS_MANAGE)
async def list_endpoints(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await outbound_webhooks.list_endpoints(conn, org_id)
    return web.json_response({"endpoints": plain(rows)})


@doc("Register a webhook endpoint; its signing secret is answered this once", body=EndpointBody,
     status=201, errors=(422,))  # fmt: skip
@requires(Action.WEBHOOKS_MANAGE)
async def create_endpoint(request: web.Request) -> web.Response:
    body = await parse_body(request, EndpointBody)
    refused = await check_endpoint(body.url, allow_private=request.app[WEBHOOKS_ALLOW_PRIVATE])
    if refused is not None:
        raise invalid_field("url", refused)
    who = principal(request)
    secret = "whsec_" + secrets.token_urlsafe(32)
    sealed = request.app[SEALER].seal(secret, who.org_id)
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        endpoint = await outbound_webhooks.create_endpoint(
            conn, who.org_id, body.url, sorted(set(body.events)), sealed,
            f"{who.actor_type}:{who.actor_id}",
        )  # fmt: skip
        await audit.record(conn, request, "webhook.create", resource_type="webhook",
                           resource_id=str(endpoint["id"]), after=plain(endpoint))  # fmt: skip
    return web.json_response({**plain(endpoint), "secret": secret}, status=201)


@doc("Stop a webhook endpoint (its delivery log stays)", status=204, errors=(404,))
@requires(Action.WEBHOOKS_MANAGE)
async def remove_endpoint(request: web.Request) -> web.Response:
    endpoint_id = path_uuid(request, "endpoint_id", "webhook")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if not await outbound_webhooks.deactivate(conn, org_id, endpoint_id):
            raise ApiError(404, "NOT_FOUND", "no such webhook")
        await audit.record(conn, request, "webhook.remove", resource_type="webhook",
                           resource_id=str(endpoint_id))  # fmt: skip
    return web.Response(status=204)


@doc(
    "A webhook endpoint's deliveries, newest first",
    query=(Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),),
)
@requires(Action.WEBHOOKS_MANAGE)
async def list_deliveries(request: web.Request) -> web.Response:
    endpoint_id = path_uuid(request, "endpoint_id", "webhook")
    limit = parse_int(request.query.get("limit"), "limit", default=100, low=1, high=500)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await outbound_webhooks.deliveries(conn, org_id, endpoint_id, limit)
    return web.json_response({"deliveries": plain(rows)})


@doc("Send a delivered or failed delivery again", status=202, errors=(404,))
@requires(Action.WEBHOOKS_MANAGE)
async def replay_delivery(request: web.Request) -> web.Response:
    raw = request.match_info["delivery_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, "NOT_FOUND", "no such delivery")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if not await outbound_webhooks.replay(conn, org_id, int(raw)):
            raise ApiError(404, "NOT_FOUND", "no such delivery, or it is still being sent")
        await audit.record(conn, request, "webhook.replay", resource_type="webhook_delivery",
                           resource_id=raw)  # fmt: skip
    return web.json_response({"id": int(raw), "status": "pending"}, status=202)
