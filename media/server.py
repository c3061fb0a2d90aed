"""The media websocket server: a thin loop around `StreamParser` and `CallSession`.

Per connection: wait (bounded) for `start`, admit it (its own budget: verify its token, look
the call up), then feed every message to the session. Utterances go to the transcription
service without waiting; events go to the sink, which must not block. Every way a stream can
end (stop, bad input, flood, a dropped socket, server shutdown) runs the same finish: open
utterances are transcribed (bounded wait), then `StreamStopped` is emitted last.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from media import metrics
from media.codecs import UnsupportedFormat
from media.events import (
    ConsentEvidence,
    ConsentVerdict,
    EscalationRaised,
    MediaEvent,
    Track,
    TranscriptSegment,
)
from media.media_socket import MediaSocket, StreamGone
from media.picows_server import PicowsServer
from media.protocol import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNSUPPORTED_DATA,
    Dtmf,
    FloodGuard,
    Media,
    Start,
    Stop,
    StreamProtocolError,
    UnknownEvent,
    call_in_path,
)
from media.session import CallPolicy, CallSession, DecodeRank, SessionConfig, UtteranceReady
from media.stream_connection import StreamConnection
from media.stream_decodes import StreamDecodes
from media.stream_token import StreamGrant, TokenError, verify_token
from media.streamed import CloudEngine, ServiceCircuit, StreamedTranscription
from media.transcription.engine import Transcription
from media.transcription.service import TranscriptionService
from media.vad import WebRtcVoiceDetector
from media.ws_server import WebSocketServer

log = logging.getLogger(__name__)

CallState: TypeAlias = Literal["active", "unknown", "ended"]


Hearing: TypeAlias = Literal["deployment", "offline"] | CloudEngine
"""What transcribes a call: the deployment's configured engine, the offline engine only (an org
that keeps audio on the premises), or a cloud service with the org's own key."""


@dataclass(frozen=True, slots=True)
class CallAdmission:
    state: CallState
    policy: CallPolicy = CallPolicy()
    hearing: Hearing = "deployment"
    call_began_at: float | None = None
    """When the call's first stream began (Unix time), if a stream of it was opened before:
    a stream resuming the call where no session of it is kept (another process, or after the
    grace) is placed on the call's clock by it."""
    call_heard_until: float | None = None
    """When the call's earlier streams, all ended, last heard it (Unix time), if known: a
    stream resuming the call where no session of it is kept counts the audio between then and
    its own start as lost (a process that died mid-call leaves this at its last heartbeat)."""
    stream_connections: Mapping[str, int] = field(default_factory=dict)
    """Connections opened so far by stream: the same stream reconnecting is the next one."""


CallGate: TypeAlias = Callable[[StreamGrant], Awaitable[CallAdmission]]
"""Looks the granted call up once per stream (the only database touch on the media path):
whether it is live, and its consent and escalation policy. Cancelled when the admission budget
runs out, it must return at once (not wait for its database work to clean up)."""


class EventSink(Protocol):
    """Takes events without blocking (storage's writer queues or journals them), in order;
    those of one call are written in one batch or consecutive ones."""

    def __call__(self, *events: MediaEvent) -> None: ...


_FRAME_SAMPLE_EVERY = 16


_SERVER_FAULTS = frozenset({"admission_timeout", "internal_error", "at_capacity", "loop_behind"})
"""Outcomes of streams refused before they opened that were the server's doing, counted under
their own name in `voxsouth_media_streams_total` (the rest count as `rejected`)."""


