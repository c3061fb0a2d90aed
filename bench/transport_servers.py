"""The servers under test in bench.transports, each in a process of its own.

Two servers (what is done per message) times three transports (what carries the bytes), all on
uvloop, the per-message work the same on every transport:

- `FloorStream` parses each message's JSON with `orjson.loads` and drops it;
- `OurStream` runs `StreamParser.receive` and `CallSession.on_media` (the session built from the
  stream's `start` as bench/frame_path.py builds it: WebRTC VAD, the default rules' acoustic
  detectors, transcription off; its events are dropped).

Both read each media message's send time (`benchSentNs`, the last field, fixed width) after the
work, into one histogram of send → processed delay per server (`Meter`). The process
(`server_main`) pins itself to its CPU, reports its port, and answers the parent's commands
over a pipe: "clock" (its CLOCK_MONOTONIC), "begin" (the window opens), "drain" (wait until
the frames sent have been processed, or a timeout; then the report), "exit".
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final, Literal, Protocol, TypeAlias, cast

import numpy as np
import orjson
import picows
import uvloop
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from bench.frame_path import FIXTURE, MessageSource, new_session, open_session
from bench.loadgen import MEDIA_TEMPLATE
from bench.server_proc import raise_open_files_limit
from media.protocol import Media, Start, StreamParser
from media.session import CallSession
from server.simulator.audio import read_call_audio

HOST: Final = "127.0.0.1"
PATH: Final = "/media"
MAX_MESSAGE_BYTES: Final = 64 * 1024  # MediaServerConfig's default

# The send time rides at the end of each media message, fixed width, so every server reads it
# with one slice: a JSON string (a number may not have leading zeros), which the parser ignores.
SENT_TEMPLATE: Final = MEDIA_TEMPLATE[:-1] + ', "benchSentNs": "%019d"}'
SENT: Final = slice(-21, -2)

# Delay histogram: 20 µs buckets up to 2 s, the last one counts everything above.
BUCKET_NS: Final = 20_000
BUCKETS: Final = 100_000

Kind: TypeAlias = Literal["floor", "ours"]
KINDS: Final[tuple[Kind, ...]] = ("floor", "ours")


# ---------------------------------------------------------------- the work per message


class Meter:
    """Every stream's frames in one histogram of send → processed delay, for one server."""

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.frames = 0
        self.errors = 0
        self._target = -1
        self._reached: asyncio.Future[None] | None = None

    def frame(self, text: str) -> None:
        bucket = (time.monotonic_ns() - int(text[SENT])) // BUCKET_NS
        self.counts[bucket if bucket < BUCKETS else BUCKETS - 1] += 1
        self.frames += 1
        if self.frames == self._target and self._reached is not None:
            self._reached.set_result(None)

    async def reach(self, frames: int, timeout_s: float) -> None:
        """Returns once `frames` have been processed, or after `timeout_s`."""
        if self.frames >= frames:
            return
        self._reached = asyncio.get_running_loop().create_future()
        self._target = frames
        try:
            await asyncio.wait_for(asyncio.shield(self._reached), timeout_s)
        except TimeoutError:
            pass
        finally:
            self._target, self._reached = -1, None

    def percentile_ms(self, q: float) -> float:
        """Upper edge of the bucket holding the q-th quantile (inf: past the last edge)."""
        cumulative = np.cumsum(self.counts)
        if cumulative[-1] == 0:
            return 0.0
        index = int(np.searchsorted(cumulative, q * cumulative[-1]))
        return float("inf") if index >= BUCKETS - 1 else (index + 1) * BUCKET_NS / 1e6


class Stream(Protocol):
    def receive(self, text: str) -> None: ...


class FloorStream:
    """Parses each message's JSON and drops it."""

    __slots__ = ("_meter",)

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def receive(self, text: str) -> None:
        if orjson.loads(text).get("event") == "media":
            self._meter.frame(text)


