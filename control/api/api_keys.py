"""API keys of the organization: listed by prefix, created (the key shown once), revoked."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control import credentials
from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import doc
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, Feature, Role, plan_includes
from storage import accounts
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/api-keys", list_keys),
        web.post("/api/api-keys", create_key),
        web.delete("/api/api-keys/{key_id}", revoke_key),
    ]


class NewKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    role: Role


@doc("List API keys (prefix, role, last use; never the key)")
@requires(Action.API_KEYS_MANAGE)
async def list_keys(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await accounts.list_api_keys(conn, org_id)
    return web.json_response({"api_keys": plain(rows)})


@doc("Create an API key (shown once)", body=NewKeyBody, status=201)
@requires(Action.API_KEYS_MANAGE)
async def create_key(request: web.Request) -> web.Response:
    who = principal(request)
    if not plan_includes(who.plan, Feature.API_KEYS):
        raise ApiError(403, "PLAN_REQUIRED", "your plan does not include API keys")
    body = await parse_body(request, NewKeyBody)
    if body.role == "owner" and who.role != "owner":
        raise ApiError(403, "OWNER_ONLY", "only an owner can create an owner key")
    new = credentials.new_api_key()
    async with tenant(request.app[POOL], who.org_id) as conn:
        key_id = await accounts.create_api_key(
            conn, org_id=who.org_id, name=body.name, prefix=new.prefix, key_hash=new.key_hash,
            role=body.role, created_by=who.actor_id if who.actor_type == "user" else None,
        )  # fmt: skip
        after = {"name": body.name, "role": body.role, "prefix": new.prefix}
        await audit.record(
            conn, request, "api_key.create", resource_type="api_key", resource_id=str(key_id),
            after=after,
        )  # fmt: skip
    return web.json_response(plain({"id": key_id, **after, "key": new.key}), status=201)


@doc("Revoke an API key", status=204, errors=(404,))
@requires(Action.API_KEYS_MANAGE)
async def revoke_key(request: web.Request) -> web.Response:
    key_id = path_uuid(request, "key_id", "API key")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        if not await accounts.revoke_api_key(conn, org_id, key_id):
            raise ApiError(404, "NOT_FOUND", "no such live API key")
        await audit.record(
            conn, request, "api_key.revoke", resource_type="api_key", resource_id=str(key_id)
        )
    return web.Response(status=204)
