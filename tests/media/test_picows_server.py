"""The picows transport on its own, with a stand-in handler: what websockets did for us."""

from __future__ import annotations

import asyncio
import socket

from websockets.asyncio.client import connect

from media.picows_server import PicowsConnection, PicowsServer
from tests.conftest import timeout


def listening() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def test_a_handler_that_returns_leaves_no_socket_open() -> None:
    async def handler(conn: PicowsConnection) -> None:
        conn.receiver = lambda data, text: None

    sock = listening()
    port = sock.getsockname()[1]
    async with PicowsServer(handler, sock=sock, accepts=lambda path: True, max_size=1024):
        async with connect(f"ws://127.0.0.1:{port}/media") as ws:
            async with asyncio.timeout(timeout(5)):
                await ws.wait_closed()
            assert ws.close_code == 1000


async def test_stopping_closes_open_streams_with_1001_and_waits_for_their_handlers() -> None:
    finished = asyncio.Event()
    received: list[bytes] = []

    async def handler(conn: PicowsConnection) -> None:
        conn.receiver = lambda data, text: received.append(data)
        gone = asyncio.Event()
        conn.on_lost = gone.set
        await gone.wait()
        finished.set()

    sock = listening()
    port = sock.getsockname()[1]
    server = PicowsServer(handler, sock=sock, accepts=lambda path: True, max_size=1024)
    await server.__aenter__()
    async with connect(f"ws://127.0.0.1:{port}/media") as ws:
        await ws.send("first")
        await ws.send("second")
        await (await ws.ping())  # its pong comes after both messages were read
        async with asyncio.timeout(timeout(5)):
            await server.__aexit__(None, None, None)  # what leaving `async with server` runs
        assert finished.is_set()
        assert ws.close_code == 1001
    assert received == [b"first", b"second"]
