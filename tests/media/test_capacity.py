"""Admission control over real sockets: past its limit of streams, or while its event loop runs
late, the server refuses new streams with 1013 and a reason, counted, and the streams already
running go on undisturbed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import aiohttp
from websockets.asyncio.client import connect

from server.app import RunningServer
from storage.db import Pool
from tests.conftest import timeout
from tests.media.test_media_server import closed_with, media, metric, start
from tests.support.calls import answer_call
from tests.support.changes import watching

OPENED = """SELECT count(*) > 0 FROM media_streams s JOIN calls c ON c.id = s.call_id
            WHERE c.call_sid = $1 AND s.owner_id IS NOT NULL"""


async def test_a_stream_past_the_limit_is_refused_and_the_running_one_goes_on(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    async with start_server(media_max_streams=1) as srv, aiohttp.ClientSession() as http:
        first, second = [await answer_call(http, srv, srv.settings, org_number[1]) for _ in "12"]
        # The registry is the test process's: other tests' streams are counted in it too.
        refused_before = await metric(srv, "voxsouth_media_streams_total", outcome="at_capacity")
        stopped_before = await metric(srv, "voxsouth_media_streams_total", outcome="stop")
        async with connect(srv.media_url) as running:
            await running.send(start(first))
            await running.send(media(2, 1))
            async with watching(pool, srv.dsn) as changes:
                await changes.until(OPENED, first.call_sid)  # admitted and attached
            async with connect(srv.media_url) as refused:
                await refused.send(start(second))
                assert await closed_with(refused) == (
                    1013, "server at capacity (1 streams), try again later",
                )  # fmt: skip
            await running.send(media(3, 2))
            await running.send(json.dumps({"event": "stop"}))
            assert await closed_with(running) == (1000, "stream stopped")
        outcomes = [
            await metric(srv, "voxsouth_media_streams_total", outcome=outcome) - before
            for outcome, before in (("at_capacity", refused_before), ("stop", stopped_before))
        ]
        assert outcomes == [1, 1]


async def test_a_stream_arriving_while_the_loop_runs_late_is_refused(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    org_number: tuple[uuid.UUID, str],
) -> None:
    async with start_server(media_max_loop_lag_ms=30) as srv, aiohttp.ClientSession() as http:
        call = await answer_call(http, srv, srv.settings, org_number[1])
        before = await metric(srv, "voxsouth_media_streams_total", outcome="loop_behind")
        # Keep the media plane's loop late, as sustained overload would (one stall alone is
        # not refused), while the stream connects.
        overloaded = threading.Event()
        hogs: list[asyncio.Task[None]] = []

        async def hog() -> None:
            for _ in range(6):  # more than five of the monitor's samples, each 50 ms late or more
                time.sleep(0.15)  # noqa: ASYNC251 (blocking the loop is the point)
                await asyncio.sleep(0)  # the sampling callback runs here, late
            overloaded.set()
            while True:
                time.sleep(0.15)  # noqa: ASYNC251
                await asyncio.sleep(0)

        srv.media.call(lambda _: hogs.append(asyncio.get_running_loop().create_task(hog())))
        try:
            assert await asyncio.to_thread(overloaded.wait, timeout(10))
            async with connect(srv.media_url) as refused:
                await refused.send(start(call))
                assert await closed_with(refused) == (
                    1013, "server running behind, try again later",
                )  # fmt: skip
        finally:
            srv.media.call(lambda _: [task.cancel() for task in hogs])
        after = await metric(srv, "voxsouth_media_streams_total", outcome="loop_behind")
        assert after == before + 1
        assert await metric(srv, "voxsouth_event_loop_lag_seconds_count") > 0
