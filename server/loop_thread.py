"""A thread with an event loop of its own, for a plane that must not share the control
plane's loop: the media plane (issue 18).

On one loop, every statement of a webhook's transaction, a stream's admission or a status
callback waited for the loop's next turn, which with 300 two-track streams and a ramp of new
calls is tens to hundreds of milliseconds: transactions held their pooled connections that
long, the pool of 10 was saturated and voice webhooks waited seconds for a connection. With the
media loop on its own thread, a control-plane round trip waits at most for the interpreter's
switch interval (5 ms) before the control loop runs again.

What crosses between the loops (server.app): a stream's admission (the media loop awaits the
control loop's `admit`), a feed event for a call's live session (`call`, from the control loop),
and the media server's events (the event writer's own thread takes them,
server.writer_thread, which runs on a LoopThread too).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Generic, TypeVar, cast

import uvloop

TURN_EVERY_S = 0.5
"""How often the thread's loop notes that it turns (`turned_at`)."""

T = TypeVar("T")
R = TypeVar("R")


class LoopThread(Generic[T]):
    """An async context manager: entered, `start` runs on a new thread's event loop with an
    exit stack (entering fails with what `start` raised); left, that stack is closed there, in
    reverse order as always, and the thread ends."""

    def __init__(self, start: Callable[[AsyncExitStack], Awaitable[T]], name: str) -> None:
        self._start = start
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._value: T | None = None
        self._running = False
        """Between `start` returning and its stack starting to close (set on the thread)."""
        self.turned_at = time.monotonic()
        """When the thread's loop last ran its every-`TURN_EVERY_S` callback: a loop stuck in
        a callback (or starved) stops moving it on."""
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def __aenter__(self) -> T:
        started: concurrent.futures.Future[T] = concurrent.futures.Future()
        threading.Thread(target=self._main, args=(started,), name=self._name, daemon=True).start()
        try:
            return await asyncio.wrap_future(started)
        except asyncio.CancelledError:
            # Whoever started it is gone: stop it once it is up, or it would run forever.
            started.add_done_callback(lambda _: self._request_stop())
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._request_stop()
        await asyncio.wrap_future(self._ended)

    def _request_stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    @property
    def running(self) -> bool:
        """Started, and its stack not yet closing."""
        return self._running

    def call(self, fn: Callable[[T], object]) -> None:
        """`fn(value)` on the thread's loop, soon, in the order of calls; nothing before the
        thread has started or after it has stopped."""
        if self._loop is not None and self._running:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._run, fn)

    def _run(self, fn: Callable[[T], object]) -> None:
        if self._running:
            fn(cast(T, self._value))

    def run(self, work: Callable[[T], Coroutine[object, object, R]]) -> asyncio.Future[R]:
        """`work(value)` run on the thread's loop, as a future of the caller's loop (cancelling
        it cancels the work there)."""
        assert self._loop is not None and self._running, "run while the thread is not running"
        coro = work(cast(T, self._value))
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def _turn(self) -> None:
        self.turned_at = time.monotonic()
        if self._running and self._loop is not None:
            self._loop.call_later(TURN_EVERY_S, self._turn)

    def _main(self, started: concurrent.futures.Future[T]) -> None:
        loop = uvloop.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(started))
            loop.run_until_complete(loop.shutdown_default_executor())
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            self._ended.set_exception(exc)
        else:
            self._ended.set_result(None)
        finally:
            loop.close()

    async def _serve(self, started: concurrent.futures.Future[T]) -> None:
        async with AsyncExitStack() as stack:
            self._value = value = await self._start(stack)
            self._stop = asyncio.Event()
            self._running = True
            started.set_result(value)
            self._turn()
            try:
                await self._stop.wait()
            finally:
                self._running = False