@dataclass(frozen=True, slots=True)
class MediaServerConfig:
    token_secret: bytes
    path: str = "/media"
    transport: Literal["picows", "websockets"] = "picows"
    """The library carrying the websockets (`bench.transports` compares them)."""
    session: SessionConfig = SessionConfig()
    vad_aggressiveness: int = 2
    max_message_bytes: int = 64 * 1024
    start_timeout_s: float = 10.0
    """From the connection to its `start` message: past it, a client fault (1008)."""
    admission_timeout_s: float = 4.0
    """From `start` to an admitted stream (token, call gate): past it, the server is behind
    (1013, try again later)."""
    finish_timeout_s: float = 10.0
    drain_timeout_s: float = 2.0
    """How long a call's new connection waits for the one that arrived before it to be
    attached, and for the messages that one received before its peer went to be read (beyond
    it, they are dropped as a superseded connection's)."""
    max_streams: int | None = None
    """New streams past this many open on this process are refused (1013); None: no limit."""
    resume_grace_s: float = 15.0
    """How long a call whose stream dropped keeps its clock and detectors for a stream that
    resumes it; its consent verdict waits as long (a disconnect is not the call's end)."""
    cloud_circuit_failures: int = 3
    """Cloud sessions failing in a row before new streams skip the service for a while."""
    cloud_circuit_reset_s: float = 30.0
    flood_rate_per_s: float = 500.0
    """Messages per second per stream; SignalWire sends 100 (two tracks of 50)."""
    flood_burst: float = 2_000.0


class _FrameCounter:
    """Adds a call's received frames to the Prometheus counter every few messages rather than
    on each one: its lock costs a tenth of a frame's whole processing. One per call, shared by
    its connections (they feed the same tracks), so that no frame is counted twice."""

    def __init__(self, session: CallSession) -> None:
        self._session = session
        self._reported: dict[Track, int] = {}

    def report(self) -> None:
        for track, pipeline in self._session.tracks.items():
            received = pipeline.frames_received
            if delta := received - self._reported.get(track, 0):
                metrics.FRAMES_RECEIVED.labels(track).inc(delta)
                self._reported[track] = received


class _LiveCall:
    """A call's session on this node, kept across its streams: the connection carrying it
    (None between a drop and a resume), when its first stream began (the call's clock), and
    what its admission found (a stream resuming the call needs no other)."""

    __slots__ = ("session", "frames", "current", "began_at", "expiry", "admission")

    def __init__(self, session: CallSession, began_at: float, admission: CallAdmission) -> None:
        self.session = session
        self.admission = admission
        self.frames = _FrameCounter(session)
        self.current: StreamConnection | None = None
        self.began_at = began_at
        self.expiry: asyncio.TimerHandle | None = None


def _circuit_key(cloud: CloudEngine) -> tuple[str, str]:
    return cloud.service, hashlib.sha256(cloud.api_key.encode()).hexdigest()


