"""Media streams per core on each WebSocket transport, side by side: `python -m bench.transports`.

One run compares the transports the media server could carry its bytes on, each in a server
process of its own pinned to one CPU (one core, one uvloop event loop):

- `websockets`: its asyncio server (`websockets.asyncio.server.serve`, what media/server.py ran
  until 2026-12-08, with its options), the handler iterating over the connection;
- `websockets-sansio`: websockets' sans-I/O `ServerProtocol` driven from a plain
  `asyncio.Protocol` (bytes in through `receive_data`, frames out of `events_received`, its
  answers written with `transport.write`): no reader task, no message queue, no wake-up;
- `picows`: the Cython WebSocket library (with its default I/O layer, aiofastnet), frames
  handed to a `WSListener` callback. media/server.py runs it by default since 2026-12-08 (on
  uvloop's transport, so that handed-over sockets are served alike).

Each transport runs two servers (bench/transport_servers.py), doing the same per-message work
on every transport:

- `floor`: parses each message's JSON with `orjson.loads` (what any JSON media server must do,
  and what our parser starts with) and drops it, so the ratio against it counts our work;
- `ours`: `StreamParser.receive` and `CallSession.on_media` with the real WebRTC VAD and the
  default escalation rules' acoustic detectors, the session built from the stream's `start`
  as bench/frame_path.py builds it (transcription off; events are dropped).

Load comes from generator processes pinned to the other CPUs: per stream `connected`, `start`,
then both tracks of `tests/fixtures/speech/two_party.wav` at 50 frames a second each (100
messages a second, SignalWire's shapes as bench/frame_path.py's `MessageSource` builds them, one
write per message, through bench/loadgen.py's minimal client), streams spread over the 20 ms
period. Each media message carries its send time (`time.monotonic_ns()`) in one extra field,
`benchSentNs`, which the parser ignores; CLOCK_MONOTONIC is one clock for every process on a
machine (checked at each point: the server's reading must fall inside the parent's round trip).
The server reads it after the frame's work, so the delay is send → processed: the kernel, the
transport, any backlog in front of the frame, and the work itself.

Per point it reports frames sent and processed (none may be lost), the delay's p50/p99/max
(20 µs buckets), the server's CPU (cores used over the streaming window, and µs per message),
how long it waited for its CPU while others ran there (its run-queue time from
/proc/self/schedstat: near 0 on a quiet machine; more, and the delays are the machine's), its
resident memory per stream (after all streams minus before any, the histogram and warm-up
already in the baseline; small counts overstate it), and the generator's own lag behind its
20 ms schedule (a late generator offers less than real time, so its point cannot hold).

A point holds when every stream connected, every frame sent was processed, the generator kept
time, and the delay's p99 is at most 20 ms. Counts are run in rising order, every transport and
server at one count before the next count (so machine noise spreads over all of them); a server
that fails a count is not run at larger ones. At the end: a Markdown table, for each transport,
of the most streams that held for `floor` and `ours` and their ratio (the issue's target: ours
≥ 70 % of the floor), with the server CPU per message, which is finer than the sweep's steps.

`--profile DIR` samples the server with py-spy over each point's streaming window (stacks in
DIR, a summary printed per point): where a transport's time goes.

Figures, not a pass/fail test: the machine is shared, so run it on a quiet one. Everything is
on 127.0.0.1. The default sweep (250 500 750 1000 streams, 15 s each) takes up to about 8
minutes; `--quick` under one. Ctrl-C (or SIGTERM) stops it and its processes; a child whose
parent has gone stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import orjson
import uvloop

from bench import pyspy
from bench.frame_path import FIXTURE, MessageSource, opening_messages
from bench.loadgen import SLOTS, WsClient
from bench.server_proc import BenchError, raise_open_files_limit
from bench.transport_servers import (
    HOST,
    KINDS,
    PATH,
    SENT,
    SENT_TEMPLATE,
    TRANSPORTS,
    Kind,
    ServerPlan,
    ServerReport,
    next_message,
    server_main,
)
from server.simulator.audio import read_call_audio

FRAME_NS: Final = 20_000_000
SLOT_NS: Final = FRAME_NS // SLOTS
FRAMES_PER_S: Final = 50
TARGET_P99_MS: Final = 20.0
TARGET_RATIO: Final = 0.70
QUIET_WAIT: Final = 0.02
"""Above this share of a window waiting for its CPU, the server did not have a core alone."""

GO_DELAY_NS: Final = 100_000_000
"""From "go" to the first frame: every generator has the word by then."""
DRAIN_TIMEOUT_S: Final = 10.0
"""After the last send, how long the server may take to process what is still queued."""

DEFAULT_STREAMS: Final = (250, 500, 750, 1000)
DEFAULT_SECONDS: Final = 15.0
QUICK_STREAMS: Final = (25, 100)
QUICK_SECONDS: Final = 3.0

TITLES: Final = {
    "websockets": "websockets, asyncio server (the fallback)",
    "websockets-sansio": "websockets, sans-I/O ServerProtocol in an asyncio.Protocol",
    "picows": "picows (Cython)",
}


# ---------------------------------------------------------------- the generator process


@dataclass(frozen=True, slots=True)
class GeneratorPlan:
    port: int
    first: int
    """Index of its first stream among all generators' (spreads the phases evenly)."""
    streams: int
    frames: int
    """Frames per track per stream."""
    cpus: tuple[int, ...]
    connect_timeout_s: float


