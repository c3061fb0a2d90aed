"""The parent's media dispatch (`serve --workers N`): which worker a connection goes to, read from
its request line without consuming it.

The rules are pure (`call_in_request`, `WorkerChoice`); `MediaDispatcher` is then driven over real
sockets in the test's own process, its workers being the test's ends of the handoff sockets.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from media.protocol import call_in_path
from server.media_dispatch import (
    MAX_REQUEST_LINE,
    MediaDispatcher,
    WorkerChoice,
    call_in_request,
    request_line_complete,
)
from tests.conftest import timeout

CALL = uuid.UUID("5b0e8f4e-2a51-4c1e-9d1e-6f2b8a3c9d01")
UPGRADE = f"GET /media/{CALL} HTTP/1.1\r\nHost: voice.example.com\r\nUpgrade: websocket\r\n\r\n"


@pytest.mark.parametrize(
    ("path", "call"),
    [
        (f"/media/{CALL}", CALL),
        (f"/media/{CALL}/", CALL),
        (f"/voice/streams/{CALL}", CALL),  # behind a proxy that maps a longer prefix
        (f"/media/{str(CALL).upper()}", CALL),
        ("/media", None),
        ("/media/", None),
        ("/media/not-a-call-id-but-thirty-six-chars", None),
        (f"/media/{CALL}x", None),
    ],
)
def test_the_call_a_stream_url_names_is_its_last_path_segment(
    path: str, call: uuid.UUID | None
) -> None:
    assert call_in_path(path) == call


def test_a_request_line_names_its_call_only_once_it_is_complete() -> None:
    head = UPGRADE.encode()
    assert call_in_request(head) == CALL
    line_only = head[: head.index(b"\r\n") + 2]
    assert request_line_complete(line_only) and call_in_request(line_only) == CALL
    cut = head[:20]
    assert not request_line_complete(cut) and call_in_request(cut) is None
    assert call_in_request(head.replace(b"GET", b"POST")) is None
    assert call_in_request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") is None  # TLS hello
    endless = b"GET /" + b"a" * MAX_REQUEST_LINE
    assert request_line_complete(endless) and call_in_request(endless) is None


def test_every_connection_of_a_call_goes_to_the_same_worker_while_it_runs() -> None:
    choice = WorkerChoice(3)
    calls = [uuid.uuid4() for _ in range(30)]
    first = {call: choice.order(call, {1, 2, 3})[0] for call in calls}
    assert all(choice.order(call, {1, 2, 3})[0] == first[call] for call in calls)
    assert set(first.values()) == {1, 2, 3}  # calls are spread over the workers
    # The call's worker is down (being restarted): the next one in the ring, the same each time.
    [call] = [c for c in calls if first[c] == 2][:1]
    assert choice.order(call, {1, 3}) == [3, 1]
    assert choice.order(call, set()) == []


def test_connections_that_name_no_call_go_to_the_running_workers_in_turn() -> None:
    choice = WorkerChoice(2)
    assert [choice.order(None, {1, 2})[0] for _ in range(4)] == [1, 2, 1, 2]
    assert [choice.order(None, {2})[0] for _ in range(3)] == [2, 2, 2]


class Workers:
    """The test's ends of each slot's handoff socket: what the dispatcher passes to each."""

    def __init__(self, dispatcher: MediaDispatcher, slots: int) -> None:
        self.ends: dict[int, socket.socket] = {}
        self.dispatchers_ends: list[socket.socket] = []  # the supervisor's to close
        for slot in range(1, slots + 1):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            dispatcher.attach(slot, ours)
            self.dispatchers_ends.append(ours)
            theirs.setblocking(False)
            self.ends[slot] = theirs

    async def received(self, slot: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        end = self.ends[slot]
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(end.fileno(), lambda: None if ready.done() else ready.set_result(None))
        try:
            async with asyncio.timeout(timeout(5)):
                await ready
        finally:
            loop.remove_reader(end.fileno())
        _, [fd], _, _ = socket.recv_fds(end, 16, 1)
        return socket.socket(fileno=fd)

    def nothing_for(self, slot: int) -> bool:
        try:
            self.ends[slot].recv(16, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except BlockingIOError:
            return True
        return False


@asynccontextmanager
async def dispatching(
    slots: int, max_peeking: int = 512
) -> AsyncIterator[tuple[Workers, tuple[str, int]]]:
    listener = socket.create_server(("127.0.0.1", 0))
    dispatcher = MediaDispatcher(listener, slots, max_peeking=max_peeking)
    workers = Workers(dispatcher, slots)
    try:
        async with dispatcher:
            yield workers, listener.getsockname()
    finally:
        listener.close()
        for end in [*workers.ends.values(), *workers.dispatchers_ends]:
            end.close()


async def test_the_worker_gets_the_connection_with_its_request_unread() -> None:
    slot = WorkerChoice(2).order(CALL, {1, 2})[0]
    async with dispatching(2) as (workers, address):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(UPGRADE.encode())
        await writer.drain()
        handed = await workers.received(slot)
        assert workers.nothing_for(3 - slot)
        with handed:
            handed.settimeout(timeout(5))
            got = b""
            while len(got) < len(UPGRADE):
                got += handed.recv(4096)
            assert got.decode() == UPGRADE  # every byte is still there for the handshake
            handed.sendall(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert await reader.readline() == b"HTTP/1.1 101 Switching Protocols\r\n"
        writer.close()


async def test_a_worker_gone_leaves_its_calls_to_the_next_and_a_silent_peer_is_dropped() -> None:
    slot = WorkerChoice(2).order(CALL, {1, 2})[0]
    async with dispatching(2) as (workers, address):
        workers.ends.pop(slot).close()  # that worker exited
        _, writer = await asyncio.open_connection(*address)
        writer.write(UPGRADE.encode())
        await writer.drain()
        (await workers.received(3 - slot)).close()
        writer.close()

        # A peer that connects and closes without a word is not handed to anyone.
        _, quiet = await asyncio.open_connection(*address)
        quiet.close()
        await quiet.wait_closed()
        _, writer = await asyncio.open_connection(*address)
        writer.write(b"GET /media HTTP/1.1\r\n\r\n")
        await writer.drain()
        (await workers.received(3 - slot)).close()  # the next connection, not the quiet one
        assert workers.nothing_for(3 - slot)
        writer.close()


async def test_past_the_peeking_limit_a_silent_connection_is_passed_on_unrouted() -> None:
    async with dispatching(1, max_peeking=1) as (workers, address):
        _, silent = await asyncio.open_connection(*address)  # holds the one peeking place
        _, next_one = await asyncio.open_connection(*address)  # says nothing either
        handed = await workers.received(1)  # passed on at once, without its request line
        with handed:
            assert handed.getpeername() == next_one.get_extra_info("sockname")
            handed.setblocking(False)
            with pytest.raises(BlockingIOError):
                handed.recv(1)  # nothing was sent, and nothing was read from it
        silent.close()
        next_one.close()
