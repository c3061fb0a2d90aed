"""What is redacted from the org's calls' words before they are stored or shown (card numbers,
dates of birth…; media.redaction finds them). Read by anyone who reads calls, changed by
admins, audited. A change applies to streams that open after it."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body
from control.api.openapi import doc
from control.app_keys import POOL
from control.auth import principal, requires
from control.permissions import Action
from media.events import REDACTION_KINDS, RedactionKind
from storage import org_redaction
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/org/redaction", get_redaction),
        web.put("/api/org/redaction", put_redaction),
    ]


class RedactionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kinds: list[RedactionKind] = Field(max_length=len(REDACTION_KINDS))
    """What to redact; an empty list redacts nothing (every word is stored as heard)."""


def _view(kinds: list[str]) -> dict[str, object]:
    return {"kinds": kinds, "available": list(REDACTION_KINDS)}


@doc("What is redacted from the organization's calls' words before they are stored or shown")
@requires(Action.CALLS_READ)
async def get_redaction(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        kinds = await org_redaction.get(conn, org_id)
    return web.json_response(_view(kinds))


@doc("Choose what is redacted from the organization's calls' words", body=RedactionBody,
     errors=(422,))  # fmt: skip
@requires(Action.REDACTION_MANAGE)
async def put_redaction(request: web.Request) -> web.Response:
    body = await parse_body(request, RedactionBody)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await org_redaction.get(conn, org_id)
        await org_redaction.put(conn, org_id, body.kinds)
        after = await org_redaction.get(conn, org_id)
        await audit.record(
            conn, request, "org.redaction.set", resource_type="org", resource_id=str(org_id),
            before={"kinds": before}, after={"kinds": after},
        )  # fmt: skip
    return web.json_response(_view(after))
