"""Bookings: a call placed at the time someone asked for, in their time zone (a callback).

`POST /api/bookings` books one; the dialler places it when it is due (control.dialler: the
do-not-call list, the calls-per-second budget and retries apply), connecting the callee to an
agent's line or saying a text. `PATCH` reschedules a booking still waiting; `…/cancel` cancels.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from control.api import audit
from control.api.bodies import EMAIL_PATTERN, invalid_field, parse_body, path_uuid, plain
from control.api.campaigns import require_own_number
from control.api.openapi import Query, doc
from control.api.query import decode_cursor, encode_cursor, parse_int, parse_time
from control.app_keys import EMAIL_ENABLED, POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action, Feature, plan_includes
from control.targets import TargetError, checked_time_zone, inferred_time_zone, normalise_number
from storage import bookings, campaigns, email_outbox
from storage.db import Connection
from storage.tenancy import tenant

E164 = r"^\+[1-9][0-9]{6,14}$"
MAX_PAGE = 200
MAX_AHEAD = timedelta(days=366)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/bookings", list_bookings),
        web.post("/api/bookings", create_booking),
        web.get("/api/bookings/{booking_id}", get_booking),
        web.patch("/api/bookings/{booking_id}", reschedule_booking),
        web.post("/api/bookings/{booking_id}/cancel", cancel_booking),
    ]


class BookingBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    number: str = Field(min_length=3, max_length=40)
    """Who is called back, in any usual spelling."""
    at: datetime
    """When: a local time ("2026-12-08T15:30") in `time_zone`, or a time with its offset."""
    time_zone: str | None = Field(default=None, max_length=64)
    """The callee's IANA time zone; inferred from the number when left out (where it can be)."""
    connect: str | None = Field(default=None, pattern=E164)
    """The agent's line the callee is put through to."""
    say: str | None = Field(default=None, min_length=1, max_length=4000)
    from_: str = Field(alias="from", pattern=E164)
    """One of the org's numbers."""
    name: str | None = Field(default=None, max_length=200)
    max_attempts: int = Field(default=2, ge=1, le=5)
    remind_email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    """Where a reminder goes `remind_before_min` minutes before the call (email must be set up:
    VOXSOUTH_SMTP_HOST)."""
    remind_before_min: int = Field(default=60, ge=5, le=10_080)

    @model_validator(mode="after")
    def _one_flow(self) -> BookingBody:
        if (self.connect is None) == (self.say is None):
            raise ValueError("give exactly one of connect and say")
        return self


class RescheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: datetime


def _booking_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "booking_id", "booking")


def _due(at: datetime, time_zone: str) -> datetime:
    """`at` as an instant: a local time is read in `time_zone`; it must be in the coming year."""
    try:
        due = (at if at.tzinfo else at.replace(tzinfo=ZoneInfo(time_zone))).astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid_field("at", "not a time a call can be placed at") from None
    now = datetime.now(UTC)
    if due <= now:
        raise invalid_field("at", "the time has passed: it must be in the future")
    if due > now + MAX_AHEAD:
        raise invalid_field("at", "at most a year ahead")
    return due


def _reminder_key(booking_id: uuid.UUID) -> str:
    return f"booking-reminder:{booking_id}"


def _remind_at(booking: dict[str, Any]) -> datetime:
    """The reminder's time: `remind_before_min` before the call, or now if that has passed."""
    at: datetime = booking["next_at"] - timedelta(minutes=booking["remind_before_min"])
    return max(at, datetime.now(UTC))


def _reminder_text(booking: dict[str, Any]) -> str:
    local = booking["next_at"].astimezone(ZoneInfo(booking["time_zone"]))
    when = local.strftime("%A %d %B at %H:%M") + f" ({booking['time_zone']})"
    return f"We will call you on {booking['number']} on {when}.\n"


async def _queue_reminder(conn: Connection, booking: dict[str, Any]) -> None:
    await email_outbox.queue(
        conn, booking["org_id"], "booking_reminder", booking["remind_email"],
        "A reminder of our call", _reminder_text(booking),
        at=_remind_at(booking), dedupe_key=_reminder_key(booking["id"]),
    )  # fmt: skip


def _view(booking: dict[str, Any]) -> dict[str, Any]:
    view = dict(booking)
    del view["org_id"]
    view["from"] = view.pop("from_number")
    view["at"] = view.pop("next_at")
    view["local_at"] = view["at"].astimezone(ZoneInfo(view["time_zone"])).isoformat()
    return dict(plain(view))


