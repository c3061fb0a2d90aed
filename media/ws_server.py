"""The websockets library's server as the media plane runs it: on a listening socket, or on
connections another process accepted and hands over (`serve --workers N`'s parent).

websockets serves only what it accepts itself; a handed-over socket is served by building its
connection as websockets' own factory would (`ServerConnection` over a `ServerProtocol`, with the
same options) and giving it to the event loop as an accepted socket, so that the handshake,
`process_request` and the handler run exactly as for any other.

Messages are not queued for the handler to read: `MediaConnection` hands each one to a
callback as it comes off the socket. A media stream is 100 small messages a second, and
websockets' reader queue, with the handler task woken once per message, cost as much as all our
work on a frame (bench.transports: websockets' asyncio server against its sans-I/O protocol).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypedDict, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event
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


MessageReceiver: TypeAlias = Callable[[bytes, bool], None]
"""Takes one whole message as read: its bytes (a text message's still UTF-8) and whether it is
text. Runs inside the transport's `data_received`: it must not block."""


class MediaConnection(ServerConnection):
    """A websockets server connection whose data messages go to `receiver`, in order, as they
    are read, instead of into the queue `recv()` reads (which they never reach). Control frames,
    the handshake, keepalive pings and the closing handshake stay websockets'. `on_lost` is
    called once the connection is closed: no message comes after it."""

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
        self.receiver: MessageReceiver | None = None
        self.on_lost: Callable[[], None] | None = None
        self._fragments: list[bytes] = []
        self._fragmented_text = False

    def process_event(self, event: Event) -> None:
        receiver = self.receiver
        if receiver is None or not isinstance(event, Frame) or event.opcode > Opcode.BINARY:
            super().process_event(event)
            return
        if event.fin and event.opcode is not Opcode.CONT:
            # The usual: a whole message. (bytes() of bytes is the same object: no copy.)
            receiver(bytes(event.data), event.opcode is Opcode.TEXT)
            return
        # A fragmented message (the protocol checks the order of fragments and the size).
        if event.opcode is not Opcode.CONT:
            self._fragmented_text = event.opcode is Opcode.TEXT
        self._fragments.append(bytes(event.data))
        if event.fin:
            data, self._fragments = b"".join(self._fragments), []
            receiver(data, self._fragmented_text)

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
    or, with None, only from `adopt`."""

    def __init__(
        self,
        handler: Callable[[MediaConnection], Awaitable[None]],
        *,
        sock: socket.socket | None,
        process_request: Callable[[ServerConnection, Request], Response | None],
        max_size: int,
    ) -> None:
        self._max_size = max_size
        self._adopting: set[asyncio.Task[object]] = set()
        self.server = serve(
            cast(Callable[[ServerConnection], Awaitable[None]], handler),
            create_connection=MediaConnection,
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

        def connection() -> MediaConnection:
            return MediaConnection(
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
