"""The websockets library's server as the media plane runs it: on a listening socket, or on
connections another process accepted and hands over (`serve --workers N`'s parent).

websockets serves only what it accepts itself; a handed-over socket is served by building its
connection as websockets' own factory would (`ServerConnection` over a `ServerProtocol`, with the
same options) and giving it to the event loop as an accepted socket, so that the handshake,
`process_request` and the handler run exactly as for any other.

Messages are not queued for the handler to read: `MediaConnection` hands each to the media
server as it is read (`media_socket.MediaSocket`, which media/picows_server.py provides too).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TypedDict, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN, Event
from websockets.server import ServerProtocol

from media.media_socket import LISTEN_BACKLOG, HandedOver, Messages, ReceivesMessages


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


class MediaConnection(ReceivesMessages, ServerConnection):
    """A websockets server connection whose data messages go to `receiver` (a `MediaSocket`),
    never into the queue `recv()` reads. Control frames, the handshake, keepalive pings and the
    closing handshake stay websockets'."""

    def __init__(
        self,
        protocol: ServerProtocol,
        server: Server,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float | None,
        max_queue: int | None | tuple[int | None, int | None] = 16,
        write_limit: int | tuple[int, int | None] = 2**15,
    ) -> None:
        super().__init__(
            protocol,
            server,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,  # unused: messages go to `receiver`, never to the queue
            write_limit=write_limit,
        )
        # websockets' protocol checks the frames' order and the message size.
        self._messages = Messages(max_size=2**63)

    @property
    def path(self) -> str:
        return self.request.path if self.request is not None else ""

    @property
    def open(self) -> bool:
        return self.state is OPEN

    def process_event(self, event: Event) -> None:
        if self.request is None or not isinstance(event, Frame) or event.opcode > Opcode.BINARY:
            super().process_event(event)  # the handshake's request, control frames
            return
        # bytes() of bytes is the same object: no copy.
        self._messages.frame(
            bytes(event.data),
            text=event.opcode is Opcode.TEXT,
            continuation=event.opcode is Opcode.CONT,
            fin=event.fin,
        )

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()


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
    or, with None, only from `adopt`; a request for a path `accepts` refuses is answered 404."""

    def __init__(
        self,
        handler: Callable[[MediaConnection], Awaitable[None]],
        *,
        sock: socket.socket | None,
        accepts: Callable[[str], bool],
        max_size: int,
    ) -> None:
        self._max_size = max_size
        self._handed = HandedOver()

        def check_path(conn: ServerConnection, request: Request) -> Response | None:
            return None if accepts(request.path) else conn.respond(404, "not found\n")

        self.server = serve(
            cast(Callable[[ServerConnection], Awaitable[None]], handler),
            create_connection=MediaConnection,
            sock=sock,
            backlog=LISTEN_BACKLOG,
            process_request=check_path,
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

        def connection() -> MediaConnection:
            return MediaConnection(
                ServerProtocol(max_size=self._max_size), server, **CONNECTION_OPTIONS
            )

        self._handed.serve(connection, sock)
