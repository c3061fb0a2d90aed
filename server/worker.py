"""One worker process of `voxsouth serve --workers N`: started by server.workers, not by hand.

It runs the whole server (`server.app.running`) on the HTTP listening socket its parent bound
and the media connections its parent accepts and passes on `--media-handoff-fd` (descriptors
are its arguments), against the database its parent resolved and migrated (the DSN
comes as `VOXSOUTH_DATABASE_URL`, out of the process list), journaling into the folder its
parent gave it. A socket shared with the parent (`--control-fd`) carries one line, `ready`, once
the worker listens; the parent never writes on it, so its end means the parent is gone: a
parent killed outright (SIGKILL) takes its workers with it instead of leaving them serving on
the inherited sockets with no supervisor. SIGTERM or SIGINT drains and exits, as `serve` does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

from server.app import Listeners, WorkerPlace, running
from server.log_setup import configure_logging
from server.loop_thread import LoopThread
from server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("server.worker")  # not "__main__": it runs as `python -m`

READY = b"ready\n"
"""What a worker says on its control socket once it listens."""
ALIVE = b"alive\n"
"""What it says there every ALIVE_EVERY_S after that, from its event loop, while its media
plane's loop turns too: a worker whose loops hang falls silent, and its parent replaces it
(server.workers)."""
ALIVE_EVERY_S = 1.0
MEDIA_STUCK_S = 3.0
"""The media plane's loop not turning for this long counts as a hang (`_heartbeat`)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.worker", description=__doc__)
    parser.add_argument("--http-fd", type=int, required=True)
    parser.add_argument("--media-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--media-handoff-fd", type=int, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:  # the parent checked the same environment: unlikely
        for line in str(exc).splitlines():
            print(f"voxsouth worker: invalid setting: {line}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    listeners = Listeners(
        http=socket.socket(fileno=args.http_fd), media=socket.socket(fileno=args.media_fd)
    )
    place = WorkerPlace(listeners, args.journal, socket.socket(fileno=args.media_handoff_fd))
    return uvloop.run(_serve(settings, place, socket.socket(fileno=args.control_fd)))


async def _serve(settings: Settings, place: WorkerPlace, control: socket.socket) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reader, writer = await asyncio.open_unix_connection(sock=control)
    watch = asyncio.create_task(_parent_gone(reader, stop.set), name="parent-watch")
    beat: asyncio.Task[None] | None = None
    try:
        async with running(settings, place) as srv:
            writer.write(READY)
            await writer.drain()
            # Kept up while draining on the way out, too: a drain that hangs is a hang.
            beat = asyncio.create_task(_heartbeat(writer, srv.media), name="heartbeat")
            await stop.wait()
            stop.clear()  # set again by a second signal, or when the parent is gone
            await srv.stop_gracefully(stop)
    finally:
        if beat is not None:
            beat.cancel()
        watch.cancel()
        writer.close()
    return 0


async def _heartbeat(control: asyncio.StreamWriter, media: LoopThread[Any]) -> None:
    """ALIVE every ALIVE_EVERY_S while this loop and the media plane's (server.loop_thread)
    both turn: with either stuck, the calls routed here go unheard."""
    while True:
        await asyncio.sleep(ALIVE_EVERY_S)
        if media.running and time.monotonic() - media.turned_at > MEDIA_STUCK_S:
            continue
        control.write(ALIVE)
        await control.drain()


async def _parent_gone(control: asyncio.StreamReader, then: Callable[[], None]) -> None:
    await control.read()  # the parent writes nothing: this returns when its end closes
    log.warning("the parent process is gone: stopping")
    then()


if __name__ == "__main__":
    sys.exit(main())
