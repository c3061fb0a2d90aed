"""One websocket carrying a stream of a call, as the media server keeps it (media/server.py):
what it has read and not yet processed, how far it got, and how it ended."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque

from media.events import StreamStopped
from media.media_socket import MediaSocket, StreamGone
from media.protocol import FloodGuard, StreamParser
from media.session import CallSession
from media.stream_decodes import StreamDecodes


class StreamConnection:
    """One websocket carrying a stream of a call.

    Its messages are handed over as they are read (`MediaSocket.receiver`): kept in
    `inbox` until the stream is admitted, then processed on arrival."""

    __slots__ = (
        "ws", "parser", "guard", "started_at", "session", "decodes", "superseded", "call_id",
        "earlier", "attached", "read", "inbox", "arrived", "streaming", "closed", "ended",
    )  # fmt: skip

    def __init__(self, ws: MediaSocket, guard: FloodGuard) -> None:
        self.ws = ws
        self.parser = StreamParser()
        self.guard = guard
        self.started_at = 0.0
        """When its `start` arrived (monotonic): of two connections of a call, the later is
        the live one, whichever was admitted first."""
        self.session: CallSession | None = None
        """The call's session, once the connection carries it."""
        self.decodes = StreamDecodes()
        self.superseded: StreamStopped | None = None
        """Its record, once a newer connection of the call took over (this one was cut
        without noticing): taken then, before the newer one changed the session."""
        self.call_id: uuid.UUID | None = None
        """Its call, once its token is verified."""
        self.earlier: StreamConnection | None = None
        """The call's connection whose `start` arrived just before this one's, until this one
        is attached: it goes first."""
        self.attached = asyncio.Event()
        """Set once it carries the call, or never will."""
        self.read = asyncio.Event()
        """Set once its last message has been processed (the call is no longer its)."""
        self.inbox: deque[tuple[bytes, bool, float]] = deque()
        """Messages (data, is text, when read) not yet processed: until the stream is
        admitted. Bounded by the flood guard, which every message passes as it is read."""
        self.arrived = asyncio.Event()
        """Set when the inbox gains a message or the connection closes or fails."""
        self.streaming = False
        """Messages are processed as they are read (the inbox is empty from then on)."""
        self.closed = False
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """The stream's outcome once it has ended (an exception: why it was refused)."""

    async def next_message(self) -> tuple[bytes, bool, float]:
        """The oldest message not yet processed (data, is text, when read), waiting for one;
        raises why the stream ended (a flood) or StreamGone when its socket has closed."""
        while not self.inbox:
            if self.ended.done():
                self.ended.result()  # raises, if it holds an error
            if self.closed:
                raise StreamGone
            self.arrived.clear()
            await self.arrived.wait()
        return self.inbox.popleft()

    def end(self, outcome: str | BaseException) -> None:
        if self.ended.done():
            return
        if isinstance(outcome, str):
            self.ended.set_result(outcome)
        else:
            self.ended.set_exception(outcome)
        self.arrived.set()
