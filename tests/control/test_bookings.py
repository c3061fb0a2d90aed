"""Bookings through the API and the dialler, on a real Postgres, against the fake SignalWire:
a callback at a local time is placed when due and puts the callee through to an agent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from server.app import RunningServer
from storage.db import Pool
from tests.conftest import timeout
from tests.control.test_campaigns import dialler, signalwire_says
from tests.control.test_targets_api import call_api, every_page
from tests.support.accounts import make_org
from tests.support.fake_signalwire import FakeSignalWire

CALLEE = "+17065550142"  # Georgia: America/New_York
AGENT = "+17065550111"


def tomorrow_at_half_past_three() -> str:
    local = datetime.now(ZoneInfo("America/New_York")) + timedelta(days=1)
    return local.replace(hour=15, minute=30, second=0, microsecond=0, tzinfo=None).isoformat()


async def test_a_callback_is_booked_in_the_callees_time_rescheduled_and_cancelled(
    dialling: RunningServer,
    pool: Pool,
) -> None:
    org = await make_org(pool, "Bookings")
    body = {"number": "(706) 555-0142", "at": tomorrow_at_half_past_three(),
            "connect": AGENT, "from": org.number}  # fmt: skip
    status, booked = await call_api(dialling, org, "POST", "/api/bookings", body=body)
    assert status == 201, booked
    assert (booked["number"], booked["time_zone"], booked["status"]) == (
        CALLEE, "America/New_York", "running",
    )  # fmt: skip
    assert booked["local_at"].startswith(body["at"])  # 15:30 where the callee is
    at = datetime.fromisoformat(booked["at"])
    assert at.astimezone(ZoneInfo("America/New_York")).hour == 15
    path = f"/api/bookings/{booked['id']}"
    later = (at + timedelta(hours=1)).isoformat()
    status, moved = await call_api(dialling, org, "PATCH", path, body={"at": later})
    assert (status, datetime.fromisoformat(moved["at"])) == (200, at + timedelta(hours=1))
    status, listed = await call_api(dialling, org, "GET", "/api/bookings", role="analyst")
    assert [b["id"] for b in listed["bookings"]] == [booked["id"]]
    status, cancelled = await call_api(dialling, org, "POST", f"{path}/cancel")
    assert (status, cancelled["status"], cancelled["state"]) == (200, "cancelled", "skipped")
    status, body_ = await call_api(dialling, org, "PATCH", path, body={"at": later})
    assert (status, body_["error"]["code"]) == (409, "BOOKING_NOT_WAITING")
    # Bookings are not campaigns in the campaigns' list.
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    status, campaigns = await call_api(dialling, org, "GET", "/api/campaigns")
    assert campaigns["campaigns"] == []
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE org_id = $1 AND resource_type = 'booking' ORDER BY id",
        org.id,
    )
    assert [a["action"] for a in actions] == [
        "booking.create", "booking.reschedule", "booking.cancel",
    ]  # fmt: skip


async def test_a_booking_is_refused_for_the_past_an_unknown_zone_or_a_foreign_number(
    dialling: RunningServer,
    pool: Pool,
) -> None:
    org = await make_org(pool, "Careful bookings")
    base = {"number": CALLEE, "connect": AGENT, "from": org.number,
            "at": tomorrow_at_half_past_three()}  # fmt: skip
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for bad, field in (({**base, "at": past}, "at"),
                       ({**base, "number": "+61412345678"}, "time_zone"),
                       ({**base, "time_zone": "Mars/Olympus"}, "time_zone"),
                       ({**base, "from": "+17065550199"}, "from")):  # fmt: skip
        status, answer = await call_api(dialling, org, "POST", "/api/bookings", body=bad)
        assert status == 422, bad
        assert answer["error"]["details"]["fields"][0]["field"] == field
    both = {**base, "say": "hello"}
    assert (await call_api(dialling, org, "POST", "/api/bookings", body=both))[0] == 422
    assert (await call_api(dialling, org, "POST", "/api/bookings", body=base,
                           role="viewer"))[0] == 403  # fmt: skip


async def test_a_due_booking_is_placed_and_puts_the_callee_through_to_the_agent(
    dialling: RunningServer,
    pool: Pool,
    fake: FakeSignalWire,
) -> None:
    org = await make_org(pool, "Due bookings")
    body = {"number": CALLEE, "at": tomorrow_at_half_past_three(), "connect": AGENT,
            "from": org.number}  # fmt: skip
    status, booked = await call_api(dialling, org, "POST", "/api/bookings", body=body)
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert fake.requests_for("create") == []  # not due yet
    await pool.execute("UPDATE campaign_targets SET next_at = now() WHERE campaign_id = $1",
                       uuid.UUID(booked["id"]))  # fmt: skip
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    [request] = fake.requests_for("create")
    form = dict(request.form)
    assert (form["To"], form["From"]) == (CALLEE, org.number)
    call_sid = next(iter(fake.calls))
    status, laml = await signalwire_says(dialling, form["Url"], call_sid, org, CALLEE,
                                         CallStatus="in-progress", AnsweredBy="human")  # fmt: skip
    assert status == 200
    assert f'<Dial callerId="{org.number}">{AGENT}</Dial>' in laml
    status, seen = await call_api(dialling, org, "GET", f"/api/bookings/{booked['id']}")
    assert (seen["state"], seen["attempts"]) == ("in_call", 1)
    assert seen["call_id"] is not None


async def test_bookings_are_read_a_page_at_a_time_soonest_first(
    dialling: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Many bookings")
    base = datetime.fromisoformat(tomorrow_at_half_past_three())
    ids = []
    for hours in (0, 0, 0, 1, 2):  # three due at one instant: a page ends among them
        body = {"number": CALLEE, "at": (base + timedelta(hours=hours)).isoformat(),
                "connect": AGENT, "from": org.number}  # fmt: skip
        status, booked = await call_api(dialling, org, "POST", "/api/bookings", body=body)
        assert status == 201, booked
        ids.append(booked["id"])
    pages = await every_page(dialling, org, "/api/bookings", "bookings", limit=2, most=4)
    seen = [b["id"] for b in pages]
    assert seen == sorted(ids[:3]) + ids[3:]  # soonest first; at one instant, by id
    status, body = await call_api(dialling, org, "GET", "/api/bookings?cursor=nonsense")
    assert (status, body["error"]["code"]) == (400, "INVALID_QUERY")
