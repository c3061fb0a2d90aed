"""What the media server needs of a websocket, whichever library carries it (media/ws_server.py:
websockets; media/picows_server.py: picows)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Protocol, TypeAlias

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
"""Connections the kernel holds for a listening socket until they are accepted: a loop running
late still finds a ramp of new calls' streams waiting rather than refused (asyncio's
`create_server` would set 100, whatever the socket was bound with)."""

MessageReceiver: TypeAlias = Callable[[bytes, bool], None]
"""Takes one whole message as read: its bytes (a text message's still UTF-8) and whether it is
text. Runs inside the transport's read callback: it must not block."""


class StreamGone(Exception):
    """The peer's socket closed before the stream began."""


class MediaSocket(Protocol):
    """An accepted, upgraded websocket. Every data message goes to `receiver`, in order, as it
    is read (what arrives before a receiver is set is kept, and given to it first). `on_lost` is
    called once the connection has closed: no message comes after it."""

    receiver: MessageReceiver | None
    on_lost: Callable[[], None] | None

    @property
    def path(self) -> str:
        """The request's path (with its query string, if any)."""
        ...

    @property
    def open(self) -> bool:
        """Neither side has begun to close it."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Sends a close frame and waits (bounded) for the closing handshake to end."""
        ...


class FrameError(Exception):
    """Data frames that do not make a message: the connection is closed with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Messages:
    """Whole messages out of a connection's data frames, each given to `receiver` as soon as it
    is complete; kept, in order, until a receiver is set."""

    __slots__ = ("_receiver", "_early", "_fragments", "_size", "_text", "_max_size")

    def __init__(self, max_size: int) -> None:
        self._receiver: MessageReceiver | None = None
        self._early: list[tuple[bytes, bool]] = []
        self._fragments: list[bytes] = []
        self._size = 0
        self._text = False
        self._max_size = max_size

    @property
    def receiver(self) -> MessageReceiver | None:
        return self._receiver

    @receiver.setter
    def receiver(self, receiver: MessageReceiver | None) -> None:
        self._receiver = receiver
        if receiver is not None:
            early, self._early = self._early, []
            for data, text in early:
                receiver(data, text)

    def frame(self, data: bytes, *, text: bool, continuation: bool, fin: bool) -> None:
        """One data frame (`text` is read only from a message's first frame); raises FrameError."""
        if not continuation and fin and not self._fragments:
            self._deliver(data, text)  # the usual: a whole message in one frame
            return
        if continuation != bool(self._fragments):
            raise FrameError(1002, "unexpected continuation frame")
        if not continuation:
            self._text = text
        self._size += len(data)
        if self._size > self._max_size:
            raise FrameError(1009, "message too big")
        self._fragments.append(data)
        if fin:
            message, self._fragments, self._size = b"".join(self._fragments), [], 0
            self._deliver(message, self._text)

    def _deliver(self, data: bytes, text: bool) -> None:
        if self._receiver is None:
            self._early.append((data, text))
        else:
            self._receiver(data, text)


class ReceivesMessages:
    """The `receiver` and `on_lost` half of a `MediaSocket`, over its `Messages`."""

    _messages: Messages
    on_lost: Callable[[], None] | None = None

    @property
    def receiver(self) -> MessageReceiver | None:
        return self._messages.receiver

    @receiver.setter
    def receiver(self, receiver: MessageReceiver | None) -> None:
        self._messages.receiver = receiver


class HandedOver:
    """Serves connections another process accepted (`serve --workers N`'s parent), their
    requests not yet read, with the protocol the transport builds for its own."""

    def __init__(self) -> None:
        self._adopting: set[asyncio.Task[object]] = set()

    def serve(self, protocol: Callable[[], asyncio.BaseProtocol], sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        task: asyncio.Task[object] = loop.create_task(loop.connect_accepted_socket(protocol, sock))
        self._adopting.add(task)
        task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[object]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The peer went while it was handed over: nothing of it was read.
            log.info("a handed-over media connection could not be served: %s", exc)
