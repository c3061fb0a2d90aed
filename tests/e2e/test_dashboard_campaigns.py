"""The dashboard's Targets and Campaigns views in real headless Chromium, against the real server.

An operator imports voice targets from a CSV file and puts a number on the do-not-call list
through the page; an admin takes it off; a viewer is not offered either view. An operator makes
a campaign through the form (refused first by the plan, then by a number that is not the org's),
enrolls targets by tag, starts, pauses and cancels it with the page's buttons. The server runs
without SignalWire credentials, so its dialler calls no one: the campaign's progress is made by
writing its targets' rows in Postgres, and the page shows it by polling. Every click is checked
where it lands: Postgres and its audit log.

The browser fixtures are test_dashboard's (same Chromium, same console watch); as there, the
tests take `chromium, srv, pool, dashboard` in that order.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from playwright.async_api import FilePayload, Page, expect

from server.app import RunningServer
from storage.db import Pool
from tests.e2e import test_dashboard as shared
from tests.e2e.test_dashboard import CALLER, Dashboard, ms, open_call, sign_in, user_id
from tests.support.accounts import Org, make_org

# The browser fixtures, shared (bound here by name so that pytest finds them in this module).
chromium = shared.chromium
browser = shared.browser
dashboard = shared.dashboard

CSV = (
    b"number,name,tags,plan\n"
    b"(706) 555-0100,Ann Lee,spring;vip,gold\n"
    b"+13125550100,Bo Diaz,spring,\n"
    b"nope,Cy,spring,\n"
)


async def call_api(
    srv: RunningServer, org: Org, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """The API as an operator's key calls it (setting up what the page then shows)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, srv.http_url + path, json=body,
                     headers=org.bearer("operator")) as resp,
    ):  # fmt: skip
        return resp.status, (await resp.json() if resp.status != 204 else None)


async def open_view(page: Page, name: str) -> None:
    tab = page.get_by_role("navigation", name="Dashboard sections").get_by_role("button", name=name)
    await tab.click()
    await expect(tab).to_have_attribute("aria-pressed", "true")


async def polling(page: Page, on: bool) -> None:
    """Waits until the page polls the shown campaign, or has stopped."""
    await page.wait_for_function(
        "(on) => window.voxsouthDashboard.campaignPolling === on", arg=on, timeout=ms(10)
    )


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#login")).to_be_visible()


def problems(dashboard: Dashboard, *provoked: tuple[int, str]) -> list[str]:
    """The page's console errors and exceptions, less the failed requests this test provoked
    on purpose (status, path): Chromium logs every error answer a fetch gets."""

    def expected(problem: str) -> bool:
        status = re.search(r"the server responded with a status of (\d+) ", problem)
        url = re.search(r"'url': '([^']*)'", problem)
        return (
            status is not None and url is not None
            and (int(status[1]), urlsplit(url[1]).path) in provoked
        )  # fmt: skip

    return [p for p in dashboard.problems if not expected(p)]


async def audited(pool: Pool, action: str, resource_id: str, actor: uuid.UUID) -> int:
    count: int = await pool.fetchval(
        """SELECT count(*) FROM audit_log WHERE action = $1 AND resource_id = $2
           AND actor_type = 'user' AND actor_id = $3""",
        action, resource_id, actor,
    )  # fmt: skip
    return count


REFUSED_IMPORT = (422, "/api/voice-targets/import")
"""The file without a `number` column, refused on purpose."""


