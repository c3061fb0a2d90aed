"""The org's transcript translation (control.translation): which language, and a call's
translated transcript."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import invalid_field, parse_body, plain
from control.api.calls import call_id_of
from control.api.openapi import doc
from control.app_keys import POOL, TRANSLATION_ENABLED
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from storage import calls, translations
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/org/translation", get_translation),
        web.put("/api/org/translation", put_translation),
        web.get("/api/calls/{call_id}/translation", call_translation),
    ]


class TranslationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: str | None = Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    """An IETF language tag ("es", "pt-BR"); null stops translating."""


@doc("Which language the organization's calls are translated into (null: none)")
@requires(Action.CALLS_READ)
async def get_translation(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        language = await translations.get_language(conn, org_id)
    return web.json_response({"language": language, "available": request.app[TRANSLATION_ENABLED]})


@doc("Translate the organization's calls into a language after each call (null: stop)",
     body=TranslationBody, errors=(422,))  # fmt: skip
@requires(Action.TRANSLATION_MANAGE)
async def put_translation(request: web.Request) -> web.Response:
    body = await parse_body(request, TranslationBody)
    if body.language is not None and not request.app[TRANSLATION_ENABLED]:
        raise invalid_field("language", "this server translates nothing (VOXSOUTH_TRANSLATION_URL)")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await translations.get_language(conn, org_id)
        await translations.set_language(conn, org_id, body.language)
        await audit.record(conn, request, "org.translation.set", resource_type="org",
                           resource_id=str(org_id), before={"language": before},
                           after={"language": body.language})  # fmt: skip
    return web.json_response({"language": body.language, "available": True})


@doc("A call's transcript translated, beside the original (for roles that read transcripts)",
     errors=(404,))  # fmt: skip
@requires(Action.TRANSCRIPTS_READ)
async def call_translation(request: web.Request) -> web.Response:
    call_id = call_id_of(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        if await calls.get_call(conn, org_id, call_id, with_transcript=False) is None:
            raise ApiError(404, "NOT_FOUND", "no such call")
        rows = await translations.of_call(conn, org_id, call_id)
        await audit.record(conn, request, "transcript.read", resource_type="call",
                           resource_id=str(call_id), after={"translation": True})  # fmt: skip
    return web.json_response({"translations": plain(rows)})
