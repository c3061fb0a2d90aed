"""One media stream of one call: decode → VAD/endpointing per track, and the events it yields.

`CallSession` is synchronous and does no I/O: the websocket loop (media/server.py) feeds it
parsed messages and takes back utterances to transcribe and events to emit. Wall-clock time
enters only as the `now` argument, used to measure end-of-speech → text latency.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from media.codecs import Decoder, parse_format
from media.events import (
    DtmfReceived,
    StreamStarted,
    StreamStopped,
    Track,
    TrackStats,
    TranscriptSegment,
)
from media.protocol import Dtmf, Media, Start
from media.transcription.engine import Transcription
from media.vad import Endpointer, EndpointerConfig, Utterance, VoiceDetector

MAX_SILENCE_FILL_SAMPLES = 16_000
"""Gaps up to this (2 s at 8 kHz) are filled with silence and run through the VAD."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    l16_big_endian: bool = True


@dataclass(frozen=True, slots=True)
class UtteranceReady:
    """An utterance to transcribe, and when its last voiced frame arrived (monotonic)."""

    track: Track
    utterance: Utterance
    speech_ended_at: float


class TrackPipeline:
    """Decoder, re-chunker and endpointer of one track, with its audio accounting."""

    def __init__(self, decoder: Decoder, endpointer: Endpointer) -> None:
        self.decoder = decoder
        self.endpointer = endpointer
        self.frames_received = 0
        self.frames_lost = 0
        self.samples_lost = 0
        self.last_voiced_at = 0.0
        self._last_chunk: int | None = None
        self._pending = bytearray()

    def feed(self, chunk: int, payload: bytes, now: float) -> list[Utterance]:
        """Raises ValueError for a payload the decoder cannot take."""
        pcm = self.decoder.decode(payload)
        utterances: list[Utterance] = []
        # Chunks count from 1 per track; anything before the first one we see was lost too.
        last = self._last_chunk if self._last_chunk is not None else 0
        if chunk <= last:
            return utterances  # a repeated chunk: its audio is already in
        self.frames_received += 1
        if chunk > last + 1:
            gap = chunk - last - 1
            self.frames_lost += gap
            lost_samples = gap * len(pcm) // 2
            self.samples_lost += lost_samples
            utterances += self._fill_gap(lost_samples)
        self._last_chunk = chunk
        # Payload sizes are not fixed by the protocol: re-chunk into the VAD's 20 ms frames.
        self._pending += pcm
        size = self.endpointer.frame_bytes
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            if (u := self.endpointer.feed(frame)) is not None:
                utterances.append(u)
            if self.endpointer.last_frame_voiced:
                self.last_voiced_at = now
        return utterances

    def _fill_gap(self, lost_samples: int) -> list[Utterance]:
        """Lost audio counts as silence and keeps its place on the track's clock."""
        if lost_samples <= MAX_SILENCE_FILL_SAMPLES:
            self._pending += bytes(lost_samples * 2)
            return []
        # A long outage (or a forged chunk number): finish the partial frame with silence,
        # then move the clock without materialising the rest. Both steps may end an utterance
        # (the pad can complete a monologue cut, whose continuation the skip then ends).
        ended = []
        if self._pending:
            pad = self.endpointer.frame_bytes - len(self._pending)
            self._pending += bytes(pad)
            lost_samples -= pad // 2
            ended.append(self.endpointer.feed(bytes(self._pending)))
            self._pending.clear()
        ended.append(self.endpointer.skip(lost_samples))
        return [u for u in ended if u is not None]

    def stats(self, track: Track) -> TrackStats:
        return TrackStats(
            track=track,
            frames_received=self.frames_received,
            frames_lost=self.frames_lost,
            audio_lost_ms=self.samples_lost * 1000 // self.decoder.output_rate,
        )


class CallSession:
    def __init__(
        self,
        start: Start,
        *,
        org_id: uuid.UUID,
        call_id: uuid.UUID,
        config: SessionConfig,
        vad_factory: Callable[[], VoiceDetector],
    ) -> None:
        """Raises media.codecs.UnsupportedFormat for a media format it cannot decode."""
        self.start = start
        self.org_id = org_id
        self.call_id = call_id
        self._config = config
        self._vad_factory = vad_factory
        self._format = parse_format(
            start.encoding, start.sample_rate, l16_big_endian=config.l16_big_endian
        )
        self.tracks: dict[Track, TrackPipeline] = {}
        for track in start.tracks:
            self._pipeline(track)

    def _pipeline(self, track: Track) -> TrackPipeline:
        pipeline = self.tracks.get(track)
        if pipeline is None:
            decoder = Decoder(self._format)
            endpointer = Endpointer(
                self._config.endpointer, decoder.output_rate, self._vad_factory()
            )
            pipeline = self.tracks[track] = TrackPipeline(decoder, endpointer)
        return pipeline

    def started_event(self) -> StreamStarted:
        return StreamStarted(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=self.start.stream_sid,
            call_sid=self.start.call_sid,
            stream_name=self.start.custom_parameters.get("stream_name"),
            tracks=self.start.tracks,
            encoding=self._format.encoding,
            sample_rate=self._format.sample_rate,
        )

    def on_media(self, msg: Media, now: float) -> list[UtteranceReady]:
        """Raises ValueError for an undecodable payload."""
        pipeline = self._pipeline(msg.track)
        return [
            UtteranceReady(msg.track, u, pipeline.last_voiced_at)
            for u in pipeline.feed(msg.chunk, msg.payload, now)
        ]

    def on_dtmf(self, msg: Dtmf) -> DtmfReceived:
        return DtmfReceived(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=self.start.stream_sid,
            track=msg.track,
            digit=msg.digit,
            offset_ms=self._pipeline(msg.track).endpointer.clock_ms,
        )

    def finish(self) -> list[UtteranceReady]:
        """End of stream: the utterances still open on every track."""
        ready = []
        for track, pipeline in self.tracks.items():
            if (u := pipeline.endpointer.flush()) is not None:
                ready.append(UtteranceReady(track, u, pipeline.last_voiced_at))
        return ready

    def segment_event(
        self, ready: UtteranceReady, result: Transcription, engine: str
    ) -> TranscriptSegment:
        return TranscriptSegment(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=self.start.stream_sid,
            track=ready.track,
            start_ms=ready.utterance.start_ms,
            end_ms=ready.utterance.end_ms,
            text=result.text,
            confidence=result.confidence,
            is_final=True,
            engine=engine,
        )

    def stopped_event(self, reason: str, messages_lost: int) -> StreamStopped:
        return StreamStopped(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=self.start.stream_sid,
            reason=reason,
            tracks=tuple(p.stats(t) for t, p in self.tracks.items()),
            messages_lost=messages_lost,
        )
