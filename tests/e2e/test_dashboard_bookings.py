"""The dashboard's Bookings view in real headless Chromium, against the real server.

An operator books a callback through the form (refused first for a time that has passed, the
server's field named), reads it in the list at the callee's local time, reschedules it through
its row (refused once when, unknown to the page, the dialler has started calling it), opens the
call of another booking that was placed, and cancels the first once confirmed. An analyst reads
the list and is offered nothing to change; a viewer is not offered the view. The server runs
without SignalWire credentials, so its dialler calls no one: what a call does to a booking is
written in Postgres. Every click is checked where it lands: Postgres and its audit log.

The browser fixtures are test_dashboard's (same Chromium, same console watch); as there, the
tests take `chromium, srv, pool, dashboard` in that order.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import expect

from server.app import RunningServer
from storage.db import Pool
from tests.e2e import test_dashboard as shared
from tests.e2e.test_dashboard import CALLER, Dashboard, open_call, sign_in, user_id
from tests.e2e.test_dashboard_campaigns import audited, call_api, open_view, problems, sign_out
from tests.support.accounts import make_org

# The browser fixtures, shared (bound here by name so that pytest finds them in this module).
chromium = shared.chromium
browser = shared.browser
dashboard = shared.dashboard

NEW_YORK = ZoneInfo("America/New_York")
CALLEE = "+17065550142"  # Georgia: America/New_York, inferred from the number
AGENT = "+17065550111"
OTHER_CALLEE = "+17065550143"


def new_york_day(days_from_today: int) -> date:
    return (datetime.now(NEW_YORK) + timedelta(days=days_from_today)).date()


def local_input(day: date, hour: int, minute: int) -> str:
    """What a datetime-local input holds: the callee's wall-clock time, without a zone."""
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}"


async def due_at(pool: Pool, booking_id: uuid.UUID) -> datetime:
    """The booking's target's next_at, read on New York's clock."""
    next_at: datetime = await pool.fetchval(
        "SELECT next_at FROM campaign_targets WHERE campaign_id = $1", booking_id
    )
    return next_at.astimezone(NEW_YORK)


