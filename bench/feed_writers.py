"""Feed rows per second from several writer processes, by design: `python -m bench.feed_writers`.

Issue 18: under migration 0009 every transaction that writes a feed row takes one advisory lock
at commit, so every node's feeding commits pass one at a time. This measures that design and
the ones meant to replace it, in one run, against an embedded Postgres in a temporary folder
(removed at the end; nothing but its unix socket). Each design gets a database of its own:

- `today`: migrations before the sequencer, so 0009's commit-time lock (and NOTIFY) is in place.
- `sequencer`: every migration (0038): writers only insert; the feed sequencer
  (control/feed_sequencer.py) positions committed rows in batches, polling every 20 ms. It
  runs in every writer process, as in every server process; one leads.
- `sequencer, notify-woken`: the same, but each writing transaction also sends a NOTIFY, and
  that wakes the sequencer instead of the poll (NOTIFY takes a lock held through commit too).
- `xid reader` (not built, measured here only): 0009's trigger dropped, each row stamped with
  its writer's transaction id (`pg_current_xact_id()`), and the reader polls every 20 ms for
  rows whose transaction id is below its snapshot's xmin, in (xid, id) order, as Postgres
  event stores do. Its positions are pairs, not integers.

For each count of writer processes (1, 2 and 4 by default), each design in turn (so that what
else the machine does weighs on all alike), `--rounds` times over: the writers
(bench/feed_writer.py: separate OS processes, `--connections` connections each) write
transactions of 1, 2 or 3 feed rows for `--seconds`, as the media plane does. A reader in this
process reads the rows in order as the feed hub does (the real `control.feed.FeedHub`:
LISTEN, then read the announced rows by position; the xid reader polls) and checks each is
delivered once, positions only grow, and each connection's rows come in the order it committed
them. Printed per point: rows committed per second; rows delivered per second (all rows
delivered over the time from the start to the last delivery); the delay from a row's commit
(as its writer saw it return) to its delivery, p50 and p95; CPU time per 1000 rows in the
writer processes and in Postgres; and how busy the machine's CPUs were (anyone's work: on a
shared machine, not only ours). Then each point's median round (by rows delivered), and the
ratio to today's at the most writers (the issue's target: >= 5x with 4 writers). A design
bound by its lock leaves CPU idle; one bound by the CPU shows it busy. About two and a half
minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.server_proc import ROOT, BenchError, run_bench
from control.feed import FeedHub
from storage import calls
from storage.db import create_pool
from storage.embedded import start_embedded
from storage.migrate import available, migrate

# psutil ships no type information (and types-psutil is not a dev dependency): used as Any.
psutil: Any = importlib.import_module("psutil")

XID_POLL_S = 0.02
DELIVERY_TIMEOUT_S = 60.0
WARM_UP_S = 1.0
RESULT_LINE_MAX = 64 * 2**20
"""A writer's result is one JSON line: every row's commit time."""
_XID_SCHEMA = """
DROP TRIGGER feed_events_publish ON feed_events;
ALTER TABLE feed_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX feed_events_xid_idx ON feed_events (xid, id);
"""
_XID_READ = """
SELECT f.xid::text AS xid_text, f.id, f.payload FROM feed_events f
WHERE f.xid < pg_snapshot_xmin(pg_current_snapshot()) AND (f.xid, f.id) > ($1::text::xid8, $2)
ORDER BY f.xid, f.id LIMIT 1000"""


@dataclass(frozen=True, slots=True)
class Design:
    key: str
    label: str
    wake: str  # the writers' sequencer: none, poll or notify
    up_to: int | None = None  # migrations
    extra_sql: str = ""


def designs() -> list[Design]:
    [sequencer] = [m.version for m in available() if m.name == "feed_sequencer"]
    today = sequencer - 1
    return [
        Design("today", "today (0009: lock at commit)", "none", up_to=today),
        Design("sequencer", "sequencer, polled (0038)", "poll"),
        Design("notify", "sequencer, notify-woken", "notify"),
        Design("xid", "xid reader (not built)", "none", up_to=today, extra_sql=_XID_SCHEMA),
    ]


@dataclass
class Deliveries:
    """What the reader got: each row's delivery time, and any breach of order."""

    expected: int | None = None
    at: dict[tuple[str, int], float] = field(default_factory=dict)
    last_n: dict[str, int] = field(default_factory=dict)
    last_position: Any = None
    faults: list[str] = field(default_factory=list)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def got(self, position: Any, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        key = (str(payload["k"]), int(payload["n"]))
        if key in self.at:
            self.faults.append(f"row {key} delivered twice")
        if self.last_position is not None and position <= self.last_position:
            self.faults.append(f"position {position} after {self.last_position}")
        if key[1] <= self.last_n.get(key[0], -1):
            self.faults.append(f"connection {key[0]}: row {key[1]} after a later one")
        self.at[key], self.last_n[key[0]], self.last_position = now, key[1], position
        self.check()

    def check(self) -> None:
        if self.expected is not None and len(self.at) >= self.expected:
            self.complete.set()


@dataclass(frozen=True, slots=True)
class Point:
    design: Design
    writers: int
    committed_per_s: float
    delivered_per_s: float
    p50_ms: float
    p95_ms: float
    client_cpu_ms: float  # per 1000 rows committed, in the writer processes
    postgres_cpu_ms: float  # the same, in every Postgres process, while the writers wrote
    busy_pct: float  # of all the machine's CPUs, while the writers wrote (anyone's work)
    faults: list[str]


@asynccontextmanager
async def reading(design: Design, dsn: str, into: Deliveries) -> AsyncIterator[None]:
    pool = await create_pool(dsn, max_size=2)
    try:
        if design.key == "xid":
            task = asyncio.create_task(read_by_xid(pool, into))
            try:
                yield
            finally:
                task.cancel()
                [outcome] = await asyncio.gather(task, return_exceptions=True)
                if not isinstance(outcome, asyncio.CancelledError):
                    raise BenchError(f"the xid reader failed: {outcome!r}")
        else:
            hub = FeedHub(pool, dsn, observer=lambda e: into.got(e["id"], e["data"]))
            async with hub:
                async with asyncio.timeout(10):
                    await hub.listening.wait()
                yield
    finally:
        await pool.close()


async def read_by_xid(pool: asyncpg.Pool, into: Deliveries) -> None:
    after: tuple[str, int] = ("0", 0)
    while True:
        rows = await pool.fetch(_XID_READ, *after)
        for r in rows:
            into.got((int(r["xid_text"]), r["id"]), json.loads(r["payload"]))
        if rows:
            after = (rows[-1]["xid_text"], rows[-1]["id"])
        if len(rows) < 1000:
            await asyncio.sleep(XID_POLL_S)  # this design's reader polls


class Writer:
    """One writer process, and what it said on its stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, leading: asyncio.Event) -> None:
        self.proc = proc
        self.leading = leading
        """Set when this writer's sequencer (or another's: the event is shared) leads."""
        self.ready = asyncio.Event()
        self.result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.lines = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for raw in self.proc.stdout:
                line = raw.decode().strip()
                if line == "ready":
                    self.ready.set()
                elif line == "leading":
                    self.leading.set()
                elif line.startswith("{"):
                    self.result.set_result(json.loads(line))
        finally:  # whatever ended the reading, no one waits for a result that cannot come
            if not self.result.done():
                self.result.set_exception(BenchError(f"writer {self.proc.pid} sent no result"))

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())

    async def finish(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            async with asyncio.timeout(15):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await self.lines


def postgres_cpu_s(postmaster: Any) -> float:
    """CPU time of every Postgres process now running (backends, the WAL writer, ...); NaN for
    a Postgres not on this machine (None)."""
    if postmaster is None:
        return float("nan")
    total = 0.0
    for child in postmaster.children():
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue  # gone meanwhile
        total += times.user + times.system
    return total


@dataclass(frozen=True, slots=True)
class Target:
    """A design's database, migrated, and the org its writers write for."""

    design: Design
    database: str
    dsn: str
    org_id: uuid.UUID