@doc(
    "The organization's bookings, soonest first",
    query=(
        Query("from", {"type": "string", "format": "date-time"}, "due at or after"),
        Query("to", {"type": "string", "format": "date-time"}, "due before"),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        Query("cursor", {"type": "string"}, "next_cursor of the previous page"),
    ),
)
@requires(Action.BOOKINGS_READ)
async def list_bookings(request: web.Request) -> web.Response:
    q = request.query
    limit = parse_int(q.get("limit"), "limit", default=50, low=1, high=MAX_PAGE)
    after = decode_cursor(q.get("cursor"))
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await bookings.list_bookings(
            conn, org_id, due_from=parse_time(q.get("from"), "from"),
            due_before=parse_time(q.get("to"), "to"), limit=limit, after=after,
        )  # fmt: skip
    cursor = encode_cursor(rows[-1]["next_at"], rows[-1]["id"]) if len(rows) == limit else None
    return web.json_response({"bookings": [_view(r) for r in rows], "next_cursor": cursor})


@doc("Book a call at a time, in the callee's time zone", body=BookingBody, status=201,
     errors=(403, 409, 422))  # fmt: skip
@requires(Action.BOOKINGS_MANAGE)
async def create_booking(request: web.Request) -> web.Response:
    who = principal(request)
    if not plan_includes(who.plan, Feature.OUTBOUND_CALLS):
        raise ApiError(403, "PLAN_REQUIRED", "your plan does not include outbound calls")
    body = await parse_body(request, BookingBody)
    try:
        number = normalise_number(body.number)
        zone = checked_time_zone(body.time_zone) if body.time_zone else inferred_time_zone(number)
    except TargetError as exc:
        raise invalid_field(exc.field, exc.message) from None
    if zone is None:
        raise invalid_field("time_zone", f"no single time zone for {number}: give one")
    at = _due(body.at, zone)
    if body.remind_email and not request.app[EMAIL_ENABLED]:
        raise invalid_field("remind_email", "this server sends no email (VOXSOUTH_SMTP_HOST)")
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        await require_own_number(conn, who.org_id, body.from_)
        booking = await bookings.create(
            conn, who.org_id, name=body.name or f"Callback to {number}", number=number,
            time_zone=zone, at=at,
            flow={"connect": body.connect} if body.connect else {"say": body.say},
            from_number=body.from_, max_attempts=body.max_attempts,
            retry_s={"busy": 300, "no-answer": 600, "failed": 900},
            created_by=f"{who.actor_type}:{who.actor_id}",
            remind_email=body.remind_email,
            remind_before_min=body.remind_before_min if body.remind_email else None,
        )  # fmt: skip
        if body.remind_email:
            await _queue_reminder(conn, booking)
        view = _view(booking)
        await audit.record(conn, request, "booking.create", resource_type="booking",
                           resource_id=str(booking["id"]), after=view)  # fmt: skip
    return web.json_response(view, status=201)


@doc("A booking: when it is due, and how its call went", errors=(404,))
@requires(Action.BOOKINGS_READ)
async def get_booking(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        booking = await bookings.get(conn, org_id, _booking_id(request))
    if booking is None:
        raise ApiError(404, "NOT_FOUND", "no such booking")
    return web.json_response(_view(booking))


@doc("Move a booking still waiting for its call", body=RescheduleBody, errors=(404, 409, 422))
@requires(Action.BOOKINGS_MANAGE)
async def reschedule_booking(request: web.Request) -> web.Response:
    body = await parse_body(request, RescheduleBody)
    booking_id = _booking_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await bookings.get(conn, org_id, booking_id)
        if before is None:
            raise ApiError(404, "NOT_FOUND", "no such booking")
        at = _due(body.at, before["time_zone"])
        if not await bookings.reschedule(conn, org_id, booking_id, at):
            raise ApiError(409, "BOOKING_NOT_WAITING", "the booking is being called, was "
                           "called or was cancelled")  # fmt: skip
        after = await bookings.get(conn, org_id, booking_id)
        assert after is not None
        if after["remind_email"]:
            await email_outbox.rewrite(
                conn, _reminder_key(booking_id), _remind_at(after), _reminder_text(after)
            )
        await audit.record(conn, request, "booking.reschedule", resource_type="booking",
                           resource_id=str(booking_id), before={"at": before["next_at"]},
                           after={"at": after["next_at"]})  # fmt: skip
    return web.json_response(_view(after))


@doc("Cancel a booking (a call in progress ends as it would)", errors=(404, 409))
@requires(Action.BOOKINGS_MANAGE)
async def cancel_booking(request: web.Request) -> web.Response:
    booking_id = _booking_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if await bookings.get(conn, org_id, booking_id) is None:
            raise ApiError(404, "NOT_FOUND", "no such booking")
        outcome, _campaign = await campaigns.move(conn, org_id, booking_id, "cancel")
        if outcome != "moved":
            raise ApiError(409, "BOOKING_OVER", "the booking is over already")
        await email_outbox.cancel(conn, _reminder_key(booking_id))
        await audit.record(conn, request, "booking.cancel", resource_type="booking",
                           resource_id=str(booking_id))  # fmt: skip
        booking = await bookings.get(conn, org_id, booking_id)
        assert booking is not None
    return web.json_response(_view(booking))
