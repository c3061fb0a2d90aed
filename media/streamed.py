"""Transcription by a cloud streaming service, for one media stream.

Each track has its own upstream session (`media.transcription.cloud.stream.StreamingTrack`),
fed every payload as it arrives. The service times its words on its own clock (audio since its
first byte); a gap in the stream moves the track's clock but not the service's, so every gap is
remembered and the service's times are shifted past it onto the call's clock.

Our own endpointing keeps running beside it: its utterances, with their audio, wait as
*uncovered* until a final of the service covers them. They are what the offline engine decodes
when the service fails (refused, closed mid-call, malformed, too slow to take audio), so no
words spoken before or after the failure are lost, and the track stays with the offline engine
for the rest of the stream. An utterance still uncovered `grace_s` after it ended is decoded
offline too: noise the service rightly ignored costs one decode, and a service that lets
`MAX_LATE` utterances in a row pass is dropped as too slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from media import metrics
from media.codecs import MULAW
from media.events import MediaEvent, Track, WordTiming
from media.session import CallSession, UtteranceReady
from media.transcription.cloud.results import Final, Partial, Result, ServiceError
from media.transcription.cloud.stream import SpeechProtocol, StreamingTrack
from media.transcription.engine import Transcription

log = logging.getLogger(__name__)

MAX_LATE = 3
"""Utterances in a row left uncovered past the grace before the service counts as too slow."""
FINALIZED_SLACK_MS = 500
"""Our endpointing ends an utterance up to its hangover after the last word the service timed:
an utterance ending this close after the service's latest final was heard by it already."""


@dataclass(frozen=True, slots=True)
class CloudEngine:
    """A configured cloud streaming service."""

    service: str
    """Metric label and the first part of `name`: `assemblyai` or `deepgram`."""
    name: str
    """Stored with every segment it transcribes, e.g. `assemblyai:universal-streaming-english`."""
    api_key: str = field(repr=False)
    protocol: Callable[[int, bool], SpeechProtocol]
    """A session's protocol for (sample rate, whether the audio is passed through as μ-law)."""
    connect_timeout_s: float = 5.0
    grace_s: float = 3.0
    end_timeout_s: float = 5.0


class ServiceCircuit:
    """Stops new streams trying a cloud service that keeps failing: after `failures` sessions
    in a row fail, streams go straight to the offline engine; every `reset_s` one stream tries
    the service again, and a session that delivers words closes the circuit.

    (control.signalwire has a breaker of the same kind for REST calls; media/ may not import
    it, see DESIGN.md.)"""

    def __init__(
        self,
        service: str,
        failures: int,
        reset_s: float,
        clock: Callable[[], float],
        *,
        gauge: bool = True,
    ) -> None:
        self._service = service
        self._gauge = gauge
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None

    def allow(self) -> bool:
        """Whether a new stream may try the service (the one trial, when open)."""
        if self._opened_at is None:
            return True
        if self._clock() - self._opened_at < self._reset_s:
            return False
        self._opened_at = self._clock()  # this stream is the trial; the next waits again
        return True

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        if self._gauge:
            metrics.CLOUD_CIRCUIT_OPEN.labels(self._service).set(0)

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold and self._opened_at is None:
            self._opened_at = self._clock()
            if self._gauge:
                metrics.CLOUD_CIRCUIT_OPEN.labels(self._service).set(1)


class ServiceClock:
    """Maps a service's times (audio it was sent) onto the track's clock (audio of the call,
    lost audio included)."""

    __slots__ = ("_rate", "_sent", "_shifts")

    def __init__(self, sample_rate: int, origin: int = 0) -> None:
        """`origin`: the track's clock (samples) when the service's audio begins."""
        self._rate = sample_rate
        self._sent = 0
        self._shifts: list[tuple[int, int]] = [(0, origin)]
        """(service sample, samples the track's clock is ahead from there): one per gap."""

    def sent(self, samples: int, lost_before: int) -> None:
        if lost_before:
            self._shifts.append((self._sent, self._shifts[-1][1] + lost_before))
        self._sent += samples

    def call_ms(self, service_ms: int) -> int:
        sample = service_ms * self._rate // 1000
        shift = next(s for at, s in reversed(self._shifts) if at <= sample)
        return (sample + shift) * 1000 // self._rate