async def run_point(
    target: Target, writers: int, seconds: float, connections: int, postmaster: Any
) -> Point:
    design, dsn, org_id = target.design, target.dsn, target.org_id
    owner = await asyncpg.connect(dsn)
    try:
        await owner.execute("TRUNCATE feed_events")
    finally:
        await owner.close()
    leading = asyncio.Event()
    into = Deliveries()
    env = {**os.environ, "VOXSOUTH_BENCH_DSN": dsn, "VOXSOUTH_BENCH_ORG": str(org_id)}
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(reading(design, dsn, into))
        procs: list[Writer] = []
        for index in range(writers):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.feed_writer", "--index", str(index),
                "--seconds", str(seconds), "--connections", str(connections),
                "--wake", design.wake, cwd=ROOT, env=env, limit=RESULT_LINE_MAX,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            procs.append(Writer(proc, leading))
            stack.push_async_callback(procs[-1].finish)
        async with asyncio.timeout(30):
            for w in procs:
                await w.ready.wait()
            if design.wake != "none":
                await leading.wait()
        pg_cpu, machine = postgres_cpu_s(postmaster), psutil.cpu_times()
        began = time.monotonic()
        for w in procs:
            w.send("go\n")
        committed: dict[tuple[str, int], float] = {}
        client_cpu = 0.0
        for w in procs:
            async with asyncio.timeout(seconds + 30):
                result = await w.result
            client_cpu += result["cpu_s"]
            for name, times in result["committed"].items():
                committed.update(((name, n), t) for n, t in enumerate(times))
        pg_cpu = postgres_cpu_s(postmaster) - pg_cpu
        busy = busy_pct(machine, psutil.cpu_times())
        into.expected = len(committed)
        into.check()
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                await into.complete.wait()
        except TimeoutError:
            missing = len(committed) - len(into.at)
            into.faults.append(f"{missing} rows not delivered in {DELIVERY_TIMEOUT_S:.0f} s")
    delays = [(into.at[k] - t) * 1000 for k, t in committed.items() if k in into.at]
    last = max(into.at.values(), default=began)
    return Point(
        design, writers,
        committed_per_s=len(committed) / seconds,
        delivered_per_s=len(into.at) / max(last - began, 1e-9),
        p50_ms=percentile(delays, 50), p95_ms=percentile(delays, 95),
        client_cpu_ms=client_cpu / len(committed) * 1e6 if committed else float("nan"),
        postgres_cpu_ms=pg_cpu / len(committed) * 1e6 if committed else float("nan"),
        busy_pct=busy, faults=into.faults,
    )  # fmt: skip