@dataclass(frozen=True, slots=True)
class GeneratorReport:
    messages: int
    dropped: int
    """Streams closed by the server before the end."""
    lag_p99_ms: float
    errors: tuple[str, ...]


def check_template(source: MessageSource) -> None:
    """Our media messages are frame_path's, byte for byte, plus the send time at the end."""
    inbound, _ = source.payloads(0)
    ours = SENT_TEMPLATE % (1, "inbound", 1, 0, inbound, 123)
    theirs = source.media(1)[0]
    if not ours.startswith(theirs[:-1]) or int(ours[SENT]) != 123:
        raise RuntimeError("SENT_TEMPLATE no longer matches MessageSource's messages")
    if orjson.loads(ours)["benchSentNs"] != ours[SENT]:
        raise RuntimeError("the send time is not where the servers read it")


async def open_streams(plan: GeneratorPlan) -> tuple[list[WsClient], list[str]]:
    """Connects every stream and sends its `connected` and `start`."""
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(64)  # the server's listen backlog is larger than this
    rtts: array[float] = array("f")  # no pings of ours: the client wants somewhere to put them
    clients: list[WsClient] = []
    errors: list[str] = []

    async def open_one() -> None:
        async with limit:
            try:
                async with asyncio.timeout(plan.connect_timeout_s):
                    _transport, client = await loop.create_connection(
                        lambda: WsClient(f"{HOST}:{plan.port}", PATH, rtts), HOST, plan.port
                    )
                    await client.opened
            except Exception as exc:
                errors.append(f"connect: {type(exc).__name__}: {exc}")
                return
        for text in opening_messages(str(uuid.uuid4()), str(uuid.uuid4())):
            client.send_text(text)
        clients.append(client)

    await asyncio.gather(*(open_one() for _ in range(plan.streams)))
    return clients, errors


async def send_frames(
    plan: GeneratorPlan,
    clients: list[WsClient],
    pairs: Sequence[tuple[str, str]],
    t0: int,
    interrupted: asyncio.Event,
) -> tuple[int, array[int]]:
    """Both tracks of every stream on the shared 20 ms schedule from `t0` (monotonic ns), until
    done or `interrupted`; returns (messages sent, lag in ns of each phase's last send behind
    its due time)."""
    phases: list[list[WsClient]] = [[] for _ in range(SLOTS)]
    for i, client in enumerate(clients):
        phases[(plan.first + i) % SLOTS].append(client)
    due_phases = [(p * SLOT_NS, group) for p, group in enumerate(phases) if group]
    lags: array[int] = array("q")
    template, clock = SENT_TEMPLATE, time.monotonic_ns
    sent = 0
    for k in range(plan.frames):
        if interrupted.is_set():
            break
        inbound, outbound = pairs[k % len(pairs)]
        # Every stream sends alike, so sequence numbers need no per-stream counter: `start`
        # was 1, then inbound and outbound of each frame.
        sequence, chunk, timestamp = 2 + 2 * k, k + 1, k * 20
        for offset, group in due_phases:
            due = t0 + k * FRAME_NS + offset
            delay = due - clock()
            await asyncio.sleep(delay / 1e9 if delay > 0 else 0)
            for client in group:
                if client.alive:
                    send = client.send_text
                    send(template % (sequence, "inbound", chunk, timestamp, inbound, clock()))
                    send(template % (sequence + 1, "outbound", chunk, timestamp, outbound, clock()))
                    sent += 2
            lags.append(clock() - due)
    return sent, lags