class OurStream:
    """Our per-message work: the sans-I/O parser, then the call's session."""

    __slots__ = ("_meter", "_parser", "_session")

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._parser = StreamParser()
        self._session: CallSession | None = None

    def receive(self, text: str) -> None:
        msg = self._parser.receive(text)
        if isinstance(msg, Media):
            session = self._session
            assert session is not None  # the parser refuses media before start
            session.on_media(msg, time.monotonic())
            session.outbox.clear()  # events would go to storage's writer: not measured here
            self._meter.frame(text)
        elif isinstance(msg, Start):
            self._session = new_session(msg)


def stream_factory(kind: Kind, meter: Meter) -> Callable[[], Stream]:
    if kind == "floor":
        return lambda: FloorStream(meter)
    return lambda: OurStream(meter)


def warm_up(kind: Kind) -> None:
    """Runs our work on one in-process stream first, so the memory per stream measured later
    does not include what the first session loads once (the VAD, numpy's caches)."""
    if kind != "ours":
        return
    source = MessageSource(read_call_audio(FIXTURE))
    parser, session = open_session(source)
    for text in source.media(200):
        msg = parser.receive(text)
        if isinstance(msg, Media):
            session.on_media(msg, time.monotonic())


# ---------------------------------------------------------------- the transports


class Listener(Protocol):
    """What every transport's server is (asyncio's and websockets' alike)."""

    @property
    def sockets(self) -> Iterable[socket.socket]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


async def serve_websockets(new_stream: Callable[[], Stream], meter: Meter) -> Listener:
    async def handle(ws: ServerConnection) -> None:
        stream = new_stream()
        try:
            async for message in ws:
                if not isinstance(message, str):
                    raise ValueError("binary frame")
                stream.receive(message)
        except ConnectionClosed:
            pass  # the generator aborts its sockets at the end of a point
        except Exception:
            meter.errors += 1
            await ws.close(CloseCode.INTERNAL_ERROR, "internal error")

    # media/server.py's options, so the transport is measured as it runs there.
    return await serve(
        handle,
        HOST,
        0,
        max_size=MAX_MESSAGE_BYTES,
        ping_interval=20,
        ping_timeout=20,
        close_timeout=2,
        compression=None,
    )


class SansIoConnection(asyncio.Protocol):
    """websockets' protocol core with no asyncio front-end: each chunk of bytes is parsed and
    its messages handled inside `data_received`. Fragmented messages (SignalWire sends none) and
    binary frames end the stream; pings and the closing handshake are the core's own work."""

    def __init__(self, stream: Stream, meter: Meter) -> None:
        self._protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES)
        self._stream = stream
        self._meter = meter
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        try:
            for event in protocol.events_received():
                if isinstance(event, Frame):
                    if event.opcode is Opcode.TEXT and event.fin:
                        self._stream.receive(str(event.data, "utf-8"))
                    elif event.opcode in (Opcode.BINARY, Opcode.CONT) or not event.fin:
                        raise ValueError("binary or fragmented message")
                elif isinstance(event, Request):
                    if event.path.split("?", 1)[0] == PATH:
                        response = protocol.accept(event)
                    else:
                        response = protocol.reject(404, "not found\n")
                    protocol.send_response(response)
        except Exception:
            self._meter.errors += 1
            protocol.fail(CloseCode.INTERNAL_ERROR, "internal error")
        self._flush()

    def eof_received(self) -> bool | None:
        self._protocol.receive_eof()
        self._flush()
        return None

    def _flush(self) -> None:
        transport = self._transport
        assert transport is not None
        for data in self._protocol.data_to_send():
            if data:
                transport.write(data)
            else:  # the core's end of stream: after the closing handshake, or a failure
                transport.close()


async def serve_sansio(new_stream: Callable[[], Stream], meter: Meter) -> Listener:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SansIoConnection(new_stream(), meter), HOST, 0)


