"""The real server with its Postgres frozen (a stopped or stuck database: nothing fails,
nothing answers): what waits on it answers within its own budget, and says why."""

from __future__ import annotations

import asyncio
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from control.signatures import compute_signature
from control.webhooks import (
    ASK_AGAIN_PROMPT,
    CALL_BACK_LATER,
    CONSENT_ATTEMPTS,
    HOLD_PROMPT,
    VOICE_ATTEMPTS,
)
from server.app import RunningServer
from server.simulator.audio import CallAudio
from storage.db import Pool
from tests.conftest import timeout
from tests.media.test_media_server import closed_with, metric
from tests.support.calls import answer_call, simulator
from tests.support.pg_proxy import PgProxy

ProxiedServer = Callable[..., AbstractAsyncContextManager[tuple[RunningServer, PgProxy]]]


@pytest.fixture
def proxied_server(
    pg_dsn: str, start_server: Callable[..., AbstractAsyncContextManager[RunningServer]]
) -> ProxiedServer:
    """`async with proxied_server(**settings) as (srv, proxy):` the server with every database
    connection through a proxy the test can freeze; thawed before the server shuts down (a
    shutdown flushes to Postgres)."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[tuple[RunningServer, PgProxy]]:
        proxy = PgProxy(pg_dsn)
        dsn = await proxy.start()
        try:
            async with start_server(database_url=dsn, **overrides) as server:
                try:
                    yield server, proxy
                finally:
                    proxy.thaw()
        finally:
            await proxy.close()

    return run


def within(seconds: float) -> aiohttp.ClientTimeout:
    """A client that gives up after `seconds`, as a probe or SignalWire would."""
    return aiohttp.ClientTimeout(total=timeout(seconds))


async def test_ready_says_not_ready_within_its_budget_while_postgres_is_frozen(
    proxied_server: ProxiedServer, http: aiohttp.ClientSession
) -> None:
    async with proxied_server() as (srv, proxy):
        async with http.get(f"{srv.http_url}/health/ready") as resp:
            assert resp.status == 200
        proxy.freeze()
        # Each check gives up after 2 s: a probe with a 3 s timeout gets a 503, not a hang.
        async with http.get(f"{srv.http_url}/health/ready", timeout=within(3)) as resp:
            body = await resp.json()
        assert resp.status == 503
        assert body == {
            "status": "not_ready",
            "checks": {"database": False, "migrations": False, "transcription": True},
        }
        proxy.thaw()
        async with http.get(f"{srv.http_url}/health/ready", timeout=within(3)) as resp:
            assert resp.status == 200


def voice_params(to_number: str) -> dict[str, str]:
    return {
        "AccountSid": str(uuid.uuid4()),
        "CallSid": str(uuid.uuid4()),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+15550199999",
        "To": to_number,
    }


async def post_webhook(
    http: aiohttp.ClientSession, srv: RunningServer, url: str, params: dict[str, str]
) -> tuple[int, ET.Element | str]:
    """A signed webhook, given up on after the server's budget and a second, as SignalWire
    would give up on it; the LaML parsed when the answer is 200."""
    key = srv.settings.secret("signalwire_signing_key")
    async with http.post(
        url,
        data=params,
        headers={"X-SignalWire-Signature": compute_signature(key, url, params.items())},
        timeout=within(srv.settings.voice_webhook_timeout_s + 1),
    ) as resp:
        body = await resp.text()
    if resp.status != 200:
        return resp.status, body
    assert resp.content_type == "text/xml"
    return resp.status, ET.fromstring(body)


async def test_a_voice_webhook_holds_the_caller_while_postgres_is_frozen(
    proxied_server: ProxiedServer,
    http: aiohttp.ClientSession,
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    params = voice_params(org_number[1])
    async with proxied_server(voice_webhook_timeout_s=1.0) as (srv, proxy):
        url = f"{srv.public_url}/laml/voice"
        held = {"outcome": "db_timeout", "route": "voice"}  # as /metrics orders them
        before = await metric(srv, "voxsouth_webhook_outcomes_total", **held)
        proxy.freeze()
        status, laml = await post_webhook(http, srv, url, params)
        # Answered, kept up with a word and a pause, then SignalWire asks again.
        assert status == 200 and isinstance(laml, ET.Element)
        assert [(e.tag, e.text, e.attrib) for e in laml] == [
            ("Say", HOLD_PROMPT, {}),
            ("Pause", None, {"length": "3"}),
            ("Redirect", f"{url}?attempt=2", {"method": "POST"}),
        ]
        assert await metric(srv, "voxsouth_webhook_outcomes_total", **held) == before + 1

        # The last attempt still frozen: the caller is told, not left in silence.
        status, laml = await post_webhook(http, srv, f"{url}?attempt={VOICE_ATTEMPTS}", params)
        assert status == 200 and isinstance(laml, ET.Element)
        assert [(e.tag, e.text) for e in laml] == [("Say", CALL_BACK_LATER), ("Hangup", None)]

        # Postgres back: the redirected request gets the org's flow, for one call.
        proxy.thaw()
        status, laml = await post_webhook(
            http, srv, f"{url}?attempt=2", {**params, "CallStatus": "in-progress"}
        )
        assert status == 200 and isinstance(laml, ET.Element)
        assert laml.find("./Start/Stream") is not None
        status, error = await post_webhook(http, srv, f"{url}?attempt=99", params)
        assert status == 400 and f"attempt must be from 1 to {VOICE_ATTEMPTS}" in str(error)
    count = await pool.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", params["CallSid"])
    assert count == 1


def status_callbacks(call_sid: str) -> dict[str, tuple[str, dict[str, str]]]:
    """route label → (path, form) of one call status, stream status and recording status
    callback for the call."""
    return {
        "status": ("/laml/status", {"CallSid": call_sid, "CallStatus": "in-progress"}),
        "stream_status": (
            "/laml/stream-status",
            {"CallSid": call_sid, "StreamSid": str(uuid.uuid4()), "StreamEvent": "stream-started"},
        ),
        "recording": (
            "/laml/recording",
            {"CallSid": call_sid, "RecordingSid": str(uuid.uuid4()),
             "RecordingStatus": "completed", "RecordingDuration": "3"},
        ),
    }  # fmt: skip


async def test_status_callbacks_answer_503_within_their_budget_while_postgres_is_frozen(
    proxied_server: ProxiedServer,
    http: aiohttp.ClientSession,
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    async with proxied_server(voice_webhook_timeout_s=1.0) as (srv, proxy):
        call = await answer_call(http, srv, srv.settings, org_number[1])
        callbacks = status_callbacks(call.call_sid)
        outcomes = "voxsouth_webhook_outcomes_total"
        before = {r: await metric(srv, outcomes, outcome="db_timeout", route=r) for r in callbacks}
        proxy.freeze()
        for route, (path, form) in callbacks.items():
            # Not stored, said quickly: SignalWire's request ends well before its own timeout.
            assert await post_webhook(http, srv, srv.public_url + path, form) == (503, "")
            after = await metric(srv, outcomes, outcome="db_timeout", route=route)
            assert after == before[route] + 1, route

        proxy.thaw()  # the same callbacks, delivered again, are stored once
        for path, form in callbacks.values():
            assert await post_webhook(http, srv, srv.public_url + path, form) == (204, "")
    call_id = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", call.call_sid)
    assert await pool.fetchval("SELECT status FROM calls WHERE id = $1", call_id) == "in-progress"
    stored = {
        "call_status": """SELECT count(*) FROM feed_events
                          WHERE call_id = $1 AND type = 'call_status'""",
        "streams": "SELECT count(*) FROM media_streams WHERE call_id = $1",
        "recordings": "SELECT count(*) FROM recordings WHERE call_id = $1",
    }
    assert {k: await pool.fetchval(q, call_id) for k, q in stored.items()} == dict.fromkeys(
        stored, 1
    )


async def test_a_consent_answer_the_database_cannot_take_is_asked_again(
    proxied_server: ProxiedServer,
    http: aiohttp.ClientSession,
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    async with proxied_server(voice_webhook_timeout_s=1.0) as (srv, proxy):
        call = await answer_call(http, srv, srv.settings, org_number[1])
        url = f"{srv.public_url}/laml/consent"
        press = {"CallSid": call.call_sid, "Digits": "2"}
        outcomes = "voxsouth_webhook_outcomes_total"
        asked, gave_up = ({"outcome": o, "route": "consent"} for o in ("db_timeout", "db_gave_up"))
        before = await metric(srv, outcomes, **asked), await metric(srv, outcomes, **gave_up)
        proxy.freeze()
        status, laml = await post_webhook(http, srv, url, press)
        # The caller is told and asked again; their next press comes to the next attempt.
        assert status == 200 and isinstance(laml, ET.Element)
        assert [(e.tag, e.get("action")) for e in laml] == [("Gather", f"{url}?attempt=2")]
        assert [(e.tag, e.text) for e in laml[0]] == [("Say", ASK_AGAIN_PROMPT)]
        assert await metric(srv, outcomes, **asked) == before[0] + 1

        # The last attempt still frozen: the caller is told to call again, not left in silence.
        status, laml = await post_webhook(http, srv, f"{url}?attempt={CONSENT_ATTEMPTS}", press)
        assert status == 200 and isinstance(laml, ET.Element)
        assert [(e.tag, e.text) for e in laml] == [("Say", CALL_BACK_LATER), ("Hangup", None)]
        assert await metric(srv, outcomes, **gave_up) == before[1] + 1

        # Postgres back: the press asked again is stored, and the call goes on.
        proxy.thaw()
        status, laml = await post_webhook(http, srv, f"{url}?attempt=2", press)
        assert status == 200 and isinstance(laml, ET.Element)
        assert laml[0].tag == "Say" and laml[0].text == "This call will not be recorded."
    row = await pool.fetchrow(
        "SELECT id, recording_consent, consent_verified_by FROM calls WHERE call_sid = $1",
        call.call_sid,
    )
    assert row is not None
    assert (row["recording_consent"], row["consent_verified_by"]) == (False, "detector:keypad")
    presses = await pool.fetchval(
        "SELECT count(*) FROM consent_events WHERE call_id = $1 AND detector = 'keypad'",
        row["id"],
    )
    assert presses == 1  # the frozen presses and the stored one: one piece of evidence


async def test_a_stream_that_cannot_be_admitted_in_time_is_told_to_try_again(
    proxied_server: ProxiedServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str]
) -> None:
    # The start arrives at once; the admission (the call's lookup) is what takes longer than
    # the start timeout, and it is not the client's fault.
    settings = {"media_start_timeout_s": 0.5, "media_admission_timeout_s": 1.0}
    async with proxied_server(**settings) as (srv, proxy):
        call = await answer_call(http, srv, srv.settings, org_number[1])
        errors, streams = "voxsouth_media_stream_errors_total", "voxsouth_media_streams_total"
        errors_before = await metric(srv, errors, kind="admission_timeout")
        streams_before = await metric(srv, streams, outcome="admission_timeout")
        proxy.freeze()
        async with connect(srv.media_url) as ws:
            await ws.send(json.dumps(call.start_message()))
            assert await closed_with(ws, 2) == (1013, "server busy, try again later")
        assert await metric(srv, errors, kind="admission_timeout") == errors_before + 1
        assert await metric(srv, streams, outcome="admission_timeout") == streams_before + 1

        proxy.thaw()  # the same call's next stream is admitted
        async with connect(srv.media_url) as ws:
            await ws.send(json.dumps(call.start_message()))
            await ws.send(json.dumps({"event": "stop"}))
            assert await closed_with(ws) == (1000, "stream stopped")


async def test_the_simulator_follows_a_hold_as_signalwire_does_and_the_call_goes_on(
    proxied_server: ProxiedServer, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    """`voxsouth simulate` against a server whose database is late: held, asked again after
    the pause, then streamed, as a SignalWire call would be."""
    first_answer = asyncio.Event()

    async def answered(_s: object, _c: object, sent: aiohttp.TraceRequestEndParams) -> None:
        if sent.url.path == "/laml/voice":
            first_answer.set()

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(answered)
    async with (
        proxied_server(voice_webhook_timeout_s=1.0) as (srv, proxy),
        aiohttp.ClientSession(trace_configs=[trace]) as http,
    ):
        held = {"outcome": "db_timeout", "route": "voice"}
        before = await metric(srv, "voxsouth_webhook_outcomes_total", **held)
        proxy.freeze()
        second_of_silence = CallAudio(caller=b"\xff" * 8000, agent=None)
        call = asyncio.create_task(
            simulator(http, srv, srv.settings).call(
                second_of_silence, to_number=org_number[1], from_number="+15550001111"
            )
        )
        async with asyncio.timeout(timeout(10)):
            await first_answer.wait()
        proxy.thaw()
        assert await metric(srv, "voxsouth_webhook_outcomes_total", **held) == before + 1
        async with asyncio.timeout(timeout(20)):
            result = await call
    assert result.laml.count("<Stream") == 1 and result.frames_sent == 50
    assert result.close_code == 1000 and not result.errors
    count = await pool.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", result.call_sid)
    assert count == 1
