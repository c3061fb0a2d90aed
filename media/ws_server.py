"""The websockets library's server as the media plane runs it: on a listening socket, or on
connections another process accepted and hands over (`serve --workers N`'s parent).

websockets serves only what it accepts itself; a handed-over socket is served by building its
connection as websockets' own factory would (`ServerConnection` over a `ServerProtocol`, with the
same options) and giving it to the event loop as an accepted socket, so that the handshake,
`process_request` and the handler run exactly as for any other.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypedDict, cast

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

log = logging.getLogger(__name__)


class _ConnectionOptions(TypedDict):
    ping_interval: float
    ping_timeout: float
    close_timeout: float


CONNECTION_OPTIONS: _ConnectionOptions = {
    # Frames arrive every 20 ms, so a dead peer shows quickly; pings catch a silent one.
    "ping_interval": 20,
    "ping_timeout": 20,
    # A peer closed for misbehaving may never answer the close handshake (a flooder blocked on
    # its own full send buffer): drop it after 2 s instead of websockets' 10.
    "close_timeout": 2,
}


class _HandedConnections(asyncio.AbstractServer):
    """What stands for the listening server where another process accepts the connections and
    hands them over (`WebSocketServer.adopt`): serving until closed, when websockets' handshake
    answers 503 as it does while a server shuts down."""

    sockets: tuple[socket.socket, ...] = ()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closed = asyncio.Event()

    def close(self) -> None:
        self._closed.set()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    async def start_serving(self) -> None:
        pass

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class WebSocketServer:
    """One websockets server: `server` (use as an async context) takes connections from `sock`,
    or, with None, only from `adopt`."""

    def __init__(
        self,
        handler: Callable[[ServerConnection], Awaitable[None]],
        *,
        sock: socket.socket | None,
        process_request: Callable[[ServerConnection, Request], Response | None],
        max_size: int,
    ) -> None:
        self._max_size = max_size
        self._adopting: set[asyncio.Task[object]] = set()
        self.server = serve(
            handler,
            sock=sock,
            process_request=process_request,
            max_size=max_size,
            compression=None,
            **CONNECTION_OPTIONS,
        )
        if sock is None:

            async def handed() -> asyncio.Server:
                # Typed as asyncio.Server by websockets, which uses only AbstractServer's part.
                return cast(asyncio.Server, _HandedConnections(asyncio.get_running_loop()))

            self.server.create_server = handed

    def adopt(self, sock: socket.socket) -> None:
        """A connection accepted by another process, its request not yet read: served as if
        accepted here."""
        server = self.server

        def connection() -> ServerConnection:
            return ServerConnection(
                ServerProtocol(max_size=self._max_size), server, **CONNECTION_OPTIONS
            )

        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(connection, sock))
        self._adopting.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The peer went while it was handed over: nothing of it was read.
            log.info("a handed-over media connection could not be served: %s", exc)
