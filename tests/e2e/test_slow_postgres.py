"""The real server with its Postgres frozen (a stopped or stuck database: nothing fails,
nothing answers): what waits on it answers within its own budget, and says why."""

from __future__ import annotations

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
from control.webhooks import CALL_BACK_LATER, HOLD_PROMPT, VOICE_ATTEMPTS
from server.app import RunningServer
from storage.db import Pool
from tests.conftest import timeout
from tests.media.test_media_server import closed_with, metric
from tests.support.calls import answer_call
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


async def post_voice(
    http: aiohttp.ClientSession, srv: RunningServer, url: str, params: dict[str, str]
) -> tuple[int, ET.Element | str]:
    """A signed voice webhook, given up on after the server's budget and a second, as
    SignalWire would give up on it; the LaML parsed when the answer is 200."""
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
        status, laml = await post_voice(http, srv, url, params)
        # Answered, kept up with a word and a pause, then SignalWire asks again.
        assert status == 200 and isinstance(laml, ET.Element)
        assert [(e.tag, e.text, e.attrib) for e in laml] == [
            ("Say", HOLD_PROMPT, {}),
            ("Pause", None, {"length": "3"}),
            ("Redirect", f"{url}?attempt=2", {"method": "POST"}),
        ]
        assert await metric(srv, "voxsouth_webhook_outcomes_total", **held) == before + 1

        # The last attempt still frozen: the caller is told, not left in silence.
        status, laml = await post_voice(http, srv, f"{url}?attempt={VOICE_ATTEMPTS}", params)
        assert status == 200 and isinstance(laml, ET.Element)
        assert [(e.tag, e.text) for e in laml] == [("Say", CALL_BACK_LATER), ("Hangup", None)]

        # Postgres back: the redirected request gets the org's flow, for one call.
        proxy.thaw()
        status, laml = await post_voice(
            http, srv, f"{url}?attempt=2", {**params, "CallStatus": "in-progress"}
        )
        assert status == 200 and isinstance(laml, ET.Element)
        assert laml.find("./Start/Stream") is not None
        status, error = await post_voice(http, srv, f"{url}?attempt=99", params)
        assert status == 400 and f"attempt must be from 1 to {VOICE_ATTEMPTS}" in str(error)
    count = await pool.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", params["CallSid"])
    assert count == 1


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