def busy_pct(before: Any, after: Any) -> float:
    """How much of the machine's CPU time was spent working between two `psutil.cpu_times()`."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (after.iowait - before.iowait)
    return 100 * (total - idle) / total if total > 0 else float("nan")


def percentile(values: Sequence[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


async def prepare(admin_dsn: str, design: Design, commit_delay_ms: float = 0) -> Target:
    """A database of its own for `design`, migrated, with an org; with `commit_delay_ms`, every
    commit there waits that long before its WAL flush (Postgres's `commit_delay`, for every
    commit: `commit_siblings` 0), as if the disk or a synchronous standby were that slow."""
    name = f"feed_{design.key}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        if commit_delay_ms:
            delay_us = int(commit_delay_ms * 1000)
            await admin.execute(f"ALTER DATABASE {name} SET commit_delay = {delay_us}")
            await admin.execute(f"ALTER DATABASE {name} SET commit_siblings = 0")
    finally:
        await admin.close()
    head, sep, query = admin_dsn.partition("?")
    dsn = f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, up_to=design.up_to)
        if design.extra_sql:
            await conn.execute(design.extra_sql)
        org_id = await calls.create_org(conn, f"Feed bench ({design.key})")
    finally:
        await conn.close()
    return Target(design, name, dsn, org_id)


def table(points: Sequence[Point]) -> Iterator[str]:
    yield (
        f"{'design':<30} {'writers':>7} {'committed/s':>12} {'delivered/s':>12} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'CPU ms/1k rows':>18} {'busy':>5}  checks"
    )
    for p in points:
        checks = "ok" if not p.faults else f"FAILED: {p.faults[0]} (+{len(p.faults) - 1})"
        yield (
            f"{p.design.label:<30} {p.writers:>7} {p.committed_per_s:>12,.0f} "
            f"{p.delivered_per_s:>12,.0f} {p.p50_ms:>8.1f} {p.p95_ms:>8.1f} "
            f"{p.client_cpu_ms:>6.0f} + {p.postgres_cpu_ms:>4.0f} in pg "
            f"{p.busy_pct:>4.0f}%  {checks}"
        )


async def amain(args: argparse.Namespace, tmp: Path) -> int:
    chosen = [d for d in designs() if d.key in args.designs]
    load = os.getloadavg()[0]
    print(
        f"bench.feed_writers: {os.cpu_count()} CPUs, load average {load:.2f}, "
        f"{args.seconds:g} s per point, {args.connections} connection(s) per writer process, "
        f"{args.rounds} round(s), commit delay {args.commit_delay_ms:g} ms"
    )
    admin_dsn = await start_embedded(tmp / "postgres")
    postmaster = psutil.Process(int((tmp / "postgres" / "postmaster.pid").read_text().split()[0]))
    targets = [await prepare(admin_dsn, d, args.commit_delay_ms) for d in chosen]
    for target in targets:  # caches, the first connections: not measured
        await run_point(target, 1, WARM_UP_S, args.connections, postmaster)
    rounds: dict[tuple[Design, int], list[Point]] = {}
    # Designs take turns at each count of writers, round after round, so that what else the
    # machine is doing meanwhile weighs on all of them alike; each point's median round counts.
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_} of {args.rounds}", flush=True)
        for writers in args.writers:
            for target in targets:
                point = await run_point(target, writers, args.seconds, args.connections, postmaster)
                print("  " + list(table([point]))[-1].strip(), flush=True)
                rounds.setdefault((target.design, writers), []).append(point)
    points = [median(found) for found in rounds.values()]
    print(f"\nmedian of {args.rounds} round(s), by rows delivered per second:")
    for line in table(sorted(points, key=lambda p: chosen.index(p.design))):
        print(line)
    faults = [f for found in rounds.values() for p in found for f in p.faults]
    summarize(points, max(args.writers))
    return 1 if faults else 0


def median(points: Sequence[Point]) -> Point:
    return sorted(points, key=lambda p: p.delivered_per_s)[(len(points) - 1) // 2]


def summarize(points: Sequence[Point], most: int) -> None:
    def rate(key: str) -> float | None:
        found = [p.delivered_per_s for p in points if p.design.key == key and p.writers == most]
        return found[0] if found else None

    base = rate("today")
    for key in ("sequencer", "notify", "xid"):
        new = rate(key)
        if base and new:
            print(f"{most} writers, rows delivered per second, {key} / today: {new / base:.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.feed_writers", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=3.0, help="writing time per point")
    parser.add_argument("--rounds", type=int, default=3, help="each point's median counts")
    parser.add_argument(
        "--commit-delay-ms", type=float, default=0.0,
        help="make every commit's WAL flush this much slower (Postgres's commit_delay), as on a "
        "slower disk or with a synchronous standby (default 0: this machine as it is)",
    )  # fmt: skip
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--connections", type=int, default=2, help="per writer process")
    parser.add_argument(
        "--designs", nargs="+", default=[d.key for d in designs()],
        choices=[d.key for d in designs()],
    )  # fmt: skip
    args = parser.parse_args(argv)
    return run_bench("feed_writers", lambda tmp: amain(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