async def test_an_operator_books_reschedules_and_cancels_a_callback_an_analyst_only_reads(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard bookings")
    answered = await open_call(srv, pool, org)  # the call another booking's attempt will name
    operator = org.emails["operator"]
    await sign_in(page, srv, operator)
    await open_view(page, "Bookings")
    await expect(page.locator("#bookings-empty")).to_have_text("No callbacks booked.")
    refused = [(422, "/api/bookings")]  # made to fail, see below

    # The form: a time that has passed is refused, the server's field named and marked.
    tomorrow, yesterday = new_york_day(1), new_york_day(-1)
    await page.get_by_label("Number to call").fill("(706) 555-0142")
    when = page.get_by_label("Date and time, where the callee is")
    await when.fill(local_input(yesterday, 15, 30))
    say = page.get_by_label("Text to say")
    await expect(say).to_be_hidden()  # connecting is the choice made
    await page.get_by_label("Say a text").check()
    await expect(say).to_be_visible()
    await expect(page.get_by_label("Connect to", exact=True)).to_be_hidden()
    await page.get_by_label("Connect to a number").check()
    await page.get_by_label("Connect to", exact=True).fill(AGENT)
    await page.get_by_label("Call from").fill(org.number)
    book = page.get_by_role("button", name="Book callback")
    error = page.locator("#new-booking-error")
    await book.click()
    await expect(error).to_have_text(
        "Could not book the callback: at: the time has passed: it must be in the future"
    )
    await expect(error).to_have_attribute("role", "alert")
    await expect(when).to_have_attribute("aria-invalid", "true")
    await expect(when).to_be_focused()
    assert await pool.fetchval("SELECT count(*) FROM campaigns WHERE org_id = $1", org.id) == 0

    # Tomorrow at 15:30 where the callee is: booked, the zone found from the number.
    await when.fill(local_input(tomorrow, 15, 30))
    await book.click()
    await expect(page.locator("#new-booking-outcome")).to_contain_text(
        f"Callback to {CALLEE} booked for"
    )
    await expect(error).to_be_hidden()
    await expect(when).not_to_have_attribute("aria-invalid", "true")
    await expect(when).to_have_value("")  # the form is ready for the next one
    booking_id = await pool.fetchval("SELECT id FROM campaigns WHERE org_id = $1", org.id)
    row = page.locator(f'#bookings-list li[data-booking-id="{booking_id}"]')
    await expect(row).to_contain_text(CALLEE)
    await expect(row).to_contain_text("15:30 America/New_York")
    await expect(row).to_contain_text(f"connect to {AGENT}")
    await expect(row).to_contain_text("pending")
    await expect(row).to_contain_text("0 of 2 attempts")
    await expect(page.locator("#bookings-list li")).to_have_count(1)
    made = await pool.fetchrow(
        """SELECT c.kind, c.status, c.from_number, t.number, t.time_zone, t.state
           FROM campaigns c JOIN campaign_targets t ON t.campaign_id = c.id WHERE c.id = $1""",
        booking_id,
    )
    assert made is not None
    assert dict(made) == {
        "kind": "booking", "status": "running", "from_number": org.number, "number": CALLEE,
        "time_zone": "America/New_York", "state": "pending",
    }  # fmt: skip
    due = await due_at(pool, booking_id)
    assert (due.date(), due.hour, due.minute) == (tomorrow, 15, 30)

    # Rescheduled through its row to 17:30, the same day where the callee is.
    await row.get_by_role("button", name=f"Reschedule the callback to {CALLEE}").click()
    new_time = row.get_by_label(f"New time for {CALLEE} (America/New_York)")
    await expect(new_time).to_be_focused()
    await expect(new_time).to_have_value(local_input(tomorrow, 15, 30))
    await new_time.fill(local_input(tomorrow, 17, 30))
    await row.get_by_role("button", name="Save").click()
    await expect(page.locator("#bookings-outcome")).to_contain_text(
        f"The callback to {CALLEE} is moved to"
    )
    await expect(row).to_contain_text("17:30 America/New_York")
    await expect(new_time).to_be_hidden()
    await expect(
        row.get_by_role("button", name=f"Reschedule the callback to {CALLEE}")
    ).to_be_focused()
    due = await due_at(pool, booking_id)
    assert (due.date(), due.hour, due.minute) == (tomorrow, 17, 30)

    # The dialler starts calling it while the page still shows it waiting: a reschedule is
    # refused, the server's words in the row, and the row read again.
    await pool.execute(
        "UPDATE campaign_targets SET state = 'dialing' WHERE campaign_id = $1", booking_id
    )
    refused.append((409, f"/api/bookings/{booking_id}"))
    await row.get_by_role("button", name=f"Reschedule the callback to {CALLEE}").click()
    await new_time.fill(local_input(tomorrow, 18, 0))
    await row.get_by_role("button", name="Save").click()
    row_error = row.locator(".booking-error")
    await expect(row_error).to_have_text(
        "Could not reschedule the callback: "
        "the booking is being called, was called or was cancelled"
    )
    await expect(row_error).to_have_attribute("role", "alert")
    await expect(row).to_contain_text("dialing")
    await expect(new_time).to_be_hidden()
    await expect(
        row.get_by_role("button", name=f"Reschedule the callback to {CALLEE}")
    ).to_be_hidden()
    due = await due_at(pool, booking_id)
    assert (due.hour, due.minute) == (17, 30)
    # The attempt gets no answer; the booking waits for its retry, shown on Refresh.
    await pool.execute(
        """UPDATE campaign_targets SET state = 'pending', attempts = 1, outcome = 'no-answer'
           WHERE campaign_id = $1""",
        booking_id,
    )
    await page.get_by_role("button", name="Refresh").click()
    await expect(row).to_contain_text("no-answer")
    await expect(row_error).to_be_hidden()  # about what the booking was
    await expect(row).to_contain_text("1 of 2 attempts")
    await expect(
        row.get_by_role("button", name=f"Reschedule the callback to {CALLEE}")
    ).to_be_visible()

    # Cancelled, once confirmed.
    cancel = row.get_by_role("button", name=f"Cancel the callback to {CALLEE}")
    await cancel.click()
    await expect(row.locator(".cancel-confirm")).to_contain_text(f"Cancel the callback to {CALLEE}")
    await row.get_by_role("button", name="Keep it").click()
    await expect(cancel).to_be_focused()
    assert await pool.fetchval("SELECT status FROM campaigns WHERE id = $1", booking_id) == (
        "running"
    )
    await cancel.click()
    await row.get_by_role("button", name="Cancel booking").click()
    await expect(page.locator("#bookings-outcome")).to_contain_text(f"The callback to {CALLEE} on")
    await expect(row.locator(".campaign-status")).to_have_text("cancelled")
    await expect(row.locator(".booking-state")).to_have_count(0)  # skipped: said once
    await expect(row.get_by_role("button")).to_have_count(0)
    await expect(row_error).to_be_hidden()
    ended = await pool.fetchrow(
        """SELECT c.status, t.state FROM campaigns c
           JOIN campaign_targets t ON t.campaign_id = c.id WHERE c.id = $1""",
        booking_id,
    )
    assert ended is not None and dict(ended) == {"status": "cancelled", "state": "skipped"}
    actor = await user_id(pool, operator)
    for action in ("booking.create", "booking.reschedule", "booking.cancel"):
        assert await audited(pool, action, str(booking_id), actor) == 1, action

    # Another booking, made through the API and placed (its call written in Postgres): the
    # Refresh button brings it, soonest first, and its call opens in the calls view.
    status, other = await call_api(
        srv, org, "POST", "/api/bookings",
        {"number": OTHER_CALLEE, "at": local_input(tomorrow, 9, 0),
         "say": "Your parcel arrives today.", "from": org.number},
    )  # fmt: skip
    assert status == 201, other
    other_id = uuid.UUID(other["id"])
    await pool.execute(
        """UPDATE campaign_targets SET state = 'done', outcome = 'completed', attempts = 1,
                  call_id = $2 WHERE campaign_id = $1""",
        other_id, answered,
    )  # fmt: skip
    await pool.execute("UPDATE campaigns SET status = 'completed' WHERE id = $1", other_id)
    await page.get_by_role("button", name="Refresh").click()
    items = page.locator("#bookings-list li")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_have_attribute("data-booking-id", str(other_id))
    placed = page.locator(f'#bookings-list li[data-booking-id="{other_id}"]')
    await expect(placed).to_contain_text("09:00 America/New_York")
    await expect(placed).to_contain_text("say “Your parcel arrives today.”")
    await expect(placed).to_contain_text("done")
    await expect(placed.get_by_role("button", name="Reschedule")).to_have_count(0)
    await placed.get_by_role("button", name=f"Open the call to {OTHER_CALLEE}").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#bookings-view")).to_be_hidden()
    await expect(page.locator("#call-title")).to_contain_text(CALLER)
    await expect(page.locator("#call-facts")).to_contain_text("in-progress")
    assert problems(dashboard, *refused) == [], dashboard.problems

    # An analyst reads the list, and is offered nothing to change.
    await sign_out(page)
    await sign_in(page, srv, org.emails["analyst"])
    await open_view(page, "Bookings")
    await expect(row).to_contain_text("17:30 America/New_York")
    await expect(row.locator(".campaign-status")).to_have_text("cancelled")
    await expect(page.locator("#new-booking-panel")).to_be_hidden()
    await expect(row.get_by_role("button")).to_have_count(0)
    await expect(placed.get_by_role("button")).to_have_text(["Open call"])

    # A viewer is not offered the view.
    await sign_out(page)
    await sign_in(page, srv, org.emails["viewer"])
    nav = page.get_by_role("navigation", name="Dashboard sections")
    await expect(nav.get_by_role("button", name="Calls")).to_have_attribute("aria-pressed", "true")
    await expect(nav.get_by_role("button", name="Bookings")).to_have_count(0)
    await expect(page.locator("#bookings-view")).to_be_hidden()
    assert problems(dashboard, *refused) == [], dashboard.problems
