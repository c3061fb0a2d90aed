"""What both fakes share: the server and its faults, one session's loops, what a test sees.

Where the doc is silent, for both services: 8000 or 16000 Hz mono only (what our engines and the
WebRTC VAD take).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar, Final, TypeAlias
from urllib.parse import parse_qsl

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from media.codecs import ulaw_decode
from media.transcription.engine import Transcription, TranscriptionEngine
from media.vad import VoiceDetector
from server.simulator.fake_stt.segmenter import EnergyVoiceDetector, Segment, Segmenter

log = logging.getLogger(__name__)

SAMPLE_RATES: Final = frozenset((8000, 16000))
Message: TypeAlias = dict[str, Any] | str
"""A message the fake sends: JSON (a dict) or, for the malformed fault, raw text."""


# ---------------------------------------------------------------------------------------------
# What a test sees


@dataclass(slots=True)
class SessionRecord:
    """One connection attempt: its handshake, what the client sent, what the fake sent."""

    path: str
    query: dict[str, str]
    """Query parameters (a repeated name keeps its last value; `query_string` has them all)."""
    query_string: str
    headers: dict[str, str]
    """Handshake headers, names lower-cased."""
    handshake_status: int = 101
    """101 when accepted, else the HTTP status the handshake was refused with."""
    audio_bytes: int = 0
    audio_chunks: int = 0
    messages: list[str] = field(default_factory=list)
    """Text messages from the client, as received."""
    sent: list[Message] = field(default_factory=list)
    """Every message the fake sent, in order."""
    close_code: int | None = None
    """The close code the fake sent; None if it sent none (the client closed, or refused)."""
    close_reason: str = ""
    ended: bool = False
    final_latency_s: list[float] = field(default_factory=list)
    """Per final result: from the arrival of the audio where its speech ended to sending it
    (the fake's own share of the latency: its endpointing silence, hearing and queues)."""

    @property
    def results(self) -> list[dict[str, Any]]:
        """The transcript messages sent (AssemblyAI `Turn`, Deepgram `Results`)."""
        return [m for m in self.sent if isinstance(m, dict) and m.get("type") in _RESULT_TYPES]


_RESULT_TYPES: Final = ("Turn", "Results")


class _End(Exception):
    """Ends a session; `code` None: the connection is already gone, send no close frame."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        # A close frame's reason is at most 123 bytes of UTF-8.
        self.reason = reason.encode()[:123].decode(errors="ignore")


@dataclass(frozen=True, slots=True)
class _Decode:
    segment: Segment
    build: Callable[[Transcription], list[Message]]


@dataclass(frozen=True, slots=True)
class _Emit:
    build: Callable[[], list[Message]]


_Job: TypeAlias = _Decode | _Emit


def _flag(query: dict[str, str], name: str, default: bool = False) -> bool:
    value = query.get(name)
    return default if value is None else value.lower() in ("true", "1")


# ---------------------------------------------------------------------------------------------
# One session: a receive loop, a decode worker and a sender, owned by one TaskGroup


class _Session:
    """Shared machinery; subclasses speak one service's protocol.

    Order is kept by two FIFO queues: jobs (decodes and messages, run one at a time, so results
    come out in audio order) and the outbox (messages with the time to send them, which is how
    `delay_s` holds results back). Neither queue is bounded: entries are made per utterance, not
    per frame, and a partial is dropped unstarted once a newer one exists (the engine is
    behind), so their length is bounded by the audio a test or bench sends.
    """

    idle_timeout_s: float | None = None

    def __init__(self, fake: FakeSpeechService, ws: ServerConnection, record: SessionRecord):
        self.fake = fake
        self.ws = ws
        self.record = record
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._outbox: asyncio.Queue[tuple[float, Message, float | None]] = asyncio.Queue()
        self._arrivals: collections.deque[tuple[float, float]] = collections.deque()
        """(audio clock after a chunk, when it arrived), until a final past it is sent."""
        self._newest_partial: tuple[int, float] | None = None
        self._malformed_sent = False
        self._carry = b""
        self.mulaw = True
        self.sample_rate = 8000
        self.segmenter: Segmenter | None = None

    # Protocol hooks.
    def open(self) -> None:
        """Check the session's parameters (raise `_End` to refuse), set up the segmenter."""
        raise NotImplementedError

    def check_chunk(self, seconds: float) -> None:
        """Raise `_End` for an audio chunk the service refuses."""

    def parse_text(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def on_control(self, message: dict[str, Any]) -> bool:
        """Handle a control message; True when it asks to end the session gracefully."""
        raise NotImplementedError

    def on_segments(self, segments: list[Segment]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Queue what a graceful end sends (flushed results, the closing message)."""
        raise NotImplementedError

    def server_error(self) -> _End:
        """How the service closes when it fails (here: the engine raised)."""
        return _End(1011, "Internal error")

    def idle_end(self) -> _End:
        return _End(1011, "idle")

    # Helpers for the hooks.
    def start_segmenter(self, *, mulaw: bool, sample_rate: int, silence_ms: int) -> None:
        self.mulaw, self.sample_rate = mulaw, sample_rate
        self.segmenter = Segmenter(
            sample_rate,
            self.fake.voice_detector(),
            silence_ms=silence_ms,
            partial_interval_ms=self.partial_interval_ms(),
        )

    def partial_interval_ms(self) -> int | None:
        return self.fake.partial_interval_ms

    def decode(self, segment: Segment, build: Callable[[Transcription], list[Message]]) -> None:
        if not segment.final:
            self._newest_partial = (segment.utterance, segment.cut_s)
        self._jobs.put_nowait(_Decode(segment, build))

    def emit(self, build: Callable[[], list[Message]]) -> None:
        self._jobs.put_nowait(_Emit(build))

    def send_now(self, message: Message) -> None:
        """Ahead of every later result and not delayed (Begin, the malformed fault)."""
        self._outbox.put_nowait((self.loop.time(), message, None))

    @property
    def audio_s(self) -> float:
        return self.record.audio_bytes / ((1 if self.mulaw else 2) * self.sample_rate)

    # The loops.
    async def run(self) -> None:
        try:
            self.open()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._send_loop())
                tasks.create_task(self._decode_loop())
                tasks.create_task(self._receive_loop())
        except* _End as group:
            end = group.exceptions[0]
            assert isinstance(end, _End)
            if end.code is not None and self.ws.state is State.OPEN:
                self.record.close_code, self.record.close_reason = end.code, end.reason
                # Read on while closing: with unread messages queued past websockets' limit it
                # stops reading, and would miss the client's close frame until close_timeout.
                drain = asyncio.create_task(self._discard_incoming())
                try:
                    await self.ws.close(end.code, end.reason)
                finally:
                    drain.cancel()
                    await asyncio.wait([drain])

    async def _discard_incoming(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.recv()

    async def _receive_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    message = await self.ws.recv()
            except TimeoutError:
                raise self.idle_end() from None
            except ConnectionClosed:
                raise _End(None) from None
            if isinstance(message, bytes):
                ends = self.on_audio(message)
            else:
                self.record.messages.append(message)
                ends = self.on_control(self.parse_text(message))
            if ends and not self.fake.silent:
                self.finish()
                await self._jobs.join()
                await self._outbox.join()
                raise _End(1000)

    def on_audio(self, data: bytes) -> bool:
        """Handle an audio chunk; True when it asks to end the session gracefully."""
        self.record.audio_bytes += len(data)
        self.record.audio_chunks += 1
        self._arrivals.append((self.audio_s, self.loop.time()))
        self.check_chunk(len(data) / ((1 if self.mulaw else 2) * self.sample_rate))
        if self.mulaw:
            pcm = ulaw_decode(data)
        else:  # a sample split across chunks waits for its other byte
            joined = self._carry + data
            cut = len(joined) - len(joined) % 2
            pcm, self._carry = joined[:cut], joined[cut:]
        assert self.segmenter is not None
        self.on_segments(self.segmenter.feed(pcm))
        fake = self.fake
        if fake.close_after_s is not None and self.audio_s >= fake.close_after_s[0]:
            _, code, reason = fake.close_after_s
            raise _End(code, reason)
        if (
            fake.malformed_after_s is not None
            and not self._malformed_sent
            and self.audio_s >= fake.malformed_after_s
        ):
            self._malformed_sent = True
            self.send_now("<html><body>502 Bad Gateway</body></html>")
        return False

    async def _decode_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                messages = await self._run(job)
                send_at = self.loop.time() + self.fake.delay_s
                heard_at = None
                if isinstance(job, _Decode) and job.segment.final and messages:
                    heard_at = self._heard_at(job.segment.end_s)
                for n, message in enumerate(messages):
                    self._outbox.put_nowait((send_at, message, heard_at if n == 0 else None))
            finally:
                self._jobs.task_done()

    def _heard_at(self, audio_s: float) -> float | None:
        """When the audio up to `audio_s` had arrived; what arrived before is forgotten."""
        while len(self._arrivals) > 1 and self._arrivals[1][0] <= audio_s:
            self._arrivals.popleft()
        for clock, arrived in self._arrivals:
            if clock >= audio_s:
                return arrived
        return None

    async def _run(self, job: _Job) -> list[Message]:
        if isinstance(job, _Emit):
            return job.build()
        segment = job.segment
        stale = not segment.final and self._newest_partial != (segment.utterance, segment.cut_s)
        if stale or self.fake.silent:
            return []
        try:
            transcription = await asyncio.to_thread(
                self.fake.engine.transcribe, segment.pcm, segment.sample_rate
            )
        except Exception as exc:
            log.exception("engine %s failed", self.fake.engine.name)
            raise self.server_error() from exc
        return job.build(transcription)

    async def _send_loop(self) -> None:
        while True:
            send_at, message, heard_at = await self._outbox.get()
            try:
                wait = send_at - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the delay_s fault: hold the result back
                if not self.fake.silent:
                    await self.ws.send(message if isinstance(message, str) else json.dumps(message))
                    self.record.sent.append(message)
                    if heard_at is not None:
                        self.record.final_latency_s.append(self.loop.time() - heard_at)
            except ConnectionClosed:
                raise _End(None) from None
            finally:
                self._outbox.task_done()


# ---------------------------------------------------------------------------------------------
# The server


class FakeSpeechService:
    """A websockets server on 127.0.0.1 for one service; see the package docstring.

    Faults (each for every session): `refuse` (nothing listens: connections are refused),
    `reject_status` (every handshake answered with that HTTP status), `close_after_s` ((seconds
    of audio, code, reason): close once that much audio has arrived), `silent` (accept audio,
    send nothing at all, never close of its own accord), `delay_s` (send every result this much
    later), `malformed_after_s` (send one non-JSON text message once this much audio arrived).
    """

    path: ClassVar[str]
    _session_class: ClassVar[type[_Session]]

    def __init__(
        self,
        engine: TranscriptionEngine,
        *,
        api_key: str,
        port: int = 0,
        partial_interval_ms: int | None = 1000,
        voice_detector: Callable[[], VoiceDetector] = EnergyVoiceDetector,
        refuse: bool = False,
        reject_status: int | None = None,
        close_after_s: tuple[float, int, str] | None = None,
        silent: bool = False,
        delay_s: float = 0.0,
        malformed_after_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.api_key = api_key
        self.partial_interval_ms = partial_interval_ms
        self.voice_detector = voice_detector
        self.refuse = refuse
        self.reject_status = reject_status
        self.close_after_s = close_after_s
        self.silent = silent
        self.delay_s = delay_s
        self.malformed_after_s = malformed_after_s
        self.sessions: list[SessionRecord] = []
        self.url = ""
        """ws://127.0.0.1:PORT/path once started: the base URL to give the adapter."""
        self._port = port
        self._server: Server | None = None
        self._refusing: socket.socket | None = None
        self._pending: dict[ServerConnection, SessionRecord] = {}
        self._ended = asyncio.Condition()

    async def start(self) -> None:
        if self.refuse:
            # Bound but not listening: the port is ours, and a connect to it is refused.
            self._refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._refusing.bind(("127.0.0.1", self._port))
            port = self._refusing.getsockname()[1]
        else:
            self._server = await serve(
                self._handle,
                "127.0.0.1",
                self._port,
                process_request=self._process_request,
                process_response=self._process_response,
                max_size=4 * 2**20,
                close_timeout=2,
                compression=None,
            )
            port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{self.path}"

    async def close(self) -> None:
        if self._refusing is not None:
            self._refusing.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_ended(self, count: int, timeout_s: float = 5.0) -> list[SessionRecord]:
        """Waits until `count` sessions (refused handshakes included) have ended; returns them."""
        async with asyncio.timeout(timeout_s), self._ended:
            await self._ended.wait_for(lambda: sum(r.ended for r in self.sessions) >= count)
            return [r for r in self.sessions if r.ended]

    def check_handshake(self, request: Request, query: dict[str, str]) -> tuple[int, str] | None:
        """(status, JSON body) to refuse the handshake with, or None to accept it."""
        return None

    def error_body(self, status: int, message: str) -> str:
        return json.dumps({"error": message})

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, _, query_string = request.path.partition("?")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        record = SessionRecord(path, query, query_string, headers)
        self.sessions.append(record)
        self._pending[conn] = record
        refusal: tuple[int, str] | None
        if path != self.path:
            refusal = (404, self.error_body(404, "Not Found"))
        elif self.reject_status is not None:
            refusal = (self.reject_status, self.error_body(self.reject_status, "Rejected"))
        else:
            refusal = self.check_handshake(request, query)
        if refusal is None:
            return None
        response = conn.respond(HTTPStatus(refusal[0]), refusal[1])
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> None:
        """A refused handshake (ours, or websockets' own for a bad upgrade) ends its session."""
        if response.status_code != 101:
            record = self._pending.pop(conn)
            record.handshake_status = response.status_code
            await self._end(record)

    async def _handle(self, ws: ServerConnection) -> None:
        record = self._pending.pop(ws)
        try:
            await self._session_class(self, ws, record).run()
        finally:
            await self._end(record)

    async def _end(self, record: SessionRecord) -> None:
        async with self._ended:
            record.ended = True
            self._ended.notify_all()
