"""The supervisors' dashboard in real headless Chromium, against the real server.

One test plays a whole simulated call: the caller asks for a manager, the server transcribes
and detects it, the alert appears on the page and is acknowledged. The others open a call
through the signed voice webhook and submit its transcript, consent verdict and escalation as
media events to the running server's event writer, so they travel the path a detected one
does (Postgres, NOTIFY, the feed hub, the WebSocket, the page) without waiting for speech. The
supervisor's clicks are checked where they land: in Postgres and its audit log.

The call view is checked whole: consent evidence and escalations as the feed brings them and as
the API gives them after a reload, recordings as SignalWire's callbacks file them (a fake
SignalWire serves their audio, and the page's own fetch seeks in it), what a viewer is not
offered, and the secure-mode badge the feed turns on and off.

Chromium is the system's (`chromium` on PATH; `make test` installs it when run as root). Without
it these tests skip, unless VOXSOUTH_REQUIRE_BROWSER=1 (CI) makes that a failure.

The browser tests take `chromium, srv, pool, dashboard` in that order: no server starts when
there is no browser, and the page (with its live feed) closes before the server stops.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import shutil
import struct
import uuid
import wave
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
from storage import recordings
from storage.db import Pool
from tests.conftest import SIGNALWIRE_PROJECT, timeout
from tests.control.test_secure_mode import recording_call, secure
from tests.support.accounts import PASSWORD, Org, make_org
from tests.support.calls import simulator
from tests.support.fake_signalwire import Fail, FakeSignalWire

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
"""The fake SignalWire's project (AccountSid) and API token, which `wired` configures."""


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
    srv.writer.submit(*events)


async def user_id(pool: Pool, email: str) -> uuid.UUID:
    found: uuid.UUID = await pool.fetchval("SELECT id FROM users WHERE email = $1", email)
    return found


