"""media.session: parsed media messages in, utterances and domain events out.

The detector is scripted (voiced when a frame's RMS is above a threshold), so which frames are
speech is exact: a 300 Hz tone burst is speech, digital silence is not. Audio is described by a
pattern string, one character per 20 ms: `T` tone, `.` silence.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import numpy as np
import pytest

from media.codecs import UnsupportedFormat, ulaw_encode
from media.detectors.rules import DEFAULT_RULES
from media.events import (
    ConsentEvidence,
    DtmfReceived,
    EscalationRaised,
    MediaEvent,
    StreamStarted,
    TrackStats,
    TranscriptPartial,
    TranscriptSegment,
)
from media.protocol import Dtmf, Media, Start
from media.session import CallPolicy, CallSession, DecodeRank, SessionConfig, UtteranceReady
from media.transcription.engine import Transcription
from media.vad import EndpointerConfig, Utterance

ORG = uuid.UUID("11111111-2222-3333-4444-555555555555")
CALL = uuid.UUID("66666666-7777-8888-9999-aaaaaaaaaaaa")
STREAM_SID = "7d56cc11-536d-4a45-b4fb-ed3d55be843b"
CALL_SID = "b3b8a2f4-2f35-4c8e-9a42-64cbbc3f2a11"
MULAW = "audio/x-mulaw"
PREROLL_FRAMES = 10  # EndpointerConfig defaults: 200 ms preroll, 500 ms hangover
HANGOVER_FRAMES = 25
FINALS_ONLY = SessionConfig(endpointer=EndpointerConfig(early_decode_ms=None))
"""Most tests look at final utterances; the early and partial ones have tests of their own."""


class RmsVad:
    """Voiced when the frame's RMS is above the threshold."""

    def __init__(self, threshold: float = 1000.0) -> None:
        self.threshold = threshold

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        samples = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
        return bool(np.sqrt((samples**2).mean()) > self.threshold)


def make_start(
    tracks: tuple[str, ...] = ("inbound",),
    encoding: str = MULAW,
    sample_rate: int = 8000,
    params: dict[str, str] | None = None,
) -> Start:
    return Start(
        sequence_number=1,
        stream_sid=STREAM_SID,
        account_sid="0f9e1d2c-3b4a-5968-7f6e-5d4c3b2a1908",
        call_sid=CALL_SID,
        tracks=tracks,  # type: ignore[arg-type]
        custom_parameters=params or {},
        encoding=encoding,
        sample_rate=sample_rate,
        channels=1,
    )


def make_session(
    start: Start | None = None,
    config: SessionConfig | None = None,
    policy: CallPolicy | None = None,
) -> CallSession:
    return CallSession(
        start or make_start(),
        org_id=ORG,
        call_id=CALL,
        config=config or FINALS_ONLY,
        vad_factory=RmsVad,
        policy=policy or CallPolicy(),
    )


def pcm_pattern(pattern: str, rate: int = 8000) -> np.ndarray:
    """16-bit samples: 20 ms of a loud 300 Hz tone per `T`, 20 ms of zeros per `.`."""
    frame = rate // 50
    t = np.arange(len(pattern) * frame) / rate
    tone = np.round(8000 * np.sin(2 * np.pi * 300 * t))
    mask = np.repeat([ch == "T" for ch in pattern], frame)
    return np.where(mask, tone, 0).astype(np.int16)


def ulaw_payloads(pattern: str, size: int = 160) -> list[bytes]:
    data = ulaw_encode(pcm_pattern(pattern).tobytes())
    return [data[i : i + size] for i in range(0, len(data), size)]


def pattern(*parts: tuple[str, int]) -> str:
    return "".join(ch * n for ch, n in parts)


def feed(
    session: CallSession,
    payloads: Iterable[bytes],
    track: str = "inbound",
    chunks: Iterable[int] | None = None,
) -> list[UtteranceReady]:
    """Feed payloads with the given chunk numbers (1, 2, 3… by default); `now` = chunk number."""
    payloads = list(payloads)
    numbers = list(chunks) if chunks is not None else list(range(1, len(payloads) + 1))
    ready: list[UtteranceReady] = []
    for chunk, payload in zip(numbers, payloads, strict=True):
        msg = Media(
            sequence_number=None,
            track=track,  # type: ignore[arg-type]
            chunk=chunk,
            timestamp_ms=(chunk - 1) * 20,
            payload=payload,
        )
        ready.extend(session.on_media(msg, now=float(chunk)))
    return ready


