"""How long the org keeps its calls' data (enforced by control.retention's sweeper), and
erasure on request: one call, or everything about one phone number (a data-subject request).

Erasure deletes the calls' recordings at SignalWire first, then, in one transaction, their
transcripts, keypad digits, feed rows and escalations, and blanks the words kept as consent
evidence and the calls' notes (and, for a number, the number itself on the calls). The audit
log records that it happened and how much went, never what. Calls still in progress are not
erased: their media could still be writing.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from control.api import audit
from control.api.bodies import parse_body
from control.api.openapi import doc
from control.api.outbound import signalwire_client
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.metrics import ERASURES
from control.permissions import Action
from control.signalwire import SignalWireError
from storage import calls, retention
from storage.tenancy import tenant

Days = int | None


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/org/retention", get_retention),
        web.put("/api/org/retention", put_retention),
        web.post("/api/erasures", erase),
    ]


class RetentionBody(BaseModel):
    """Days each kind of the org's call data is kept (null: kept)."""

    model_config = ConfigDict(extra="forbid")
    transcripts_days: Days = Field(default=None, ge=1, le=36_500)
    recordings_days: Days = Field(default=None, ge=1, le=36_500)
    dtmf_days: Days = Field(default=None, ge=1, le=36_500)
    escalations_days: Days = Field(default=None, ge=1, le=36_500)
    feed_days: Days = Field(default=None, ge=1, le=36_500)
    audit_days: Days = Field(default=None, ge=1, le=36_500)
    """The audit log may be kept longer than the rest, never shorter."""

    @model_validator(mode="after")
    def _audit_outlives_the_rest(self) -> RetentionBody:
        others = [d for k, d in self.policy().items() if k != "audit" and d is not None]
        if self.audit_days is not None and any(d > self.audit_days for d in others):
            raise ValueError("audit_days must be at least every other kind's days")
        return self

    def policy(self) -> retention.Policy:
        return {kind: getattr(self, f"{kind}_days") for kind in retention.KINDS}


class ErasureBody(BaseModel):
    """Exactly one of `call_id` and `phone_number` (E.164)."""

    model_config = ConfigDict(extra="forbid")
    call_id: uuid.UUID | None = None
    phone_number: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")

    @model_validator(mode="after")
    def _one_of(self) -> ErasureBody:
        if (self.call_id is None) == (self.phone_number is None):
            raise ValueError("give exactly one of call_id and phone_number")
        return self


def _view(policy: retention.Policy) -> dict[str, Days]:
    return {f"{kind}_days": days for kind, days in policy.items()}


@doc("How long the organization keeps its calls' data")
@requires(Action.CALLS_READ)
async def get_retention(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        policy = await retention.get_policy(conn, org_id)
    return web.json_response(_view(policy))


@doc("Choose how long the organization keeps its calls' data", body=RetentionBody,
     errors=(422,))  # fmt: skip
@requires(Action.RETENTION_MANAGE)
async def put_retention(request: web.Request) -> web.Response:
    body = await parse_body(request, RetentionBody)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await retention.get_policy(conn, org_id)
        await retention.put_policy(conn, org_id, body.policy())
        await audit.record(
            conn, request, "org.retention.set", resource_type="org", resource_id=str(org_id),
            before=_view(before), after=_view(body.policy()),
        )  # fmt: skip
    return web.json_response(_view(body.policy()))


@doc("Erase a call, or everything about a phone number", body=ErasureBody,
     errors=(404, 409, 422, 502, 503))  # fmt: skip
@requires(Action.ERASURE)
async def erase(request: web.Request) -> web.Response:
    body = await parse_body(request, ErasureBody)
    org_id = principal(request).org_id
    scope = "call" if body.call_id is not None else "phone_number"
    pool = request.app[POOL]
    async with tenant(pool, org_id) as conn:
        if body.call_id is not None:
            call_ids = await retention.calls_of_org(conn, org_id, [body.call_id])
            if not call_ids:
                raise ApiError(404, "NOT_FOUND", "no such call")
        else:
            assert body.phone_number is not None
            if body.phone_number in {n["number"] for n in await calls.list_numbers(conn, org_id)}:
                raise ApiError(
                    422, "OWN_NUMBER",
                    "that is one of the organization's own numbers: erasing it would erase "
                    "every call to it",
                )  # fmt: skip
            call_ids = await retention.calls_of_number(conn, org_id, body.phone_number)
        live, held = await retention.erasable(conn, org_id, call_ids)
    if live:
        ERASURES.labels(scope, "live").inc()
        raise ApiError(
            409, "CALL_IN_PROGRESS", "calls still in progress cannot be erased yet",
            {"call_ids": [str(c) for c in live]},
        )  # fmt: skip
    if held:
        client = signalwire_client(request)
        for _call_sid, recording_sid in held:
            try:
                await client.delete_recording(recording_sid)
            except SignalWireError as exc:
                ERASURES.labels(scope, "signalwire_failed").inc()
                raise ApiError(
                    502, "RECORDING_NOT_DELETED",
                    "SignalWire did not delete a recording: nothing else was erased; try again",
                ) from exc  # fmt: skip
    # As the owner role: the tenant role may not delete feed rows or change consent evidence.
    async with pool.acquire() as conn, conn.transaction():
        erased = await retention.erase_calls(conn, org_id, call_ids, number=body.phone_number)
        summary: dict[str, Any] = {"calls": len(call_ids), "erased": dict(erased)}
        await audit.record(
            conn, request, "erasure", resource_type=scope,
            # What was asked for is itself personal data: a number is not repeated here.
            resource_id=None if body.call_id is None else str(body.call_id),
            after=summary,
        )  # fmt: skip
    ERASURES.labels(scope, "done").inc()
    return web.json_response(summary)