async def serve_picows(new_stream: Callable[[], Stream], meter: Meter) -> Listener:
    text, close = picows.WSMsgType.TEXT, picows.WSMsgType.CLOSE
    control = (picows.WSMsgType.PING, picows.WSMsgType.PONG)

    class PicowsConnection(picows.WSListener):
        """Frames arrive parsed, one callback each; picows answers pings itself."""

        def __init__(self, stream: Stream) -> None:
            super().__init__()
            self.stream = stream

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            msg_type = frame.msg_type
            try:
                if msg_type is text and frame.fin:
                    self.stream.receive(frame.get_payload_as_utf8_text())
                elif msg_type is close:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()
                elif msg_type not in control:
                    raise ValueError("binary or fragmented message")
            except Exception:
                meter.errors += 1
                transport.send_close(picows.WSCloseCode.INTERNAL_ERROR, b"internal error")
                transport.disconnect()

    def route(request: picows.WSUpgradeRequest) -> PicowsConnection | None:
        return PicowsConnection(new_stream()) if request.path == PATH.encode() else None

    server: asyncio.Server = await picows.ws_create_server(
        route, HOST, 0, max_frame_size=MAX_MESSAGE_BYTES, enable_auto_pong=True
    )
    return server


Serve: TypeAlias = Callable[[Callable[[], Stream], Meter], Awaitable[Listener]]
TRANSPORTS: Final[dict[str, Serve]] = {
    "websockets": serve_websockets,
    "websockets-sansio": serve_sansio,
    "picows": serve_picows,
}


def listening_port(listener: Listener) -> int:
    return int(next(iter(listener.sockets)).getsockname()[1])


# ---------------------------------------------------------------- the process


@dataclass(frozen=True, slots=True)
class ServerPlan:
    transport: str
    kind: Kind
    cpu: int


@dataclass(frozen=True, slots=True)
class ServerReport:
    frames: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float
    wall_s: float
    wait_s: float
    """Time the server was ready to run but others had its CPU (nan: no schedstats here)."""
    rss_base: int
    rss: int


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def runqueue_wait_s() -> float:
    """This (single-threaded) process's time spent runnable but not running: on a CPU of its
    own it stays near zero, so it says whether the machine was quiet enough to measure."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


async def next_message(conn: Connection) -> tuple[Any, ...]:
    """The parent's next message, awaited on the loop (no thread): readable, then read."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()
        fd = conn.fileno()

        def ready() -> None:  # called while the pipe stays readable: once is enough
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, ready)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
    return cast(tuple[Any, ...], conn.recv())


async def _serve(plan: ServerPlan, conn: Connection) -> None:
    meter = Meter()
    warm_up(plan.kind)
    listener = await TRANSPORTS[plan.transport](stream_factory(plan.kind, meter), meter)
    gc.collect()
    rss_base = resident_bytes()
    conn.send(("listening", listening_port(listener)))
    cpu0 = wall0 = wait0 = 0.0
    try:
        while True:
            command, *args = await next_message(conn)
            if command == "clock":
                conn.send(("clock", time.monotonic_ns()))
            elif command == "begin":
                cpu0, wall0, wait0 = time.process_time(), time.monotonic(), runqueue_wait_s()
                conn.send(("begun",))
            elif command == "drain":
                expected, timeout_s = args
                await meter.reach(expected, timeout_s)
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                wait = runqueue_wait_s() - wait0
                rss = resident_bytes()  # before the percentiles' arrays
                report = ServerReport(
                    frames=meter.frames,
                    errors=meter.errors,
                    p50_ms=meter.percentile_ms(0.50),
                    p99_ms=meter.percentile_ms(0.99),
                    max_ms=meter.percentile_ms(1.0),
                    cpu_s=cpu,
                    wall_s=wall,
                    wait_s=wait,
                    rss_base=rss_base,
                    rss=rss,
                )
                conn.send(("drained", report))
            elif command == "exit":
                return
    finally:
        listener.close()
        try:
            await asyncio.wait_for(listener.wait_closed(), 2.0)
        except TimeoutError:
            pass  # process exit closes what is left


def server_main(plan: ServerPlan, conn: Connection) -> None:
    """Process entry point: serves until the parent says "exit"; Ctrl-C is the parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.sched_setaffinity(0, {plan.cpu})
    raise_open_files_limit()
    try:
        uvloop.run(_serve(plan, conn))
    except (EOFError, BrokenPipeError):
        pass  # the parent has gone (its cleanup was cut short): nobody to report to
    except Exception as exc:  # reported to the parent, which stops the point
        conn.send(("error", f"server: {type(exc).__name__}: {exc}"))
