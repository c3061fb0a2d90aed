"""The supervisors' dashboard in real headless Chromium, against the real server.

One test plays a whole simulated call: the caller asks for a manager, the server transcribes
and detects it, the alert appears on the page and is acknowledged. The others open a call
through the signed voice webhook and submit its transcript, consent verdict and escalation as
media events to the running server's event writer, so they travel the path a detected one
does (Postgres, NOTIFY, the feed hub, the WebSocket, the page) without waiting for speech. The
supervisor's clicks are checked where they land: in Postgres and its audit log.

Chromium is the system's (`chromium` on PATH; `make test` installs it when run as root). Without
it these tests skip, unless VOXSOUTH_REQUIRE_BROWSER=1 (CI) makes that a failure.

The browser tests take `chromium, srv, pool, dashboard` in that order: no server starts when
there is no browser, and the page (with its live feed) closes before the server stops.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from bench.eval_set import load, render_call
from media.codecs import ulaw_encode
from media.events import (
    ConsentEvidence,
    EscalationRaised,
    MediaEvent,
    TranscriptPartial,
    TranscriptSegment,
)
from server.app import RunningServer
from server.simulator.audio import CallAudio
from storage.db import Pool
from tests.conftest import timeout
from tests.support.accounts import PASSWORD, Org, make_org
from tests.support.calls import simulator

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(os.environ.get("VOXSOUTH_DASHBOARD_SCREENSHOT", "/tmp/dashboard.png"))
CALLER = "+14155550123"  # a California number: the all-party consent rule applies


BLOCKED_WEBSOCKET = "/no-websockets-here"
# A network where WebSockets cannot connect (a proxy that refuses upgrades, say): every
# WebSocket the page opens asks for a path that answers 404 instead.
WITHOUT_WEBSOCKETS = f"""
window.WebSocket = class extends window.WebSocket {{
  constructor(url, protocols) {{
    super(`ws://${{window.location.host}}{BLOCKED_WEBSOCKET}`, protocols);
  }}
}};
"""


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is not None:
        return path
    if os.environ.get("VOXSOUTH_REQUIRE_BROWSER") == "1":
        pytest.fail("chromium is not on PATH, and VOXSOUTH_REQUIRE_BROWSER=1 requires it")
    pytest.skip(
        "chromium is not on PATH (`make test` installs it when run as root); "
        "set VOXSOUTH_REQUIRE_BROWSER=1 to make this a failure"
    )


def ms(seconds: float) -> float:
    """A Playwright timeout (milliseconds), scaled like every wait in the suite."""
    return timeout(seconds) * 1000


expect.set_options(timeout=ms(10))


@pytest.fixture
def chromium() -> str:
    """Chromium's path, or a skip (or failure) before any server is started for nothing."""
    return chromium_path()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Dashboard:
    page: Page
    problems: list[str]
    """Console errors and uncaught exceptions: a CSP refusal shows up here."""


