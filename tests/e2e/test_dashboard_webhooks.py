"""The dashboard's Webhooks view in real headless Chromium, against the real server.

An admin registers a receiver on loopback through the form (refused first for a URL that is
not http(s), the server's field named), is shown the endpoint's signing secret once, reads the
endpoint's delivery log after a call's event was delivered, replays the delivery from its row
and removes the endpoint once confirmed. An operator is not offered the view. The server may
send to loopback (`webhooks_allow_private`) and its own sender idles: the test delivers with a
`WebhookSender` of its own, as tests/control/test_outbound_webhooks.py does. Every click is
checked where it lands: Postgres, its audit log, and the receiver.

The browser fixtures are test_dashboard's (same Chromium, same console watch); as there, the
tests take `chromium`, then the server, `pool`, and `dashboard` last.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest
from playwright.async_api import expect

from server.app import RunningServer
from storage.db import Pool
from tests.control import test_outbound_webhooks as hooks
from tests.control.test_outbound_webhooks import Receiver, an_inbound_call, deliver, verify
from tests.e2e import test_dashboard as shared
from tests.e2e.test_dashboard import Dashboard, sign_in, user_id
from tests.e2e.test_dashboard_campaigns import audited, open_view, problems, sign_out
from tests.support.accounts import make_org

# The browser fixtures and the receiver, shared (bound here by name so that pytest finds them
# in this module).
chromium = shared.chromium
browser = shared.browser
dashboard = shared.dashboard
receiver = hooks.receiver

REFUSED_URL = "ftp://example.com/x"


@pytest.fixture
async def hooked(
    chromium: str, start_server: Callable[..., AbstractAsyncContextManager[RunningServer]]
) -> AsyncIterator[RunningServer]:
    """A server that may send webhooks to loopback, its own sender idle (the test ticks its
    own); started only when there is a browser."""
    async with start_server(webhooks_allow_private=True, webhook_every_s=3600) as server:
        yield server


async def test_an_admin_adds_reads_replays_and_removes_a_webhook_an_operator_is_not_offered_it(
    chromium: str, hooked: RunningServer, pool: Pool, receiver: Receiver, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard webhooks")
    admin = org.emails["admin"]
    await sign_in(page, hooked, admin)
    await open_view(page, "Webhooks")
    await expect(page.locator("#webhooks-empty")).to_have_text("No webhook endpoints.")
    await expect(page.locator("#webhook-none")).to_be_visible()
    refused = [(422, "/api/webhooks")]  # made to fail, see below

    # A URL webhooks cannot be sent to: refused, the server's field named and marked.
    url_input = page.get_by_label("Endpoint URL")
    await url_input.fill(REFUSED_URL)
    await page.get_by_label("call.started").check()
    add = page.get_by_role("button", name="Add endpoint")
    await add.click()
    error = page.locator("#new-webhook-error")
    await expect(error).to_have_text("Could not add the endpoint: url: an endpoint is an https URL")
    await expect(error).to_have_attribute("role", "alert")
    await expect(url_input).to_have_attribute("aria-invalid", "true")
    await expect(url_input).to_be_focused()
    await expect(page.locator("#webhook-secret-panel")).to_be_hidden()
    count = "SELECT count(*) FROM webhook_endpoints WHERE org_id = $1"
    assert await pool.fetchval(count, org.id) == 0

    # The receiver, for call.started: added, its secret shown this once.
    await url_input.fill(receiver.url)
    await add.click()
    await expect(page.locator("#new-webhook-outcome")).to_have_text(
        f"Endpoint {receiver.url} added."
    )
    await expect(error).to_be_hidden()
    await expect(url_input).not_to_have_attribute("aria-invalid", "true")
    await expect(url_input).to_have_value("")  # the form is ready for the next one
    await expect(page.get_by_label("call.started")).not_to_be_checked()
    secret_field = page.get_by_label("Signing secret")
    await expect(secret_field).to_have_value(re.compile(r"^whsec_[\w-]{20,}$"))
    await expect(secret_field).to_have_attribute("readonly", "")
    await expect(page.locator("#webhook-secret-note")).to_contain_text(
        re.compile("copy it now: it is not shown again", re.IGNORECASE)
    )
    secret = await secret_field.input_value()
    # Copying: the clipboard when the browser lets the page write it, else the text selected.
    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.locator("#webhook-secret-copied")).to_have_text(
        re.compile(r"^(Copied\.|The secret is selected: copy it with Ctrl\+C)")
    )
    made = await pool.fetchrow(
        "SELECT id, url, events, active, created_by FROM webhook_endpoints WHERE org_id = $1",
        org.id,
    )
    assert made is not None
    actor = await user_id(pool, admin)
    assert (made["url"], list(made["events"]), made["active"], made["created_by"]) == (
        receiver.url, ["call.started"], True, f"user:{actor}",
    )  # fmt: skip
    endpoint_id: uuid.UUID = made["id"]
    assert await audited(pool, "webhook.create", str(endpoint_id), actor) == 1
    item = page.locator(f'#webhooks-list li[data-webhook-id="{endpoint_id}"]')
    await expect(item).to_contain_text(receiver.url)
    await expect(item).to_contain_text("call.started")
    await expect(page.locator("#webhooks-list li")).to_have_count(1)

    # Dismissed, the secret is gone from the page; the list never carries it.
    await page.get_by_role("button", name="Done").click()
    await expect(page.locator("#webhook-secret-panel")).to_be_hidden()
    await expect(secret_field).to_have_value("")
    assert secret not in await page.content()

    # Its log: empty until a call starts and the sender delivers the event.
    await item.get_by_role("button", name=f"Deliveries to {receiver.url}").click()
    await expect(page.locator("#webhook-title")).to_have_text(f"Deliveries to {receiver.url}")
    await expect(page.locator("#deliveries-empty")).to_have_text("No deliveries yet.")
    await an_inbound_call(hooked, org)
    await deliver(hooked)
    assert len(receiver.arrived) == 1
    headers, body = receiver.arrived[0]
    assert json.loads(body)["type"] == "call.started"
    assert verify(secret, headers, body)  # the secret shown is the one deliveries are signed with
    refresh = page.get_by_role("button", name="Refresh")
    await refresh.click()
    rows = page.locator("#deliveries-rows tr")
    await expect(rows).to_have_count(1)
    row = rows.first
    await expect(row.locator(".delivery-event")).to_have_text("call.started")
    await expect(row.locator(".delivery-status")).to_have_text("delivered")
    await expect(row.locator(".delivery-attempts")).to_have_text("1")
    await expect(row.locator(".delivery-answer")).to_have_text("HTTP 200")
    delivery_id = await pool.fetchval(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id
    )
    await expect(row).to_have_attribute("data-delivery-id", str(delivery_id))

    # Replayed from its row: pending until the sender's next round, then delivered again.
    await row.get_by_role("button", name=re.compile("^Replay")).click()
    await expect(row.locator(".delivery-status")).to_have_text("pending")
    await expect(row.get_by_role("button")).to_have_count(0)
    await expect(page.locator("#deliveries-outcome")).to_have_text(
        "The call.started delivery is queued to be sent again."
    )
    status = "SELECT status FROM webhook_deliveries WHERE id = $1"
    assert await pool.fetchval(status, delivery_id) == "pending"
    assert await audited(pool, "webhook.replay", str(delivery_id), actor) == 1
    await deliver(hooked)
    assert len(receiver.arrived) == 2
    assert receiver.arrived[1][0]["Voxsouth-Delivery"] == headers["Voxsouth-Delivery"]
    await refresh.click()
    await expect(row.locator(".delivery-status")).to_have_text("delivered")
    await expect(row.locator(".delivery-attempts")).to_have_text("2")

    # Removed, once confirmed: the endpoint stops, listed as removed, its log kept.
    remove = item.get_by_role("button", name=f"Remove the endpoint {receiver.url}")
    await remove.click()
    await expect(item.locator(".remove-confirm")).to_contain_text(
        f"Remove the endpoint {receiver.url}?"
    )
    await item.get_by_role("button", name="Keep it").click()
    await expect(remove).to_be_focused()
    active = "SELECT active FROM webhook_endpoints WHERE id = $1"
    assert await pool.fetchval(active, endpoint_id) is True
    await remove.click()
    await item.get_by_role("button", name="Remove endpoint").click()
    await expect(page.locator("#webhooks-outcome")).to_have_text(
        f"The endpoint {receiver.url} is removed."
    )
    await expect(item.locator(".webhook-removed")).to_have_text("removed")
    await expect(remove).to_have_count(0)
    assert await pool.fetchval(active, endpoint_id) is False
    assert await audited(pool, "webhook.remove", str(endpoint_id), actor) == 1
    await expect(row.locator(".delivery-status")).to_have_text("delivered")
    await expect(rows.get_by_role("button")).to_have_count(0)  # nothing to replay to
    assert problems(dashboard, *refused) == [], dashboard.problems

    # An operator is not offered the view.
    await sign_out(page)
    await sign_in(page, hooked, org.emails["operator"])
    nav = page.get_by_role("navigation", name="Dashboard sections")
    await expect(nav.get_by_role("button", name="Calls")).to_have_attribute("aria-pressed", "true")
    await expect(nav.get_by_role("button", name="Bookings")).to_be_visible()
    await expect(nav.get_by_role("button", name="Webhooks")).to_have_count(0)
    await expect(page.locator("#webhooks-view")).to_be_hidden()
    await expect(page.locator("#webhooks-list li")).to_have_count(0)  # forgotten at sign-out
    assert problems(dashboard, *refused) == [], dashboard.problems
