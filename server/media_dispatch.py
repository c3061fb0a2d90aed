"""`serve --workers N`: the parent accepts media connections and gives every stream of a call to
the same worker.

A call's live state is in the memory of the worker that holds it: its clock, a consent question
still waiting for its answer, the rules' cooldowns, where its audio stopped. A stream that
resumes the call (a dropped socket, a proxy restart) must reach that worker, or the call goes on
without them (media/server.py keeps a call across its streams within one process). The kernel
cannot route by call, so the parent does:
- the control plane puts the call's id last in the stream URL's path (`wss://…/media/<call id>`;
  SignalWire drops query strings), which a resuming stream, opened by the same LaML or by the
  Streams REST API, carries again;
- the parent accepts, peeks at the request line (MSG_PEEK: nothing is consumed, so the worker
  reads the same bytes and runs the whole handshake itself), and passes the socket to worker
  `call id mod N` over a Unix socket (SCM_RIGHTS), or to the next one running if that one is
  not; a connection that names no call goes to the workers in turn.
The hint only chooses a worker: the token in the stream's `start` still decides what it may
carry, and the media server refuses a URL that names another call than its token.

The HTTP port stays shared (every worker accepts from it): an HTTP request needs no affinity.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import uuid
from collections.abc import Callable, Iterator

from media.protocol import call_in_path

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 2048
"""Bytes peeked for the request line; a longer one names no call we issued."""
HEAD_TIMEOUT_S = 5.0
"""How long the parent waits for a request line before passing the socket on unrouted (the
worker's own handshake timeout then deals with the client)."""
MAX_PEEKING = 512
"""Connections waiting for their request line at once; past it, each new one is passed on
unrouted at once (the worker's handshake timeout deals with it), so that clients who connect
and say nothing cannot hold the parent's descriptors."""
PEEK_AGAIN_S = 0.005
"""Bytes already waiting do not make a socket readable again: while a request line arrives in
pieces (rare: it comes in the first segment), peek again after this."""


def request_line_complete(head: bytes) -> bool:
    return b"\r\n" in head or len(head) >= MAX_REQUEST_LINE


def call_in_request(head: bytes) -> uuid.UUID | None:
    """The call named by the upgrade request's path (`GET /media/<call id> HTTP/1.1`), if the
    request line in `head` names one."""
    line, complete, _ = head.partition(b"\r\n")
    method, _, rest = line.partition(b" ")
    target, _, version = rest.partition(b" ")
    if not complete or method != b"GET" or not version.startswith(b"HTTP/"):
        return None
    return call_in_path(target.decode("latin-1"))


class WorkerChoice:
    """Which worker takes a connection: the call's own (`call id mod slots`, so every stream of
    a call meets the same one), else, or while that one is down, the next running one; a
    connection naming no call goes to the running workers in turn. Pure."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._turn = itertools.count()

    def order(self, call: uuid.UUID | None, running: set[int]) -> list[int]:
        """The running slots (1..slots) to try, best first."""
        if not running:
            return []
        first = call.int % self.slots if call is not None else next(self._turn) % self.slots
        ring = [(first + k) % self.slots + 1 for k in range(self.slots)]
        return [slot for slot in ring if slot in running]


class MediaDispatcher:
    """The parent's accept loop on the media port (use as an async context): each connection to
    a worker chosen by `WorkerChoice`, through the handoff socket `attach`ed for its slot while
    that worker runs."""

    def __init__(
        self, listener: socket.socket, slots: int, *, max_peeking: int = MAX_PEEKING
    ) -> None:
        self._listener = listener
        self._max_peeking = max_peeking
        self._choice = WorkerChoice(slots)
        self._handoffs: dict[int, socket.socket] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting: asyncio.Task[None] | None = None

    def attach(self, slot: int, handoff: socket.socket) -> None:
        """The slot's worker runs and takes sockets on `handoff` (its end stays the caller's)."""
        handoff.setblocking(False)
        self._handoffs[slot] = handoff

    def detach(self, slot: int) -> None:
        self._handoffs.pop(slot, None)

    async def __aenter__(self) -> MediaDispatcher:
        self._listener.setblocking(False)
        self._accepting = asyncio.create_task(self._accept(), name="media-dispatch")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stops accepting; connections still being routed are closed (the server is going)."""
        tasks = [t for t in (self._accepting, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # out of descriptors, a connection reset while queued
                log.warning("media accept failed: %s", exc)
                await asyncio.sleep(0.1)  # not a busy loop while descriptors are short
                continue
            if len(self._tasks) >= self._max_peeking:
                with conn:
                    self._hand_over(conn, None)
                continue
            task = asyncio.create_task(self._route(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _route(self, conn: socket.socket) -> None:
        with conn:  # the parent's copy: the worker has its own once handed over
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_S):
                    head = await _peek_request_line(conn)
            except TimeoutError:
                head = b""  # a slow client: the worker's handshake timeout applies
            except OSError:
                return  # reset before it said anything
            if head is None:
                return  # closed before it said anything
            self._hand_over(conn, call_in_request(head))

    def _hand_over(self, conn: socket.socket, call: uuid.UUID | None) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames go out at once
        for slot in self._choice.order(call, set(self._handoffs)):
            try:
                socket.send_fds(self._handoffs[slot], [b"s"], [conn.fileno()])
                return
            except BlockingIOError:
                log.warning("worker %d takes no media connections (its queue is full)", slot)
            except OSError:  # the worker has exited; its slot detaches when that is noticed
                self.detach(slot)
        log.error("no worker to take a media connection: closing it")


async def _peek_request_line(conn: socket.socket) -> bytes | None:
    """The connection's first bytes once they hold the request line, without consuming them;
    None if it closed first."""
    loop = asyncio.get_running_loop()
    while True:
        await _readable(loop, conn)
        try:
            head = conn.recv(MAX_REQUEST_LINE, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not head:
            return None
        if request_line_complete(head):
            return head
        await asyncio.sleep(PEEK_AGAIN_S)


async def _readable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    ready = loop.create_future()
    loop.add_reader(conn.fileno(), _settle, ready)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@contextlib.contextmanager
def receiving_handoffs(
    handoff: socket.socket, adopt: Callable[[socket.socket], None]
) -> Iterator[None]:
    """A worker's side: every socket its parent passes on `handoff` goes to `adopt` (which
    runs the websocket handshake on it), while inside the block."""
    loop = asyncio.get_running_loop()
    handoff.setblocking(False)

    def receive() -> None:
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(handoff, 16, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the parent is gone: its watch on the control socket stops us
                loop.remove_reader(handoff.fileno())
                return
            if not fds:
                loop.remove_reader(handoff.fileno())  # the parent closed its end
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                adopt(sock)

    loop.add_reader(handoff.fileno(), receive)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError):  # already closed
            loop.remove_reader(handoff.fileno())
