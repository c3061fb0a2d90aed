"""Fake AssemblyAI Universal-Streaming (v3) and Deepgram live (v1/listen) servers on loopback.

Our cloud transcription adapters connect to these by configuration alone (base URL + API key),
in tests and in benchmarks. Each fake speaks its service's wire protocol as docs/protocols.md
(sections f and g) describes it, and its words come from a real `TranscriptionEngine` run on the
audio the fake received; nothing in a result is scripted text:

    decode (mu-law or 16-bit PCM) → `Segmenter` (voice detector + silence rule) → utterances
    → engine in a worker thread → the service's result messages, word times on the session's
    audio clock

`Segmenter` is our own small state machine rather than `media.vad.Endpointer`: partial results
need the utterance-so-far and word times need the voiced onset, neither of which the endpointer
exposes. The default voice detector is an energy rule (`EnergyVoiceDetector`): a fake must cut
where a test can predict from synthetic audio (tone bursts at known offsets), and judging speech
with the same WebRTC VAD as our own pipeline would only hide disagreements between the two.
`voice_detector=lambda: WebRtcVoiceDetector(2)` (or `--vad webrtc`) is there for noisy audio.

Where the doc is silent, this fake decides (and the comments marked "doc silent" say so):
- AssemblyAI: a missing or wrong key closes 1008 right after the handshake (the doc's close
  table); a bad query (no or unknown `speech_model`, another encoding or rate) closes 3005.
  Temporary tokens are not issued here, so `token=` alone is refused like a missing key. A turn
  ends after `min_turn_silence` (default 400 ms) as if always confident; the other turn-taking
  parameters are recorded, not applied, and so is `UpdateConfiguration`.
- Deepgram: bad auth is HTTP 401 and a bad query HTTP 400 at the handshake; a control message
  it does not know closes 1008; an empty binary frame ends the stream as CloseStream does.
  Results windows tile the audio (each final starts where the last ended), and a flushed final
  (Finalize, CloseStream) has `speech_final: false`.
- Both: 8000 or 16000 Hz mono only (what our engines and the WebRTC VAD take).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import signal
import socket
import string
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar, Final, TypeAlias
from urllib.parse import parse_qsl

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from media.codecs import level_dbfs, ulaw_decode
from media.transcription.engine import Transcription, TranscriptionEngine
from media.vad import VoiceDetector, WebRtcVoiceDetector

log = logging.getLogger(__name__)

FRAME_MS: Final = 20
SAMPLE_RATES: Final = frozenset((8000, 16000))
Message: TypeAlias = dict[str, Any] | str
"""A message the fake sends: JSON (a dict) or, for the malformed fault, raw text."""


# ---------------------------------------------------------------------------------------------
# Finding utterances (pure: no I/O, no clock)


class EnergyVoiceDetector:
    """A frame is voiced when its RMS level reaches `threshold_dbfs`."""

    def __init__(self, threshold_dbfs: float = -40.0) -> None:
        self._threshold = threshold_dbfs

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        return level_dbfs(frame) >= self._threshold


@dataclass(frozen=True, slots=True)
class Segment:
    """Speech handed to the engine: a finished utterance, or (a partial) one so far."""

    utterance: int
    """The utterance's ordinal in the session (partials and final of one utterance share it)."""
    final: bool
    start_s: float
    """Start of its first voiced frame, on the session's audio clock."""
    end_s: float
    """End of its last voiced frame so far."""
    cut_s: float
    """The audio clock when it was cut: how much audio the result accounts for."""
    pcm: bytes
    """16-bit PCM: a little lead-in, the speech, and (finals) a little of the silence after."""
    sample_rate: int