class _Track:
    __slots__ = (
        "stream", "mulaw", "clock", "uncovered", "late", "stood_in_to", "heard", "partial_from",
        "finalized_to",
    )  # fmt: skip

    def __init__(self, stream: StreamingTrack, mulaw: bool, rate: int, origin: int) -> None:
        self.stream = stream
        self.mulaw = mulaw
        self.clock = ServiceClock(rate, origin)
        self.uncovered: list[UtteranceReady] = []
        self.late = 0
        self.stood_in_to = -1
        """End (ms) of the last utterance decoded offline in the service's place."""
        self.heard = False
        """The service has delivered words on this track (the circuit has been told)."""
        self.partial_from = 0
        """Where the words of the latest partial began, on the call's clock."""
        self.finalized_to = -1
        """End of the service's latest final, on the call's clock."""


class StreamedTranscription:
    def __init__(
        self,
        engine: CloudEngine,
        circuit: ServiceCircuit,
        *,
        emit: Callable[[list[MediaEvent]], None],
        offline: Callable[[CallSession, UtteranceReady], None],
        monotonic: Callable[[], float],
    ) -> None:
        """`offline` transcribes an utterance with the offline engine (or counts it skipped)."""
        self._engine = engine
        self._circuit = circuit
        self._emit = emit
        self._offline = offline
        self._monotonic = monotonic
        self._session: CallSession | None = None
        self._stream_sid = ""
        self._tracks: dict[Track, _Track] = {}
        self._finished = False

    def open(self, session: CallSession) -> None:
        """Opens one upstream session per track of the session's current stream."""
        self._session = session
        self._stream_sid = session.start.stream_sid
        if not self._circuit.allow():
            # The service keeps failing: this stream is the offline engine's from the start.
            for pipeline in session.tracks.values():
                pipeline.transcription_error = "circuit_open"
            metrics.CLOUD_ERRORS.labels(self._engine.service, "circuit_open").inc()
            return
        mulaw = session.start.encoding == MULAW
        for track, pipeline in session.tracks.items():
            rate = pipeline.decoder.output_rate
            protocol = self._engine.protocol(rate, mulaw)

            def on_result(result: Result, track: Track = track) -> None:
                self._on_result(track, result)

            stream = StreamingTrack(
                protocol,
                self._engine.api_key,
                on_result,
                connect_timeout_s=self._engine.connect_timeout_s,
            )
            origin = pipeline.endpointer.sample_clock  # a later stream starts into the call
            self._tracks[track] = _Track(stream, mulaw, rate, origin)
            stream.start()

    def audio(self, track: Track, payload: bytes, pcm: bytes, lost_samples: int) -> None:
        state = self._tracks.get(track)
        if state is None:
            return  # a track the stream's start did not name, or one given up
        state.clock.sent(len(pcm) // 2, lost_samples)
        state.stream.feed(payload if state.mulaw else pcm)

    def utterance(self, ready: UtteranceReady) -> None:
        """An utterance our endpointing found: the service's to cover, or the offline
        engine's once the service has failed on this track."""
        assert self._session is not None
        state = self._tracks.get(ready.track)
        if state is None:
            self._offline(self._session, ready)
            return
        if not ready.utterance.final:
            return  # the service streams its own partial text; early decodes are offline's
        if ready.utterance.end_ms <= state.finalized_to + FINALIZED_SLACK_MS:
            # The service finalized its words while we were still hearing it (it ends turns at
            # shorter pauses than our hangover): nothing is left for this utterance to await.
            self._emit(self._session.on_transcript_lost(ready, skipped=False))
            return
        state.uncovered.append(ready)
        asyncio.get_running_loop().call_later(self._engine.grace_s, self._check_late, ready.track)

    async def finish(self) -> None:
        """Asks every session for its last words; what they leave uncovered was heard as
        nothing, or goes to the offline engine where the session failed."""
        tracks = list(self._tracks.items())
        await asyncio.gather(*(s.stream.finish(self._engine.end_timeout_s) for _, s in tracks))
        self._finished = True
        session = self._session
        assert session is not None
        for _track, state in tracks:
            for ready in state.uncovered:
                self._emit(session.on_transcript_lost(ready, skipped=False))
            state.uncovered.clear()

    def _on_result(self, track: Track, result: Result) -> None:
        if isinstance(result, Final):
            self._final(track, result)
        elif isinstance(result, Partial):
            self._partial(track, result)
        elif isinstance(result, ServiceError):
            self._fail(track, result)

    def _partial(self, track: Track, partial: Partial) -> None:
        state, session = self._tracks.get(track), self._session
        if state is None or session is None:
            return
        start = end = state.partial_from
        if partial.words:
            start = state.partial_from = state.clock.call_ms(partial.words[0].start_ms)
            end = state.clock.call_ms(partial.words[-1].end_ms)
        self._emit(session.on_partial(track, start, end, partial.text))

    def _final(self, track: Track, final: Final) -> None:
        state, session = self._tracks.get(track), self._session
        if state is None or session is None:
            return
        start, end = state.clock.call_ms(final.start_ms), state.clock.call_ms(final.end_ms)
        state.finalized_to = max(state.finalized_to, end)
        covered = [r for r in state.uncovered if r.utterance.start_ms <= end]
        state.uncovered = [r for r in state.uncovered if r.utterance.start_ms > end]
        if not state.heard:
            state.heard = True
            self._circuit.succeeded()
        if not covered:
            if end <= state.stood_in_to:
                # Its utterances were decoded offline while the service lagged: stored once,
                # and the service is no less late for it.
                metrics.DROPPED_WORK.labels("cloud_final_after_standin").inc()
                return
        else:
            state.late = 0
            latency = self._monotonic() - covered[-1].speech_ended_at
            metrics.TRANSCRIPTION_LATENCY.observe(max(latency, 0.0))
        result = Transcription(final.text, final.confidence)
        clock = state.clock
        words = tuple(
            WordTiming(w.text, clock.call_ms(w.start_ms), clock.call_ms(w.end_ms), w.confidence)
            for w in final.words
        )
        self._emit(
            session.on_streamed_final(
                track, start, end, result, self._engine.name, words, self._stream_sid
            )
        )

    def _fail(self, track: Track, error: ServiceError) -> None:
        state, session = self._tracks.pop(track, None), self._session
        if state is None or session is None:
            return
        session.tracks[track].transcription_error = error.code  # on the stream's record
        metrics.CLOUD_ERRORS.labels(self._engine.service, error.code).inc()
        self._circuit.failed()
        log.warning(
            "%s session for %s track failed (%s: %s); the offline engine takes over",
            self._engine.service, track, error.code, error.message,
        )  # fmt: skip
        self._stand_in(session, state, state.uncovered, "failed")
        state.uncovered = []
        state.stream.abort()

    def _check_late(self, track: Track) -> None:
        state, session = self._tracks.get(track), self._session
        if self._finished or state is None or session is None:
            return
        due = self._monotonic() - self._engine.grace_s
        late = [r for r in state.uncovered if r.speech_ended_at <= due]
        if not late:
            return
        state.uncovered = [r for r in state.uncovered if r.speech_ended_at > due]
        self._stand_in(session, state, late, "late")
        state.late += len(late)
        if state.late >= MAX_LATE:
            self._fail(track, ServiceError("slow", f"{state.late} utterances uncovered", True))

    def _stand_in(
        self, session: CallSession, state: _Track, readies: Sequence[UtteranceReady], why: str
    ) -> None:
        for ready in readies:
            metrics.CLOUD_STANDINS.labels(self._engine.service, why).inc()
            state.stood_in_to = max(state.stood_in_to, ready.utterance.end_ms)
            self._offline(session, ready)