# --- start -------------------------------------------------------------------------------------


def test_started_event_fields() -> None:
    session = make_session(
        make_start(
            tracks=("inbound", "outbound"),
            encoding="AUDIO/X-MULAW",
            params={"stream_name": "agent-leg", "tenant": "acme"},
        )
    )
    event = session.started_event()
    assert isinstance(event, StreamStarted)
    assert (event.org_id, event.call_id) == (ORG, CALL)
    assert (event.stream_sid, event.call_sid) == (STREAM_SID, CALL_SID)
    assert event.stream_name == "agent-leg"
    assert event.tracks == ("inbound", "outbound")
    assert (event.encoding, event.sample_rate) == (MULAW, 8000)
    assert set(session.tracks) == {"inbound", "outbound"}


def test_started_event_for_l16_without_stream_name() -> None:
    event = make_session(make_start(encoding="audio/x-l16", sample_rate=24000)).started_event()
    assert event.stream_name is None
    assert (event.encoding, event.sample_rate) == ("audio/x-L16", 24000)


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("audio/x-alaw", 8000), ("audio/x-mulaw", 16000), ("audio/x-L16", 8000), ("opus", 48000)],
)
def test_unsupported_format_is_refused_at_construction(encoding: str, rate: int) -> None:
    with pytest.raises(UnsupportedFormat):
        make_session(make_start(encoding=encoding, sample_rate=rate))


def test_one_detector_per_track() -> None:
    made: list[RmsVad] = []

    def factory() -> RmsVad:
        made.append(RmsVad())
        return made[-1]

    CallSession(
        make_start(tracks=("inbound", "outbound")),
        org_id=ORG,
        call_id=CALL,
        config=SessionConfig(),
        vad_factory=factory,
    )
    assert len(made) == 2


# --- utterances --------------------------------------------------------------------------------


def test_utterances_per_track_with_their_offsets() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    inbound = ulaw_payloads(pattern((".", 10), ("T", 30), (".", 60)))
    outbound = ulaw_payloads(pattern((".", 45), ("T", 30), (".", 25)))
    ready: list[UtteranceReady] = []
    for chunk, (a, b) in enumerate(zip(inbound, outbound, strict=True), start=1):
        ready += feed(session, [a], "inbound", [chunk])
        ready += feed(session, [b], "outbound", [chunk])

    assert [r.track for r in ready] == ["inbound", "outbound"]
    caller, agent = ready
    # Speech frames 10-39: triggered on frame 12, preroll back to frame 2.
    assert (caller.utterance.start_ms, caller.utterance.end_ms) == (40, 800)
    # Speech frames 45-74: triggered on frame 47, preroll back to frame 37.
    assert (agent.utterance.start_ms, agent.utterance.end_ms) == (740, 1500)
    assert caller.utterance.sample_rate == agent.utterance.sample_rate == 8000
    # When the last voiced frame arrived (now = its chunk number).
    assert (caller.speech_ended_at, agent.speech_ended_at) == (40.0, 75.0)


def test_utterance_audio_is_the_decoded_call_audio() -> None:
    session = make_session()
    audio = pattern((".", 10), ("T", 30), (".", 40))
    (ready,) = feed(session, ulaw_payloads(audio))
    u = ready.utterance
    sent = np.frombuffer(ulaw_encode(pcm_pattern(audio).tobytes()), dtype=np.uint8)
    # The utterance is the decoded (mu-law → 16-bit) audio from its start, 160 samples a frame.
    got = np.frombuffer(u.pcm, dtype=np.int16)
    expected_ulaw = sent[u.start_sample : u.start_sample + len(got)]
    assert ulaw_encode(got.tobytes()) == expected_ulaw.tobytes()


# --- lost and repeated chunks ------------------------------------------------------------------


