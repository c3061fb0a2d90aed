"""SIGTERM drains: readiness fails at once, the calls already streaming are heard to their end,
and the server stops when they have ended, or when the drain's time is up (a real `voxsouth
serve`, a real stream)."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from server.simulator.client import SignalWireSimulator, parse_stream
from storage.db import Pool
from tests.conftest import timeout
from tests.e2e.test_process_crash import SIGNING_KEY, SILENCE, start_call
from tests.support.changes import watching
from tests.support.process import Serving, cli_env, serving

STREAMING = "SELECT status = 'streaming' FROM media_streams WHERE stream_sid = $1"


@asynccontextmanager
async def streaming(
    served: Serving, http: aiohttp.ClientSession, number: str, stream_sid: str
) -> AsyncIterator[ClientConnection]:
    """A call answered by `served` with its stream open, a second of silence sent."""
    sim = SignalWireSimulator(http, base_url=served.http_url, signing_key=SIGNING_KEY)
    call_sid, laml = await start_call(sim, served.http_url, number)
    stream = parse_stream(laml)
    assert stream is not None, laml
    async with connect(stream.url) as ws:
        mulaw = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        start = {"streamSid": stream_sid, "accountSid": sim.account_sid, "callSid": call_sid,
                 "tracks": ["inbound"], "customParameters": stream.parameters,
                 "mediaFormat": mulaw}  # fmt: skip
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start}))
        await send_silence(ws, 1, 50)
        yield ws


async def send_silence(ws: ClientConnection, first: int, frames: int) -> None:
    for n in range(first, first + frames):
        media = {"track": "inbound", "chunk": str(n), "timestamp": str(n * 20 - 20),
                 "payload": SILENCE}  # fmt: skip
        await ws.send(json.dumps({"event": "media", "sequenceNumber": str(n + 1), "media": media}))


async def ready_status(served: Serving) -> tuple[int, str]:
    """What a balancer's probe sees (a connection of its own each time)."""
    async with aiohttp.ClientSession() as http, http.get(f"{served.http_url}/health/ready") as resp:
        return resp.status, (await resp.json())["status"]


async def test_a_draining_server_fails_readiness_and_hears_its_calls_to_their_end(
    pg_dsn: str, pool: Pool, tmp_path: Path, org_number: tuple[uuid.UUID, str]
) -> None:
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_SIGNALWIRE_SIGNING_KEY=SIGNING_KEY,
                  VOXSOUTH_DRAIN_TIMEOUT_S="60")  # fmt: skip
    stream_sid = str(uuid.uuid4())
    async with (
        watching(pool, pg_dsn) as changes,
        serving(env, tmp_path) as served,
        aiohttp.ClientSession() as http,
        streaming(served, http, org_number[1], stream_sid) as ws,
    ):
        assert await ready_status(served) == (200, "ready")
        await changes.until(STREAMING, stream_sid)
        served.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(10)):
            while await ready_status(served) != (503, "draining"):
                pass
        await send_silence(ws, 51, 25)  # heard: counted on the stream's record below
        assert served.process.returncode is None  # the call is not over: still serving
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "78",
                                  "stop": {"accountSid": "AC", "callSid": "CA"}}))  # fmt: skip
        async with asyncio.timeout(timeout(20)):
            assert await served.process.wait() == 0  # once the last call ended, not at 60 s
    assert (
        await pool.fetchval(
            "SELECT end_reason FROM media_streams WHERE stream_sid = $1", stream_sid
        )
        == "stop"
    )


async def test_a_call_still_streaming_when_the_drain_runs_out_is_closed_as_a_shutdown(
    pg_dsn: str, pool: Pool, tmp_path: Path, org_number: tuple[uuid.UUID, str]
) -> None:
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_SIGNALWIRE_SIGNING_KEY=SIGNING_KEY,
                  VOXSOUTH_DRAIN_TIMEOUT_S="1")  # fmt: skip
    stream_sid = str(uuid.uuid4())
    async with (
        watching(pool, pg_dsn) as changes,
        serving(env, tmp_path) as served,
        aiohttp.ClientSession() as http,
        streaming(served, http, org_number[1], stream_sid),
    ):
        await changes.until(STREAMING, stream_sid)
        served.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout(20)):
            assert await served.process.wait() == 0
    assert (
        await pool.fetchval(
            "SELECT end_reason FROM media_streams WHERE stream_sid = $1", stream_sid
        )
        == "server_shutdown"
    )
