"""One media stream of one call: decode → VAD/endpointing per track → detectors, and the events
it yields.

`CallSession` is synchronous and does no I/O: the websocket loop (media/server.py) feeds it
parsed messages and transcripts and takes back utterances to transcribe and events to emit.
Wall-clock time enters only as the `now` argument, used to measure end-of-speech → text latency.

Detectors run here: the escalation rules on every 20 ms frame (acoustic), every transcript and
every digit, and consent on transcripts and digits. Where the call's policy says all-party
consent is still missing, its transcript segments and digits are held in memory: written once
consent is given, dropped on refusal or when the stream ends without it.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Literal, TypeAlias

from media.codecs import MULAW, Decoder, UnsupportedFormat, level_dbfs, parse_format
from media.detectors.consent import ConsentFinding, ConsentTracker, PlayedDisclosure
from media.detectors.rules import Fired, Rule, RuleEngine
from media.events import (
    RESTARTED_AFTER,
    ConsentEvidence,
    ConsentVerdict,
    DtmfReceived,
    EscalationRaised,
    MediaEvent,
    StreamStarted,
    StreamStopped,
    Track,
    TrackStats,
    TranscriptPartial,
    TranscriptSegment,
    WordTiming,
)
from media.protocol import Dtmf, Media, Start
from media.redaction import KINDS as REDACTED_KINDS
from media.redaction import Kind as RedactedKind
from media.redaction import Redacted, redact
from media.transcription.engine import Transcription
from media.vad import Endpointer, EndpointerConfig, Utterance, VoiceDetector

MAX_SILENCE_FILL_SAMPLES = 16_000
"""Gaps up to this (2 s at 8 kHz) are filled with silence and run through the VAD."""
REDACTION_CONTEXT_MS = 15_000
"""A final this recent (its end before the next one's start) may name what a number in the next
is ("what's the security code?"), or have begun a number the next goes on with."""
OVERLAP_MS = 1_000
"""How far an answer's start may precede the end of the turn it answers (endpointing pads)."""
MAX_HELD_EVENTS = 5_000
"""Held events beyond this (hours of talk without consent) drop the oldest."""

FrameObserver: TypeAlias = Callable[[int, bool, bytes], None]
AudioSink: TypeAlias = Callable[[bytes, bytes, int], None]
"""Each new payload of a track, as received and as 16-bit PCM, and the samples lost just before
it (a gap in chunk numbering): what a streaming transcription service is sent."""
StreamAudioSink: TypeAlias = Callable[[Track, bytes, bytes, int], None]
"""(track clock at the frame's end in ms, voiced, the 20 ms frame of 16-bit PCM)."""
SecureWords: TypeAlias = Literal["suspend", "redact"]
"""What secure mode does to the caller's words: not transcribed at all (no audio reaches a
transcription service), or transcribed and wholly replaced by `SECURE_TEXT`."""
SECURE_TEXT = "[secure]"
CALLER: Track = "inbound"
"""The track secure mode silences: the other party's, who reads out the card."""
_NO_UTTERANCES: tuple[UtteranceReady, ...] = ()
"""What `on_media` returns for almost every frame: nothing, and nothing allocated."""
_REASON = re.compile(r"[a-z_]{1,32}")


def restart_reason(parameters: Mapping[str, str]) -> str | None:
    """Why the stream was restarted, as its start parameters say; None for a stream the call's
    LaML started, or a value that is not a short lower-case word (only its token is signed, so
    the rest is taken as a label and no more)."""
    reason = parameters.get(RESTARTED_AFTER)
    return reason if reason is not None and _REASON.fullmatch(reason) else None


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What the control plane decided for the call, looked up once when its stream opens."""

    rules: tuple[Rule, ...] = ()
    hold_until_consent: bool = False
    """All-party consent is required: persist nothing of the call's content until given."""
    consent: ConsentVerdict | None = None
    """Already decided when the stream opens."""
    consent_by_person: bool = False
    """`consent` was verified by a person: no detector may change it."""
    played_disclosure: PlayedDisclosure = "none"
    """What the platform played before the stream: nothing, a notice, or a request answered
    by voice or keypad (1 accepts, 2 declines)."""
    implied_by_notice: bool = False
    """The org takes a notice as consent, and the call's jurisdiction allows that."""
    consent_window_ms: int = 30_000
    redact: frozenset[RedactedKind] = REDACTED_KINDS
    """What is redacted from every final and partial text before it leaves the session."""
    secure: bool = False
    """The call is in secure mode (payments) when the stream opens."""
    secure_words: SecureWords = "suspend"
    fired: tuple[tuple[str, int], ...] = ()
    """Escalation rules already fired on the call, each with where on the call's clock (ms) it
    last did: a stream resuming the call elsewhere keeps their cooldowns, so a restart does
    not raise the same alert again."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    l16_big_endian: bool = True
    server_id: uuid.UUID | None = None
    """This server process's id, put in StreamStarted: its registration is what keeps the
    stream's row open, and its absence what closes it should the process die."""


class DecodeRank(IntEnum):
    """What an utterance's words are for, most important first: when transcription cannot
    keep up, the worst-ranked are skipped."""

    CONSENT = 0
    """A turn that may decide consent (`ConsentTracker.bears_on_consent`): a caller's answer
    inside an open request's window, the agent's words before it, and the agent's turns in the
    call's opening before any request is heard."""
    CONVERSATION = 1
    """Any other caller turn (phrase rules), and the agent's while consent is undecided."""
    AGENT_AFTER = 2
    """The agent's turns once consent is decided: transcript only."""


@dataclass(frozen=True, slots=True)
class UtteranceReady:
    """An utterance to transcribe (or, if early or partial, to decode ahead: see
    `media.vad.UtteranceKind`), when its last voiced frame arrived (monotonic), and the stream
    that carried it (its segment names that stream, though another may have taken over)."""

    track: Track
    utterance: Utterance
    speech_ended_at: float
    stream_sid: str
    connection: int
    """Which connection of `stream_sid` heard it (its skip counts on that one's record)."""


class TrackPipeline:
    """Decoder, re-chunker and endpointer of one track, with its audio accounting."""

    def __init__(
        self,
        decoder: Decoder,
        endpointer: Endpointer,
        observer: FrameObserver | None = None,
    ) -> None:
        self.decoder = decoder
        self.endpointer = endpointer
        self._observer = observer
        self.sink: AudioSink | None = None
        """Where each payload goes besides the endpointer (a streaming service)."""
        self.frames_received = 0
        self.frames_lost = 0
        self.samples_lost = 0
        self.transcription_error: str | None = None
        """Why a cloud service stopped transcribing this track (the offline engine went on)."""
        self.last_voiced_at = 0.0
        self._last_chunk: int | None = None
        self._pending = bytearray()
        self._stream_base = (0, 0, 0)
        """The counters above when the current stream took over: its record counts from there."""

    def feed(self, chunk: int, payload: bytes, now: float) -> list[Utterance]:
        """Raises ValueError for a payload the decoder cannot take."""
        pcm = self.decoder.decode(payload)
        utterances: list[Utterance] = []
        # Chunks count from 1 per track; anything before the first one we see was lost too.
        last = self._last_chunk if self._last_chunk is not None else 0
        if chunk <= last:
            return utterances  # a repeated chunk: its audio is already in
        self.frames_received += 1
        lost_samples = 0
        if chunk > last + 1:
            gap = chunk - last - 1
            self.frames_lost += gap
            lost_samples = gap * len(pcm) // 2
            self.samples_lost += lost_samples
            utterances += self._fill_gap(lost_samples)
        self._last_chunk = chunk
        if self.sink is not None:
            self.sink(payload, pcm, lost_samples)
        size = self.endpointer.frame_bytes
        if not self._pending and len(pcm) == size:
            self._frame(pcm, now, utterances)  # the usual payload: one whole 20 ms frame
            return utterances
        # Payload sizes are not fixed by the protocol: re-chunk into the VAD's 20 ms frames.
        self._pending += pcm
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            self._frame(frame, now, utterances)
        return utterances

    def _frame(self, frame: bytes, now: float, utterances: list[Utterance]) -> None:
        endpointer = self.endpointer
        if (u := endpointer.feed(frame)) is not None:
            utterances.append(u)
        voiced = endpointer.last_frame_voiced
        if voiced:
            self.last_voiced_at = now
        if self._observer is not None:
            self._observer(endpointer.clock_ms, voiced, frame)

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

    def lose_before(self, lost_ms: int) -> None:
        """`lost_ms` of the track, before the current stream began, were heard on no stream:
        counted on this stream's record, as `take_over` counts a gap on the same node."""
        if lost_ms > 0:
            self.samples_lost += lost_ms * self.decoder.output_rate // 1000

    def take_over(self, decoder: Decoder, *, new_stream: bool, at_sample: int) -> None:
        """Another connection carries this track from here. A new stream numbers its chunks
        from 1 again and its audio begins at `at_sample` on the track's clock: the audio in
        between (not heard on any stream) is lost, once. The same stream reconnecting goes on
        numbering its chunks, so its gap shows in them as any other gap does. The previous
        connection's utterance was finished with it (`CallSession.finish`)."""
        self.decoder = decoder
        self._pending.clear()
        self._stream_base = (self.frames_received, self.frames_lost, self.samples_lost)
        self.transcription_error = None
        if new_stream:
            self._last_chunk = None
            if (lost := at_sample - self.endpointer.sample_clock) > 0:
                self.samples_lost += lost  # on the new stream's record: where it shows
                self.endpointer.skip(lost)

    def stats(self, track: Track, utterances_skipped: int) -> TrackStats:
        """The current stream's accounting (from when it took the track over)."""
        frames, frames_lost, samples_lost = self._stream_base
        return TrackStats(
            track=track,
            frames_received=self.frames_received - frames,
            frames_lost=self.frames_lost - frames_lost,
            audio_lost_ms=(self.samples_lost - samples_lost) * 1000 // self.decoder.output_rate,
            utterances_skipped=utterances_skipped,
            transcription_error=self.transcription_error,
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
        policy: CallPolicy = CallPolicy(),
        offset_ms: int = 0,
        connection: int = 1,
        resumed: bool = False,
        lost_ms: int = 0,
    ) -> None:
        """`offset_ms` and `connection`: where the stream begins on the call's clock and which
        connection of it this is, when it resumes a call of which nothing is kept here (its
        detectors start afresh). `resumed`: the call's earlier streams were heard elsewhere, so
        a consent verdict the policy carries stays decided (the call's opening request is not
        asked again). `lost_ms`: the call's audio heard on no stream just before this one (the
        gap since its last stream ended elsewhere), lost on each of this stream's tracks.
        Raises media.codecs.UnsupportedFormat for a media format it cannot decode, and
        ValueError for a rule set that does not hold together."""
        self.start = start
        """The stream carrying the call now (`resume` hands the call to the next one)."""
        self.connection = connection
        """Which connection of `start`'s stream this is: the same stream may reconnect."""
        self._connections: dict[str, int] = {start.stream_sid: connection}
        self.offset_ms = offset_ms
        """Where the current stream began on the call's clock."""
        self.org_id = org_id
        self.call_id = call_id
        self._config = config
        self._vad_factory = vad_factory
        self._audio_sink: StreamAudioSink | None = None
        self._format = parse_format(
            start.encoding, start.sample_rate, l16_big_endian=config.l16_big_endian
        )
        self._redact = policy.redact
        self._secure_words: SecureWords = policy.secure_words
        self._secure_spans: list[tuple[int, int | None]] = []
        """The caller's track clock (ms) from which secure mode was on, and to which (None while
        it is): words overlapping one are the caller's secret."""
        if policy.secure:
            self._secure_spans.append((offset_ms, None))
        self._last_heard: dict[Track, tuple[int, str, RedactedKind | None]] = {}
        """Each track's latest final: where it ended, its (redacted) words, and the kind of
        number it ended with."""
        self._rules = RuleEngine(policy.rules, start.tracks) if policy.rules else None
        if self._rules is not None and policy.fired:
            self._rules.carry_cooldowns(policy.fired)
        self._needs_level = self._rules is not None and self._rules.needs_level
        self._consent = ConsentTracker(
            played=policy.played_disclosure,
            implied_by_notice=policy.implied_by_notice,
            window_ms=policy.consent_window_ms,
            decided=policy.consent if resumed else None,
        )
        self.consent: ConsentVerdict | None = policy.consent
        self._consent_locked = policy.consent_by_person and policy.consent is not None
        self._holding = policy.hold_until_consent and policy.consent != "granted"
        self._held: deque[MediaEvent] = deque(maxlen=MAX_HELD_EVENTS)
        self.held_dropped = 0
        """Held events given up: on refusal, at stream end without consent, or overflow."""
        self._skipped: Counter[tuple[str, int, Track]] = Counter()
        """Utterances never transcribed for want of time (full queue, stream end, engine
        error), by the connection that heard them: words the record does not have. Counted
        on that connection's record though another may carry the call by then."""
        self.outbox: list[MediaEvent] = []
        """Events raised while feeding audio (acoustic escalations): the caller drains it."""
        self.tracks: dict[Track, TrackPipeline] = {}
        for track in start.tracks:
            self._pipeline(track).lose_before(lost_ms)
        self.outbox += self._consent_events(self._consent.opening)

    @property
    def carrier(self) -> tuple[str, int]:
        """The stream, and its connection, carrying the call now."""
        return self.start.stream_sid, self.connection

    def _pipeline(self, track: Track) -> TrackPipeline:
        pipeline = self.tracks.get(track)
        if pipeline is None:
            decoder = Decoder(self._format)
            endpointer = Endpointer(
                self._config.endpointer, decoder.output_rate, self._vad_factory()
            )
            observer = None
            if self._rules is not None:
                observer = self._frame_observer(track, self._rules)
            pipeline = self.tracks[track] = TrackPipeline(decoder, endpointer, observer)
            pipeline.sink = self._track_sink(track)
            # A track first heard on a later stream of the call starts where that stream does.
            endpointer.skip(self.offset_ms * decoder.output_rate // 1000)
        return pipeline

    def _track_sink(self, track: Track) -> AudioSink | None:
        if (stream_sink := self._audio_sink) is None:
            return None

        def sink(payload: bytes, pcm: bytes, lost_samples: int) -> None:
            stream_sink(track, payload, pcm, lost_samples)

        if track != CALLER:
            return sink
        silence_byte = b"\xff" if self._format.encoding == MULAW else b"\x00"

        def caller_sink(payload: bytes, pcm: bytes, lost_samples: int) -> None:
            if self.secure and self._secure_words == "suspend":
                # The service hears silence, so its clock keeps the call's, and never the card.
                payload, pcm = silence_byte * len(payload), bytes(len(pcm))
            stream_sink(track, payload, pcm, lost_samples)

        return caller_sink

    @property
    def secure(self) -> bool:
        """Whether the call is in secure mode now."""
        return bool(self._secure_spans) and self._secure_spans[-1][1] is None

    def set_secure(self, on: bool) -> None:
        """Secure mode turned on or off for the call (through the API, on any node), from the
        caller's audio heard so far."""
        if on == self.secure:
            return
        pipeline = self.tracks.get(CALLER)
        at = pipeline.endpointer.clock_ms if pipeline is not None else self.offset_ms
        if on:
            self._secure_spans.append((at, None))
        else:
            self._secure_spans[-1] = (self._secure_spans[-1][0], at)

    def _secret(self, track: Track, start_ms: int, end_ms: int) -> bool:
        """Whether words the track spoke from `start_ms` to `end_ms` fall in secure mode."""
        return track == CALLER and any(
            on <= end_ms and (off is None or start_ms < off) for on, off in self._secure_spans
        )

    def set_audio_sink(self, sink: StreamAudioSink | None) -> None:
        """Where every track's payloads go from now on (the cloud transcription of the
        connection carrying the call; None for none)."""
        self._audio_sink = sink
        for track, pipeline in self.tracks.items():
            pipeline.sink = self._track_sink(track)

    def resume(self, start: Start, at_ms: int) -> None:
        """Another stream of the call, or the same stream reconnecting, carries it from here,
        its audio beginning `at_ms` into the call (when its `start` arrived, against the first
        stream's): every track's clock, the detectors and what is held for consent go on as if
        the call had not been cut. The previous connection must have been finished first.
        Raises media.codecs.UnsupportedFormat for a format the call's tracks cannot take (its
        sample rate must stay the same)."""
        fmt = parse_format(
            start.encoding, start.sample_rate, l16_big_endian=self._config.l16_big_endian
        )
        rate = Decoder(fmt).output_rate
        if any(p.decoder.output_rate != rate for p in self.tracks.values()):
            raise UnsupportedFormat("a later stream of a call must keep the call's sample rate")
        new_stream = start.stream_sid != self.start.stream_sid
        self.connection = self._connections[start.stream_sid] = (
            self._connections.get(start.stream_sid, 0) + 1
        )
        self.start, self._format = start, fmt
        if new_stream:
            self.offset_ms = at_ms
        for pipeline in self.tracks.values():
            pipeline.take_over(
                Decoder(fmt),
                new_stream=new_stream,
                at_sample=at_ms * rate // 1000,
            )
        for track in start.tracks:
            self._pipeline(track)

    def _frame_observer(self, track: Track, rules: RuleEngine) -> FrameObserver:
        needs_level = self._needs_level

        def observe(clock_ms: int, voiced: bool, frame: bytes) -> None:
            level = level_dbfs(frame) if needs_level and voiced else -120.0
            if fired := rules.on_frame(track, clock_ms, voiced, level):
                self.outbox += [self._escalation(f) for f in fired]

        return observe

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
            server_id=self._config.server_id,
            connection=self.connection,
            offset_ms=self.offset_ms,
            restarted_after=restart_reason(self.start.custom_parameters),
        )

    def on_media(self, msg: Media, now: float) -> Sequence[UtteranceReady]:
        """Raises ValueError for an undecodable payload. Escalations from the audio itself
        land in `outbox`."""
        pipeline = self.tracks.get(msg.track) or self._pipeline(msg.track)
        ended = pipeline.feed(msg.chunk, msg.payload, now)
        if not ended:
            return _NO_UTTERANCES
        if self._secure_spans and self._secure_words == "suspend":
            ended = [u for u in ended if not self._secret(msg.track, u.start_ms, u.end_ms)]
        for u in ended:
            if u.final:
                self._consent.expect(msg.track, u.start_ms)
        sid, connection = self.carrier
        return [
            UtteranceReady(msg.track, u, pipeline.last_voiced_at, sid, connection) for u in ended
        ]

    def _open_since(self) -> dict[Track, int | None]:
        return {t: p.endpointer.open_start_ms for t, p in self.tracks.items()}

    def on_dtmf(self, msg: Dtmf) -> list[MediaEvent]:
        offset_ms = self._pipeline(msg.track).endpointer.clock_ms
        secure = self.secure
        digit = DtmfReceived(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=self.start.stream_sid,
            track=msg.track,
            digit=None if secure else msg.digit,
            offset_ms=offset_ms,
        )
        events = self._content(digit)
        if secure:
            return events  # a card's digits keyed in: neither stored nor acted on
        found = self._consent.on_digit(msg.track, msg.digit, offset_ms, self._open_since())
        events += self._consent_events(found)
        if self._rules is not None:
            fired = self._rules.on_digit(msg.track, msg.digit, offset_ms)
            events += [self._escalation(f) for f in fired]
        return events

    def on_transcript(
        self, ready: UtteranceReady, result: Transcription, engine: str
    ) -> list[MediaEvent]:
        """The segment (or nothing, while it is held), then what the detectors made of it."""
        utterance = ready.utterance
        return self._heard(
            ready.track,
            utterance.start_ms,
            utterance.end_ms,
            result,
            engine,
            streamed=False,
            stream_sid=ready.stream_sid,
        )

    def on_streamed_final(
        self,
        track: Track,
        start_ms: int,
        end_ms: int,
        result: Transcription,
        engine: str,
        words: tuple[WordTiming, ...],
        stream_sid: str,
    ) -> list[MediaEvent]:
        """A streaming service's final words for `start_ms`..`end_ms` of the track, heard on
        `stream_sid`: they settle whichever of our utterances they cover
        (`ConsentTracker.on_streamed_text`)."""
        return self._heard(
            track,
            start_ms,
            end_ms,
            result,
            engine,
            streamed=True,
            words=words,
            stream_sid=stream_sid,
        )

    def on_partial(self, track: Track, start_ms: int, end_ms: int, text: str) -> list[MediaEvent]:
        """A speaker's words so far (a streaming service's partial, or the offline engine's
        decode of an utterance still being spoken): for supervisors' screens (nothing while the
        call's content is held for consent: a partial never shows what a final may not), and
        for phrase rules (`RuleEngine.on_partial`), whose alerts go out as a final's would."""
        if self._secure_spans and self._secret(track, start_ms, end_ms):
            return []
        text = self._redacted(track, start_ms, text, partial=True).text
        events: list[MediaEvent] = []
        if not self._holding:
            events.append(
                TranscriptPartial(
                    org_id=self.org_id,
                    call_id=self.call_id,
                    stream_sid=self.start.stream_sid,
                    track=track,
                    start_ms=start_ms,
                    text=text,
                )
            )
        if self._rules is not None:
            fired = self._rules.on_partial(track, start_ms, end_ms, text)
            events += [self._escalation(f) for f in fired]
        return events

    def _heard(
        self,
        track: Track,
        start_ms: int,
        end_ms: int,
        result: Transcription,
        engine: str,
        *,
        streamed: bool,
        stream_sid: str,
        words: tuple[WordTiming, ...] = (),
    ) -> list[MediaEvent]:
        # Before anything else sees the words: storage, the feed, the detectors' evidence.
        kinds: tuple[str, ...]
        if self._secure_spans and self._secret(track, start_ms, end_ms):
            if self._secure_words == "suspend":
                # Decoded before secure mode began, or a service's words for audio it was
                # sent before: dropped all the same, and no detector waits for them.
                found = self._consent.on_lost(track, start_ms, self._open_since(), skipped=False)
                return self._consent_events(found)
            text, kinds = SECURE_TEXT, ("secure",)
            self._last_heard.pop(track, None)  # nothing of it may name what follows
        else:
            redacted = self._redacted(track, start_ms, result.text, partial=False)
            self._last_heard[track] = (end_ms, redacted.text, redacted.trailing)
            text, kinds = redacted.text, tuple(redacted.counts.elements())
        segment = TranscriptSegment(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=stream_sid,
            track=track,
            start_ms=start_ms,
            end_ms=end_ms,
            text=text,
            confidence=result.confidence,
            is_final=True,
            engine=engine,
            words=() if kinds else words,
            redacted=kinds,
        )
        events = self._content(segment)
        sid = segment.event_id
        if streamed:
            findings = self._consent.on_streamed_text(
                track, start_ms, end_ms, text, sid, self._open_since()
            )
        else:
            findings = self._consent.on_text(track, start_ms, text, sid, self._open_since())
        events += self._consent_events(findings)
        if self._rules is not None:
            fired = self._rules.on_text(track, start_ms, end_ms, text, sid)
            events += [self._escalation(f) for f in fired]
        return events

    def _redacted(self, track: Track, start_ms: int, text: str, *, partial: bool) -> Redacted:
        """`text` redacted, in the light of the finals just before it: the other speaker's
        question and this speaker's last words may name what a number is, and a number this
        speaker's last final ended with may go on here."""
        other: Track = "outbound" if track == "inbound" else "inbound"
        context, continues = [], None
        for speaker in (other, track):  # the speaker's own words last: the nearest
            last = self._last_heard.get(speaker)
            if last is not None and -OVERLAP_MS <= start_ms - last[0] <= REDACTION_CONTEXT_MS:
                context.append(last[1])
                continues = last[2] if speaker == track else None
        return redact(
            text, self._redact, partial=partial, context=" ".join(context), continues=continues
        )

    def decode_rank(self, track: Track, start_ms: int) -> Callable[[], int]:
        """How much an utterance's words matter, asked whenever the transcription queue has to
        choose (so an answer queued before its question was heard ranks as one once it is)."""

        def rank() -> int:
            if self._consent.bears_on_consent(track, start_ms):
                return DecodeRank.CONSENT
            if track == "inbound":
                return DecodeRank.CONVERSATION
            # The agent's words may still ask for consent until a verdict is reached.
            return DecodeRank.CONVERSATION if self.consent is None else DecodeRank.AGENT_AFTER

        return rank

    def on_transcript_lost(self, ready: UtteranceReady, *, skipped: bool) -> list[MediaEvent]:
        """An utterance that will never be transcribed (`skipped` under load, or heard as
        nothing): the consent detector stops waiting for its words."""
        if skipped:
            self._skipped[ready.stream_sid, ready.connection, ready.track] += 1
        found = self._consent.on_lost(
            ready.track, ready.utterance.start_ms, self._open_since(), skipped=skipped
        )
        return self._consent_events(found)

    def apply_consent(self, verdict: ConsentVerdict, *, by_person: bool) -> list[MediaEvent]:
        """A verdict reached outside this stream (an agent, the keypad flow, another stream of
        the call): held content released or dropped."""
        if self._consent_locked and not by_person:
            return []
        self._consent_locked = self._consent_locked or by_person
        return self._decide(verdict)

    def _content(self, event: MediaEvent) -> list[MediaEvent]:
        if not self._holding:
            return [event]
        if len(self._held) == self._held.maxlen:
            self.held_dropped += 1
        self._held.append(event)
        return []

    def _consent_events(self, findings: list[ConsentFinding]) -> list[MediaEvent]:
        events: list[MediaEvent] = []
        for f in findings:
            evidence = ConsentEvidence(
                org_id=self.org_id,
                call_id=self.call_id,
                stream_sid=self.start.stream_sid,
                kind=f.kind,
                detector=f.detector,
                verdict=f.verdict,
                track=f.track,
                offset_ms=f.offset_ms,
                evidence=f.evidence,
                segment_id=f.segment_id,
            )
            events.append(evidence)
            if f.verdict is not None and not self._consent_locked:
                # The verdict's own segment (the "yes") is released with the rest.
                events += self._decide(f.verdict)
        return events

    def _decide(self, verdict: ConsentVerdict) -> list[MediaEvent]:
        self.consent = verdict
        if not self._holding:
            return []
        held, self._held = list(self._held), deque(maxlen=MAX_HELD_EVENTS)
        if verdict == "granted":
            self._holding = False
            return held
        self.held_dropped += len(held)
        return []

    def _escalation(self, fired: Fired) -> EscalationRaised:
        return EscalationRaised(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=self.start.stream_sid,
            rule_id=fired.rule.id,
            rule_name=fired.rule.name,
            kind=fired.rule.kind,
            severity=fired.rule.severity,
            track=fired.track,
            start_ms=fired.start_ms,
            end_ms=fired.end_ms,
            evidence=fired.evidence,
            segment_id=fired.segment_id,
        )

    def finish(self) -> list[UtteranceReady]:
        """End of a connection: the utterances still open on every track."""
        sid, connection = self.carrier
        ready = []
        for track, pipeline in self.tracks.items():
            if (u := pipeline.endpointer.flush()) is not None:
                ready.append(UtteranceReady(track, u, pipeline.last_voiced_at, sid, connection))
        return ready

    def settle(self) -> list[MediaEvent]:
        """After the last transcript: what the consent detector decides on what it heard, no
        longer waiting for utterances that will not be transcribed."""
        return self._consent_events(self._consent.flush())

    def close(self) -> list[MediaEvent]:
        """The call will not resume on this node: `settle`, and content still held for want
        of consent is dropped."""
        events = self.settle()
        self.held_dropped += len(self._held)
        self._held.clear()
        return events

    def stopped_event(self, reason: str, messages_lost: int) -> StreamStopped:
        """The current connection's last event, with its own accounting."""
        sid, connection = self.carrier
        return StreamStopped(
            org_id=self.org_id,
            call_id=self.call_id,
            stream_sid=sid,
            reason=reason,
            tracks=tuple(
                p.stats(t, self._skipped[sid, connection, t]) for t, p in self.tracks.items()
            ),
            messages_lost=messages_lost,
            connection=connection,
        )

    def recount_skipped(self, stopped: StreamStopped) -> StreamStopped:
        """A connection's record taken when it stopped carrying the call, with its utterances
        skipped since (their decodes were still waiting then)."""
        sid, connection = stopped.stream_sid, stopped.connection
        tracks = tuple(
            replace(t, utterances_skipped=self._skipped[sid, connection, t.track])
            for t in stopped.tracks
        )
        return replace(stopped, tracks=tracks)