def test_chunk_gaps_are_counted_and_the_clock_moves_across_them() -> None:
    audio = pattern((".", 50), ("T", 30), (".", 40))  # 120 chunks
    payloads = ulaw_payloads(audio)
    lost = set(range(21, 26))  # five chunks of silence
    kept = [(c, p) for c, p in enumerate(payloads, start=1) if c not in lost]

    session = make_session()
    ready = feed(session, [p for _, p in kept], chunks=[c for c, _ in kept])

    (r,) = ready
    # Same offsets as if nothing had been lost: speech frames 50-79.
    assert (r.utterance.start_ms, r.utterance.end_ms) == ((52 - PREROLL_FRAMES) * 20, 80 * 20)
    assert session.tracks["inbound"].endpointer.clock_ms == 120 * 20

    stopped = session.stopped_event("stop", messages_lost=3)
    assert stopped.reason == "stop"
    assert stopped.messages_lost == 3
    assert stopped.tracks == (
        TrackStats(track="inbound", frames_received=115, frames_lost=5, audio_lost_ms=100),
    )
    assert (stopped.org_id, stopped.call_id, stopped.stream_sid) == (ORG, CALL, STREAM_SID)


def test_an_utterance_after_a_gap_starts_later_by_the_gap() -> None:
    payloads = ulaw_payloads(pattern((".", 40), ("T", 30), (".", 40)))
    contiguous = feed(make_session(), payloads)
    # The same audio, but the platform's chunk counter jumps by 7 after chunk 20.
    numbers = [c if c <= 20 else c + 7 for c in range(1, len(payloads) + 1)]
    gapped = feed(make_session(), payloads, chunks=numbers)

    (a,) = contiguous
    (b,) = gapped
    assert b.utterance.start_ms - a.utterance.start_ms == 7 * 20
    assert b.utterance.end_ms - a.utterance.end_ms == 7 * 20
    assert b.utterance.pcm == a.utterance.pcm


def test_a_gap_inside_speech_is_silence_in_the_utterance() -> None:
    payloads = ulaw_payloads(pattern(("T", 40), (".", 40)))
    lost = {21, 22, 23}
    kept = [(c, p) for c, p in enumerate(payloads, start=1) if c not in lost]
    session = make_session()
    (r,) = feed(session, [p for _, p in kept], chunks=[c for c, _ in kept])
    assert (r.utterance.start_ms, r.utterance.end_ms) == (0, 800)
    gap = np.frombuffer(r.utterance.pcm, dtype=np.int16)[20 * 160 : 23 * 160]
    assert not gap.any()


def test_a_long_outage_ends_the_utterance_and_moves_the_clock_exactly() -> None:
    session = make_session()
    speech = ulaw_payloads(pattern(("T", 30)))
    # 30 frames of speech, then 500 frames (10 s) lost, then 40 frames of speech and silence.
    after = ulaw_payloads(pattern(("T", 20), (".", 40)))
    ready = feed(session, speech)
    ready += feed(session, after, chunks=range(531, 531 + len(after)))
    first, second = (r.utterance for r in ready)
    assert (first.start_ms, first.end_ms) == (0, 600)  # ended by the outage, not lost
    assert (second.start_ms, second.end_ms) == (530 * 20, 550 * 20)
    [stats] = session.stopped_event("stop", 0).tracks
    assert (stats.frames_lost, stats.audio_lost_ms) == (500, 10_000)


def test_a_forged_chunk_number_costs_no_memory() -> None:
    session = make_session()
    feed(session, ulaw_payloads("TTTT"))
    feed(session, ulaw_payloads("."), chunks=[10**11])
    pipeline = session.tracks["inbound"]
    assert pipeline.endpointer.clock_ms == (10**11) * 20
    assert pipeline.stats("inbound", 0).frames_lost == 10**11 - 5


def test_repeated_chunks_are_ignored() -> None:
    session = make_session()
    silence = ulaw_payloads("." * 30)
    feed(session, silence)
    tone = ulaw_payloads("T" * 11)
    # Chunks 10-20 again, now carrying speech: already in, so ignored.
    assert feed(session, tone, chunks=range(10, 21)) == []
    pipeline = session.tracks["inbound"]
    assert pipeline.frames_received == 30
    assert pipeline.endpointer.clock_ms == 600
    assert not pipeline.endpointer.in_speech
    feed(session, ulaw_payloads("." * 40), chunks=range(31, 71))
    assert session.stopped_event("stop", 0).tracks == (
        TrackStats(track="inbound", frames_received=70, frames_lost=0, audio_lost_ms=0),
    )


