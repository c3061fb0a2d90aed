"""The dashboard's Surveys and Shopper views in real headless Chromium, against the real server.

An admin writes a survey through the form (refused first by the plan, then for having no
question), asks it on the org's number (refused first for a number that is not the org's), a
caller takes it through the signed webhooks, and the page counts the answers, lists the spoken
one and opens its call. An analyst scores ended calls against a secret-shopper script through
the page (a live call and an unknown one refused), reads each moment's evidence, the faults and
the trend per line, and writes a script; an operator reads the scores without scoring; a viewer
is offered neither view. Every click is checked where it lands: Postgres and its audit log.

The browser fixtures are test_dashboard's (same Chromium, same console watch); as there, the
tests take `chromium, srv, pool, dashboard` in that order.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC

from playwright.async_api import expect

from server.app import RunningServer
from storage.db import Pool
from tests.control.test_shopper import GOOD_CALL, SCRIPT, a_shopper_call
from tests.control.test_surveys import next_url, post_signed
from tests.control.test_targets_api import call_api
from tests.e2e import test_dashboard as shared
from tests.e2e.test_dashboard import Dashboard, sign_in, user_id
from tests.e2e.test_dashboard_campaigns import audited, open_view, problems, sign_out
from tests.support.accounts import make_org

# The browser fixtures, shared (bound here by name so that pytest finds them in this module).
chromium = shared.chromium
browser = shared.browser
dashboard = shared.dashboard

SURVEY_CALLER = "+17065550142"  # Georgia: one-party consent, the call goes straight on
NOT_OURS = "+15555550100"
LINE = "+17065550160"  # the line a shopper tests


async def test_an_admin_makes_a_survey_asks_it_on_a_number_and_reads_the_callers_answers(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard surveys")
    admin = org.emails["admin"]
    await sign_in(page, srv, admin)
    await open_view(page, "Surveys")
    await expect(page.locator("#surveys-empty")).to_have_text("No surveys yet.")
    await expect(page.locator("#survey-none")).to_be_visible()

    # Refused by the plan, then for having no question; the reasons in an alert.
    await page.get_by_label("Survey title").fill("After a repair")
    create = page.get_by_role("button", name="Create survey")
    error = page.locator("#new-survey-error")
    await create.click()
    await expect(error).to_have_text(
        "Could not create the survey: your plan does not include surveys "
        "(surveys come with the Insights and Enterprise plans)"
    )
    await expect(error).to_have_attribute("role", "alert")
    await pool.execute("UPDATE organizations SET plan = 'insights' WHERE id = $1", org.id)
    await create.click()
    await expect(error).to_have_text(
        re.compile(r"^Could not create the survey: the body is invalid \(questions: .+\)$")
    )

    # The questions, added one by one: a choice needs its labels.
    prompt = page.get_by_label("What the caller hears")
    add = page.get_by_role("button", name="Add question")
    choices = page.get_by_label("Choices, separated by ;")
    await expect(choices).to_be_hidden()
    await prompt.fill("Was the problem solved? Press 1 for yes, 2 for no.")
    await add.click()
    await page.get_by_label("Question kind").select_option("choice")
    await expect(choices).to_be_visible()
    await prompt.fill("Press 1 for billing, 2 for repairs, 3 for something else.")
    await add.click()
    await expect(error).to_have_text("A keypad choice has 1 to 9 choices, separated by ;.")
    await choices.fill("Billing; Repairs ;Something else;")
    await add.click()
    await page.get_by_label("Question kind").select_option("speech")
    await expect(choices).to_be_hidden()
    await prompt.fill("Anything else you'd like to tell us?")
    await add.click()
    added = page.locator("#new-questions li")
    await expect(added).to_have_count(3)
    await expect(added.nth(1)).to_contain_text("1 Billing · 2 Repairs · 3 Something else")
    await create.click()
    await expect(page.locator("#new-survey-outcome")).to_have_text(
        "Survey “After a repair” created."
    )
    await expect(error).to_be_hidden()
    await expect(added).to_have_count(0)
    made = await pool.fetchrow("SELECT id, questions, closing FROM surveys WHERE org_id = $1",
                               org.id)  # fmt: skip
    assert made is not None
    survey_id = made["id"]
    assert json.loads(made["questions"]) == [
        {"kind": "yes_no", "prompt": "Was the problem solved? Press 1 for yes, 2 for no."},
        {"kind": "choice", "prompt": "Press 1 for billing, 2 for repairs, 3 for something else.",
         "choices": {"1": "Billing", "2": "Repairs", "3": "Something else"}},
        {"kind": "speech", "prompt": "Anything else you'd like to tell us?"},
    ]  # fmt: skip
    assert made["closing"] == "Thank you for your answers. Goodbye."

    # Shown at once, with nothing answered yet.
    item = page.locator(f'#surveys-list li[data-survey-id="{survey_id}"]')
    await expect(item).to_contain_text("After a repair")
    await expect(item).to_contain_text("3 questions")
    await expect(item.get_by_role("button")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#survey-title")).to_have_text("Survey “After a repair”")
    await expect(page.locator("#survey-calls")).to_have_text("No calls have answered yet.")
    questions = page.locator("#survey-questions > li")
    await expect(questions).to_have_count(3)

    # Asked on a number: not one of the org's, then the org's own.
    attach = page.get_by_role("button", name="Ask on this number")
    await page.get_by_label("Ask on one of your numbers").fill(NOT_OURS)
    await attach.click()
    attach_error = page.locator("#survey-attach-error")
    await expect(attach_error).to_have_text(
        f"Could not ask the survey on {NOT_OURS}: that is not one of your numbers"
    )
    await expect(attach_error).to_have_attribute("role", "alert")
    await page.get_by_label("Ask on one of your numbers").fill(org.number)
    await attach.click()
    await expect(page.locator("#survey-attach-outcome")).to_have_text(
        f"Inbound calls to {org.number} now take this survey."
    )
    await expect(attach_error).to_be_hidden()
    assert (
        await pool.fetchval("SELECT survey_id FROM phone_numbers WHERE number = $1", org.number)
        == survey_id
    )
    actor = await user_id(pool, admin)
    assert await audited(pool, "survey.create", str(survey_id), actor) == 1
    assert await audited(pool, "survey.attach", org.number, actor) == 1

    # A caller takes it, as SignalWire's webhooks bring it: yes, repairs, and a few words.
    call_sid = str(uuid.uuid4())
    caller = {"CallSid": call_sid, "AccountSid": str(uuid.uuid4()), "From": SURVEY_CALLER,
              "To": org.number, "Direction": "inbound", "CallStatus": "ringing"}  # fmt: skip
    status, laml = await post_signed(srv, f"{srv.public_url}/laml/voice", caller)
    assert status == 200 and "<Redirect" in laml, laml
    url = next_url(laml)
    for answer in [{}, {"Digits": "1"}, {"Digits": "2"},
                   {"SpeechResult": "the engineer was late", "Confidence": "0.9"}]:  # fmt: skip
        status, laml = await post_signed(srv, url, {**caller, **answer})
        assert status == 200, laml
        if "<Hangup" in laml:
            break
        url = next_url(laml)
    assert "Thank you for your answers. Goodbye." in laml
    rows = await pool.fetch(
        """SELECT question, value, digits, speech FROM survey_answers WHERE survey_id = $1
           ORDER BY question""",
        survey_id,
    )
    assert [tuple(r) for r in rows] == [
        (0, "yes", "1", None), (1, "2", "2", None), (2, "spoken", None, "the engineer was late"),
    ]  # fmt: skip

    # The results, read again: counted per question, the choice by its label.
    await page.get_by_role("button", name="Refresh").click()
    await expect(page.locator("#survey-calls")).to_have_text("1 call answered")
    yes_no, choice, spoken = questions.nth(0), questions.nth(1), questions.nth(2)
    await expect(yes_no.locator(".prompt")).to_have_text(
        "Was the problem solved? Press 1 for yes, 2 for no."
    )
    await expect(yes_no.locator(".question-counts")).to_have_text("1 answered0 unreadable")
    await expect(yes_no.locator('li[data-value="yes"]')).to_have_text("Yes1")
    await expect(yes_no.locator('li[data-value="no"]')).to_have_text("No0")
    await expect(choice.locator("li.bar")).to_have_text(
        ["1Billing0", "2Repairs1", "3Something else0"]
    )
    await expect(choice.locator('li[data-value="2"] meter')).to_have_js_property("value", 1)
    await expect(spoken.locator(".bar-count")).to_have_text("1 spoken answer")

    # What the caller said, and the call it was said on.
    await spoken.get_by_role("button", name="Show answers to question 3").click()
    said = spoken.locator(".spoken-answers li")
    await expect(said).to_have_count(1)
    await expect(said.locator(".evidence")).to_have_text("“the engineer was late”")
    call_id = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", call_sid)
    await expect(said).to_have_attribute("data-call-id", str(call_id))
    await said.get_by_role("button", name="Open the call of answer 1 to question 3").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#surveys-view")).to_be_hidden()
    await expect(page.locator("#call-title")).to_have_text(f"Call {SURVEY_CALLER} → {org.number}")
    refused = [(403, "/api/surveys"), (422, "/api/surveys"),
               (404, f"/api/surveys/{survey_id}/numbers/%2B{NOT_OURS[1:]}")]  # fmt: skip
    assert problems(dashboard, *refused) == [], dashboard.problems

    # An analyst reads the results and is offered nothing to change.
    await sign_out(page)
    await sign_in(page, srv, org.emails["analyst"])
    await open_view(page, "Surveys")
    await item.get_by_role("button").click()
    await expect(page.locator("#survey-calls")).to_have_text("1 call answered")
    await expect(questions.nth(0).locator('li[data-value="yes"]')).to_have_text("Yes1")
    await expect(page.locator("#new-survey-panel")).to_be_hidden()
    await expect(page.locator("#survey-attach-form")).to_be_hidden()
    assert problems(dashboard, *refused) == [], dashboard.problems


async def test_an_analyst_scores_shopper_calls_and_follows_the_trend_a_viewer_sees_neither_view(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard shopper")
    status, script = await call_api(srv, org, "POST", "/api/shopper-scripts", role="analyst",
                                    body={"name": "Repairs line", "moments": SCRIPT})  # fmt: skip
    assert status == 201, script
    script_id = script["id"]
    good = await a_shopper_call(pool, org, LINE, GOOD_CALL)
    refund = "Don't worry, we will refund you the lot."
    poor = await a_shopper_call(pool, org, LINE, [("agent", 0, "Hello?"), ("agent", 3000, refund)])
    live = await a_shopper_call(pool, org, LINE, GOOD_CALL, status="in-progress")
    unknown = uuid.uuid4()
    score_path = f"/api/shopper-scripts/{script_id}/score"
    refused = [(409, score_path), (404, score_path)]

    analyst = org.emails["analyst"]
    await sign_in(page, srv, analyst)
    await open_view(page, "Shopper")
    item = page.locator(f'#scripts-list li[data-script-id="{script_id}"]')
    await expect(item).to_contain_text("Repairs line")
    await expect(item).to_contain_text("4 moments")
    await item.get_by_role("button").click()
    await expect(page.locator("#script-title")).to_have_text("Script “Repairs line”")
    await expect(page.locator("#script-moment-list li")).to_have_count(4)
    await expect(page.locator("#scores-empty")).to_be_visible()
    await expect(page.locator("#trend-empty")).to_be_visible()

    # Refused: a call still going on, and one the org does not have.
    call_field = page.get_by_label("Score an ended call (call id)")
    score = page.get_by_role("button", name="Score call")
    error = page.locator("#score-error")
    await call_field.fill(str(live))
    await score.click()
    await expect(error).to_have_text("Could not score the call: a call is scored once it has ended")
    await expect(error).to_have_attribute("role", "alert")
    await call_field.fill(str(unknown))
    await score.click()
    await expect(error).to_have_text("Could not score the call: no such call")

    # The good call: every moment met, each where it was said.
    await call_field.fill(str(good))
    await score.click()
    await expect(page.locator("#score-outcome")).to_have_text(
        f"The call to {LINE} scored 100 of 100."
    )
    await expect(error).to_be_hidden()
    row = page.locator(f'#scores-rows tr[data-call-id="{good}"]')
    await expect(row.locator("td").nth(0)).to_have_text(LINE)
    await expect(row.locator(".score")).to_have_text("100")
    await row.get_by_text("4 of 4 moments right").click()
    greeting = row.locator('li[data-moment="greeting"]')
    await expect(greeting).to_be_visible()
    await expect(greeting.locator(".badge")).to_have_text("met")
    await expect(greeting.locator(".when")).to_have_text("at 0:00")
    await expect(greeting.locator(".evidence")).to_have_text(f"“{GOOD_CALL[0][2]}”")
    await expect(row.locator('li[data-moment="booking"] .when')).to_have_text("at 0:15")
    await expect(row.locator('li[data-moment="refund promise"] .badge')).to_have_text("avoided")

    # The poor call: nothing expected met, and the forbidden promise made (a fault).
    await call_field.fill(str(poor))
    await score.click()
    await expect(page.locator("#score-outcome")).to_have_text(
        f"The call to {LINE} scored 0 of 100."
    )
    await expect(page.locator("#scores-rows tr")).to_have_count(2)
    bad = page.locator(f'#scores-rows tr[data-call-id="{poor}"]')
    await expect(bad.locator(".score")).to_have_text("0")
    await bad.get_by_text("0 of 4 moments right, 1 fault").click()
    fault = bad.locator('li[data-moment="refund promise"]')
    await expect(fault).to_have_class(re.compile(r"\boutcome-fault\b"))
    await expect(fault.locator(".badge")).to_have_text("fault: said")
    await expect(fault.locator(".when")).to_have_text("at 0:03")
    await expect(fault.locator(".evidence")).to_have_text(f"“{refund}”")
    await expect(bad.locator('li[data-moment="greeting"] .badge')).to_have_text("not met")

    # The trend: the line's week, its two calls and their mean.
    # The week as the server truncates it (Postgres' week, sent as a UTC timestamp).
    started = await pool.fetchval(
        "SELECT date_trunc('week', started_at) FROM calls WHERE id = $1", good
    )
    week = started.astimezone(UTC).date().isoformat()
    trend = page.locator(f'#trend section[data-line="{LINE}"]')
    await expect(trend.locator("h4")).to_have_text(LINE)
    await expect(trend.locator("tbody tr")).to_have_count(1)
    await expect(trend.locator("tbody td")).to_have_text([f"week of {week}", "2", "50"])
    saved = await pool.fetch(
        "SELECT call_id, agent_number, score FROM shopper_scores WHERE script_id = $1",
        uuid.UUID(script_id),
    )
    assert {(r["call_id"], r["agent_number"], r["score"]) for r in saved} == {
        (good, LINE, 100.0), (poor, LINE, 0.0),
    }  # fmt: skip
    actor = await user_id(pool, analyst)
    for call in (good, poor):
        assert await audited(pool, "shopper.score", str(call), actor) == 1
    assert await audited(pool, "shopper.score", str(live), actor) == 0

    # A script written on the page: a line that says nothing is refused before it is sent.
    await page.get_by_label("Script title").fill("Booking line")
    moments = page.get_by_label("Moments, one a line")
    await moments.fill("greeting | thank you for calling Acme\nrefund | maybe | refund")
    await page.get_by_role("button", name="Create script").click()
    script_error = page.locator("#new-script-error")
    await expect(script_error).to_have_text(
        "Could not create the script: line 2: a moment is expected or forbidden, not “maybe”"
    )
    await moments.fill(
        "greeting | thank you for calling Acme; thanks for calling\n\n"
        "refund | forbidden | we will refund you"
    )
    await page.get_by_role("button", name="Create script").click()
    await expect(page.locator("#new-script-outcome")).to_have_text("Script “Booking line” created.")
    await expect(script_error).to_be_hidden()
    await expect(page.locator("#script-title")).to_have_text("Script “Booking line”")
    await expect(page.locator("#scores-empty")).to_be_visible()
    written = await pool.fetchval(
        "SELECT moments FROM shopper_scripts WHERE org_id = $1 AND name = 'Booking line'", org.id
    )
    assert json.loads(written) == [
        {"name": "greeting", "kind": "expected", "speaker": "agent", "weight": 1.0,
         "phrases": ["thank you for calling Acme", "thanks for calling"]},
        {"name": "refund", "kind": "forbidden", "speaker": "agent", "weight": 1.0,
         "phrases": ["we will refund you"]},
    ]  # fmt: skip

    # A scored call opens in the calls view.
    await item.get_by_role("button").click()
    await expect(row).to_be_visible()
    await row.get_by_role(
        "button", name=re.compile(f"^Open the call to {re.escape(LINE)} of ")
    ).click()
    await expect(page.locator("#shopper-view")).to_be_hidden()
    await expect(page.locator("#call-title")).to_contain_text(f"→ {LINE}")
    await expect(page.locator("#call-facts")).to_contain_text("completed")
    assert problems(dashboard, *refused) == [], dashboard.problems

    # An operator reads the scores and the trend, and may not score.
    await sign_out(page)
    await sign_in(page, srv, org.emails["operator"])
    await open_view(page, "Shopper")
    await item.get_by_role("button").click()
    await expect(page.locator("#scores-rows tr")).to_have_count(2)
    await expect(trend.locator("tbody td")).to_have_text([f"week of {week}", "2", "50"])
    await expect(page.locator("#score-form")).to_be_hidden()
    await expect(page.locator("#new-script-panel")).to_be_hidden()

    # A viewer reads neither surveys nor shopper scores: not offered.
    await sign_out(page)
    await sign_in(page, srv, org.emails["viewer"])
    nav = page.get_by_role("navigation", name="Dashboard sections")
    await expect(nav.get_by_role("button", name="Calls")).to_have_attribute("aria-pressed", "true")
    await expect(nav.get_by_role("button", name="Surveys")).to_have_count(0)
    await expect(nav.get_by_role("button", name="Shopper")).to_have_count(0)
    await expect(page.locator("#surveys-view")).to_be_hidden()
    await expect(page.locator("#shopper-view")).to_be_hidden()
    assert problems(dashboard, *refused) == [], dashboard.problems