async def _generate(plan: GeneratorPlan, conn: Connection) -> None:
    source = MessageSource(read_call_audio(FIXTURE))
    check_template(source)
    pairs = [source.payloads(i) for i in range(source.frames_per_pass)]
    clients, errors = await open_streams(plan)
    conn.send(("ready", len(clients)))
    command, t0 = await next_message(conn)
    if command != "go":
        return
    # Nothing is due from the parent while streaming: anything (the EOF of its exit, if its
    # cleanup was cut short) ends the stream now rather than seconds later.
    interrupted = asyncio.Event()
    loop, fd = asyncio.get_running_loop(), conn.fileno()
    loop.add_reader(fd, interrupted.set)
    try:
        try:
            sent, lags = await send_frames(plan, clients, pairs, t0, interrupted)
        finally:
            loop.remove_reader(fd)
        if interrupted.is_set():
            return
        report = GeneratorReport(
            messages=sent,
            dropped=sum(not c.alive for c in clients),
            lag_p99_ms=float(np.percentile(lags, 99)) / 1e6 if lags else 0.0,
            errors=tuple(errors[:3]),
        )
        conn.send(("sent", report))
        await next_message(conn)  # "close", once the server has drained
    finally:
        for client in clients:
            client.abort()


def generator_main(plan: GeneratorPlan, conn: Connection) -> None:
    """Process entry point: connects, sends ("ready", n), waits for ("go", t0), streams,
    sends ("sent", report), waits for ("close",). Ctrl-C is the parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.sched_setaffinity(0, plan.cpus)
    raise_open_files_limit()
    try:
        uvloop.run(_generate(plan, conn))
    except (EOFError, BrokenPipeError):
        pass  # the parent has gone (its cleanup was cut short): nobody to report to
    except Exception as exc:
        conn.send(("error", f"generator: {type(exc).__name__}: {exc}"))


# ---------------------------------------------------------------- the parent


class Child:
    """A child process and our end of its pipe."""

    def __init__(
        self, ctx: ForkServerContext, name: str, target: Callable[..., None], plan: object
    ):
        self.name = name
        self.conn, theirs = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(target=target, args=(plan, theirs), daemon=True)
        self.process.start()
        theirs.close()

    def send(self, *message: object) -> None:
        self.conn.send(message)

    def expect(self, tag: str, timeout_s: float) -> tuple[Any, ...]:
        """The child's next message, which must be `tag`; its payload."""
        if not self.conn.poll(timeout_s):
            raise BenchError(f"{self.name}: no {tag!r} within {timeout_s:.0f} s")
        try:
            message = self.conn.recv()
        except EOFError:
            self.process.join(1)
            raise BenchError(f"{self.name} exited (code {self.process.exitcode})") from None
        if message[0] == "error":
            raise BenchError(message[1])
        if message[0] != tag:
            raise BenchError(f"{self.name}: expected {tag!r}, got {message[0]!r}")
        return cast(tuple[Any, ...], message[1:])

    def stop(self, grace_s: float = 5.0) -> None:
        """Waits up to `grace_s` for a clean exit, then terminates, then kills."""
        process = self.process
        process.join(grace_s)
        if process.exitcode is None:
            process.terminate()
            process.join(5)
        if process.exitcode is None:
            process.kill()
            process.join(5)
        self.conn.close()
        process.close()


@contextmanager
def children() -> Iterator[list[Child]]:
    """Every child started into the list is stopped however the block ends (Ctrl-C too)."""
    started: list[Child] = []
    grace_s = 0.0  # on an error or Ctrl-C, nothing is worth waiting for
    try:
        yield started
        grace_s = 5.0
    finally:
        for child in reversed(started):  # generators first: their sockets close before the server
            child.stop(grace_s)