async def test_an_operator_imports_targets_and_fills_the_do_not_call_list_a_viewer_sees_neither(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard targets")
    operator = org.emails["operator"]
    await sign_in(page, srv, operator)
    await open_view(page, "Targets")
    await expect(page.locator("#targets-empty")).to_have_text("No voice targets.")

    # The file: two good rows, one rejected; its report on the page.
    await page.get_by_label("CSV file").set_input_files(
        files=[FilePayload(name="t.csv", mimeType="text/csv", buffer=CSV)]
    )
    await page.get_by_label("On duplicate number").select_option("skip")
    await page.get_by_role("button", name="Import").click()
    await expect(page.locator("#import-counts")).to_have_text(
        "2 added · 0 updated · 0 unchanged · 1 rejected"
    )
    await expect(page.locator("#import-rejected li")).to_have_text(
        ["line 4: number: 'nope' is not a phone number"]
    )
    await expect(page.locator("#import-error")).to_be_hidden()
    rows = page.locator("#targets-rows tr")
    await expect(rows).to_have_count(2)
    ann = page.locator('#targets-rows tr[data-number="+17065550100"]')
    await expect(ann).to_contain_text("Ann Lee")
    await expect(ann).to_contain_text("America/New_York (from the number)")
    await expect(ann).to_contain_text("spring, vip")
    await expect(ann).to_contain_text("plan: gold")
    await expect(page.locator('#targets-rows tr[data-number="+13125550100"]')).to_contain_text(
        "Bo Diaz"
    )
    saved = await pool.fetch(
        "SELECT number, name, time_zone, tags FROM voice_targets WHERE org_id = $1 ORDER BY number",
        org.id,
    )
    assert [dict(r) for r in saved] == [
        {"number": "+13125550100", "name": "Bo Diaz", "time_zone": "America/Chicago",
         "tags": ["spring"]},
        {"number": "+17065550100", "name": "Ann Lee", "time_zone": "America/New_York",
         "tags": ["spring", "vip"]},
    ]  # fmt: skip

    # The tag filter, and a file the server refuses whole: its reason in an alert.
    await page.get_by_label("Tag", exact=True).fill("vip")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("+17065550100")
    await page.get_by_role("button", name="Show all").click()
    await expect(rows).to_have_count(2)
    await page.get_by_label("CSV file").set_input_files(
        files=[FilePayload(name="bad.csv", mimeType="text/csv", buffer=b"phone\n+13125550100\n")]
    )
    await page.get_by_role("button", name="Import").click()
    error = page.locator("#import-error")
    await expect(error).to_have_attribute("role", "alert")
    await expect(error).to_have_text(
        "Could not import bad.csv: the first line must name the columns, one of them `number`"
    )

    # The do-not-call list: an operator adds, may not remove.
    await page.get_by_label("Number", exact=True).fill("(415) 555-0199")
    await page.get_by_label("Reason (optional)").fill("Asked not to be called")
    await page.get_by_role("button", name="Add to the list").click()
    await expect(page.locator("#dnc-outcome")).to_have_text("+14155550199 added to the list.")
    listed = page.locator('#dnc-list li[data-number="+14155550199"]')
    await expect(listed).to_contain_text("Asked not to be called")
    await expect(listed).to_contain_text("by a team member")
    await expect(listed.get_by_role("button")).to_have_count(0)
    await page.get_by_label("Number", exact=True).fill("+1 415 555 0199")
    await page.get_by_role("button", name="Add to the list").click()
    await expect(page.locator("#dnc-outcome")).to_have_text("+14155550199 was on the list already.")
    await expect(page.locator("#dnc-list li")).to_have_count(1)
    row = await pool.fetchrow(
        "SELECT reason, added_by FROM do_not_call WHERE org_id = $1 AND number = $2",
        org.id, "+14155550199",
    )  # fmt: skip
    assert row is not None
    assert dict(row) == {
        "reason": "Asked not to be called",
        "added_by": f"user:{await user_id(pool, operator)}",
    }
    assert problems(dashboard, REFUSED_IMPORT) == [], dashboard.problems

    # An admin takes it off the list.
    await sign_out(page)
    admin = org.emails["admin"]
    await sign_in(page, srv, admin)
    await open_view(page, "Targets")
    await page.get_by_role("button", name="Remove +14155550199 from the do-not-call list").click()
    await expect(page.locator("#dnc-outcome")).to_have_text("+14155550199 taken off the list.")
    await expect(page.locator("#dnc-list li")).to_have_count(0)
    await expect(page.locator("#dnc-empty")).to_be_visible()
    assert await pool.fetchval("SELECT count(*) FROM do_not_call WHERE org_id = $1", org.id) == 0
    assert await audited(pool, "do_not_call.remove", "+14155550199",
                         await user_id(pool, admin)) == 1  # fmt: skip

    # A long list comes a page at a time, newest first.
    await pool.execute(
        """INSERT INTO do_not_call (org_id, number, added_by, created_at)
           SELECT $1, '+1415555' || lpad(n::text, 4, '0'), 'user:import',
                  now() - n * interval '1 minute'
           FROM generate_series(1, 150) AS n""",
        org.id,
    )
    await page.reload()
    await open_view(page, "Targets")
    numbers = page.locator("#dnc-list li")
    await expect(numbers).to_have_count(100)
    await expect(page.locator("#dnc-count")).to_have_text("(100+)")
    await expect(numbers.first).to_have_attribute("data-number", "+14155550001")
    await page.get_by_role("button", name="More numbers").click()
    await expect(numbers).to_have_count(150)
    await expect(numbers.last).to_have_attribute("data-number", "+14155550150")
    await expect(page.locator("#dnc-count")).to_have_text("(150)")
    await expect(page.get_by_role("button", name="More numbers")).to_be_hidden()

    # A viewer reads neither targets nor campaigns: not offered.
    await sign_out(page)
    await sign_in(page, srv, org.emails["viewer"])
    nav = page.get_by_role("navigation", name="Dashboard sections")
    await expect(nav.get_by_role("button", name="Calls")).to_have_attribute("aria-pressed", "true")
    await expect(nav.get_by_role("button", name="Targets")).to_have_count(0)
    await expect(nav.get_by_role("button", name="Campaigns")).to_have_count(0)
    await expect(page.locator("#targets-view")).to_be_hidden()
    assert problems(dashboard, REFUSED_IMPORT) == [], dashboard.problems


async def test_an_operator_makes_starts_follows_pauses_and_cancels_a_campaign(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard campaigns")
    for number, tags in [
        ("+17065550100", ["spring"]), ("+13125550100", ["spring"]),
        ("+14045550100", ["spring"]), ("+12065550100", ["autumn"]),
    ]:  # fmt: skip
        status, body = await call_api(srv, org, "POST", "/api/voice-targets",
                                      {"number": number, "tags": tags})  # fmt: skip
        assert status == 201, body
    answered = await open_call(srv, pool, org)  # a call one target's attempt will name
    refused = [(403, "/api/campaigns"), (422, "/api/campaigns")]  # made to fail, see below
    operator = org.emails["operator"]
    await sign_in(page, srv, operator)
    await open_view(page, "Campaigns")
    await expect(page.locator("#campaigns-empty")).to_be_visible()
    await expect(page.locator("#campaign-none")).to_be_visible()

    # The form: refused by the plan, then by a number that is not the org's, then made.
    await page.get_by_label("Name", exact=True).fill("Spring reminders")
    await page.get_by_label("What the call says").fill("Your appointment is tomorrow at nine.")
    await page.get_by_label("From", exact=True).fill("+15555550100")
    await page.get_by_label("Calls at a time (at most)").fill("2")
    await page.get_by_label("Start time").fill("09:00")
    await page.get_by_label("End time").fill("20:00")
    await page.get_by_label("Enroll targets with tag (optional)").fill("spring")
    create = page.get_by_role("button", name="Create campaign")
    error = page.locator("#new-campaign-error")
    await create.click()
    await expect(error).to_have_text(
        "Could not create the campaign: your plan does not include campaigns"
    )
    await expect(error).to_have_attribute("role", "alert")
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    await create.click()
    # The server's words for it, and the field it names.
    await expect(error).to_have_text(
        re.compile(r"^Could not create the campaign: from must be .+ \(from: .+\)$")
    )
    await page.get_by_label("From", exact=True).fill(org.number)
    await create.click()
    await expect(page.locator("#new-campaign-outcome")).to_have_text(
        "Campaign “Spring reminders” created as a draft. 3 targets with tag “spring” enrolled."
    )
    await expect(error).to_be_hidden()

    campaign_id = await pool.fetchval("SELECT id FROM campaigns WHERE org_id = $1", org.id)
    refused.append((409, f"/api/campaigns/{campaign_id}/resume"))
    made = await pool.fetchrow(
        """SELECT name, status, flow, from_number, max_concurrent, window_start::text AS s,
                  window_end::text AS e FROM campaigns WHERE id = $1""",
        campaign_id,
    )
    assert made is not None
    assert {**dict(made), "flow": json.loads(made["flow"])} == {
        "name": "Spring reminders", "status": "draft",
        "flow": {"say": "Your appointment is tomorrow at nine."}, "from_number": org.number,
        "max_concurrent": 2, "s": "09:00:00", "e": "20:00:00",
    }  # fmt: skip

    # The new campaign is shown: a draft with its three targets, none called.
    item = page.locator(f'#campaigns-list li[data-campaign-id="{campaign_id}"]')
    await expect(item).to_contain_text("Spring reminders")
    await expect(item.get_by_role("button")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#campaign-title")).to_have_text("Campaign “Spring reminders”")
    facts = page.locator("#campaign-facts")
    shown = facts.locator(".campaign-status")
    await expect(shown).to_have_text("draft")
    await expect(facts).to_contain_text("says “Your appointment is tomorrow at nine.”")
    await expect(facts).to_contain_text("09:00–20:00, every day")
    progress_text = page.locator("#campaign-progress-text")
    await expect(progress_text).to_have_text("0 of 3 targets finished")
    counts = page.locator("#campaign-counts")
    await expect(counts.locator('dd[data-state="targets"]')).to_have_text("3")
    await expect(counts.locator('dd[data-state="pending"]')).to_have_text("3")
    results = page.locator("#results-rows tr")
    await expect(results).to_have_count(3)
    await expect(results.nth(0)).to_contain_text("+13125550100pending0")
    await expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    await polling(page, False)  # a draft does not change by itself

    # Started: running, and followed by polling (the dialler calls no one here: Postgres does).
    await page.get_by_role("button", name="Start").click()
    await expect(shown).to_have_text("running")
    await expect(item.locator(".campaign-status")).to_have_text("running")
    await expect(page.get_by_role("button", name="Start")).to_be_hidden()
    await expect(page.get_by_role("button", name="Pause")).to_be_focused()
    await polling(page, True)
    assert await pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == (
        "running"
    )
    await pool.execute(
        """UPDATE campaign_targets SET state = 'done', outcome = 'completed', attempts = 1,
                  call_id = $3, updated_at = now()
           WHERE campaign_id = $1 AND number = $2""",
        campaign_id, "+17065550100", answered,
    )  # fmt: skip
    await pool.execute(
        """UPDATE campaign_targets SET state = 'pending', outcome = 'busy', attempts = 1,
                  next_at = now() + interval '5 minutes', updated_at = now()
           WHERE campaign_id = $1 AND number = $2""",
        campaign_id, "+13125550100",
    )  # fmt: skip
    polled = ms(2 * 2 + 2)  # two polls, and time to spare
    await expect(progress_text).to_have_text("1 of 3 targets finished", timeout=polled)
    await expect(page.locator("#campaign-progress")).to_have_js_property("value", 1)
    await expect(counts.locator('dd[data-state="done"]')).to_have_text("1")
    await expect(counts.locator('dd[data-state="pending"]')).to_have_text("2")
    await expect(page.locator("#campaign-outcomes")).to_have_text("Outcomes: completed 1")
    done = page.locator('#results-rows tr[data-number="+17065550100"]')
    await expect(done).to_contain_text("done1completed")
    busy = page.locator('#results-rows tr[data-number="+13125550100"]')
    await expect(busy).to_contain_text("pending1busy")
    await expect(busy.get_by_role("button")).to_have_count(0)

    # Paused; then another supervisor resumes it (in Postgres), and this page's Resume, stale,
    # is refused: the error shown, the page reads the campaign again.
    await page.get_by_role("button", name="Pause").click()
    await expect(shown).to_have_text("paused")
    await polling(page, False)
    assert await pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == (
        "paused"
    )
    await pool.execute("UPDATE campaigns SET status = 'running' WHERE id = $1", campaign_id)
    await page.get_by_role("button", name="Resume").click()
    campaign_error = page.locator("#campaign-error")
    await expect(campaign_error).to_have_text("a running campaign cannot resume")
    await expect(campaign_error).to_have_attribute("role", "alert")
    await expect(shown).to_have_text("running")
    await expect(page.get_by_role("button", name="Resume")).to_be_hidden()
    await polling(page, True)  # running again: followed again
    await open_view(page, "Calls")  # out of sight: not read
    await polling(page, False)
    await open_view(page, "Campaigns")
    await expect(shown).to_have_text("running")
    await polling(page, True)

    # Cancelled, once confirmed: the targets not called are skipped.
    await page.get_by_role("button", name="Cancel…").click()
    await page.get_by_role("button", name="Keep it").click()
    await expect(shown).to_have_text("running")
    await page.get_by_role("button", name="Cancel…").click()
    await page.get_by_role("button", name="Cancel campaign").click()
    await expect(shown).to_have_text("cancelled")
    await polling(page, False)
    await expect(campaign_error).to_be_hidden()
    await expect(progress_text).to_have_text("3 of 3 targets finished")
    await expect(page.locator("#campaign-outcomes")).to_have_text(
        "Outcomes: cancelled 2 · completed 1"
    )
    await expect(page.locator("#campaign-actions button:visible")).to_have_count(0)
    ended = await pool.fetchrow(
        "SELECT status, finished_at IS NOT NULL AS finished FROM campaigns WHERE id = $1",
        campaign_id,
    )
    assert ended is not None and dict(ended) == {"status": "cancelled", "finished": True}
    actor = await user_id(pool, operator)
    for action, times in [
        ("campaign.create", 1), ("campaign.enroll", 1), ("campaign.start", 1),
        ("campaign.pause", 1), ("campaign.resume", 0), ("campaign.cancel", 1),
    ]:  # fmt: skip
        assert await audited(pool, action, str(campaign_id), actor) == times, action

    # A result with a call opens it in the calls view.
    await done.get_by_role("button", name="Open the call to +17065550100").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#campaigns-view")).to_be_hidden()
    await expect(page.locator("#call-title")).to_contain_text(CALLER)
    await expect(page.locator("#call-facts")).to_contain_text("in-progress")
    assert problems(dashboard, *refused) == [], dashboard.problems

    # An analyst follows it, and is offered nothing to change.
    await sign_out(page)
    await sign_in(page, srv, org.emails["analyst"])
    await open_view(page, "Campaigns")
    await item.get_by_role("button").click()
    await expect(shown).to_have_text("cancelled")
    await expect(page.locator("#new-campaign-panel")).to_be_hidden()
    await expect(page.locator("#campaign-detail .actions button:visible")).to_have_count(0)
    await expect(done.get_by_role("button", name="Open the call to +17065550100")).to_be_visible()
    assert problems(dashboard, *refused) == [], dashboard.problems
