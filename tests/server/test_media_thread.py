"""The media plane on a loop of its own (server/loop_thread.py, server/app.py): a media loop
that runs late, as it does with hundreds of streams, or not at all does not hold up setting a
call up; leaving the thread closes what its start opened, on its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import AsyncExitStack

import aiohttp
import pytest

from server import loop_thread, worker
from server.app import RunningServer
from server.loop_thread import LoopThread
from storage.db import Pool
from tests.conftest import timeout
from tests.control.test_webhooks import voice_params
from tests.support.calls import simulator


async def test_calls_are_answered_and_moved_while_the_media_loop_is_stuck(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    _, number = org_number
    stuck, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def hold(_media: object) -> None:
        stuck.set()
        released.append(release.wait(timeout(30)))

    srv.media.call(hold)
    try:
        assert await asyncio.to_thread(stuck.wait, timeout(10))
        sim = simulator(http, srv, srv.settings)
        params = voice_params(number)
        status, body = await sim.post_signed(f"{srv.public_url}/laml/voice", params)
        assert status == 200
        assert ET.fromstring(body).find("./Start/Stream") is not None
        params["CallStatus"] = "in-progress"
        code, _ = await sim.post_signed(f"{srv.public_url}/laml/status", params)
        assert code == 204
        sid = params["CallSid"]
        assert await pool.fetchval("SELECT status FROM calls WHERE call_sid = $1", sid) == (
            "in-progress"
        )
    finally:
        release.set()
    # All of it while the media loop was held: had it waited for that loop, the hold would
    # have run out first.
    ended = threading.Event()
    srv.media.call(lambda _: ended.set())
    assert await asyncio.to_thread(ended.wait, timeout(10))
    assert released == [True]


async def test_the_thread_runs_calls_in_order_and_closes_its_start_on_its_own_loop() -> None:
    seen: list[tuple[str, str]] = []
    ready = asyncio.Event()
    caller = asyncio.get_running_loop()

    async def start(stack: AsyncExitStack) -> list[str]:
        stack.callback(lambda: seen.append(("closed", threading.current_thread().name)))
        return []

    plane = LoopThread(start, "plane")
    plane.call(lambda _: seen.append(("before start", "")))  # nothing runs before it starts
    async with plane as value:

        def add(i: int) -> Callable[[list[str]], None]:
            return lambda v: v.append(f"call {i} on {threading.current_thread().name}")

        for i in range(3):
            plane.call(add(i))
        plane.call(lambda _: caller.call_soon_threadsafe(ready.set))
        await asyncio.wait_for(ready.wait(), timeout(10))
        assert value == ["call 0 on plane", "call 1 on plane", "call 2 on plane"]
    assert seen == [("closed", "plane")]
    plane.call(lambda _: seen.append(("after stop", "")))
    assert seen == [("closed", "plane")]


async def test_a_start_that_fails_fails_entering_with_its_error() -> None:
    async def start(stack: AsyncExitStack) -> None:
        raise OSError("media port taken")

    with pytest.raises(OSError, match="media port taken"):
        async with LoopThread(start, "plane"):
            pass


async def test_a_worker_falls_silent_to_its_parent_while_its_media_loop_is_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """server.worker's heartbeat: the parent replaces a worker that stops saying it is alive,
    and a worker whose media loop is stuck hears none of its calls."""
    monkeypatch.setattr(worker, "ALIVE_EVERY_S", 0.1)
    monkeypatch.setattr(worker, "MEDIA_STUCK_S", 0.5)
    monkeypatch.setattr(loop_thread, "TURN_EVERY_S", 0.1)

    async def start(stack: AsyncExitStack) -> None:
        return None

    def hold(_: None) -> None:
        stuck.set()
        release.wait(timeout(30))

    plane = LoopThread(start, "media")
    ours, parents = socket.socketpair()
    stuck, release = threading.Event(), threading.Event()
    async with plane:
        _, control = await asyncio.open_unix_connection(sock=ours)
        parent, parent_end = await asyncio.open_unix_connection(sock=parents)
        beat = asyncio.create_task(worker._heartbeat(control, plane))
        try:
            assert await asyncio.wait_for(parent.readline(), timeout(5)) == worker.ALIVE
            plane.call(hold)
            assert await asyncio.to_thread(stuck.wait, timeout(10))
            async with asyncio.timeout(timeout(10)):  # beats up to MEDIA_STUCK_S, then none
                with contextlib.suppress(TimeoutError):
                    while True:
                        await asyncio.wait_for(parent.readline(), 0.5)
            release.set()
            assert await asyncio.wait_for(parent.readline(), timeout(5)) == worker.ALIVE
        finally:
            release.set()
            beat.cancel()
            for end in (control, parent_end):
                end.close()
                await end.wait_closed()