class MediaServer:
    def __init__(
        self,
        config: MediaServerConfig,
        *,
        transcriber: TranscriptionService | None,
        call_gate: CallGate,
        cloud: CloudEngine | None = None,
        sink: EventSink,
        loop_behind: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._transcriber = transcriber
        self._cloud = cloud
        self._circuits: dict[tuple[str, str], ServiceCircuit] = {}
        """One per service and key: an org's revoked key must not stop everyone's streams."""
        self._call_gate = call_gate
        self._sink = sink
        self._loop_behind = loop_behind
        """Whether the event loop runs late (media.loop_lag): new streams are refused then."""
        self._open_streams = 0
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._calls: dict[uuid.UUID, _LiveCall] = {}
        self._arrived: dict[uuid.UUID, StreamConnection] = {}
        """Each call's connection whose `start` arrived last, while it is open."""
        self._closing: set[asyncio.Task[None]] = set()
        """Superseded connections' closing handshakes (a reference keeps each task alive)."""
        self._shutting_down = False
        self._messages = 0
        """Messages processed, all streams: every `_FRAME_SAMPLE_EVERY`th is timed."""
        self._transport: WebSocketServer | PicowsServer | None = None

    def apply_consent(
        self, call_id: uuid.UUID, verdict: ConsentVerdict, *, by_person: bool
    ) -> None:
        """A consent verdict from outside the stream (an agent, the keypad flow, another
        node): the call's session on this node releases or drops what it holds."""
        if (live := self._calls.get(call_id)) is not None:
            self._emit(live.session.apply_consent(verdict, by_person=by_person))

    def apply_secure_mode(self, call_id: uuid.UUID, on: bool) -> None:
        """Secure mode turned on or off for a call (through the API, on any node): the call's
        session on this node stops or resumes hearing the caller's words and digits."""
        if (live := self._calls.get(call_id)) is not None:
            live.session.set_secure(on)

    def _emit(self, events: list[MediaEvent]) -> None:
        for event in events:
            if isinstance(event, EscalationRaised):
                metrics.ESCALATIONS_RAISED.labels(event.kind, event.severity).inc()
            elif isinstance(event, ConsentEvidence):
                metrics.CONSENT_FINDINGS.labels(event.detector, event.verdict or "none").inc()
            elif isinstance(event, TranscriptSegment):
                for kind in event.redacted:
                    metrics.REDACTIONS.labels(kind).inc()
        if events:
            self._sink(*events)

    @property
    def open_streams(self) -> int:
        return self._open_streams

    def begin_shutdown(self) -> None:
        """Streams closed from now on are recorded as `server_shutdown`, not `disconnected`,
        and calls waiting for a stream to resume them are closed now."""
        self._shutting_down = True
        for call_id, live in list(self._calls.items()):
            # Waiting for a resume (its grace timer runs). Not a call whose stream is still
            # finishing (its last decodes awaited) or being admitted: that stream closes the
            # call when it ends, after its last segments and its StreamStopped.
            if live.current is None and live.expiry is not None:
                self._close_call(call_id)

    def serve(self, sock: socket.socket | None) -> AbstractAsyncContextManager[object]:
        """The websocket server (use as an async context) on an already bound socket, or,
        with None, on connections another process accepts and hands over (`adopt`). On exit
        it closes every open stream (1001) and waits for each to be finished."""
        if self.config.transport == "picows":
            picows = PicowsServer(
                self.handle,
                sock=sock,
                accepts=self._accepts,
                max_size=self.config.max_message_bytes,
            )
            self._transport = picows
            return picows
        websockets = WebSocketServer(
            self.handle,
            sock=sock,
            accepts=self._accepts,
            max_size=self.config.max_message_bytes,
        )
        self._transport = websockets
        return websockets.server

    def adopt(self, sock: socket.socket) -> None:
        """A connection accepted by another process (`serve --workers N`'s parent), its request
        not yet read: served as if accepted here."""
        if self._transport is None:
            sock.close()
            return
        self._transport.adopt(sock)

    def _accepts(self, path: str) -> bool:
        """Whether a websocket request for `path` is for the media plane (else 404)."""
        path = path.split("?", 1)[0]
        if call_in_path(path) is not None:
            path = path.rstrip("/").rsplit("/", 1)[0]  # the call's own URL (call_in_path)
        if path != self.config.path:
            metrics.STREAM_ERRORS.labels("bad_path").inc()
            return False
        return True

    async def handle(self, ws: MediaSocket) -> None:
        conn = StreamConnection(
            ws, FloodGuard(self.config.flood_rate_per_s, self.config.flood_burst)
        )
        ws.receiver = lambda data, text: self._arrive(conn, data, text)
        ws.on_lost = lambda: self._lost(conn)
        outcome, counted = "unknown", False
        close: tuple[int, str] | None = None
        try:
            try:
                start = await self._await_start(conn)
                conn.started_at = self._monotonic()
                outcome = await self._stream(await self._open(start, conn), conn)
                if outcome == "stop":
                    close = (CLOSE_NORMAL, "stream stopped")
            except StreamProtocolError as exc:
                outcome, close = exc.kind, (exc.close_code, exc.reason)
                metrics.STREAM_ERRORS.labels(exc.kind).inc()
            except StreamGone:
                outcome = self._gone(conn)
            except Exception:
                outcome, close = "internal_error", (CLOSE_INTERNAL_ERROR, "internal error")
                log.exception("media stream failed")
                metrics.STREAM_ERRORS.labels(outcome).inc()
            # Counted before the close frame goes: whoever sees the stream closed can see it
            # counted (the metrics are read on another thread than this loop's).
            self._count(conn, outcome)
            counted = True
            if close is not None:
                await ws.close(*close)
        finally:
            conn.end(outcome)  # messages from now on are dropped
            conn.ended.exception()  # an error it holds was reported above, or is moot
            conn.inbox.clear()
            if not counted:
                self._count(conn, outcome)
            conn.attached.set()  # if it never was: the next connection of the call goes on
            conn.read.set()
            conn.earlier = None
            if conn.call_id is not None and self._arrived.get(conn.call_id) is conn:
                del self._arrived[conn.call_id]
            if conn.session is not None:
                await self._finish(conn.session, conn, outcome)

    @staticmethod
    def _count(conn: StreamConnection, outcome: str) -> None:
        # A stream never opened was the client's fault unless the server said otherwise.
        opened = conn.session is not None or outcome in _SERVER_FAULTS
        metrics.STREAMS_TOTAL.labels(outcome if opened else "rejected").inc()

    def _arrive(self, conn: StreamConnection, data: bytes, text: bool) -> None:
        """A message read off `conn`'s socket (in the transport's `data_received`)."""
        if conn.ended.done():
            return  # the stream has ended: what its peer still sends is not read
        now = self._monotonic()
        if not conn.guard.allow(now):
            conn.end(
                StreamProtocolError(
                    "flood", "messages faster than real time", CLOSE_POLICY_VIOLATION
                )
            )
        elif conn.streaming:
            self._process(conn, data, text, now)
        else:
            conn.inbox.append((data, text, now))
            conn.arrived.set()

    def _lost(self, conn: StreamConnection) -> None:
        """`conn`'s socket has closed: nothing more will be read from it. What it read before
        is still processed."""
        conn.closed = True
        if conn.streaming:
            conn.end(self._gone(conn))
        conn.arrived.set()

    async def _await_start(self, conn: StreamConnection) -> Start:
        """The stream's `start`, within the start budget: only the client's part is timed."""
        try:
            async with asyncio.timeout(self.config.start_timeout_s):
                while True:
                    data, text, _ = await conn.next_message()
                    msg = conn.parser.receive_text(data) if text else conn.parser.receive(data)
                    if isinstance(msg, Start):
                        return msg
                    if isinstance(msg, UnknownEvent):
                        metrics.STREAM_ERRORS.labels("unknown_event").inc()
        except TimeoutError:
            raise StreamProtocolError(
                "start_timeout", "no start message in time", CLOSE_POLICY_VIOLATION
            ) from None

    async def _stream(self, session: CallSession, conn: StreamConnection) -> str:
        """Processes what arrived while the stream was admitted, then every message as it is
        read, until the stream ends: its outcome."""
        frames = self._calls[session.call_id].frames
        try:
            while conn.inbox and not conn.ended.done():
                self._process(conn, *conn.inbox.popleft())
            conn.streaming = True
            if conn.closed:
                conn.end(self._gone(conn))
            return await conn.ended
        finally:
            frames.report()
            conn.read.set()

    def _process(self, conn: StreamConnection, data: bytes, text: bool, now: float) -> None:
        """One message of an admitted stream, read at `now`; ends the stream on `stop`, on
        bad input or once a newer connection has taken its call."""
        session = conn.session
        assert session is not None
        if conn.superseded is not None:
            conn.end(self._gone(conn))  # the call is another connection's now
            return
        parser = conn.parser
        self._messages += 1
        sample = self._messages % _FRAME_SAMPLE_EVERY == 0
        started = time.perf_counter() if sample else 0.0
        try:
            msg = parser.receive_text(data) if text else parser.receive(data)
            if isinstance(msg, Media):
                try:
                    ready = session.on_media(msg, now)
                except ValueError:
                    raise StreamProtocolError("bad_payload", "undecodable media payload") from None
                for item in ready:
                    self._transcribe(session, item, conn.decodes)
                if session.outbox:
                    self._emit(session.outbox)
                    session.outbox.clear()
                if sample:
                    metrics.FRAME_SECONDS.observe(time.perf_counter() - started)
                    self._calls[session.call_id].frames.report()
            elif isinstance(msg, Dtmf):
                self._emit(session.on_dtmf(msg))
            elif isinstance(msg, Stop):
                conn.end("stop")
            elif isinstance(msg, UnknownEvent):
                metrics.STREAM_ERRORS.labels("unknown_event").inc()
        except Exception as exc:  # noqa: BLE001 (handle() reports it, as it ends the stream)
            conn.end(exc)

    def _gone(self, conn: StreamConnection) -> str:
        if conn.superseded is not None:
            return "superseded"
        return "server_shutdown" if self._shutting_down else "disconnected"

    async def _admit(
        self, start: Start, named: uuid.UUID | None, conn: StreamConnection
    ) -> tuple[StreamGrant, CallAdmission]:
        """The stream's grant and its live call's admission, within the admission budget.
        `named`: the call its URL names, if it does (it must be the token's). `conn` takes its
        place among the call's connections in the order their `start` arrived."""
        try:
            async with asyncio.timeout(self.config.admission_timeout_s):
                grant = self._verify(start)
                if named is not None and named != grant.call_id:
                    raise StreamProtocolError(
                        "url_call_mismatch", "stream URL names another call", CLOSE_POLICY_VIOLATION
                    )
                conn.call_id = grant.call_id
                conn.earlier = self._arrived.get(grant.call_id)
                self._arrived[grant.call_id] = conn
                if (live := self._calls.get(grant.call_id)) is not None:
                    # No lookup: connections of a call are then taken in the order their
                    # `start` arrived (an admission awaited would let a later one pass).
                    return grant, live.admission
                self._check_capacity(grant)
                admission = await self._call_gate(grant)
        except TimeoutError:
            raise StreamProtocolError(
                "admission_timeout", "server busy, try again later", CLOSE_TRY_AGAIN_LATER
            ) from None
        if admission.state != "active":
            state = admission.state
            raise StreamProtocolError(f"call_{state}", f"call is {state}", CLOSE_POLICY_VIOLATION)
        return grant, admission

    def _check_capacity(self, grant: StreamGrant) -> None:
        """Refuses a new stream (1013: the call goes on, the platform may try again) when this
        process already carries its limit of streams or its loop runs late, before any
        database work, so that the streams already running keep real time. (A stream resuming
        a call this process holds is let in before: it replaces one that dropped.)"""
        limit = self.config.max_streams
        if limit is not None and self._open_streams >= limit:
            raise StreamProtocolError(
                "at_capacity",
                f"server at capacity ({limit} streams), try again later",
                CLOSE_TRY_AGAIN_LATER,
            )
        if self._loop_behind():
            raise StreamProtocolError(
                "loop_behind", "server running behind, try again later", CLOSE_TRY_AGAIN_LATER
            )

    def _verify(self, start: Start) -> StreamGrant:
        token = start.custom_parameters.get("token", "")
        try:
            return verify_token(
                self.config.token_secret, token, call_sid=start.call_sid, now=self._wall_clock()
            )
        except TokenError as exc:
            raise StreamProtocolError(
                f"token_{exc.reason}",
                f"stream token rejected: {exc.reason}",
                CLOSE_POLICY_VIOLATION,
            ) from None

    async def _open(self, start: Start, conn: StreamConnection) -> CallSession:
        named = call_in_path(conn.ws.path)
        grant, admission = await self._admit(start, named, conn)
        await self._after_earlier(conn)
        session = self._attach(start, grant, admission, conn)
        conn.attached.set()
        decodes = conn.decodes
        hearing = admission.hearing
        cloud = self._cloud if hearing == "deployment" else hearing
        if isinstance(cloud, CloudEngine):
            decodes.streamed = StreamedTranscription(
                cloud,
                self._circuit(cloud),
                emit=self._emit,
                offline=lambda s, ready: self._transcribe_offline(s, ready, decodes),
                monotonic=self._monotonic,
            )
            decodes.streamed.open(session)
        session.set_audio_sink(decodes.streamed.audio if decodes.streamed is not None else None)
        self._sink(session.started_event())
        return session

    async def _after_earlier(self, conn: StreamConnection) -> None:
        """Waits (bounded) until the call's connection that arrived before `conn` has been
        attached, and, if its peer has gone (closed, reset) while what it delivered is still
        being read, until that is read: its audio is older than this one's, not superseded."""
        earlier, conn.earlier = conn.earlier, None
        if earlier is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.drain_timeout_s):
                await earlier.attached.wait()
                if earlier.session is not None and not earlier.ws.open:
                    await earlier.read.wait()

    def _attach(
        self, start: Start, grant: StreamGrant, admission: CallAdmission, conn: StreamConnection
    ) -> CallSession:
        """The call's session, carried by `conn` from now: a new one for the call's first
        stream on this node, or the one a dropped (or silently cut) stream left, resumed on
        the call's clock."""
        session = self._session_for(start, grant, admission, conn)
        self._calls[grant.call_id].current = conn
        conn.session = session
        self._open_streams += 1
        metrics.STREAMS_ACTIVE.inc()
        self._count_calls()
        return session

    def _session_for(
        self, start: Start, grant: StreamGrant, admission: CallAdmission, conn: StreamConnection
    ) -> CallSession:
        # Streams are placed on the call's clock by when their `start` arrived: the admission
        # in between (a database lookup) takes its own, varying, time.
        now = conn.started_at
        try:
            live = self._calls.get(grant.call_id)
            if live is None:
                offset_ms = lost_ms = 0
                if (began := admission.call_began_at) is not None:
                    arrived = self._wall_clock() - (self._monotonic() - now)
                    offset_ms = max(0, round((arrived - began) * 1000))
                    if (heard := admission.call_heard_until) is not None:
                        lost_ms = max(0, offset_ms - round((heard - began) * 1000))
                session = CallSession(
                    start,
                    org_id=grant.org_id,
                    call_id=grant.call_id,
                    config=self.config.session,
                    vad_factory=lambda: WebRtcVoiceDetector(self.config.vad_aggressiveness),
                    policy=admission.policy,
                    offset_ms=offset_ms,
                    connection=admission.stream_connections.get(start.stream_sid, 0) + 1,
                    resumed=began is not None,
                    lost_ms=lost_ms,
                )
                self._calls[grant.call_id] = _LiveCall(session, now - offset_ms / 1000, admission)
                return session
            if live.current is not None:
                if live.current.started_at > conn.started_at:
                    # Admitted after a newer connection of the call: that one is live.
                    raise StreamProtocolError(
                        "superseded", "superseded by a new connection", CLOSE_NORMAL
                    )
                self._supersede(live.current, live.session)
            live.session.resume(start, round((now - live.began_at) * 1000))
        except UnsupportedFormat as exc:
            raise StreamProtocolError(
                "unsupported_format", str(exc), CLOSE_UNSUPPORTED_DATA
            ) from None
        if live.expiry is not None:
            live.expiry.cancel()
            live.expiry = None
        metrics.STREAMS_RESUMED.inc()
        return live.session

    def _supersede(self, old: StreamConnection, session: CallSession) -> None:
        """A new connection of the call arrived while an older one is still open (it was cut
        without either side noticing yet): the older one's open utterances are finished now,
        its loop stops at its next message, and its socket is closed."""
        old.superseded = session.stopped_event("superseded", old.parser.messages_lost)
        for ready in session.finish():
            self._transcribe(session, ready, old.decodes)
        task = asyncio.create_task(old.ws.close(CLOSE_NORMAL, "superseded by a new connection"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _count_calls(self) -> None:
        metrics.CALLS_ACTIVE.set(sum(live.current is not None for live in self._calls.values()))

    def _circuit(self, cloud: CloudEngine) -> ServiceCircuit:
        key = _circuit_key(cloud)
        if (circuit := self._circuits.get(key)) is None:
            circuit = self._circuits[key] = ServiceCircuit(
                cloud.service,
                self.config.cloud_circuit_failures,
                self.config.cloud_circuit_reset_s,
                self._monotonic,
                # The gauge says whether the deployment's service is skipped; an org's own key
                # failing shows in that org's streams' records and the session error counts.
                gauge=self._cloud is not None and key == _circuit_key(self._cloud),
            )
        return circuit

    def _transcribe(
        self,
        session: CallSession,
        ready: UtteranceReady,
        decodes: StreamDecodes,
    ) -> None:
        if decodes.streamed is not None:
            decodes.streamed.utterance(ready)  # the offline path only where the service failed
        else:
            self._transcribe_offline(session, ready, decodes)

    def _transcribe_offline(
        self,
        session: CallSession,
        ready: UtteranceReady,
        decodes: StreamDecodes,
    ) -> None:
        utterance = ready.utterance
        if self._transcriber is None:
            if utterance.final:
                # Nothing will be heard of it: by configuration, or (a cloud service's stand-in
                # with no offline engine to stand in) skipped.
                self._lose(session, ready, skipped=decodes.streamed is not None)
            return
        if utterance.kind == "early":
            # Only with a worker to spare: under load an early decode would delay real ones.
            early = self._transcriber.submit_if_idle(utterance.pcm, utterance.sample_rate)
            decodes.hold_early(ready.track, utterance, early)
            return
        if utterance.kind == "partial":
            self._decode_partial(session, ready, decodes)
            return
        metrics.UTTERANCES.labels(ready.track).inc()
        engine = self._transcriber.engine.name
        future = decodes.take_early(ready.track, utterance) or self._transcriber.submit(
            utterance.pcm,
            utterance.sample_rate,
            session.decode_rank(ready.track, utterance.start_ms),
        )
        pending = decodes.pending
        pending[future] = ready

        def deliver(f: asyncio.Future[Transcription | None]) -> None:
            pending.pop(f, None)
            if f.cancelled():
                return  # given up at stream end (and counted there)
            if (result := f.result()) is None or not result.text:
                self._lose(session, ready, skipped=result is None)
                return
            metrics.TRANSCRIPTION_LATENCY.observe(self._monotonic() - ready.speech_ended_at)
            self._emit(session.on_transcript(ready, result, engine))

        future.add_done_callback(deliver)

    def _lose(self, session: CallSession, ready: UtteranceReady, *, skipped: bool) -> None:
        """An utterance that will not be transcribed; if `skipped`, counted by what its words
        were for (asked before the consent detector stops waiting for them)."""
        if skipped:
            rank = DecodeRank(session.decode_rank(ready.track, ready.utterance.start_ms)())
            metrics.TRANSCRIPTION_SKIPPED.labels(rank.name.lower()).inc()
        self._emit(session.on_transcript_lost(ready, skipped=skipped))

    def _decode_partial(
        self, session: CallSession, ready: UtteranceReady, decodes: StreamDecodes
    ) -> None:
        """The words so far of an utterance still being spoken, decoded only while the workers
        have headroom (`TranscriptionService.submit_if_spare`); shown unless something newer of
        the track (a partial, the final) came first."""
        assert self._transcriber is not None
        utterance, track = ready.utterance, ready.track
        future = self._transcriber.submit_if_spare(utterance.pcm, utterance.sample_rate)
        metrics.OFFLINE_PARTIALS_ACTIVE.set(future is not None)
        if future is None:
            metrics.OFFLINE_PARTIALS.labels("shed").inc()
            return
        decodes.partials_asked[track] += 1
        asked = decodes.partials_asked[track]

        def show(f: asyncio.Future[Transcription | None]) -> None:
            if f.cancelled() or (result := f.result()) is None or not result.text:
                return  # nothing heard yet: the words so far are not withdrawn for that
            if (
                asked != decodes.partials_asked[track]
                or decodes.final_pending(track)
                or session.tracks[track].endpointer.open_start_ms != utterance.start_ms
            ):
                metrics.OFFLINE_PARTIALS.labels("stale").inc()
                return
            metrics.OFFLINE_PARTIALS.labels("shown").inc()
            self._emit(session.on_partial(track, utterance.start_ms, utterance.end_ms, result.text))

        future.add_done_callback(show)

    async def _finish(
        self,
        session: CallSession,
        conn: StreamConnection,
        outcome: str,
    ) -> None:
        decodes = conn.decodes
        live = self._calls[session.call_id]
        carrier = session.carrier
        self._open_streams -= 1
        metrics.STREAMS_ACTIVE.dec()
        if conn.superseded is None:  # a superseded connection was finished when it was cut
            live.current = None
            self._count_calls()
            for ready in session.finish():
                self._transcribe(session, ready, decodes)
        # This connection's record as it ends; kept should another take the call over while
        # its last words are transcribed below.
        messages_lost = conn.parser.messages_lost
        stopped = conn.superseded or session.stopped_event(outcome, messages_lost)
        if decodes.streamed is not None:
            await decodes.streamed.finish()  # its stand-ins join `pending` below
        decodes.void_early()
        if pending := decodes.pending:
            # Bounded wait: a stream's segments must be emitted before its StreamStopped, and
            # whatever is still late after the timeout is given up (and counted) instead.
            _done, late = await asyncio.wait(set(pending), timeout=self.config.finish_timeout_s)
            for future in late:
                self._lose(session, pending.pop(future), skipped=True)
                future.cancel()
                metrics.DROPPED_WORK.labels("transcription_after_stream_end").inc()
        # Another connection may have resumed the call meanwhile (and even ended): then the
        # call is that one's to settle and close.
        resumed = conn.superseded is not None or session.carrier != carrier
        if resumed:
            stopped = session.recount_skipped(stopped)  # its decodes skipped meanwhile
        else:
            stopped = session.stopped_event(outcome, messages_lost)
            if outcome != "disconnected":
                # The stream ended for good (or for a fault of its own): consent is decided on
                # what was heard. After a drop it waits for a stream to resume the call.
                self._emit(session.settle())
        for track_stats in stopped.tracks:
            metrics.FRAMES_LOST.labels(track_stats.track).inc(track_stats.frames_lost)
            metrics.AUDIO_LOST.labels(track_stats.track).inc(track_stats.audio_lost_ms / 1000)
        self._sink(stopped)
        if resumed:
            return
        if self._shutting_down:
            self._close_call(session.call_id)
        else:
            live.expiry = asyncio.get_running_loop().call_later(
                self.config.resume_grace_s, self._close_call, session.call_id
            )

    def _close_call(self, call_id: uuid.UUID) -> None:
        """No stream resumed the call in time (or the server is stopping): what is left to
        decide is decided, and content still held for consent is dropped."""
        live = self._calls.pop(call_id)
        if live.expiry is not None:
            live.expiry.cancel()
        self._emit(live.session.close())
        metrics.HELD_DROPPED.inc(live.session.held_dropped)


__all__ = [
    "CallAdmission",
    "CallGate",
    "CallState",
    "EventSink",
    "MediaServer",
    "MediaServerConfig",
]
