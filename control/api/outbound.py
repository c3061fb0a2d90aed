"""Placing and ending calls through SignalWire: POST /api/calls, POST /api/calls/{id}/hangup.

A call SID is only ever one SignalWire returned. Without SignalWire settings a request the
routes would otherwise carry out answers 503 SIGNALWIRE_CONFIG_MISSING. `Idempotency-Key`
makes a retried POST safe: the first success is replayed for 24 hours; the same key with a
different body is a 409.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import parse_body, plain
from control.api.calls import call_id_of
from control.api.openapi import doc
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError, retry_later
from control.numbers import E164
from control.permissions import Action, Feature, plan_includes
from control.rate_limit import RateLimiter
from control.signalwire import SignalWireClient, SignalWireRejected, SignalWireUnavailable
from storage import calls, idempotency, targets
from storage.tenancy import tenant


@dataclass(frozen=True, slots=True)
class OutboundConfig:
    public_url: str
    """Where SignalWire fetches the call's LaML and posts its status (no trailing slash)."""
    rate_per_s: float = 1.0
    """Per org; SignalWire itself queues beyond 1 call per second for the whole space."""
    burst: float = 5.0


SIGNALWIRE = web.AppKey("signalwire", SignalWireClient)


class OutboundCall(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: str = Field(pattern=E164)
    from_: str = Field(alias="from", pattern=E164)


class OutboundRoutes:
    def __init__(self, config: OutboundConfig) -> None:
        self._config = config
        self._limiter = RateLimiter(config.rate_per_s, config.burst)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/calls", self.start_call),
            web.post("/api/calls/{call_id}/hangup", self.hang_up),
        ]

    @doc(
        "Place an outbound call through SignalWire (Idempotency-Key supported)",
        body=OutboundCall,
        status=201,
        errors=(409, 422, 503),
    )
    @requires(Action.CALLS_CREATE)
    async def start_call(self, request: web.Request) -> web.Response:
        who = principal(request)
        if not plan_includes(who.plan, Feature.OUTBOUND_CALLS):
            raise ApiError(403, "PLAN_REQUIRED", "your plan does not include outbound calls")
        # The body first: a request refused for it never reaches SignalWire, so it spends
        # none of the org's call budget.
        body = await parse_body(request, OutboundCall)
        wait = self._limiter.acquire(str(who.org_id), time.monotonic())
        if wait:
            raise retry_later(429, "RATE_LIMITED", "too many calls started; slow down", wait)
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            replay = await self._claim(request, key)
            if replay is not None:
                return replay
        try:
            response = await self._place(request, body)
        except BaseException:
            if key is not None:
                async with tenant(request.app[POOL], who.org_id) as conn:
                    await idempotency.release(conn, who.org_id, key)
            raise
        if key is not None:
            async with tenant(request.app[POOL], who.org_id) as conn:
                await idempotency.complete(conn, who.org_id, key, 201, response)
        return web.json_response(response, status=201)

    async def _claim(self, request: web.Request, key: str) -> web.Response | None:
        if not 1 <= len(key) <= 255:
            raise ApiError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key is 1-255 characters")
        who = principal(request)
        digest = hashlib.sha256(
            request.method.encode() + request.path.encode() + await request.read()
        )
        async with tenant(request.app[POOL], who.org_id) as conn:
            outcome = await idempotency.claim(
                conn, who.org_id, key, digest.digest(), datetime.now(UTC)
            )
        if outcome == "mismatch":
            raise ApiError(409, "IDEMPOTENCY_KEY_REUSED", "this key was used for another request")
        if outcome == "in_progress":
            raise ApiError(409, "IDEMPOTENCY_IN_PROGRESS", "the first request with this key "
                           "is still running", {}, {"Retry-After": "1"})  # fmt: skip
        if isinstance(outcome, idempotency.Stored):
            return web.json_response(
                outcome.body, status=outcome.status, headers={"Idempotent-Replayed": "true"}
            )
        return None

    async def _place(self, request: web.Request, body: OutboundCall) -> dict[str, Any]:
        who = principal(request)
        pool = request.app[POOL]
        async with tenant(pool, who.org_id) as conn:
            allowed = await calls.allowed_from_numbers(conn, who.org_id)
            barred = await targets.on_do_not_call(conn, who.org_id, [body.to])
        if barred:
            raise ApiError(409, "DO_NOT_CALL", f"{body.to} is on the do-not-call list")
        if body.from_ not in allowed:
            fields = [{"field": "from", "message": "not your number or verified caller ID"}]
            raise ApiError(422, "FROM_NOT_ALLOWED", "from must be your number or caller ID",
                           {"fields": fields})  # fmt: skip
        client = signalwire_client(request)
        base = self._config.public_url
        try:
            created = await client.create_call(
                to=body.to, from_=body.from_, url=f"{base}/laml/voice",
                status_callback=f"{base}/laml/status",
            )  # fmt: skip
        except SignalWireRejected as exc:
            raise ApiError(
                422, "SIGNALWIRE_REJECTED", exc.message, {"signalwire_code": exc.code}
            ) from None
        except SignalWireUnavailable as exc:
            raise unavailable(exc) from None
        async with tenant(pool, who.org_id) as conn:
            # The answer webhook may have created the row already: open_call returns it then.
            ref = await calls.open_call(
                conn, org_id=who.org_id, call_sid=created.sid, account_sid=None,
                direction="outbound-api", from_number=body.from_, to_number=body.to,
                status=created.status or "queued",
            )  # fmt: skip
            if who.actor_type == "user":
                await calls.update_call(conn, who.org_id, ref.id, {"started_by": who.actor_id})
            result = {"id": ref.id, "call_sid": created.sid, "status": ref.status,
                      "to": body.to, "from": body.from_}  # fmt: skip
            await audit.record(
                conn, request, "call.start", resource_type="call", resource_id=str(ref.id),
                after=plain(result),
            )  # fmt: skip
        return dict(plain(result))

    @doc("Ask SignalWire to end a call", status=202, errors=(404, 409, 503))
    @requires(Action.CALLS_UPDATE)
    async def hang_up(self, request: web.Request) -> web.Response:
        who = principal(request)
        call_id = call_id_of(request)
        async with tenant(request.app[POOL], who.org_id) as conn:
            call = await calls.get_call(conn, who.org_id, call_id, with_transcript=False)
        if call is None:
            raise ApiError(404, "NOT_FOUND", "no such call")
        if call["status"] in calls.TERMINAL_STATUSES:
            raise ApiError(409, "CALL_ENDED", "the call has already ended")
        client = signalwire_client(request)
        try:
            await client.hang_up(call["call_sid"])
        except SignalWireRejected as exc:
            raise ApiError(409, "CALL_ENDED", exc.message, {"signalwire_code": exc.code}) from None
        except SignalWireUnavailable as exc:
            raise unavailable(exc) from None
        async with tenant(request.app[POOL], who.org_id) as conn:
            await audit.record(conn, request, "call.hangup", resource_type="call",
                               resource_id=str(call_id))  # fmt: skip
        # SignalWire's status callback moves the call to completed.
        return web.json_response({"id": str(call_id), "hangup": "requested"}, status=202)


def unavailable(exc: SignalWireUnavailable) -> ApiError:
    return retry_later(
        503, "SIGNALWIRE_UNAVAILABLE", "SignalWire is not answering; retry", exc.retry_after_s or 1
    )


def signalwire_client(request: web.Request) -> SignalWireClient:
    """The SignalWire client, or 503 SIGNALWIRE_CONFIG_MISSING. Ask for it last, just before
    it is used: a request that is wrong on its own (its body, another org's id) gets that
    answer, which no configuration would change."""
    client = request.app.get(SIGNALWIRE)
    if client is None:
        raise ApiError(
            503, "SIGNALWIRE_CONFIG_MISSING",
            "outbound calls need VOXSOUTH_SIGNALWIRE_SPACE_URL, VOXSOUTH_SIGNALWIRE_PROJECT_ID "
            "and VOXSOUTH_SIGNALWIRE_API_TOKEN",
        )  # fmt: skip
    return client
