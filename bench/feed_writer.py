"""One writer process of `python -m bench.feed_writers`, which starts it; not run by hand.

Its database comes in `VOXSOUTH_BENCH_DSN` and its org in `VOXSOUTH_BENCH_ORG`. It opens
`--connections` connections, prints `ready`, and waits for `go` on stdin. Then each connection
writes small transactions for `--seconds`, as the media plane's event writer does (the tenant
entered, then the feed rows in one statement), of 1, 2 or 3 feed rows in turn, each row's
payload naming its connection and its number there. It prints one JSON line, every
connection's row commit times (`time.monotonic()`, which all processes of a machine share),
and waits for stdin to close before it exits.

With `--wake poll` or `--wake notify` it also runs the feed sequencer, as every server process
does, and prints `leading` when it leads. `notify`: each transaction also sends a NOTIFY, and
the sequencer is woken by it rather than by polling (to measure what that NOTIFY costs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import uvloop

from control.feed_sequencer import FeedSequencer
from storage import feed
from storage.tenancy import enter_tenant

WRITTEN_CHANNEL = "voxsouth_bench_feed_written"
TEXT = "and I'd like to speak to someone about the charge on my last bill, please"
"""A final transcript segment's worth of words."""
NOTIFY_WAKE_POLL_S = 1.0
"""With `--wake notify`, the sequencer's poll is only a fallback."""


async def write(
    conn: asyncpg.Connection, org_id: uuid.UUID, name: str, until: float, notify: bool
) -> list[float]:
    """Writes until `until`; returns each row's commit time, by its number."""
    committed: list[float] = []
    size = 0
    while time.monotonic() < until:
        size = size % 3 + 1
        first = len(committed)
        rows = [
            (None, "transcript", {"k": name, "n": first + i, "text": TEXT}, uuid.uuid4())
            for i in range(size)
        ]
        async with conn.transaction():
            await enter_tenant(conn, org_id)
            await feed.append_many(conn, org_id, rows)
            if notify:
                await conn.execute("SELECT pg_notify($1, '')", WRITTEN_CHANNEL)
        committed.extend([time.monotonic()] * size)
    return committed


@asynccontextmanager
async def sequencing(dsn: str, wake: str) -> AsyncIterator[FeedSequencer | None]:
    if wake == "none":
        yield None
        return
    every_s = NOTIFY_WAKE_POLL_S if wake == "notify" else None
    async with AsyncExitStack() as stack:
        sequencer = FeedSequencer(dsn) if every_s is None else FeedSequencer(dsn, every_s=every_s)
        await stack.enter_async_context(sequencer)
        if wake == "notify":
            listener = await asyncpg.connect(dsn)
            stack.push_async_callback(listener.close)
            await listener.add_listener(WRITTEN_CHANNEL, lambda *_: sequencer.poke())
        yield sequencer


async def run(args: argparse.Namespace) -> None:
    dsn, org_id = os.environ["VOXSOUTH_BENCH_DSN"], uuid.UUID(os.environ["VOXSOUTH_BENCH_ORG"])
    conns = [await asyncpg.connect(dsn) for _ in range(args.connections)]
    async with sequencing(dsn, args.wake) as sequencer:
        if sequencer is not None:
            announce = asyncio.create_task(say_when_leading(sequencer))
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            return
        cpu = time.process_time()
        until = time.monotonic() + args.seconds
        names = [f"{args.index}.{c}" for c in range(len(conns))]
        times = await asyncio.gather(
            *(write(conn, org_id, name, until, args.wake == "notify")
              for conn, name in zip(conns, names, strict=True))
        )  # fmt: skip
        result: dict[str, Any] = {
            "committed": dict(zip(names, times, strict=True)),
            "cpu_s": time.process_time() - cpu,
        }
        print(json.dumps(result), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the bench has everything delivered
        if sequencer is not None:
            announce.cancel()
    for conn in conns:
        await conn.close()


async def say_when_leading(sequencer: FeedSequencer) -> None:
    await sequencer.leading.wait()
    print("leading", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.feed_writer", description=__doc__)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--wake", choices=("none", "poll", "notify"), required=True)
    uvloop.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
