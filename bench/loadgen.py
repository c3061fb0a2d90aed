"""A lean SignalWire media-stream load generator: one process drives many websocket streams.

`SignalWireSimulator` (server/simulator/client.py) runs one coroutine per call, sleeping per
frame, and builds each message with `json.dumps`: measured against the same server, 250 calls
cost it 0.47 CPU-seconds a second in one process (the server 0.65), about three times what
this generator needs, on the two cores both share. Here one loop per worker process sends
every due stream's frames on a shared 20 ms schedule, through a minimal RFC 6455 client
written straight onto the transport: masked text frames (a fresh mask per frame, as a client
must), answers to the server's pings, the closing handshake. The messages are byte for byte
what the simulator sends (SignalWire's shapes: string counters, UUID ids, no top-level
streamSid, `connected` version 0.2.0), and each call's token comes from the signed voice
webhook, so the server runs its real path.

Streams are spread over `SLOTS` phases of the 20 ms period, as independent calls would be.
Per worker it records: how late each frame left against its schedule (send lag), whether the
socket was still holding earlier data (the server not reading fast enough), websocket ping
round trips (the server's loop latency plus any backlog in front of the ping), and, when
asked, the wall time each frame was sent (to time transcripts against the audio).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import json
import os
import random
import signal
import socket
import struct
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final, cast
from urllib.parse import urlsplit

import uvloop
from websockets.speedups import apply_mask

from bench.server_proc import raise_open_files_limit
from server.simulator.audio import read_call_audio

FRAME_S: Final = 0.02
SLOTS: Final = 10
"""Phases per 20 ms period (2 ms apart) that callers spread streams over."""
PING_EVERY_FRAMES: Final = 100
"""Each stream sends a websocket ping every 2 s (staggered), to time the server's answer."""
_WS_GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# json.dumps' own layout, checked against it at start-up (see `_check_template`).
MEDIA_TEMPLATE: Final = (
    '{"event": "media", "sequenceNumber": "%d", "media": {"track": "%s", "chunk": "%d", '
    '"timestamp": "%d", "payload": "%s"}}'
)


class HandshakeError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StreamPlan:
    url: str
    """The LaML `<Stream>`'s URL (the call's own: `<media URL>/<call id>`)."""
    call_sid: str
    stream_sid: str
    account_sid: str
    parameters: dict[str, str]
    """`<Parameter>`s of the LaML `<Stream>` (the token), sent as `start.customParameters`."""
    start_offset_s: float
    """When its first frame is due, after the common start."""


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    worker: int
    wav: str
    frames: int
    """Frames per track to send; the fixture loops when it is shorter."""
    streams: tuple[StreamPlan, ...]
    record_send_times: bool
    connect_timeout_s: float = 30.0
    close_timeout_s: float = 30.0


@dataclass(slots=True)
class StreamResult:
    call_sid: str
    stream_sid: str
    connected: bool = False
    frames_sent: int = 0
    """Frames per track (each is one inbound and one outbound message)."""
    connect_s: float | None = None
    """From asking for the connection to its upgrade's answer (TCP, accept, handshake)."""
    start_sent_at: float | None = None
    """Wall clock (time.time()) when `start` left."""
    stop_sent_at: float | None = None
    """Wall clock when `stop` left."""
    close_received_at: float | None = None
    """Wall clock when the server's close frame arrived."""
    closed: bool = False
    close_code: int | None = None
    close_reason: str = ""
    error: str = ""
    max_write_buffer: int = 0
    backlogged_sends: int = 0
    send_times: array[float] | None = None
    """Wall clock of each frame pair's send, by frame index (when recorded)."""


@dataclass(slots=True)
class WorkerResult:
    worker: int
    streams: list[StreamResult] = field(default_factory=list)
    lags_ms: array[float] = field(default_factory=lambda: array("f"))
    ping_rtts_ms: array[float] = field(default_factory=lambda: array("f"))
    ping_sent_s: array[float] = field(default_factory=lambda: array("d"))
    """When each of `ping_rtts_ms` was sent (time.monotonic(): the machine's clock, the same in
    every process), to take the round trips of a window of the run."""
    error: str = ""