def test_undecodable_payload_raises_and_is_not_counted() -> None:
    session = make_session(make_start(encoding="audio/x-L16", sample_rate=16000))
    with pytest.raises(ValueError):
        feed(session, [b"\x00" * 639])
    assert session.tracks["inbound"].frames_received == 0
    assert session.tracks["inbound"].endpointer.sample_clock == 0


# --- payload sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [80, 100, 320, 800, 1000])
def test_payloads_of_other_sizes_are_rechunked_into_20ms_frames(size: int) -> None:
    audio = pattern((".", 20), ("T", 30), (".", 35), ("T", 20), (".", 45))
    reference = feed(make_session(), ulaw_payloads(audio, 160))
    session = make_session()
    ready = feed(session, ulaw_payloads(audio, size))

    assert len(reference) == 2
    assert [(r.utterance.start_sample, r.utterance.end_sample, r.utterance.pcm) for r in ready] == [
        (r.utterance.start_sample, r.utterance.end_sample, r.utterance.pcm) for r in reference
    ]
    total_bytes = len(audio) * 160
    pipeline = session.tracks["inbound"]
    assert pipeline.frames_received == -(-total_bytes // size)  # messages, rounded up
    assert pipeline.endpointer.sample_clock == total_bytes // 160 * 160


def test_a_gap_between_half_frame_payloads_keeps_the_clock() -> None:
    """10 ms payloads, two lost after an odd one: 8 × 10 ms of stream time is still 80 ms."""
    payloads = ulaw_payloads("." * 4, 80)  # chunks 1-8, 10 ms each
    kept = [(c, p) for c, p in enumerate(payloads, start=1) if c not in (4, 5)]
    session = make_session()
    feed(session, [p for _, p in kept], chunks=[c for c, _ in kept])
    pipeline = session.tracks["inbound"]
    assert pipeline.stats("inbound", 0).audio_lost_ms == 20
    assert pipeline.endpointer.clock_ms == 80


def test_l16_big_endian_16khz() -> None:
    audio = pattern((".", 10), ("T", 30), (".", 40))
    samples = pcm_pattern(audio, rate=16000)
    wire = samples.astype(">i2").tobytes()  # RTP byte order
    payloads = [wire[i : i + 640] for i in range(0, len(wire), 640)]
    session = make_session(make_start(encoding="audio/x-L16", sample_rate=16000))

    (r,) = feed(session, payloads)

    u = r.utterance
    assert u.sample_rate == 16000
    assert (u.start_ms, u.end_ms) == (40, 800)
    assert (u.start_sample, u.end_sample) == (2 * 320, 40 * 320)
    got = np.frombuffer(u.pcm, dtype="<i2")
    assert np.array_equal(got, samples[u.start_sample : u.start_sample + len(got)])


def test_an_early_utterance_comes_first_and_does_not_hold_up_consent() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")), config=SessionConfig())
    early, final = feed(session, ulaw_payloads(pattern(("T", 50), (".", 30))), "outbound")
    assert (early.utterance.kind, final.utterance.kind) == ("early", "final")
    assert early.utterance.pcm == final.utterance.pcm
    # Only the final one is a turn the consent detector waits for: the agent's request,
    # transcribed from the early decode, is followed at once by the caller's answer.
    session.on_transcript(final, Transcription("We record calls. Is that okay?", None), "test")
    said(session, "inbound", "Yes, fine.", 2.0)
    assert session.consent == "granted"


# --- end of stream, dtmf, events ---------------------------------------------------------------


def test_finish_flushes_open_utterances_on_every_track() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    assert feed(session, ulaw_payloads(pattern((".", 5), ("T", 20))), "inbound") == []
    assert feed(session, ulaw_payloads(pattern(("T", 30), (".", 3))), "outbound") == []

    ready = session.finish()

    assert {r.track: (r.utterance.start_ms, r.utterance.end_ms) for r in ready} == {
        "inbound": (0, 500),
        "outbound": (0, 600),
    }
    assert {r.track: r.speech_ended_at for r in ready} == {"inbound": 25.0, "outbound": 30.0}
    assert session.finish() == []


def test_finish_without_speech_returns_nothing() -> None:
    session = make_session()
    feed(session, ulaw_payloads("." * 50))
    assert session.finish() == []


def test_dtmf_offset_is_the_track_clock() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    feed(session, ulaw_payloads("." * 25))
    [event] = session.on_dtmf(Dtmf(sequence_number=30, track="inbound", digit="7", duration_ms=250))
    assert isinstance(event, DtmfReceived)
    assert event == DtmfReceived(
        org_id=ORG,
        call_id=CALL,
        stream_sid=STREAM_SID,
        track="inbound",
        digit="7",
        offset_ms=500,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
    )
    [silent_track] = session.on_dtmf(
        Dtmf(sequence_number=31, track="outbound", digit="#", duration_ms=None)
    )
    assert isinstance(silent_track, DtmfReceived)
    assert (silent_track.track, silent_track.offset_ms) == ("outbound", 0)


def test_dtmf_offset_counts_lost_audio() -> None:
    session = make_session()
    payloads = ulaw_payloads("." * 10)
    feed(session, payloads, chunks=[1, 2, 3, 4, 5, 11, 12, 13, 14, 15])
    [event] = session.on_dtmf(Dtmf(None, "inbound", "1", None))
    assert isinstance(event, DtmfReceived)
    assert event.offset_ms == 300


@pytest.mark.parametrize(("rate", "encoding"), [(8000, MULAW), (16000, "audio/x-L16")])
def test_transcript_segment_copies_offsets_and_is_final(rate: int, encoding: str) -> None:
    session = make_session(make_start(encoding=encoding, sample_rate=rate))
    utterance = Utterance(
        start_sample=rate, end_sample=rate * 3 + rate // 4, pcm=b"", sample_rate=rate
    )
    ready = UtteranceReady(
        track="inbound",
        utterance=utterance,
        speech_ended_at=12.5,
        stream_sid=STREAM_SID,
        connection=1,
    )

    [event] = session.on_transcript(
        ready, Transcription(text="my payment is due", confidence=0.875), "faster-whisper:tiny.en"
    )

    assert isinstance(event, TranscriptSegment)
    assert (event.org_id, event.call_id, event.stream_sid) == (ORG, CALL, STREAM_SID)
    assert event.track == "inbound"
    assert (event.start_ms, event.end_ms) == (1000, 3250)
    assert event.text == "my payment is due"
    assert event.confidence == 0.875
    assert event.is_final is True
    assert event.engine == "faster-whisper:tiny.en"


def test_stopped_event_lists_every_track() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    feed(session, ulaw_payloads("." * 3), "inbound")
    stopped = session.stopped_event("disconnected", messages_lost=0)
    assert stopped.reason == "disconnected"
    assert stopped.tracks == (
        TrackStats(track="inbound", frames_received=3, frames_lost=0, audio_lost_ms=0),
        TrackStats(track="outbound", frames_received=0, frames_lost=0, audio_lost_ms=0),
    )


# --- detectors and consent ---------------------------------------------------------------------

RULES = tuple(r for r in DEFAULT_RULES if r.kind in ("phrase", "keypad", "dead_air"))


def said(session: CallSession, track: str, text: str, start_s: float) -> list[MediaEvent]:
    rate = 8000
    utterance = Utterance(
        start_sample=int(start_s * rate), end_sample=int((start_s + 1) * rate), pcm=b"",
        sample_rate=rate,
    )  # fmt: skip
    ready = UtteranceReady(
        track=track,  # type: ignore[arg-type]
        utterance=utterance,
        speech_ended_at=0.0,
        stream_sid=STREAM_SID,
        connection=1,
    )
    return session.on_transcript(ready, Transcription(text=text, confidence=None), "test")


def kinds(events: list[MediaEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_an_escalation_phrase_raises_an_escalation_after_its_segment() -> None:
    session = make_session(policy=CallPolicy(rules=RULES))
    events = said(session, "inbound", "I want to speak to your manager right now", 2.0)
    assert kinds(events) == ["TranscriptSegment", "EscalationRaised"]
    segment, raised = events
    assert isinstance(raised, EscalationRaised)
    assert (raised.rule_name, raised.severity, raised.track) == (
        "supervisor-request",
        "high",
        "inbound",
    )
    assert (raised.start_ms, raised.end_ms, raised.evidence) == (2000, 3000, "i want + manager")
    assert raised.segment_id == segment.event_id
    assert kinds(said(session, "inbound", "I don't need a manager", 4.0)) == ["TranscriptSegment"]


def test_keypad_and_silence_rules_fire_from_digits_and_audio() -> None:
    session = make_session(
        make_start(tracks=("inbound", "outbound")), policy=CallPolicy(rules=RULES)
    )
    [digit, raised] = session.on_dtmf(Dtmf(None, "inbound", "0", None))
    assert isinstance(raised, EscalationRaised) and raised.evidence == "digit 0"
    feed(session, ulaw_payloads("." * 800), "inbound")  # 16 s of silence on the call
    [dead_air] = session.outbox
    assert isinstance(dead_air, EscalationRaised) and dead_air.kind == "dead_air"
    assert dead_air.track is None and dead_air.end_ms - dead_air.start_ms >= 15_000


def test_all_party_content_is_held_until_consent_then_written_in_order() -> None:
    policy = CallPolicy(hold_until_consent=True, played_disclosure="question", rules=RULES)
    session = make_session(policy=policy)
    assert said(session, "inbound", "Hello?", 0.5) == []  # the words wait
    [alert] = session.on_dtmf(Dtmf(None, "inbound", "0", None))
    assert isinstance(alert, EscalationRaised)  # alerts go out; the digit waits
    released = said(session, "inbound", "Yes, that's fine.", 3.0)
    assert kinds(released) == [
        "ConsentEvidence", "TranscriptSegment", "DtmfReceived", "TranscriptSegment",
    ]  # fmt: skip
    evidence = released[0]
    assert isinstance(evidence, ConsentEvidence)
    assert (evidence.verdict, evidence.detector, evidence.evidence) == (
        "granted", "caller_speech", "yes",
    )  # fmt: skip
    assert kinds(said(session, "inbound", "Thanks.", 5.0)) == ["TranscriptSegment"]


def test_all_party_content_is_dropped_on_refusal_and_at_the_end_without_consent() -> None:
    session = make_session(policy=CallPolicy(hold_until_consent=True, played_disclosure="question"))
    said(session, "inbound", "Hello there.", 0.5)
    refused = said(session, "inbound", "No, please don't record this.", 2.0)
    assert kinds(refused) == ["ConsentEvidence"]
    said(session, "inbound", "So about my bill.", 4.0)
    assert session.held_dropped == 2  # the two before the refusal
    assert session.close() == []
    assert session.held_dropped == 3  # and what came after it, when the call is closed


def test_a_persons_verdict_is_not_overturned_by_the_detector() -> None:
    policy = CallPolicy(
        hold_until_consent=True,
        played_disclosure="question",
        consent="refused",
        consent_by_person=True,
    )
    session = make_session(policy=policy)
    assert kinds(said(session, "inbound", "Yes, go ahead.", 1.0)) == ["ConsentEvidence"]
    assert session.consent == "refused"
    assert session.apply_consent("granted", by_person=False) == []
    assert kinds(session.apply_consent("granted", by_person=True)) == ["TranscriptSegment"]


def test_consent_decided_elsewhere_releases_what_is_held() -> None:
    session = make_session(policy=CallPolicy(hold_until_consent=True))
    said(session, "inbound", "Press one, done.", 1.0)
    assert kinds(session.apply_consent("granted", by_person=False)) == ["TranscriptSegment"]


def test_a_callers_yes_waits_for_the_agents_earlier_words_before_it_is_consent() -> None:
    """The agent's utterance ends first but is transcribed after the caller's "yes": whether
    that "yes" answers the recording request depends on what the agent said in between."""
    for agent_said, verdict in (
        ("This call is recorded. Is that okay with you?", "granted"),
        ("Can I have your order number?", None),
    ):
        session = make_session(make_start(tracks=("inbound", "outbound")))
        [agent] = feed(session, ulaw_payloads(pattern(("T", 50), (".", 30))), "outbound")
        answer = said(session, "inbound", "Yes.", 2.0)
        assert kinds(answer) == ["TranscriptSegment"], "decided before the agent's words"
        later = session.on_transcript(agent, Transcription(agent_said, None), "test")
        found = [e.verdict for e in later if isinstance(e, ConsentEvidence) and e.kind == "answer"]
        assert found == ([verdict] if verdict else [])
        assert session.consent == verdict


def test_decode_ranks_put_an_answer_to_a_consent_request_first() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    # Queued before the agent's question is heard: an ordinary turn, for now.
    answer = session.decode_rank("inbound", 4_000)
    agent_later = session.decode_rank("outbound", 40_000)
    assert answer() == DecodeRank.CONVERSATION
    assert session.decode_rank("outbound", 1_000)() == DecodeRank.CONSENT  # the opening
    assert agent_later() == DecodeRank.CONVERSATION  # it may still ask for consent
    said(session, "outbound", "This call is recorded. Is that okay with you?", 1.0)
    # The question is heard: the same queued turn is now its answer, ranked when asked.
    assert answer() == DecodeRank.CONSENT
    assert session.decode_rank("inbound", 60_000)() == DecodeRank.CONVERSATION  # past the window
    said(session, "inbound", "Yes, that's fine.", 4.0)
    assert session.consent == "granted"
    assert session.decode_rank("inbound", 6_000)() == DecodeRank.CONVERSATION
    assert agent_later() == DecodeRank.AGENT_AFTER  # consent decided: transcript only


def test_skipped_utterances_are_counted_on_their_track() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    [ready] = feed(session, ulaw_payloads(pattern(("T", 50), (".", 30))), "inbound")
    session.on_transcript_lost(ready, skipped=True)
    session.on_transcript_lost(ready, skipped=False)  # heard as nothing: not skipped
    stats = {t.track: t.utterances_skipped for t in session.stopped_event("stop", 0).tracks}
    assert stats == {"inbound": 1, "outbound": 0}


def test_partial_words_never_show_what_consent_holds_back() -> None:
    held = make_session(policy=CallPolicy(hold_until_consent=True, played_disclosure="question"))
    assert held.on_partial("inbound", 1_000, 1_800, "my card number") == []
    said(held, "inbound", "Yes, go ahead.", 2.0)  # consent granted: nothing held from here
    [partial] = held.on_partial("inbound", 4_000, 4_800, "my card number")
    assert isinstance(partial, TranscriptPartial)
    assert (partial.track, partial.start_ms, partial.text) == ("inbound", 4_000, "my card number")


def test_a_card_number_is_redacted_before_storage_the_feed_and_the_detectors_see_it() -> None:
    session = make_session(
        make_start(tracks=("inbound", "outbound")), policy=CallPolicy(rules=RULES)
    )
    card = "four one one one " + "one " * 11 + "one"
    events = said(session, "inbound", f"It's {card}, and I want to speak to your manager", 2.0)
    segment, raised = events
    assert isinstance(segment, TranscriptSegment) and isinstance(raised, EscalationRaised)
    assert segment.text == "It's [card], and I want to speak to your manager"
    assert segment.redacted == ("card",)
    assert "1" not in raised.evidence
    [partial] = session.on_partial("inbound", 2_000, 2_500, "It's four one one one one one one one")
    assert isinstance(partial, TranscriptPartial) and partial.text == "It's [digits]"
    # The org's choice: what it does not redact is stored as said.
    kept = make_session(policy=CallPolicy(redact=frozenset({"email"})))
    [segment] = said(kept, "inbound", "It's 4111 1111 1111 1111", 2.0)
    assert isinstance(segment, TranscriptSegment)
    assert (segment.text, segment.redacted) == ("It's 4111 1111 1111 1111", ())


def test_a_bare_number_answering_a_question_or_going_on_from_the_last_is_redacted() -> None:
    session = make_session(make_start(tracks=("inbound", "outbound")))
    said(session, "outbound", "And the three digits on the back of the card?", 2.0)
    [answer] = said(session, "inbound", "seven three seven", 3.5)
    assert isinstance(answer, TranscriptSegment) and answer.text == "[cvv]"
    # A card read out in two breaths, the second half alone failing every check.
    [first] = said(session, "inbound", "my card is four one one one, one one one one", 6.0)
    [second] = said(session, "inbound", "one one one one, one one one one", 8.0)
    assert isinstance(first, TranscriptSegment) and isinstance(second, TranscriptSegment)
    assert (first.text, second.text) == ("my card is [card]", "[card]")
    # Long after, the same digits are just digits.
    [later] = said(session, "inbound", "one one one one", 40.0)
    assert isinstance(later, TranscriptSegment) and later.text == "one one one one"