@pytest.fixture
async def dashboard(browser: Browser) -> AsyncIterator[Dashboard]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(ms(10))
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        url = urlsplit(message.location.get("url", ""))
        expected = (
            url.path == "/favicon.ico"  # the page names no icon; Chromium asks anyway
            or (url.path == "/api/auth/me" and "401" in message.text)  # not signed in yet
            or BLOCKED_WEBSOCKET in message.text  # see without_websockets
        )
        if message.type == "error" and not expected:
            problems.append(f"console: {message.text} at {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    try:
        yield Dashboard(page, problems)
    finally:
        await context.close()


async def open_call(srv: RunningServer, pool: Pool, org: Org) -> uuid.UUID:
    """A call in progress, opened the way SignalWire opens one: the signed voice webhook."""
    call_sid = str(uuid.uuid4())
    async with aiohttp.ClientSession() as http:
        status, laml = await simulator(http, srv, srv.settings).post_signed(
            f"{srv.public_url}/laml/voice",
            {
                "AccountSid": str(uuid.uuid4()),
                "CallSid": call_sid,
                "CallStatus": "in-progress",
                "Direction": "inbound",
                "From": CALLER,
                "To": org.number,
            },
        )
    assert status == 200, laml
    call_id: uuid.UUID = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", call_sid)
    return call_id


async def sign_in(page: Page, srv: RunningServer, email: str) -> None:
    await page.goto(f"{srv.http_url}/dashboard")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    # Live: the feed said hello, so what the server writes from now on reaches the page.
    await expect(page.locator("#feed-status")).to_have_attribute("data-state", "live")


def escalation(org: Org, call_id: uuid.UUID, stream_sid: str, **fields: object) -> EscalationRaised:
    values: dict[str, object] = {
        "org_id": org.id,
        "call_id": call_id,
        "stream_sid": stream_sid,
        "rule_id": None,
        "rule_name": "Caller asks for a supervisor",
        "kind": "keyword",
        "severity": "high",
        "track": "inbound",
        "start_ms": 4200,
        "end_ms": 6100,
        "evidence": "let me speak to your supervisor",
    }
    values.update(fields)
    return EscalationRaised(**values)  # type: ignore[arg-type]


def submit(srv: RunningServer, *events: MediaEvent) -> None:
    for event in events:
        srv.writer.submit(event)


async def user_id(pool: Pool, email: str) -> uuid.UUID:
    found: uuid.UUID = await pool.fetchval("SELECT id FROM users WHERE email = $1", email)
    return found


async def test_an_escalation_alerts_the_supervisor_who_acknowledges_it(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard org")
    call_id = await open_call(srv, pool, org)
    email = org.emails["operator"]
    await sign_in(page, srv, email)

    call = page.locator(f'#calls li[data-call-id="{call_id}"]')
    await expect(call).to_contain_text(CALLER)
    await expect(call).to_contain_text("consent pending")
    await expect(call).to_contain_text("all-party consent")
    await call.get_by_role("button").click()
    await expect(page.locator("#call-facts")).to_contain_text("in-progress")

    stream_sid = str(uuid.uuid4())
    said = TranscriptSegment(
        org_id=org.id, call_id=call_id, stream_sid=stream_sid, track="inbound",
        start_ms=4200, end_ms=6100, text="I want to speak to your supervisor right now",
        confidence=0.9, is_final=True, engine="test",
    )  # fmt: skip
    consented = ConsentEvidence(
        org_id=org.id, call_id=call_id, stream_sid=stream_sid, kind="answer",
        detector="caller_speech", verdict="granted", track="inbound", offset_ms=2000,
        evidence="yes that's fine",
    )  # fmt: skip
    raised = escalation(org, call_id, stream_sid, segment_id=said.event_id)
    submit(srv, said, consented, raised)

    line = page.locator(f'#transcript li[data-segment-id="{said.event_id}"]')
    await expect(line).to_contain_text("speak to your supervisor right now")
    await expect(line).to_contain_text("caller")
    await expect(call).to_contain_text("consent granted")

    alert = page.locator(f'#alerts li[data-escalation-id="{raised.event_id}"]')
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_class("sev-high status-open")
    await expect(alert).to_contain_text("Caller asks for a supervisor")
    await expect(alert).to_contain_text("let me speak to your supervisor")
    await expect(alert).to_contain_text(CALLER)
    await expect(page.locator("#alerts")).to_have_attribute("aria-live", "assertive")
    stats = await page.evaluate("window.voxsouthDashboard")
    assert stats["beepsAttempted"] == 1
    assert stats["transport"] == "websocket"
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    await alert.get_by_role("button", name="Acknowledge").click()
    await expect(alert).to_contain_class("status-acknowledged")
    await expect(alert.locator(".status-badge")).to_have_text("acknowledged")
    await expect(alert.get_by_role("button", name="Acknowledge")).to_be_hidden()

    row = await pool.fetchrow(
        "SELECT status, acknowledged_by FROM escalations WHERE id = $1", raised.event_id
    )
    assert row is not None
    assert dict(row) == {
        "status": "acknowledged",
        "acknowledged_by": f"user:{await user_id(pool, email)}",
    }
    audited = await pool.fetchval(
        """SELECT count(*) FROM audit_log WHERE action = 'escalation.acknowledge'
           AND resource_type = 'escalation' AND resource_id = $1 AND actor_type = 'user'
           AND actor_id = $2""",
        str(raised.event_id),
        await user_id(pool, email),
    )
    assert audited == 1
    assert dashboard.problems == [], dashboard.problems


async def test_a_speakers_words_appear_as_they_speak_and_give_way_to_the_final_segment(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard partials")
    call_id = await open_call(srv, pool, org)
    await sign_in(page, srv, org.emails["operator"])
    await page.locator(f'#calls li[data-call-id="{call_id}"]').get_by_role("button").click()
    stream_sid = str(uuid.uuid4())

    def partial(text: str) -> TranscriptPartial:
        return TranscriptPartial(
            org_id=org.id, call_id=call_id, stream_sid=stream_sid, track="inbound",
            start_ms=4200, text=text,
        )  # fmt: skip

    words_so_far = page.locator("#transcript li.partial")
    submit(srv, partial("I want to"))
    await expect(words_so_far).to_have_text("0:04callerI want to")
    submit(srv, partial("I want to speak to your"))
    await expect(words_so_far).to_have_count(1)  # the same line, updated
    await expect(words_so_far).to_contain_text("I want to speak to your")
    final = TranscriptSegment(
        org_id=org.id, call_id=call_id, stream_sid=stream_sid, track="inbound",
        start_ms=4200, end_ms=6100, text="I want to speak to your supervisor.",
        confidence=0.9, is_final=True, engine="test",
    )  # fmt: skip
    submit(srv, final)
    await expect(
        page.locator(f'#transcript li[data-segment-id="{final.event_id}"]')
    ).to_contain_text("speak to your supervisor.")
    await expect(words_so_far).to_have_count(0)  # the final replaced the words so far
    assert dashboard.problems == [], dashboard.problems


async def test_a_caller_asking_for_a_manager_on_a_live_call_alerts_the_page(
    chromium: str,
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    pool: Pool,
    dashboard: Dashboard,
) -> None:
    """The whole path: a simulated call speaks, the server transcribes and detects, the page
    alerts, the supervisor acknowledges."""
    page = dashboard.page
    org = await make_org(pool, "Dashboard live call")
    email = org.emails["operator"]
    inbound, outbound = render_call(next(c for c in load() if c.id == "escalation-01"))
    audio = CallAudio(caller=ulaw_encode(inbound), agent=ulaw_encode(outbound))
    async with start_server(transcription_engine="whisper") as srv:
        await sign_in(page, srv, email)
        async with aiohttp.ClientSession() as http:
            call = asyncio.create_task(
                simulator(http, srv, srv.settings).call(
                    audio, to_number=org.number, from_number="+15550123456", speed=2.0
                )
            )
            # The caller says "I want to speak to a manager." about 9 s into the call.
            alert = page.locator("#alerts li").filter(has_text="supervisor-request")
            await expect(alert).to_be_visible(timeout=ms(40))
            await expect(alert).to_contain_text("manager")
            await alert.get_by_role("button", name="Acknowledge").click()
            await expect(alert).to_contain_class("status-acknowledged")
            played = await call
        assert played.errors == []
    escalation_id = await alert.get_attribute("data-escalation-id")
    assert escalation_id is not None
    row = await pool.fetchrow(
        """SELECT e.rule_name, e.status, e.acknowledged_by, c.call_sid
           FROM escalations e JOIN calls c ON c.id = e.call_id WHERE e.id = $1""",
        uuid.UUID(escalation_id),
    )
    assert row is not None
    assert dict(row) == {
        "rule_name": "supervisor-request",
        "status": "acknowledged",
        "acknowledged_by": f"user:{await user_id(pool, email)}",
        "call_sid": played.call_sid,
    }


async def test_a_supervisor_resolves_an_escalation_with_notes_after_a_reload_without_websockets(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard org")
    call_id = await open_call(srv, pool, org)
    email = org.emails["operator"]
    await sign_in(page, srv, email)

    # The session outlives the page: a reload skips the form and can still write (its CSRF
    # token comes from /api/auth/me). This time WebSockets fail: the feed falls back to SSE.
    await page.add_init_script(script=WITHOUT_WEBSOCKETS)
    await page.reload()
    await expect(page.locator("#dashboard")).to_be_visible()
    await expect(page.locator("#login")).to_be_hidden()
    await expect(page.locator("#feed-status")).to_have_text("Live (SSE)")
    assert (await page.evaluate("window.voxsouthDashboard.transport")) == "sse"

    raised = escalation(org, call_id, str(uuid.uuid4()), severity="critical", kind="sentiment")
    submit(srv, raised)
    alert = page.locator(f'#alerts li[data-escalation-id="{raised.event_id}"]')
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_class("sev-critical status-open")

    notes = "Called the customer back; refund issued."
    await alert.get_by_role("button", name="Resolve").click()
    await alert.get_by_label("Resolution notes").fill(notes)
    await alert.get_by_role("button", name="Resolve", exact=True).click()
    await expect(alert).to_contain_class("sev-critical status-resolved")
    await expect(alert).to_contain_text(notes)

    row = await pool.fetchrow(
        "SELECT status, resolution_notes, resolved_by FROM escalations WHERE id = $1",
        raised.event_id,
    )
    assert row is not None
    assert dict(row) == {
        "status": "resolved",
        "resolution_notes": notes,
        "resolved_by": f"user:{await user_id(pool, email)}",
    }
    audited = await pool.fetchval(
        """SELECT count(*) FROM audit_log WHERE action = 'escalation.resolve'
           AND resource_id = $1""",
        str(raised.event_id),
    )
    assert audited == 1
    assert dashboard.problems == [], dashboard.problems


async def test_the_page_and_its_two_assets_are_served_and_nothing_else(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    for path, content_type in [
        ("/dashboard", "text/html"),
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ]:
        async with http.get(srv.http_url + path) as resp:
            assert resp.status == 200, path
            assert resp.content_type == content_type
            assert resp.headers["Cache-Control"] == "no-cache"
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            etag = resp.headers["ETag"]
            assert await resp.read()
        async with http.get(srv.http_url + path, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
    for path in [
        "/dashboard/dashboard.html",
        "/dashboard/__init__.py",
        "/dashboard/..%2fdashboard.py",
        "/dashboard/%2e%2e%2f%2e%2e%2fpyproject.toml",
    ]:
        async with http.get(srv.http_url + path) as resp:
            assert resp.status == 404, path