class WsClient(asyncio.Protocol):
    """Just enough of an RFC 6455 client for a unidirectional media stream."""

    def __init__(
        self, host: str, path: str, rtts: array[float], rtt_sent: array[float] | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_received_at: float | None = None
        self.max_write_buffer = 0
        self.backlogged_sends = 0
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._accept = base64.b64encode(
            hashlib.sha1((self._key + _WS_GUID).encode()).digest()
        ).decode()
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._buf = bytearray()
        self._open = False
        self._close_sent = False
        self._pings: dict[bytes, float] = {}
        self._ping_id = 0
        self._rtts = rtts
        self._rtt_sent = rtt_sent
        self._random = random.Random()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self.transport = tcp = cast(asyncio.Transport, transport)
        sock = tcp.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._open:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > 16_384:
                    self._fail(HandshakeError("handshake response too long"))
                return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[: end + 4]
            lines = head.split("\r\n")
            status = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)
            }
            if len(status) < 2 or status[1] != "101":
                self._fail(HandshakeError(f"upgrade answered {lines[0]!r}"))
                return
            if headers.get("sec-websocket-accept") != self._accept:
                self._fail(HandshakeError("bad Sec-WebSocket-Accept"))
                return
            self._open = True
            if self.opened.done():  # the connect timed out waiting for this answer
                self.abort()
                return
            self.opened.set_result(None)
        self._read_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or HandshakeError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # sending

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send_text(self, text: str) -> None:
        assert self.transport is not None
        buffered = self.transport.get_write_buffer_size()
        if buffered:
            self.backlogged_sends += 1
            if buffered > self.max_write_buffer:
                self.max_write_buffer = buffered
        self._send_frame(0x1, text.encode())

    def ping(self) -> None:
        self._ping_id += 1
        payload = struct.pack(">Q", self._ping_id)
        self._pings[payload] = time.monotonic()
        self._send_frame(0x9, payload)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        mask = self._random.randbytes(4)
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65_536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        self.transport.write(b"".join((header, mask, apply_mask(payload, mask))))

    # receiving

    def _read_frames(self) -> None:
        buf = self._buf
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                offset = 10
            mask = b""
            if second & 0x80:  # servers do not mask, but read it right if one does
                mask = bytes(buf[offset : offset + 4])
                offset += 4
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            if mask:
                payload = apply_mask(payload, mask)
            self._on_frame(first & 0x0F, payload)

    def _on_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x9:  # ping: answer in kind
            if self.alive:
                self._send_frame(0xA, payload)
        elif opcode == 0xA:  # pong to one of ours
            sent = self._pings.pop(payload, None)
            if sent is not None:
                self._rtts.append((time.monotonic() - sent) * 1000.0)
                if self._rtt_sent is not None:
                    self._rtt_sent.append(sent)
        elif opcode == 0x8:  # close: echo the code; the server then closes TCP
            self.close_received_at = time.monotonic()
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
                self.close_reason = payload[2:].decode("utf-8", "replace")
            if not self._close_sent and self.alive:
                self._close_sent = True
                self._send_frame(0x8, payload[:2])
        # Text and binary frames are not expected on a unidirectional stream: ignored.

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()


@dataclass(slots=True)
class StreamState:
    """A stream as a worker drives it: its plan, what it records, its socket once open."""

    plan: StreamPlan
    result: StreamResult
    ping_offset: int
    client: WsClient | None = None
    sequence: int = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


def _check_template() -> None:
    sample = {
        "event": "media",
        "sequenceNumber": "12",
        "media": {"track": "inbound", "chunk": "3", "timestamp": "40", "payload": "/w=="},
    }
    if MEDIA_TEMPLATE % (12, "inbound", 3, 40, "/w==") != json.dumps(sample):
        raise RuntimeError("MEDIA_TEMPLATE no longer matches json.dumps")


