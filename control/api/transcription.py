"""What transcribes the org's calls: the deployment's engine, the offline engine only, or a cloud
speech service with the org's own key. Read by anyone who reads transcripts, changed by admins.

The key goes in and never comes out: it is sealed (control.sealed) before it is stored, and
answers and the audit record show only its last four characters.
A change applies to streams that open after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from control.api import audit
from control.api.bodies import parse_body
from control.api.openapi import doc
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from control.sealed import Sealer
from storage import org_transcription
from storage.org_transcription import OrgEngine, TranscriptionChoice
from storage.tenancy import tenant

CLOUD_SERVICES = ("assemblyai", "deepgram")
KEY_HINT_CHARS = 4
_KEY = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class SpeechOptions:
    """What this deployment can run, so that an org cannot choose what would hear nothing."""

    deployment: str
    """The deployment's engine (`whisper`, `assemblyai`, `deepgram` or `none`)."""
    offline: bool
    """An offline engine is loaded (the default, or the cloud engines' fallback)."""
    deployment_keys: frozenset[str]
    """Cloud services the deployment holds a key for: an org may use them without its own."""


SPEECH_OPTIONS = web.AppKey("speech_options", SpeechOptions)
SEALER = web.AppKey("sealer", Sealer)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/org/transcription", get_transcription),
        web.put("/api/org/transcription", put_transcription),
    ]


class TranscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: OrgEngine
    api_key: SecretStr | None = Field(default=None, min_length=16, max_length=512)
    """The org's key for that cloud service. Left out: the key in place for the same service
    is kept; for another service, the deployment's key is used."""


def _view(choice: TranscriptionChoice, options: SpeechOptions) -> dict[str, object]:
    return {
        "engine": choice.engine,
        "in_effect": options.deployment if choice.engine == "deployment" else choice.engine,
        "api_key_set": choice.api_key_sealed is not None,
        "api_key_hint": f"…{choice.api_key_hint}" if choice.api_key_hint else None,
        "available": ["deployment", *(["whisper"] if options.offline else []), *CLOUD_SERVICES],
    }


@doc("What transcribes the organization's calls (the key itself is never returned)")
@requires(Action.TRANSCRIPTS_READ)
async def get_transcription(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        choice = await org_transcription.get(conn, org_id)
    return web.json_response(_view(choice, request.app[SPEECH_OPTIONS]))


@doc("Choose what transcribes the organization's calls, with its own cloud key if it has one",
     body=TranscriptionBody, errors=(422,))  # fmt: skip
@requires(Action.TRANSCRIPTION_MANAGE)
async def put_transcription(request: web.Request) -> web.Response:
    body = await parse_body(request, TranscriptionBody)
    options = request.app[SPEECH_OPTIONS]
    org_id = principal(request).org_id
    if body.api_key is not None and body.engine not in CLOUD_SERVICES:
        raise ApiError(422, "KEY_NOT_USED", f"{body.engine} takes no API key")
    if body.api_key is not None and not _KEY.fullmatch(body.api_key.get_secret_value()):
        # It goes into an HTTP header: no spaces, no control characters.
        raise ApiError(422, "INVALID_KEY", "an API key is printable ASCII without spaces")
    if body.engine == "whisper" and not options.offline:
        raise ApiError(
            422, "ENGINE_UNAVAILABLE", "this deployment runs no offline engine (see its settings)"
        )
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await org_transcription.get(conn, org_id)
        sealed, hint = None, None
        if body.api_key is not None:
            key = body.api_key.get_secret_value()
            sealed, hint = request.app[SEALER].seal(key, org_id), key[-KEY_HINT_CHARS:]
        elif body.engine == before.engine:
            sealed, hint = before.api_key_sealed, before.api_key_hint
        needs_key = body.engine in CLOUD_SERVICES and body.engine not in options.deployment_keys
        if needs_key and sealed is None:
            raise ApiError(
                422,
                "KEY_REQUIRED",
                f"this deployment holds no {body.engine} key: give the organization's own",
            )
        after = TranscriptionChoice(body.engine, sealed, hint)
        await org_transcription.put(conn, org_id, after)
        await audit.record(
            conn, request, "org.transcription.set", resource_type="org",
            resource_id=str(org_id),
            before={"engine": before.engine, "api_key_hint": before.api_key_hint},
            after={"engine": after.engine, "api_key_hint": after.api_key_hint},
        )  # fmt: skip
    return web.json_response(_view(after, options))
