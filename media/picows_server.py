"""The media plane's websockets on picows (a Cython WebSocket library): on a listening socket, or
on connections another process accepted and hands over (`serve --workers N`'s parent).

picows parses frames in C and calls back once per frame, with no task or queue in between;
`bench.transports` measured it at well under half websockets' CPU per message for the same work.
What the media server relies on is `media_socket.MediaSocket`, as on websockets
(media/ws_server.py): the same close codes, 404 for another path, pings to find a silent peer, a
bounded closing handshake, 1001 to every open connection when the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from types import TracebackType

import picows
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in its stubs

from media.media_socket import (
    LISTEN_BACKLOG,
    FrameError,
    HandedOver,
    Messages,
    ReceivesMessages,
)

log = logging.getLogger(__name__)
_picows_log = logging.getLogger("picows.media")
_picows_log.setLevel(logging.WARNING)  # it says "Disconnected" at INFO, for every stream

PING_IDLE_S = 20.0
"""A peer silent this long is pinged (frames arrive every 20 ms: only a dead peer is silent)."""
PING_REPLY_S = 20.0
CLOSE_TIMEOUT_S = 2.0
"""How long a close waits for the peer's answer (a flooder may never read it) before the
socket is dropped."""
HANDSHAKE_TIMEOUT_S = 10.0

_TEXT, _BINARY = picows.WSMsgType.TEXT, picows.WSMsgType.BINARY
_CONTINUATION, _CLOSE = picows.WSMsgType.CONTINUATION, picows.WSMsgType.CLOSE


class PicowsConnection(ReceivesMessages, picows.WSListener):
    """One accepted websocket (a `MediaSocket`)."""

    def __init__(self, server: PicowsServer, path: str) -> None:
        super().__init__()
        self._server = server
        self._path = path
        self._messages = Messages(server.max_size)
        self._transport: picows.WSTransport | None = None
        self._closing = False
        self._gone = asyncio.Event()

    @property
    def path(self) -> str:
        return self._path

    @property
    def open(self) -> bool:
        return not self._closing and not self._gone.is_set()

    async def close(self, code: int, reason: str) -> None:
        transport = self._transport
        if transport is None or self._gone.is_set():
            return
        if not self._closing:
            self._closing = True
            transport.send_close(picows.WSCloseCode(code), reason.encode())
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._gone.wait()  # until the peer answers it (on_ws_frame) or goes
        except TimeoutError:
            transport.disconnect(graceful=False)

    # picows' callbacks

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self._transport = transport
        self._server.connected(self)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind is _TEXT or kind is _BINARY or kind is _CONTINUATION:
            # Read even once our close is sent: the peer sent it before it saw ours (the media
            # server decides what it still processes).
            try:
                self._messages.frame(
                    frame.get_payload_as_bytes(),
                    text=kind is _TEXT,
                    continuation=kind is _CONTINUATION,
                    fin=frame.fin,
                )
            except FrameError as exc:
                self._closing = True
                transport.send_close(picows.WSCloseCode(exc.code), exc.reason.encode())
                transport.disconnect()
        elif kind is _CLOSE:
            if not self._closing:  # the peer's close: answered with its code
                self._closing = True
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        # Pings are answered by picows; pongs need nothing.

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self._closing = True
        self._gone.set()
        self._server.disconnected(self)
        if self.on_lost is not None:
            self.on_lost()


class PicowsServer:
    """Use as an async context: serves `sock` (or, with None, only what `adopt` is given) until
    exit, which stops accepting, closes every open connection with 1001 and waits for their
    handlers to end."""

    def __init__(
        self,
        handler: Callable[[PicowsConnection], Coroutine[object, object, None]],
        *,
        sock: socket.socket | None,
        accepts: Callable[[str], bool],
        max_size: int,
    ) -> None:
        self._handler = handler
        self._sock = sock
        self._accepts = accepts
        self.max_size = max_size
        self._listener: asyncio.Server | None = None
        self._connections: set[PicowsConnection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._handed = HandedOver()
        self._stopping = False

    async def __aenter__(self) -> PicowsServer:
        if self._sock is not None:
            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(
                self._protocol, sock=self._sock, backlog=LISTEN_BACKLOG
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        if self._listener is not None:
            self._listener.close()
        await asyncio.gather(
            *(conn.close(1001, "server shutting down") for conn in list(self._connections))
        )
        if self._handlers:
            await asyncio.wait(self._handlers)
        if self._listener is not None:
            await self._listener.wait_closed()

    def adopt(self, sock: socket.socket) -> None:
        """A connection accepted by another process, its request not yet read: served as if
        accepted here."""
        self._handed.serve(self._protocol, sock)

    def _protocol(self) -> asyncio.BufferedProtocol:
        # What picows.ws_create_server builds per connection, on the event loop's own transport
        # (uvloop), so that a listening socket and a handed-over one are served alike.
        protocol: asyncio.BufferedProtocol = WSProtocol(
            None,  # host and port: a server's
            None,  # path: a server's
            False,  # not the client side
            self._route,
            _picows_log,
            True,  # an exception in a callback closes the connection (1011)
            HANDSHAKE_TIMEOUT_S,
            True,  # auto ping: a silent peer is pinged, and dropped without a pong
            PING_IDLE_S,
            PING_REPLY_S,
            picows.WSAutoPingStrategy.PING_WHEN_IDLE,
            True,  # pings answered
            self.max_size,  # per frame; Messages bounds a fragmented message
            None,  # extra headers
            4 * 1024,  # initial read buffer (grows as needed): a media message is ~300 bytes
        )
        return protocol

    def _route(
        self, request: picows.WSUpgradeRequest
    ) -> PicowsConnection | picows.WSUpgradeResponseWithListener | None:
        if self._stopping:
            return picows.WSUpgradeResponseWithListener(
                picows.WSUpgradeResponse.create_error_response(503, b"shutting down\n"), None
            )
        path = request.path.decode("ascii", "replace")
        if not self._accepts(path):
            return None  # picows answers 404
        return PicowsConnection(self, path)

    def connected(self, conn: PicowsConnection) -> None:
        self._connections.add(conn)
        task = asyncio.get_running_loop().create_task(self._handler(conn))
        self._handlers.add(task)
        task.add_done_callback(lambda done: self._handled(done, conn))

    def _handled(self, task: asyncio.Task[None], conn: PicowsConnection) -> None:
        self._handlers.discard(task)
        if conn.open:  # as websockets does when a handler returns with its socket open
            closing = asyncio.get_running_loop().create_task(conn.close(1000, ""))
            self._handlers.add(closing)
            closing.add_done_callback(self._handlers.discard)

    def disconnected(self, conn: PicowsConnection) -> None:
        self._connections.discard(conn)