def tone_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A real WAV file (a 440 Hz tone), as a recording's media is."""
    samples = (
        int(8000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


def recording_sid() -> str:
    return f"RE{uuid.uuid4().hex}"


async def file_recording(
    pool: Pool, call_id: uuid.UUID, sid: str, status: str, url: str | None,
    duration_s: int | None = None,
) -> None:  # fmt: skip
    """A recording of the call, filed as SignalWire's status callback files it."""
    call_sid = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call_id)
    assert await recordings.apply_status(
        pool, call_sid=call_sid, recording_sid=sid, status=status, url=url,
        duration_s=duration_s, channels=1,
    )  # fmt: skip


async def open_from_recent(page: Page, call_id: uuid.UUID) -> None:
    await page.locator(f'#recent-calls li[data-call-id="{call_id}"]').get_by_role("button").click()
    await expect(page.locator("#call-title")).to_contain_text(CALLER)


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


async def test_the_call_view_shows_consent_evidence_escalations_and_recordings_that_seek(
    chromium: str, wired: RunningServer, fake: FakeSignalWire, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard call view")
    call_id = await open_call(wired, pool, org)
    call_sid = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call_id)
    fake.add_call(call_sid)  # SignalWire knows it: consent granted, its recording starts there
    audio = tone_wav()
    sid, unready = recording_sid(), recording_sid()
    fake.recording_media[sid] = audio
    await file_recording(pool, call_id, sid, "completed", fake.recording_url(sid), duration_s=75)
    await file_recording(pool, call_id, unready, "in-progress", None)
    await sign_in(page, wired, org.emails["operator"])
    await open_from_recent(page, call_id)

    # Recordings: as the API lists them, a player for the one with audio.
    recording = page.locator(f'#recordings li[data-recording-sid="{sid}"]')
    await expect(recording).to_contain_text("completed")
    await expect(recording).to_contain_text("1:15")
    src = f"/api/recordings/{sid}/audio"
    player = recording.locator("audio")
    await expect(player).to_have_attribute("src", src)
    await expect(player).to_have_attribute("preload", "none")
    await expect(player).to_have_attribute("controls", "")
    await expect(recording.get_by_role("link", name="(WAV)")).to_have_attribute("href", src)
    await expect(recording.get_by_role("link", name="(MP3)")).to_have_attribute(
        "href", f"{src}?format=mp3"
    )
    not_yet = page.locator(f'#recordings li[data-recording-sid="{unready}"]')
    await expect(not_yet).to_contain_text("No audio (in-progress)")
    await expect(not_yet.locator("audio")).to_have_count(0)
    await expect(page.locator("#recordings-denied")).to_be_hidden()
    # The player's own request, made with the page's session: a Range is answered with just
    # those bytes, so the player can seek.
    fetched = await page.evaluate(
        """async (src) => {
             const response = await fetch(src, { headers: { Range: "bytes=0-99" } });
             const body = await response.arrayBuffer();
             return { status: response.status, length: body.byteLength,
                      range: response.headers.get("Content-Range"),
                      type: response.headers.get("Content-Type") };
           }""",
        src,
    )
    assert fetched == {
        "status": 206, "length": 100, "range": f"bytes 0-99/{len(audio)}", "type": "audio/wav"
    }  # fmt: skip

    # Consent evidence and escalations, as the feed brings them to the open call.
    stream_sid = str(uuid.uuid4())
    disclosed = ConsentEvidence(
        org_id=org.id, call_id=call_id, stream_sid=stream_sid, kind="disclosure",
        detector="agent_speech", verdict=None, track="outbound", offset_ms=1000,
        evidence="this call may be recorded",
    )  # fmt: skip
    consented = ConsentEvidence(
        org_id=org.id, call_id=call_id, stream_sid=stream_sid, kind="answer",
        detector="caller_speech", verdict="granted", track="inbound", offset_ms=62000,
        evidence="yes that's fine",
    )  # fmt: skip
    raised = escalation(org, call_id, stream_sid)
    submit(wired, disclosed, consented, raised)

    async def check_call_view(status: str) -> None:
        evidence = page.locator("#consent-events li")
        await expect(evidence).to_have_count(3)
        # The disclosure the voice webhook's <Say> played before the call's audio.
        await expect(evidence.nth(0)).to_contain_text("0:00platformdisclosure givenlaml say")
        await expect(evidence.nth(0)).to_contain_text("This call may be recorded")
        await expect(evidence.nth(1)).to_have_attribute(
            "data-consent-event-id", str(disclosed.event_id)
        )
        await expect(evidence.nth(1)).to_contain_text("0:01agentdisclosure givenagent speech")
        await expect(evidence.nth(1)).to_contain_text("“this call may be recorded”")
        await expect(evidence.nth(2)).to_have_attribute(
            "data-consent-event-id", str(consented.event_id)
        )
        await expect(evidence.nth(2)).to_contain_text("1:02callerconsent grantedcaller speech")
        await expect(evidence.nth(2)).to_contain_text("“yes that's fine”")
        escalations = page.locator("#call-escalations li")
        await expect(escalations).to_have_count(1)
        raised_here = escalations.nth(0)
        await expect(raised_here).to_have_attribute("data-escalation-id", str(raised.event_id))
        await expect(raised_here).to_contain_class(f"sev-high status-{status}")
        await expect(raised_here).to_contain_text("0:04callerhighCaller asks for a supervisor")
        await expect(raised_here.locator(".status-badge")).to_have_text(status)
        await expect(raised_here).to_contain_text("let me speak to your supervisor")
        await expect(page.locator("#consent-empty")).to_be_hidden()
        await expect(page.locator("#call-escalations-empty")).to_be_hidden()

    await check_call_view("open")
    alert = page.locator(f'#alerts li[data-escalation-id="{raised.event_id}"]')
    await alert.get_by_role("button", name="Acknowledge").click()
    await expect(page.locator("#call-escalations li .status-badge")).to_have_text("acknowledged")
    # The same, as the API gives it: a reload, the call opened again.
    await page.reload()
    await expect(page.locator("#feed-status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#call-detail")).to_be_hidden()
    await open_from_recent(page, call_id)
    await check_call_view("acknowledged")
    await expect(page.locator(f'#recordings li[data-recording-sid="{sid}"] audio')).to_have_count(1)
    assert dashboard.problems == [], dashboard.problems


async def test_the_player_loads_a_recording_under_the_pages_csp(
    chromium: str, wired: RunningServer, fake: FakeSignalWire, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard player")
    call_id = await open_call(wired, pool, org)
    sid = recording_sid()
    fake.recording_media[sid] = tone_wav(seconds=1.0)
    await file_recording(pool, call_id, sid, "completed", fake.recording_url(sid), duration_s=1)
    await sign_in(page, wired, org.emails["analyst"])  # analysts may listen too
    await open_from_recent(page, call_id)
    player = page.locator(f'#recordings li[data-recording-sid="{sid}"] audio')
    await expect(player).to_have_count(1)
    await player.evaluate("(audio) => { audio.preload = 'metadata'; audio.load(); }")
    await expect(player).to_have_js_property("duration", 1)  # the WAV's header, read
    assert dashboard.problems == [], dashboard.problems


async def test_a_viewer_opens_an_ended_call_and_is_offered_no_recording_to_play(
    chromium: str, srv: RunningServer, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard viewer")
    call_id = await open_call(srv, pool, org)
    call_sid = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call_id)
    async with aiohttp.ClientSession() as http:
        status, body = await simulator(http, srv, srv.settings).post_signed(
            f"{srv.public_url}/laml/status",
            {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "95"},
        )
    assert status == 204, body
    sid = recording_sid()
    await file_recording(
        pool, call_id, sid, "completed",
        f"https://example.signalwire.com/api/laml/2010-04-01/Accounts/{SIGNALWIRE_PROJECT}/Recordings/{sid}",
    )  # fmt: skip
    await sign_in(page, srv, org.emails["viewer"])

    # Ended: not a live call, but among the recent ones.
    recent = page.locator(f'#recent-calls li[data-call-id="{call_id}"]')
    await expect(recent).to_contain_text("completed")
    await expect(recent).to_contain_text("1:35")
    await expect(page.locator(f'#calls li[data-call-id="{call_id}"]')).to_have_count(0)
    await open_from_recent(page, call_id)
    await expect(recent.get_by_role("button")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#call-facts")).to_contain_text("completed")
    await expect(page.locator(f'#recordings li[data-recording-sid="{sid}"]')).to_contain_text(
        "completed"
    )
    await expect(page.locator("#recordings-denied")).to_have_text(
        "Your role may not play recordings."
    )
    await expect(page.locator("#recordings-denied")).to_be_visible()
    await expect(page.locator("#recordings audio")).to_have_count(0)
    await expect(page.locator("#recordings a")).to_have_count(0)
    await expect(page.locator("#transcript-empty")).to_have_text(
        "Your role may not read transcripts."
    )
    assert dashboard.problems == [], dashboard.problems


async def test_secure_mode_shows_on_the_call_and_a_recording_it_could_not_pause_alerts(
    chromium: str, wired: RunningServer, fake: FakeSignalWire, pool: Pool, dashboard: Dashboard
) -> None:
    page = dashboard.page
    org = await make_org(pool, "Dashboard secure mode")
    call_id = await recording_call(wired, pool, fake, org)
    await sign_in(page, wired, org.emails["operator"])
    call = page.locator(f'#calls li[data-call-id="{call_id}"]')
    await call.get_by_role("button").click()
    facts = page.locator("#call-facts")
    await expect(facts).to_contain_text("in-progress")
    badge = call.locator(".badge.secure")
    note = page.locator("#call-secure-note")
    await expect(badge).to_have_count(0)

    # An agent's payment system turns it on and off through the API.
    assert (await secure(wired, org, call_id, True))[0] == 200
    await expect(badge).to_have_text("Secure mode")
    await expect(facts.locator(".badge.secure")).to_have_text("Secure mode")
    await expect(facts).to_contain_text("recording paused")
    await expect(note).to_be_hidden()
    assert (await secure(wired, org, call_id, False))[0] == 200
    await expect(badge).to_have_count(0)
    await expect(facts).not_to_contain_text("Secure mode")

    # SignalWire will neither pause nor stop it: the recording runs on through secure mode.
    fake.script("update_recording", [Fail(400), Fail(400)])
    assert (await secure(wired, org, call_id, True))[0] == 502
    await expect(badge).to_have_text("Secure mode")
    await expect(note).to_have_text("Recording could not be paused")
    await expect(note).to_have_attribute("role", "alert")
    await expect(call.locator(".alert-note")).to_have_text("Recording could not be paused")
    alert = page.locator("#alerts li", has_text="Recording not paused in secure mode")
    await expect(alert).to_be_visible()
    assert (await secure(wired, org, call_id, False))[0] == 200
    await expect(badge).to_have_count(0)
    await expect(note).to_be_hidden()
    await expect(call.locator(".alert-note")).to_have_count(0)
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
