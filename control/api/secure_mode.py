"""Secure mode (payments), per call and per org.

An agent (or a payment system with an API key) turns a call's secure mode on before the caller
reads out a card and off after. While it is on the call's recording is paused at SignalWire,
the caller's words are not transcribed (or are wholly redacted, as the org chose) and keypad
digits are stored without the digit. The response comes once the recording has been dealt with:
a 502 `RECORDING_NOT_PAUSED` means the recording could be neither paused nor stopped, and the
card must not be taken (an alert is raised too). Asking again tries again.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from control.api import audit
from control.api.bodies import parse_body
from control.api.calls import call_id_of
from control.api.openapi import doc
from control.app_keys import POOL, RECORDER
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from storage import feed, secure_mode
from storage.tenancy import tenant


def routes() -> list[web.RouteDef]:
    return [
        web.put("/api/calls/{call_id}/secure-mode", put_call_secure_mode),
        web.get("/api/org/secure-mode", get_org_secure_mode),
        web.put("/api/org/secure-mode", put_org_secure_mode),
    ]


class SecureModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: bool


class OrgSecureModeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pause_behavior: Literal["skip", "silence"]
    """How a paused recording keeps the secure part: left out (`skip`) or as `silence`."""
    caller_words: Literal["suspend", "redact"]
    """The caller's words in secure mode: not transcribed (`suspend`: no audio reaches a
    transcription service), or transcribed and stored only as "[secure]" (`redact`)."""


@doc("Turn a call's secure mode on or off", body=SecureModeBody, errors=(404, 409, 502))
@requires(Action.SECURE_MODE)
async def put_call_secure_mode(request: web.Request) -> web.Response:
    body = await parse_body(request, SecureModeBody)
    who = principal(request)
    call_id = call_id_of(request)
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        outcome = await secure_mode.set_call(
            conn, who.org_id, call_id, body.on, by=f"{who.actor_type}:{who.actor_id}"
        )
        if outcome == "unknown":
            raise ApiError(404, "NOT_FOUND", "no such call")
        if outcome == "ended":
            raise ApiError(409, "CALL_ENDED", "the call has ended")
        if outcome == "changed":
            await audit.record(
                conn, request, "call.secure_mode", resource_type="call",
                resource_id=str(call_id), before={"on": not body.on}, after={"on": body.on},
            )  # fmt: skip
    # Followed even when unchanged: asking again retries a pause or resume that failed.
    recording = await request.app[RECORDER].follow_secure_mode(call_id)
    if recording != "none":
        # What supervisors see of it (a row of its own type: the media plane follows only
        # `secure_mode` rows, and this one may land after a later change).
        async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
            await feed.append(
                conn, who.org_id, call_id, "secure_recording", {"recording": recording}
            )
    if recording == "not_paused":
        raise ApiError(
            502, "RECORDING_NOT_PAUSED",
            "secure mode is on but the call's recording could be neither paused nor stopped:"
            " do not take card details; try again",
            {"secure_mode": True},
        )  # fmt: skip
    return web.json_response({"id": str(call_id), "secure_mode": body.on, "recording": recording})


def _view(settings: secure_mode.OrgSecureMode) -> dict[str, str]:
    return {"pause_behavior": settings.pause_behavior, "caller_words": settings.caller_words}


@doc("What secure mode does in the organization's calls")
@requires(Action.CALLS_READ)
async def get_org_secure_mode(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        settings = await secure_mode.get_org(conn, org_id)
    return web.json_response(_view(settings))


@doc("Choose what secure mode does in the organization's calls", body=OrgSecureModeBody,
     errors=(422,))  # fmt: skip
@requires(Action.REDACTION_MANAGE)
async def put_org_secure_mode(request: web.Request) -> web.Response:
    body = await parse_body(request, OrgSecureModeBody)
    org_id = principal(request).org_id
    after = secure_mode.OrgSecureMode(body.pause_behavior, body.caller_words)
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await secure_mode.get_org(conn, org_id)
        await secure_mode.put_org(conn, org_id, after)
        await audit.record(
            conn, request, "org.secure_mode.set", resource_type="org", resource_id=str(org_id),
            before=_view(before), after=_view(after),
        )  # fmt: skip
    return web.json_response(_view(after))