async def open_stream(
    stream: StreamState,
    plan: WorkerPlan,
    rtts: array[float],
    rtt_sent: array[float] | None = None,
) -> None:
    """Connects `stream` (within `plan.connect_timeout_s`) and sends `connected` and `start`;
    a failure is left in `stream.result.error`."""
    url = urlsplit(stream.plan.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    loop = asyncio.get_running_loop()
    asked = time.monotonic()
    try:
        async with asyncio.timeout(plan.connect_timeout_s):
            _transport, client = await loop.create_connection(
                lambda: WsClient(f"{host}:{port}", url.path or "/", rtts, rtt_sent), host, port
            )
            await client.opened
    except (OSError, TimeoutError, HandshakeError) as exc:
        stream.result.error = f"connect: {type(exc).__name__}: {exc}"
        return
    stream.result.connect_s = time.monotonic() - asked
    stream.client = client
    stream.result.connected = True
    client.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "0.2.0"}))
    start = {
        "event": "start",
        "sequenceNumber": str(stream.next_sequence()),
        "start": {
            "streamSid": stream.plan.stream_sid,
            "accountSid": stream.plan.account_sid,
            "callSid": stream.plan.call_sid,
            "tracks": ["inbound", "outbound"],
            "customParameters": stream.plan.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    client.send_text(json.dumps(start))
    stream.result.start_sent_at = time.time()


async def _run(plan: WorkerPlan, conn: Connection) -> WorkerResult:
    _check_template()
    audio = read_call_audio(Path(plan.wav))
    pairs = list(audio.frames())
    caller = [binascii.b2a_base64(c, newline=False).decode() for c, _ in pairs]
    agent = [
        binascii.b2a_base64(a if a is not None else bytes(len(c)), newline=False).decode()
        for c, a in pairs
    ]
    result = WorkerResult(plan.worker)
    streams = [
        StreamState(
            sp,
            StreamResult(sp.call_sid, sp.stream_sid),
            ping_offset=(i * 37) % PING_EVERY_FRAMES,
        )
        for i, sp in enumerate(plan.streams)
    ]
    if plan.record_send_times:
        for s in streams:
            s.result.send_times = array("d")
    result.streams = [s.result for s in streams]

    limit = asyncio.Semaphore(64)

    async def open_limited(s: StreamState) -> None:
        async with limit:
            await open_stream(s, plan, result.ping_rtts_ms, result.ping_sent_s)

    await asyncio.gather(*(open_limited(s) for s in streams))
    conn.send(("ready", sum(s.client is not None for s in streams)))
    loop = asyncio.get_running_loop()
    command, t0_wall = await loop.run_in_executor(None, conn.recv)
    if command != "go":
        for s in streams:
            if s.client is not None:
                s.client.abort()
        result.error = "aborted before streaming"
        return result

    wall_offset = time.time() - time.monotonic()
    t0 = t0_wall - wall_offset
    # Streams with the same start offset share a schedule: one timer wake-up sends them all.
    groups: dict[float, list[StreamState]] = {}
    for s in streams:
        if s.client is not None:
            groups.setdefault(s.plan.start_offset_s, []).append(s)
    offsets = sorted(groups)
    members = [groups[offset] for offset in offsets]
    schedule = [(t0 + offset, g, 0) for g, offset in enumerate(offsets)]
    heapq.heapify(schedule)
    lags = result.lags_ms
    template = MEDIA_TEMPLATE
    last = plan.frames - 1
    while schedule:
        due, g, k = schedule[0]
        delay = due - time.monotonic()
        # Behind schedule, still yield once so pings and closes get read.
        await asyncio.sleep(delay if delay > 0 else 0)
        if k < last:
            heapq.heapreplace(schedule, (t0 + offsets[g] + (k + 1) * FRAME_S, g, k + 1))
        else:
            heapq.heappop(schedule)
        i = k % len(pairs)
        inbound, outbound = caller[i], agent[i]
        chunk, timestamp = k + 1, k * 20
        ping_phase = k % PING_EVERY_FRAMES
        for s in members[g]:
            client = s.client
            if client is None or not client.alive:
                continue
            now = time.monotonic()
            lags.append((now - due) * 1000.0)
            if s.result.send_times is not None:
                s.result.send_times.append(now + wall_offset)
            client.send_text(template % (s.next_sequence(), "inbound", chunk, timestamp, inbound))
            client.send_text(template % (s.next_sequence(), "outbound", chunk, timestamp, outbound))
            s.result.frames_sent += 1
            if ping_phase == s.ping_offset:
                client.ping()
            if k == last:
                stop = {"event": "stop", "sequenceNumber": str(s.next_sequence())}
                client.send_text(json.dumps(stop))
                s.result.stop_sent_at = time.time()

    await record_closes(streams, plan.close_timeout_s, wall_offset)
    return result


async def record_closes(
    streams: Sequence[StreamState], timeout_s: float, wall_offset: float
) -> None:
    """Waits (at most `timeout_s`) for the server to close every stream that opened, then
    records in each one's result how it ended; one still open is reported and dropped.
    `wall_offset`: wall clock minus monotonic, for the close's wall time."""
    waiting = [s.client.closed for s in streams if s.client is not None]
    if waiting:
        await asyncio.wait(waiting, timeout=timeout_s)
    for s in streams:
        client = s.client
        if client is None:
            continue
        s.result.closed = client.closed.done()
        s.result.close_code = client.close_code
        s.result.close_reason = client.close_reason
        if client.close_received_at is not None:
            s.result.close_received_at = client.close_received_at + wall_offset
        s.result.max_write_buffer = client.max_write_buffer
        s.result.backlogged_sends = client.backlogged_sends
        if not s.result.closed:
            s.result.error = s.result.error or "server did not close the stream in time"
            client.abort()


def run_worker(plan: WorkerPlan, conn: Connection) -> None:
    """Process entry point: streams the plan, sends ("ready", n), waits for ("go", t0), sends
    ("result", WorkerResult). Ctrl-C is the parent's to handle: it terminates workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_open_files_limit()
    try:
        result = uvloop.run(_run(plan, conn))
    except Exception as exc:  # reported to the parent, which prints it
        result = WorkerResult(plan.worker, error=f"{type(exc).__name__}: {exc}")
    conn.send(("result", result))
