"""The media websocket under bad input, over real sockets against the real server.

Each bad stream is closed with a code and a reason, counted, and leaves other streams alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from media.stream_token import StreamGrant, issue_token
from server.app import RunningServer
from server.simulator.report import wait_for_streams_done
from storage.db import Pool
from tests.conftest import timeout
from tests.support.calls import AnsweredCall, answer_call

SILENCE = base64.b64encode(b"\xff" * 160).decode()


@pytest.fixture(params=["picows", "websockets"])
async def srv(
    request: pytest.FixtureRequest,
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
) -> AsyncIterator[RunningServer]:
    """The server on each media transport: every behaviour here holds on both."""
    async with start_server(media_transport=request.param) as server:
        yield server


@pytest.fixture
async def call(srv: RunningServer, org_number: tuple[uuid.UUID, str]) -> AnsweredCall:
    async with aiohttp.ClientSession() as http:
        return await answer_call(http, srv, srv.settings, org_number[1])


def media(seq: int, chunk: int, track: str = "inbound", payload: str = SILENCE) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(chunk * 20),
                "payload": payload,
            },
        }
    )


async def closed_with(ws: ClientConnection, seconds: float = 10) -> tuple[int | None, str | None]:
    async with asyncio.timeout(timeout(seconds)):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


async def send_all(
    srv: RunningServer, messages: Sequence[str | bytes]
) -> tuple[int | None, str | None]:
    async with connect(srv.media_url) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close mid-way
            for message in messages:
                await ws.send(message)
        return await closed_with(ws)


async def metric(srv: RunningServer, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    line_start = f"{name}{{{selector}}} " if selector else f"{name} "
    async with aiohttp.ClientSession() as http, http.get(f"{srv.http_url}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def start(call: AnsweredCall, **overrides: Any) -> str:
    return json.dumps(call.start_message(**overrides))


async def test_a_stream_without_a_valid_token_is_refused_before_any_audio(
    srv: RunningServer, call: AnsweredCall
) -> None:
    cases = {
        "no token": start(call, customParameters={}),
        "forged": start(call, customParameters={"token": "eyJ4IjoxfQ.AAAA"}),
        "other call": start(call, callSid=str(uuid.uuid4())),
    }
    for case, message in cases.items():
        code, reason = await send_all(srv, [message, media(2, 1)])
        assert code == 1008, case
        assert reason is not None and reason.startswith("stream token rejected"), case


async def test_an_expired_token_and_an_unknown_call_are_refused(
    srv: RunningServer, call: AnsweredCall
) -> None:
    secret = srv.settings.secret("stream_token_secret").encode()
    grant = StreamGrant(uuid.uuid4(), uuid.uuid4(), call.call_sid, expires_at=1)
    code, reason = await send_all(
        srv, [start(call, customParameters={"token": issue_token(secret, grant)})]
    )
    assert (code, reason) == (1008, "stream token rejected: expired")

    unknown = StreamGrant(uuid.uuid4(), uuid.uuid4(), call.call_sid, expires_at=2**40)
    code, reason = await send_all(
        srv, [start(call, customParameters={"token": issue_token(secret, unknown)})]
    )
    assert (code, reason) == (1008, "call is unknown")


async def test_a_stream_for_an_ended_call_is_refused(
    srv: RunningServer, call: AnsweredCall, pool: Pool
) -> None:
    await pool.execute("UPDATE calls SET status = 'completed' WHERE call_sid = $1", call.call_sid)
    code, reason = await send_all(srv, [start(call)])
    assert (code, reason) == (1008, "call is ended")


@pytest.mark.parametrize(
    ("messages", "code", "kind"),
    [
        (lambda c: ["{not json"], 1007, "invalid_json"),
        (lambda c: [b"\x00\x01"], 1003, "binary_frame"),
        (lambda c: [media(1, 1)], 1002, "before_start"),
        (lambda c: [start(c), start(c)], 1002, "duplicate_start"),
        (lambda c: [start(c), media(2, 1, payload="***not base64***")], 1007, "invalid_base64"),
        (lambda c: [start(c), media(2, 1, track="sideways")], 1007, "invalid_field"),
        (lambda c: [start(c), json.dumps({"event": "media", "media": {}})], 1007, "invalid_field"),
        (
            lambda c: [
                start(c, mediaFormat={"encoding": "audio/x-L16", "sampleRate": 16000}),
                media(2, 1, payload=base64.b64encode(b"\x00" * 321).decode()),
            ],
            1007,
            "bad_payload",
        ),
        (
            lambda c: [start(c, mediaFormat={"encoding": "audio/opus", "sampleRate": 48000})],
            1003,
            "unsupported_format",
        ),
        (lambda c: [start(c), json.dumps({"event": "stop"}), media(3, 1)], 1000, None),
    ],
)
async def test_bad_input_ends_only_that_stream_with_a_close_code(
    srv: RunningServer,
    call: AnsweredCall,
    messages: Callable[[AnsweredCall], list[str | bytes]],
    code: int,
    kind: str | None,
) -> None:
    before = await metric(srv, "voxsouth_media_stream_errors_total", kind=kind) if kind else 0
    got_code, reason = await send_all(srv, messages(call))
    assert got_code == code
    assert reason  # every close says why
    if kind:
        assert await metric(srv, "voxsouth_media_stream_errors_total", kind=kind) == before + 1


async def test_an_oversized_message_is_refused_with_1009(
    srv: RunningServer, call: AnsweredCall
) -> None:
    code, _ = await send_all(srv, [start(call), "x" * 70_000])
    assert code == 1009


async def test_a_fragmented_message_is_read_whole_and_text_that_is_not_utf8_refused(
    srv: RunningServer, call: AnsweredCall
) -> None:
    message = media(2, 1)
    async with connect(srv.media_url) as ws:
        await ws.send(start(call))
        await ws.send([message[:40], message[40:90], message[90:]])  # one message, 3 frames
        await ws.send(b'{"event": "\xff"}', text=True)
        assert await closed_with(ws) == (1007, "message is not valid JSON")
    report = await wait_for_streams_done(srv.dsn, call.call_sid, timeout(10))
    assert report["streams"][0]["frames_received_inbound"] == 1


async def test_unknown_events_are_tolerated(
    srv: RunningServer, call: AnsweredCall, pool: Pool
) -> None:
    async with connect(srv.media_url) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "0.2.0"}))
        await ws.send(start(call))
        await ws.send(json.dumps({"event": "someFutureEvent", "sequenceNumber": "2"}))
        await ws.send(media(3, 1))
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "4"}))
        assert await closed_with(ws) == (1000, "stream stopped")


async def test_a_flood_is_cut_off_and_a_parallel_stream_keeps_streaming(
    srv: RunningServer, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    async with aiohttp.ClientSession() as http:
        flooder = await answer_call(http, srv, srv.settings, org_number[1])
        steady = await answer_call(http, srv, srv.settings, org_number[1])
    async with connect(srv.media_url) as good:
        await good.send(json.dumps(steady.start_message()))
        await good.send(media(2, 1))
        code, reason = await send_all(
            srv, [start(flooder)] + [media(i + 2, i + 1) for i in range(5000)]
        )
        assert (code, reason) == (1008, "messages faster than real time")
        for chunk in range(2, 6):
            await good.send(media(chunk + 1, chunk))
        await good.send(json.dumps({"event": "stop"}))
        assert await closed_with(good) == (1000, "stream stopped")
    report = await wait_for_streams_done(srv.dsn, steady.call_sid, timeout(10))
    assert report["streams"][0]["frames_received_inbound"] == 5
    assert report["streams"][0]["end_reason"] == "stop"


async def test_a_dropped_socket_still_records_the_stream_and_its_lost_audio(
    srv: RunningServer, call: AnsweredCall, pool: Pool
) -> None:
    frames = "voxsouth_media_frames_received_total"
    before = [await metric(srv, frames, track=t) for t in ("inbound", "outbound")]
    async with connect(srv.media_url) as ws:
        await ws.send(start(call))
        await ws.send(media(2, 1))
        await ws.send(media(3, 2))
        await ws.send(media(6, 5))  # chunks 3 and 4 never arrived: 40 ms lost
        await ws.send(media(7, 1, track="outbound"))
        # Leave without a stop message or a close handshake, as a crashed peer would.
        ws.transport.abort()
    report = await wait_for_streams_done(srv.dsn, call.call_sid, timeout(10))
    [stream] = report["streams"]
    assert stream["end_reason"] == "disconnected"
    assert stream["frames_received_inbound"] == 3 and stream["frames_received_outbound"] == 1
    assert stream["frames_lost_inbound"] == 2 and stream["messages_lost"] == 2
    assert stream["audio_lost_ms"] == 40 and report["call"]["audio_lost_ms"] == 40
    # The frame counters are added to in batches, and the last batch when the stream ends.
    after = [await metric(srv, frames, track=t) for t in ("inbound", "outbound")]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1]


async def test_no_start_in_time_is_closed(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
) -> None:
    async with start_server(media_start_timeout_s=0.2) as server:
        async with connect(server.media_url) as ws:
            assert await closed_with(ws) == (1008, "no start message in time")


async def test_only_the_media_path_accepts_websockets(srv: RunningServer) -> None:
    from websockets.exceptions import InvalidStatus

    for elsewhere in ("/other", f"/other/{uuid.uuid4()}", "/media/extra"):
        with pytest.raises(InvalidStatus) as raised:
            async with connect(srv.media_url.replace("/media", elsewhere)):
                pass
        assert raised.value.response.status_code == 404


async def test_a_stream_on_its_call_url_is_served_and_on_another_calls_url_refused(
    srv: RunningServer, call: AnsweredCall
) -> None:
    assert call.stream.url.startswith(srv.media_url + "/")
    async with connect(f"{srv.media_url}/{uuid.uuid4()}") as ws:
        await ws.send(start(call))
        assert await closed_with(ws) == (1008, "stream URL names another call")
    async with connect(call.stream.url) as ws:
        await ws.send(start(call))
        await ws.send(media(2, 1))
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "3"}))
        assert await closed_with(ws) == (1000, "stream stopped")


async def test_shutting_down_mid_call_still_records_the_open_stream(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    async with start_server() as server:
        async with aiohttp.ClientSession() as http:
            answered = await answer_call(http, server, server.settings, org_number[1])
        ws = await connect(server.media_url)
        await ws.send(start(answered))
        for chunk in range(1, 11):
            await ws.send(media(chunk + 1, chunk))
    # Leaving the server closed the socket (1001), finished the stream and flushed the writer.
    assert ws.close_code == 1001
    row = await pool.fetchrow(
        "SELECT end_reason, frames_received_inbound FROM media_streams s JOIN calls c "
        "ON c.id = s.call_id WHERE c.call_sid = $1",
        answered.call_sid,
    )
    assert row is not None and dict(row) == {
        "end_reason": "server_shutdown",
        "frames_received_inbound": 10,
    }
