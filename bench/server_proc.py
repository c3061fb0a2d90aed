"""The real server in its own process, for bench/streams.py: `python -m bench.server_proc`.

Runs `server.app.running` on 127.0.0.1 with ephemeral ports against the given Postgres,
prints one JSON line (`http_url`, `media_url`, `pid`) once it listens, and runs until SIGTERM
or SIGINT. The signing key comes from `VOXSOUTH_SIGNALWIRE_SIGNING_KEY` (set by the bench), so
it never shows in a process list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
from pathlib import Path

import uvloop

from server.app import running
from server.log_setup import configure_logging
from server.settings import load_settings


def raise_open_files_limit() -> None:
    """Hundreds of streams need as many sockets: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(args: argparse.Namespace) -> None:
    settings = load_settings(
        database_url=args.dsn,
        data_dir=Path(args.data_dir),
        http_host="127.0.0.1",
        http_port=0,
        media_host="127.0.0.1",
        media_port=0,
        transcription_engine=args.transcription,
        log_level=args.log_level,
        log_format="text",
    )
    configure_logging(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as srv:
        line = {"http_url": srv.http_url, "media_url": srv.media_url, "pid": os.getpid()}
        print(json.dumps(line), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_proc", description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--transcription", choices=("none", "whisper"), default="none")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    try:
        uvloop.run(serve(args))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
