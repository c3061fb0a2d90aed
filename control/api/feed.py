"""The live feed over WebSocket (`/api/feed`) and Server-Sent Events (`/api/feed/sse`).

Both authenticate like every /api/ route (session cookie or API key) and carry only the
caller's org. Messages are JSON objects: feed events `{"id", "type", "call_id", "at", "data"}`;
`transcript_partial` events, a speaker's words so far, have no id (they are never stored,
nor replayed on reconnect: the `transcript` event that follows replaces them);
and control messages without an id: `hello` (with `last_event_id`, the newest id at connect)
and `resync` (the client fell behind or missed too much: reload state from the REST API and
reconnect without a last id). A client that reconnects with `last_event_id` (query parameter,
or SSE's `Last-Event-ID` header) first receives every event after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from control.app_keys import FEED_HUB, POOL, TRUSTED_ORIGINS
from control.auth import principal, requires
from control.errors import ApiError
from control.feed import BACKLOG_MAX, FeedHub, Subscription, redact
from control.permissions import Action, allowed
from storage import feed
from storage.tenancy import tenant

CLOSE_RESYNC = 4000
SSE_KEEPALIVE_S = 15.0
SSE_GONE_CHECK_S = 0.5

Send = Callable[[dict[str, Any]], Awaitable[None]]


def routes() -> list[web.RouteDef]:
    return [web.get("/api/feed", websocket_feed), web.get("/api/feed/sse", sse_feed)]


@requires(Action.FEED_READ)
async def websocket_feed(request: web.Request) -> web.StreamResponse:
    _check_origin(request)
    last_id = _last_event_id(request.query.get("last_event_id"))
    # A client that does not answer the close handshake holds a handler (and shutdown) 2 s.
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096, timeout=2.0)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "WEBSOCKET_REQUIRED", "connect with a WebSocket upgrade")
    await ws.prepare(request)

    async def send(message: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(message))

    async def drain_incoming() -> None:
        # The client has nothing to say; reading lets us notice it leave.
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break

    reader = asyncio.create_task(drain_incoming())
    relay = asyncio.create_task(_relay(request, last_id, send))
    try:
        await asyncio.wait((reader, relay), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, relay):
            task.cancel()
        await asyncio.gather(reader, relay, return_exceptions=True)
    if relay.done() and not relay.cancelled() and relay.exception() is None:
        if relay.result() == "server_shutdown":
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
        else:
            await ws.close(code=CLOSE_RESYNC, message=b"resync")
    else:
        await ws.close()
    return ws


@requires(Action.FEED_READ)
async def sse_feed(request: web.Request) -> web.StreamResponse:
    last_id = _last_event_id(
        request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)

    async def send(message: dict[str, Any]) -> None:
        lines = f"data: {json.dumps(message)}\n\n"
        if "id" in message:
            lines = f"id: {message['id']}\n{lines}"
        await response.write(lines.encode())

    async def keepalive() -> None:
        """Returns when the client has gone. aiohttp does not cancel a handler whose client
        left, and the relay only notices on its next write: without this check a closed
        connection would hold its subscription (and delay shutdown) until a keepalive."""
        idle = 0.0
        while True:
            await asyncio.sleep(SSE_GONE_CHECK_S)
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            idle += SSE_GONE_CHECK_S
            if idle >= SSE_KEEPALIVE_S:
                idle = 0.0
                await response.write(b": keepalive\n\n")

    relay = asyncio.create_task(_relay(request, last_id, send))
    watch = asyncio.create_task(keepalive())
    try:
        await asyncio.wait((relay, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relay, watch):
            task.cancel()
        await asyncio.gather(relay, watch, return_exceptions=True)
    for task in (relay, watch):
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionError):
            raise exc  # a real failure (Postgres, say), not a client that left
    return response


async def _relay(request: web.Request, last_id: int | None, send: Send) -> str:
    """Sends the backlog, then live events, until the subscriber must resync; returns why."""
    who = principal(request)
    transcripts = allowed(who.role, Action.TRANSCRIPTS_READ)
    hub = request.app[FEED_HUB]
    # Subscribe before reading the backlog, so nothing falls between the two.
    sub = hub.subscribe(who.org_id)
    try:
        async with tenant(request.app[POOL], who.org_id) as conn:
            newest = await feed.latest_id(conn, who.org_id)
            backlog = []
            if last_id is not None:
                backlog = await feed.read_since(conn, who.org_id, last_id, BACKLOG_MAX + 1)
        if len(backlog) > BACKLOG_MAX:
            await send({"type": "resync", "reason": "too_many_missed"})
            return "too_many_missed"
        await send({"type": "hello", "last_event_id": newest})
        # Live events up to here were sent from the backlog, or predate the connection.
        floor = max([newest, *(e["id"] for e in backlog)])
        for event in backlog:
            await send(redact(event, transcripts=transcripts))
        async for event in _live(sub):
            if "id" in event and event["id"] <= floor:
                continue  # (a partial transcript has no position: it is only ever live)
            await send(redact(event, transcripts=transcripts))
        await send({"type": "resync", "reason": sub.reason})
        return sub.reason
    finally:
        hub.unsubscribe(sub)


async def _live(sub: Subscription) -> AsyncIterator[dict[str, Any]]:
    while (event := await sub.next()) is not None:
        yield event


def _last_event_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ApiError(
            400,
            "INVALID_QUERY",
            "last_event_id is invalid",
            {"fields": [{"field": "last_event_id", "message": "expected a feed event id"}]},
        )
    return int(value)


def _check_origin(request: web.Request) -> None:
    """Browsers send Origin on WebSocket handshakes and do not apply CORS to them: a page on
    another site must not ride a signed-in supervisor's cookie into the feed, unless it is one
    the API trusts with that cookie already (the CORS origins)."""
    origin = request.headers.get("Origin")
    if origin is None or urlsplit(origin).netloc == request.host:
        return
    if origin in request.app[TRUSTED_ORIGINS]:
        return
    raise ApiError(403, "ORIGIN_REFUSED", "WebSocket connections from other sites are refused")


__all__ = ["FeedHub", "routes"]