@dataclass(frozen=True, slots=True)
class Point:
    transport: str
    kind: Kind
    streams: int
    seconds: float
    connected: int
    sent: int
    dropped: int
    lag_p99_ms: float
    server: ServerReport
    errors: tuple[str, ...] = ()
    profile: tuple[str, ...] = ()

    @property
    def lost(self) -> int:
        return self.sent - self.server.frames

    @property
    def problems(self) -> list[str]:
        out = []
        if self.connected < self.streams:
            out.append(f"{self.streams - self.connected} not connected")
        if self.dropped:
            out.append(f"{self.dropped} dropped")
        if self.lost:
            out.append(f"{self.lost} lost")
        if self.server.errors:
            out.append(f"{self.server.errors} errors")
        if self.lag_p99_ms > TARGET_P99_MS:
            out.append("generator late")
        if self.server.p99_ms > TARGET_P99_MS:
            out.append("p99 > 20 ms")
        return out

    @property
    def holds(self) -> bool:
        return not self.problems

    @property
    def cpu_us_per_message(self) -> float:
        return self.server.cpu_s / self.sent * 1e6 if self.sent else float("nan")

    @property
    def cores(self) -> float:
        return self.server.cpu_s / self.server.wall_s if self.server.wall_s else float("nan")

    @property
    def cpu_wait(self) -> float:
        """Share of the window the server waited for its CPU (others ran there)."""
        return self.server.wait_s / self.server.wall_s if self.server.wall_s else float("nan")

    @property
    def kib_per_stream(self) -> float:
        grown = self.server.rss - self.server.rss_base
        return grown / 1024 / self.connected if self.connected else float("nan")


def check_clock(server: Child) -> None:
    """The send times mean something only on one clock: the server's reading of
    CLOCK_MONOTONIC must fall between two of ours around it."""
    before = time.monotonic_ns()
    server.send("clock")
    (theirs,) = server.expect("clock", 10)
    after = time.monotonic_ns()
    if not before <= theirs <= after:
        raise BenchError("the server's monotonic clock is not ours: delays cannot be measured")


@dataclass(frozen=True, slots=True)
class Cpus:
    server: int
    generators: tuple[int, ...]

    @classmethod
    def pick(cls, server: int | None = None) -> Cpus:
        """The server on one CPU (by default the last), the generators on all the others."""
        allowed = sorted(os.sched_getaffinity(0))
        chosen = allowed[-1] if server is None else server
        if chosen not in allowed:
            raise BenchError(f"CPU {chosen} is not one this process may use ({allowed})")
        rest = tuple(c for c in allowed if c != chosen) or (chosen,)  # one CPU: shared
        return cls(chosen, rest)


@dataclass(frozen=True, slots=True)
class RunSettings:
    seconds: float
    cpus: Cpus
    generators: int = 1
    profile: Path | None = None
    """py-spy the server over each point's streaming window, stacks in this folder."""


@contextmanager
def profiling(settings: RunSettings, pid: int, label: str) -> Iterator[list[str]]:
    """py-spy on the server from now for the streaming time (with `settings.profile`); the
    yielded list gets the summary lines once the block ends without an error."""
    lines: list[str] = []
    if settings.profile is None:
        yield lines
        return
    path = settings.profile / f"{label}.txt"
    recorder = pyspy.record(pid, settings.seconds, path)
    if recorder is None:
        yield ["(py-spy not found: no profile)"]
        return
    try:
        yield lines
        recorder.wait(timeout=30)
        lines += [f"py-spy of the server, {path}:", *pyspy.summarize(path)]
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()