class Segmenter:
    """20 ms frames of 16-bit PCM in, `Segment`s out; time is counted in samples.

    An utterance starts at a voiced frame and ends after `silence_ms` of unvoiced frames (or at
    `end_utterance()`); one with less than `min_speech_ms` voiced is noise and is dropped. While
    it lasts, every `partial_interval_ms` of voiced audio yields a partial segment.
    """

    def __init__(
        self,
        sample_rate: int,
        detector: VoiceDetector,
        *,
        silence_ms: int,
        partial_interval_ms: int | None,
        min_speech_ms: int = 100,
        preroll_ms: int = 200,
        tail_ms: int = 200,
        max_utterance_ms: int = 15_000,
    ) -> None:
        self._rate = sample_rate
        self._detector = detector
        self._frame_samples = sample_rate * FRAME_MS // 1000
        self._frame_bytes = self._frame_samples * 2
        self._silence_frames = max(1, silence_ms // FRAME_MS)
        self._partial_frames = (
            None if partial_interval_ms is None else max(1, partial_interval_ms // FRAME_MS)
        )
        self._min_voiced = max(1, min_speech_ms // FRAME_MS)
        self._tail_frames = tail_ms // FRAME_MS
        self._max_frames = max_utterance_ms // FRAME_MS
        self._preroll: deque[bytes] = deque(maxlen=preroll_ms // FRAME_MS)
        self._pending = bytearray()
        self._frames: list[bytes] = []
        self._clock = 0
        self._utterances = 0
        self._onset: int | None = None
        self._voiced_end = 0
        self._voiced = 0
        self._silent_run = 0
        self._next_partial = 0

    @property
    def clock_s(self) -> float:
        """Audio seen so far (whole frames), in seconds."""
        return self._clock / self._rate

    @property
    def open_onset_s(self) -> float | None:
        """Where the utterance still being heard began, or None between utterances."""
        return None if self._onset is None else self._onset / self._rate

    def feed(self, pcm: bytes) -> list[Segment]:
        """Any amount of PCM; a part frame waits for the rest of its frame."""
        self._pending += pcm
        segments: list[Segment] = []
        whole = len(self._pending) - len(self._pending) % self._frame_bytes
        for offset in range(0, whole, self._frame_bytes):
            segment = self._feed_frame(bytes(self._pending[offset : offset + self._frame_bytes]))
            if segment is not None:
                segments.append(segment)
        del self._pending[:whole]
        return segments

    def end_utterance(self) -> Segment | None:
        """Ends the utterance in progress now (ForceEndpoint, Finalize, end of stream)."""
        return self._close() if self._onset is not None else None

    def _feed_frame(self, frame: bytes) -> Segment | None:
        voiced = self._detector.is_speech(frame, self._rate)
        frame_start = self._clock
        self._clock += self._frame_samples
        if self._onset is None:
            if not voiced:
                self._preroll.append(frame)
                return None
            self._onset = frame_start
            self._frames = [*self._preroll, frame]
            self._preroll.clear()
            self._voiced, self._silent_run, self._voiced_end = 1, 0, self._clock
            self._next_partial = self._partial_frames or 0
            return None
        self._frames.append(frame)
        if voiced:
            self._voiced += 1
            self._silent_run = 0
            self._voiced_end = self._clock
            if (
                self._partial_frames is not None
                and self._voiced >= max(self._next_partial, self._min_voiced)
                and len(self._frames) < self._max_frames
            ):
                self._next_partial = self._voiced + self._partial_frames
                return self._segment(final=False)
        else:
            self._silent_run += 1
            if self._silent_run >= self._silence_frames:
                return self._close()
        if len(self._frames) >= self._max_frames:  # a monologue is cut so its text arrives
            return self._close()
        return None

    def _segment(self, *, final: bool) -> Segment:
        frames = self._frames
        if final:
            frames = frames[
                : len(frames) - self._silent_run + min(self._silent_run, self._tail_frames)
            ]
        assert self._onset is not None
        return Segment(
            utterance=self._utterances,
            final=final,
            start_s=self._onset / self._rate,
            end_s=self._voiced_end / self._rate,
            cut_s=self._clock / self._rate,
            pcm=b"".join(frames),
            sample_rate=self._rate,
        )

    def _close(self) -> Segment | None:
        segment = self._segment(final=True) if self._voiced >= self._min_voiced else None
        if segment is not None:
            self._utterances += 1
        self._preroll.extend(self._frames[-(self._preroll.maxlen or 1) :])
        self._onset = None
        self._frames = []
        self._voiced = self._silent_run = 0
        return segment


# ---------------------------------------------------------------------------------------------
# Words


def _plain(token: str) -> str:
    """A word as unformatted transcripts spell it: lower case, no punctuation around it."""
    return token.strip(string.punctuation).lower()


def _spread(tokens: Sequence[str], start_s: float, end_s: float) -> list[tuple[str, float, float]]:
    """(token, start, end) per word. The engine gives no word times, so the voiced span is
    shared out evenly among the words."""
    if not tokens:
        return []
    step = (end_s - start_s) / len(tokens)
    return [(t, start_s + i * step, start_s + (i + 1) * step) for i, t in enumerate(tokens)]


def _tokens(transcription: Transcription) -> list[str]:
    return [t for t in transcription.text.split() if _plain(t)]


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
        self._outbox: asyncio.Queue[tuple[float, Message]] = asyncio.Queue()
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
        self._outbox.put_nowait((self.loop.time(), message))

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
                for message in messages:
                    self._outbox.put_nowait((send_at, message))
            finally:
                self._jobs.task_done()

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
            send_at, message = await self._outbox.get()
            try:
                wait = send_at - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the delay_s fault: hold the result back
                if not self.fake.silent:
                    await self.ws.send(message if isinstance(message, str) else json.dumps(message))
                    self.record.sent.append(message)
            except ConnectionClosed:
                raise _End(None) from None
            finally:
                self._outbox.task_done()


# ---------------------------------------------------------------------------------------------
# The server


class FakeSpeechService:
    """A websockets server on 127.0.0.1 for one service; see the module docstring.

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


# ---------------------------------------------------------------------------------------------
# AssemblyAI Universal-Streaming v3 (docs/protocols.md section f)

ASSEMBLYAI_SPEECH_MODELS: Final = frozenset(
    "universal-streaming-english universal-streaming-multilingual whisper-rt u3-rt-pro "
    "universal-3-5-pro universal-3-6 universal-3-6-pro".split()
)
_ASSEMBLYAI_CONTROL: Final = frozenset(
    ("Terminate", "ForceEndpoint", "KeepAlive", "UpdateConfiguration")
)


class _RateBucket:
    """Audio seconds may run ahead of wall-clock seconds by at most `burst_s`."""

    def __init__(self, burst_s: float, now: float) -> None:
        self._burst = self._tokens = burst_s
        self._last = now

    def take(self, seconds: float, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._last))
        self._last = now
        if seconds > self._tokens + 1e-6:
            return False
        self._tokens -= seconds
        return True


class _AssemblyAISession(_Session):
    def server_error(self) -> _End:
        return _End(3005, "Session Cancelled: An error occurred")

    def open(self) -> None:
        fake = self.fake
        assert isinstance(fake, FakeAssemblyAI)
        query = self.record.query
        key = self.record.headers.get("authorization")
        if key is None:
            raise _End(1008, "Unauthorized Connection: Missing Authorization header")
        if key != fake.api_key:
            raise _End(1008, "Unauthorized Connection: Invalid API key")
        # doc silent on how a bad query is refused: 3005, the catch-all, after the handshake.
        model = query.get("speech_model")
        if model not in ASSEMBLYAI_SPEECH_MODELS:
            raise _End(3005, f"Session Cancelled: invalid speech_model {model!r}")
        encoding = query.get("encoding", "pcm_s16le")
        if encoding not in ("pcm_s16le", "pcm_mulaw"):
            raise _End(3005, f"Session Cancelled: unsupported encoding {encoding!r}")
        rate = query.get("sample_rate", "16000")
        if not rate.isdigit() or int(rate) not in SAMPLE_RATES:
            raise _End(3005, f"Session Cancelled: unsupported sample_rate {rate!r}")
        # doc silent: no end-of-turn model here, so a turn ends at `min_turn_silence` as if the
        # model were always confident.
        silence = query.get("min_turn_silence", query.get("min_end_of_turn_silence_when_confident"))
        self._formatted = _flag(query, "format_turns")
        self._turn_order = 0
        self._partials_in_turn = False
        self._bucket = (
            None if fake.rate_burst_s is None else _RateBucket(fake.rate_burst_s, self.started)
        )
        self.start_segmenter(
            mulaw=encoding == "pcm_mulaw",
            sample_rate=int(rate),
            silence_ms=int(silence) if silence and silence.isdigit() else 400,
        )
        if not fake.silent:
            self.send_now(
                {
                    "type": "Begin",
                    "id": str(uuid.uuid4()),
                    "expires_at": int(time.time()) + 3 * 3600,  # sessions end after 3 h
                }
            )

    def check_chunk(self, seconds: float) -> None:
        ms = seconds * 1000
        if not 50 <= ms <= 1000:
            raise _End(
                3007, f"Input duration violation: {ms:.0f} ms. Expected between 50 and 1000 ms"
            )
        now = self.loop.time()
        if self._bucket is not None and not self._bucket.take(seconds, now):
            raise _End(
                3007,
                f"Audio Transmission Rate Exceeded: Received {self.audio_s:.1f} sec. audio "
                f"in {now - self.started:.1f} sec",
            )

    def parse_text(self, text: str) -> dict[str, Any]:
        try:
            message = json.loads(text)
        except ValueError:
            raise _End(3006, f"Invalid JSON: {text}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise _End(3006, f"Invalid Message: {text}")
        if message["type"] not in _ASSEMBLYAI_CONTROL:
            raise _End(3006, f"Invalid Message Type: {message['type']}")
        return message

    def on_control(self, message: dict[str, Any]) -> bool:
        # KeepAlive and UpdateConfiguration are accepted; the latter is recorded, not applied.
        if message["type"] == "ForceEndpoint":
            self._end_turn()
        return bool(message["type"] == "Terminate")

    def on_segments(self, segments: list[Segment]) -> None:
        for segment in segments:
            self.decode(segment, functools.partial(self._turn, segment))

    def finish(self) -> None:
        self._end_turn()
        self.emit(self._termination)

    def _end_turn(self) -> None:
        assert self.segmenter is not None
        if (segment := self.segmenter.end_utterance()) is not None:
            self.on_segments([segment])

    def _termination(self) -> list[Message]:
        return [
            {
                "type": "Termination",
                "audio_duration_seconds": round(self.audio_s),
                "session_duration_seconds": round(self.loop.time() - self.started),
            }
        ]

    def _turn(self, segment: Segment, transcription: Transcription) -> list[Message]:
        tokens = _tokens(transcription)
        if not self._formatted:
            tokens = [_plain(t) for t in tokens]
        if not tokens and not (segment.final and self._partials_in_turn):
            return []  # no words: no turn (an open turn still gets its end, below)
        confidence = transcription.confidence if transcription.confidence is not None else 1.0
        words = [
            {
                "start": round(start * 1000),
                "end": round(end * 1000),
                "text": token,
                "confidence": confidence,
                "word_is_final": segment.final,
            }
            for token, start, end in _spread(tokens, segment.start_s, segment.end_s)
        ]
        text = " ".join(tokens)
        turn = {
            "type": "Turn",
            "turn_order": self._turn_order,
            "turn_is_formatted": self._formatted,
            "end_of_turn": segment.final,
            # `transcript` holds the turn's finalized words: none until the turn ends, since a
            # partial's words may still change on the next decode.
            "transcript": text if segment.final else "",
            "end_of_turn_confidence": 1.0 if segment.final else 0.0,
            "words": words,
            "utterance": text if segment.final else "",
        }
        if segment.final:
            self._turn_order += 1
        self._partials_in_turn = not segment.final
        return [turn]


class FakeAssemblyAI(FakeSpeechService):
    """`rate_burst_s`: how far (seconds of audio) a client may get ahead of real time before
    3007 "Audio Transmission Rate Exceeded" (at least 1, the longest chunk; None: no check)."""

    path = "/v3/ws"
    _session_class = _AssemblyAISession

    def __init__(
        self, engine: TranscriptionEngine, *, rate_burst_s: float | None = 3.0, **options: Any
    ) -> None:
        super().__init__(engine, **options)
        if rate_burst_s is not None and rate_burst_s < 1:
            raise ValueError("rate_burst_s must allow one 1000 ms chunk")
        self.rate_burst_s = rate_burst_s


# ---------------------------------------------------------------------------------------------
# Deepgram live streaming (docs/protocols.md section g)

_DEEPGRAM_ENCODINGS: Final = {"mulaw": True, "linear16": False}
_DEEPGRAM_CONTROL: Final = frozenset(("KeepAlive", "Finalize", "CloseStream"))
DEFAULT_SILENCE_MS: Final = 500
"""Deepgram utterances end after this much silence when `endpointing` is absent or false."""
MIN_ENDPOINTING_MS: Final = 100
"""`endpointing` below this is raised to it: frame-level voicing would otherwise end an
utterance at every gap between words (Deepgram's own default is 10 ms)."""


def _deepgram_query_error(query: dict[str, str]) -> str | None:
    encoding = query.get("encoding")
    if encoding not in _DEEPGRAM_ENCODINGS:
        return f"unsupported encoding {encoding!r} (this fake takes mulaw or linear16)"
    rate = query.get("sample_rate", "")
    if not rate.isdigit() or int(rate) not in SAMPLE_RATES:
        return f"unsupported sample_rate {rate!r} (this fake takes 8000 or 16000)"
    if query.get("channels", "1") != "1":
        return "this fake takes mono audio only (channels=1)"
    for name in ("endpointing", "utterance_end_ms"):
        value = query.get(name)
        if (
            value is not None
            and not value.isdigit()
            and not (name == "endpointing" and value == "false")
        ):
            return f"invalid {name} {value!r}"
    return None


class _DeepgramSession(_Session):
    def open(self) -> None:
        fake = self.fake
        assert isinstance(fake, FakeDeepgram)
        query = self.record.query
        self.idle_timeout_s = fake.idle_timeout_s
        self._request_id = str(uuid.uuid4())
        self._created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._model = query.get("model", "nova-3")
        self._interim = _flag(query, "interim_results")
        self._punctuated = _flag(query, "smart_format") or _flag(query, "punctuate")
        endpointing = query.get("endpointing")
        self._endpointing = endpointing != "false"
        silence = DEFAULT_SILENCE_MS
        if endpointing is not None and endpointing.isdigit():
            silence = max(MIN_ENDPOINTING_MS, int(endpointing))
        utterance_end = query.get("utterance_end_ms")
        self._utterance_end_s = None if utterance_end is None else int(utterance_end) / 1000
        # doc silent: where the next Results window starts; finals tile the audio.
        self._cursor = 0.0
        self._pending_end: float | None = None  # last_word_end awaiting its UtteranceEnd
        self._pending_utterance = -1
        self._last_final_had_words = False
        self._sha = hashlib.sha256()
        self.start_segmenter(
            mulaw=_DEEPGRAM_ENCODINGS[query["encoding"]],
            sample_rate=int(query["sample_rate"]),
            silence_ms=silence,
        )

    def partial_interval_ms(self) -> int | None:
        return self.fake.partial_interval_ms if self._interim else None

    def idle_end(self) -> _End:
        return _End(
            1011,
            "NET-0001: Deepgram did not receive audio data or a text message "
            "within the timeout window.",
        )

    def parse_text(self, text: str) -> dict[str, Any]:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") not in _DEEPGRAM_CONTROL:
            raise _End(1008, f"Invalid control message: {text}")  # doc silent
        return message

    def on_control(self, message: dict[str, Any]) -> bool:
        if message["type"] == "Finalize":
            self._flush(from_finalize=True)
        return bool(message["type"] == "CloseStream")

    def on_segments(self, segments: list[Segment]) -> None:
        for segment in segments:
            if self._pending_end is not None and segment.utterance > self._pending_utterance:
                self._check_utterance_end(segment.start_s, None)
            window = (self._cursor, segment.cut_s)
            # doc silent: an endpoint is a final cut by `endpointing` silence, unless disabled.
            speech_final = segment.final and self._endpointing
            self._decode_results(segment, window, speech_final, from_finalize=False)
        assert self.segmenter is not None
        if self._pending_end is not None:
            self._check_utterance_end(self.segmenter.open_onset_s, self.segmenter.clock_s)

    def _decode_results(
        self,
        segment: Segment,
        window: tuple[float, float],
        speech_final: bool,
        *,
        from_finalize: bool,
    ) -> None:
        if segment.final:
            self._cursor = window[1]
            self._pending_utterance = segment.utterance
            self._pending_end = segment.end_s if self._utterance_end_s is not None else None
        self.decode(
            segment, functools.partial(self._results, segment, window, speech_final, from_finalize)
        )

    def _check_utterance_end(self, onset_s: float | None, clock_s: float | None) -> None:
        """Queues the pending UtteranceEnd once `utterance_end_ms` of silence followed the last
        word: before the next speech (its onset `onset_s`; None: none yet) or, with none yet,
        before the audio clock `clock_s`. Speech resuming within the gap cancels it."""
        assert self._pending_end is not None and self._utterance_end_s is not None
        gap_end = self._pending_end + self._utterance_end_s
        if onset_s is not None and onset_s < gap_end:
            self._pending_end = None
        elif onset_s is not None or (clock_s is not None and clock_s >= gap_end):
            self._emit_utterance_end()

    def _emit_utterance_end(self) -> None:
        last_word_end, self._pending_end = self._pending_end, None
        assert last_word_end is not None
        self.emit(functools.partial(self._utterance_end, last_word_end))

    def _utterance_end(self, last_word_end: float) -> list[Message]:
        if not self._last_final_had_words:
            return []
        return [
            {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)}
        ]

    def _flush(self, *, from_finalize: bool) -> None:
        """Finalize and end of stream: the utterance in progress becomes a final now (doc
        silent: with `speech_final: false`, no endpoint having been heard)."""
        assert self.segmenter is not None
        segment = self.segmenter.end_utterance()
        window = (self._cursor, self.segmenter.clock_s)
        if segment is not None:
            self._decode_results(segment, window, False, from_finalize=from_finalize)
        elif from_finalize and window[1] > window[0]:  # audio but no words: an empty final
            self._cursor = window[1]
            empty = self._message(window, [], 0.0, True, False, True)
            self.emit(lambda: [empty])

    def finish(self) -> None:
        self._flush(from_finalize=False)
        if self._pending_end is not None:  # the audio has ended, and with it the gap
            self._emit_utterance_end()
        self.emit(self._metadata)

    def on_audio(self, data: bytes) -> bool:
        if not data:  # doc silent: Deepgram's legacy end-of-stream signal
            self.record.audio_chunks += 1
            return True
        self._sha.update(data)
        return super().on_audio(data)

    def _metadata(self) -> list[Message]:
        return [
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self._request_id,
                "sha256": self._sha.hexdigest(),
                "created": self._created,
                "duration": round(self.audio_s, 3),
                "channels": 1,
            }
        ]

    def _results(
        self,
        segment: Segment,
        window: tuple[float, float],
        speech_final: bool,
        from_finalize: bool,
        transcription: Transcription,
    ) -> list[Message]:
        tokens = _tokens(transcription)
        if not segment.final and not tokens:
            return []
        confidence = transcription.confidence if transcription.confidence is not None else 1.0
        words: list[dict[str, Any]] = []
        for token, start, end in _spread(tokens, segment.start_s, segment.end_s):
            word: dict[str, Any] = {
                "word": _plain(token),
                "start": round(start, 3),
                "end": round(end, 3),
                "confidence": confidence,
            }
            if self._punctuated:
                word["punctuated_word"] = token
            words.append(word)
        if segment.final:
            self._last_final_had_words = bool(words)
        confidence = confidence if words else 0.0
        return [
            self._message(window, words, confidence, segment.final, speech_final, from_finalize)
        ]

    def _message(
        self,
        window: tuple[float, float],
        words: list[dict[str, Any]],
        confidence: float,
        final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> dict[str, Any]:
        key = "punctuated_word" if self._punctuated else "word"
        alternative = {
            "transcript": " ".join(w[key] for w in words),
            "confidence": confidence,
            "words": words,
        }
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(window[1] - window[0], 3),
            "start": round(window[0], 3),
            "is_final": final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [alternative]},
            "metadata": {
                "request_id": self._request_id,
                "model_info": {"name": self._model, "version": "fake", "arch": self._model},
            },
        }


class FakeDeepgram(FakeSpeechService):
    """`idle_timeout_s`: with no message (audio or text) for this long, close 1011 NET-0001."""

    path = "/v1/listen"
    _session_class = _DeepgramSession

    def __init__(
        self, engine: TranscriptionEngine, *, idle_timeout_s: float = 10.0, **options: Any
    ) -> None:
        super().__init__(engine, **options)
        self.idle_timeout_s = idle_timeout_s

    def error_body(self, status: int, message: str) -> str:
        return json.dumps({"err_code": HTTPStatus(status).phrase, "err_msg": message,
                           "request_id": str(uuid.uuid4())})  # fmt: skip

    def check_handshake(self, request: Request, query: dict[str, str]) -> tuple[int, str] | None:
        if request.headers.get_all("Authorization") != [f"Token {self.api_key}"]:
            body = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                    "request_id": str(uuid.uuid4())}  # fmt: skip
            return 401, json.dumps(body)
        error = _deepgram_query_error(query)
        return None if error is None else (400, self.error_body(400, error))


# ---------------------------------------------------------------------------------------------
# Running one


@asynccontextmanager
async def running_fake_assemblyai(
    engine: TranscriptionEngine, *, api_key: str, **options: Any
) -> AsyncIterator[FakeAssemblyAI]:
    """`options`: `FakeAssemblyAI`'s and `FakeSpeechService`'s keyword parameters."""
    fake = FakeAssemblyAI(engine, api_key=api_key, **options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@asynccontextmanager
async def running_fake_deepgram(
    engine: TranscriptionEngine, *, api_key: str, **options: Any
) -> AsyncIterator[FakeDeepgram]:
    """`options`: `FakeDeepgram`'s and `FakeSpeechService`'s keyword parameters."""
    fake = FakeDeepgram(engine, api_key=api_key, **options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


def _interval(value: str) -> int | None:
    return None if value.lower() == "none" else int(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.simulator.fake_stt",
        description="Run a fake AssemblyAI or Deepgram streaming server on 127.0.0.1; "
        "prints its URL once listening.",
    )
    parser.add_argument("--service", choices=("assemblyai", "deepgram"), required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--model", default="bundled:tiny.en", help="WhisperEngine model spec")
    parser.add_argument("--workers", type=int, default=2, help="concurrent decodes")
    parser.add_argument("--vad", choices=("energy", "webrtc"), default="energy")
    parser.add_argument("--partial-interval-ms", type=_interval, default=1000, help="or none")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from media.transcription.whisper import WhisperEngine  # heavy: only for the CLI

    engine = WhisperEngine(args.model, Path(".voxsouth/models"), workers=args.workers)
    detector: Callable[[], VoiceDetector] = (
        EnergyVoiceDetector if args.vad == "energy" else lambda: WebRtcVoiceDetector(2)
    )
    options: dict[str, Any] = {
        "api_key": args.api_key,
        "port": args.port,
        "partial_interval_ms": args.partial_interval_ms,
        "voice_detector": detector,
    }

    async def serve_until_signalled() -> None:
        running = running_fake_assemblyai if args.service == "assemblyai" else running_fake_deepgram
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with running(engine, **options) as fake:
            print(fake.url, flush=True)
            await stop.wait()

    asyncio.run(serve_until_signalled())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