def run_point(
    ctx: ForkServerContext, settings: RunSettings, transport: str, kind: Kind, streams: int
) -> Point:
    seconds, cpus, generators = settings.seconds, settings.cpus, settings.generators
    frames = max(1, round(seconds * FRAMES_PER_S))
    connect_timeout_s = 30 + streams / 50
    with children() as started:
        server = Child(ctx, "server", server_main, ServerPlan(transport, kind, cpus.server))
        started.append(server)
        (port,) = server.expect("listening", 60)
        check_clock(server)
        shares = [streams // generators + (i < streams % generators) for i in range(generators)]
        gens: list[Child] = []
        for i, share in enumerate(s for s in shares if s):
            plan = GeneratorPlan(
                port, sum(shares[:i]), share, frames, cpus.generators, connect_timeout_s
            )
            gens.append(Child(ctx, f"generator {i}", generator_main, plan))
            started.append(gens[-1])
        connected = sum(g.expect("ready", connect_timeout_s + 30)[0] for g in gens)
        server.send("begin")
        server.expect("begun", 10)
        assert server.process.pid is not None
        with profiling(settings, server.process.pid, f"{transport}-{kind}-{streams}") as profile:
            t0 = time.monotonic_ns() + GO_DELAY_NS
            for g in gens:
                g.send("go", t0)
            reports: list[GeneratorReport] = [g.expect("sent", seconds * 3 + 30)[0] for g in gens]
            sent = sum(r.messages for r in reports)
            server.send("drain", sent, DRAIN_TIMEOUT_S)
            (report,) = server.expect("drained", DRAIN_TIMEOUT_S + 30)
        for g in gens:
            g.send("close")
        for g in gens:
            g.stop()
            started.remove(g)
        server.send("exit")
    return Point(
        transport=transport,
        kind=kind,
        streams=streams,
        seconds=seconds,
        connected=connected,
        sent=sent,
        dropped=sum(r.dropped for r in reports),
        lag_p99_ms=max(r.lag_p99_ms for r in reports),
        server=report,
        errors=tuple(e for r in reports for e in r.errors),
        profile=tuple(profile),
    )


def forkserver() -> ForkServerContext:
    """Children fork from a server that imported the heavy modules once (numpy, media/, the
    servers, websockets): starting one then costs milliseconds, and none inherits the parent's
    state. Not this module itself: a child run from `python -m bench.transports` re-runs its
    main module, which runpy warns about when that module was imported first."""
    ctx = multiprocessing.get_context("forkserver")
    preload = ["bench.transport_servers", "bench.loadgen"]
    ctx.set_forkserver_preload([*preload, "picows"])
    return ctx


def sweep(
    transports: Sequence[str],
    kinds: Sequence[Kind],
    counts: Sequence[int],
    seconds: float,
    *,
    cpus: Cpus | None = None,
    generators: int = 1,
    profile: Path | None = None,
    on_point: Callable[[Point], None] = lambda _point: None,
) -> list[Point]:
    """Every transport and server at each count, counts rising; a server that fails a count
    is not run at larger ones."""
    ctx = forkserver()
    settings = RunSettings(seconds, cpus or Cpus.pick(), generators, profile)
    failed: set[tuple[str, Kind]] = set()
    points: list[Point] = []
    for streams in sorted(set(counts)):
        for transport in transports:
            for kind in kinds:
                if (transport, kind) in failed:
                    continue
                point = run_point(ctx, settings, transport, kind, streams)
                points.append(point)
                on_point(point)
                if not point.holds:
                    failed.add((transport, kind))
    return points


# ---------------------------------------------------------------- report


def ms(value: float) -> str:
    return "> 2000" if value == float("inf") else f"{value:.2f}"


DETAIL_HEADER: Final = (
    "| transport | server | streams | frames sent | processed | delay p50 ms | p99 ms | max ms "
    "| server CPU (cores) | CPU µs/msg | waited for CPU | RSS KiB/stream | generator lag p99 ms "
    "| holds |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def detail_row(p: Point) -> str:
    verdict = "yes" if p.holds else "no: " + ", ".join(p.problems)
    return (
        f"| {p.transport} | {p.kind} | {p.streams} | {p.sent} | {p.server.frames} "
        f"| {ms(p.server.p50_ms)} | {ms(p.server.p99_ms)} | {ms(p.server.max_ms)} "
        f"| {p.cores:.2f} | {p.cpu_us_per_message:.1f} | {p.cpu_wait:.0%} | {p.kib_per_stream:.0f} "
        f"| {p.lag_p99_ms:.2f} | {verdict} |"
    )


def most_held(points: Sequence[Point], transport: str, kind: Kind) -> Point | None:
    held = [p for p in points if p.transport == transport and p.kind == kind and p.holds]
    return max(held, key=lambda p: p.streams) if held else None


def summary_table(points: Sequence[Point], transports: Sequence[str]) -> str:
    """Per transport: the most streams held by each server, their ratio, and the server CPU per
    message at those points (a `+`: held at the largest count tried, so its capacity may be
    larger and the ratio is only bounded)."""
    top = max((p.streams for p in points), default=0)
    lines = [
        "| transport | floor: streams held | ours: streams held | ours / floor "
        "| CPU µs/msg, floor | CPU µs/msg, ours |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for transport in transports:
        floor, ours = most_held(points, transport, "floor"), most_held(points, transport, "ours")

        def held(p: Point | None) -> str:
            return "none" if p is None else f"{p.streams}{'+' if p.streams == top else ''}"

        def cpu(p: Point | None) -> str:
            return "–" if p is None else f"{p.cpu_us_per_message:.1f}"

        if floor is None or ours is None:
            ratio = "–"
        elif floor.streams == top and ours.streams == top:
            ratio = "? (both held every count)"
        else:
            # A `+` count is a lower bound on that server's capacity, so the ratio is bounded.
            bound = "≤ " if floor.streams == top else "≥ " if ours.streams == top else ""
            ratio = f"{bound}{ours.streams / floor.streams:.0%}"
        lines.append(
            f"| {TITLES[transport]} | {held(floor)} | {held(ours)} | {ratio} "
            f"| {cpu(floor)} | {cpu(ours)} |"
        )
    return "\n".join(lines)


def print_point(p: Point) -> None:
    verdict = "holds" if p.holds else "fails: " + ", ".join(p.problems)
    print(
        f"  {p.transport:<18} {p.kind:<5} {p.streams:>5} streams: {p.server.frames}/{p.sent} "
        f"frames, delay p50 {ms(p.server.p50_ms)} p99 {ms(p.server.p99_ms)} ms, "
        f"{p.cores:.2f} cores ({p.cpu_wait:.0%} waited), {p.cpu_us_per_message:.1f} µs/msg, "
        f"{p.kib_per_stream:.0f} KiB/stream, generator lag p99 {p.lag_p99_ms:.1f} ms: {verdict}",
        flush=True,
    )
    for line in (*p.errors, *p.profile):
        print(f"    {line}", flush=True)


def _terminated(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C: every child is stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--streams", type=int, nargs="+", help="concurrent streams to try")
    parser.add_argument("--seconds", type=float, help="streaming time per point")
    parser.add_argument("--quick", action="store_true", help="a small sweep, under a minute")
    parser.add_argument("--transports", nargs="+", choices=tuple(TRANSPORTS), help="default: all")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--server-cpu", type=int, help="the server's CPU (default: the last)")
    parser.add_argument("--generators", type=int, default=1, help="generator processes")
    parser.add_argument(
        "--profile", metavar="DIR", type=Path, help="py-spy the server per point: stacks in DIR"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    counts = args.streams or (QUICK_STREAMS if args.quick else DEFAULT_STREAMS)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if min(counts) < 1 or seconds <= 0 or args.generators < 1:
        parser.error("--streams, --seconds and --generators must be positive")
    transports = args.transports or tuple(TRANSPORTS)
    try:
        cpus = Cpus.pick(args.server_cpu)
        print(
            f"transports: server on CPU {cpus.server}, generators on {list(cpus.generators)}; "
            f"{seconds:g} s per point, streams {sorted(set(counts))}",
            flush=True,
        )
        points = sweep(
            transports,
            args.kinds,
            counts,
            seconds,
            cpus=cpus,
            generators=args.generators,
            profile=args.profile,
            on_point=print_point,
        )
    except KeyboardInterrupt:
        print("\nbench.transports: interrupted", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench.transports: {exc}", file=sys.stderr)
        return 1
    print(f"\n{DETAIL_HEADER}")
    for p in points:
        print(detail_row(p))
    print(
        f"\nStreams per core (one uvloop event loop, both tracks at 50 frames/s, p99 send → "
        f"processed ≤ {TARGET_P99_MS:.0f} ms, none lost; target ours ≥ {TARGET_RATIO:.0%} "
        f"of floor; {seconds:g} s per point):\n"
    )
    print(summary_table(points, transports))
    print(
        "\n`+`: held at the largest count tried (its capacity may be larger). CPU µs/msg: the "
        "server's CPU over the window per message, at the largest count held."
    )
    if (waited := max((p.cpu_wait for p in points), default=0.0)) > QUIET_WAIT:
        print(
            f"\nNote: the server waited for its CPU up to {waited:.0%} of a window (others ran "
            "there): the machine was not quiet, and delays are partly the machine's."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
