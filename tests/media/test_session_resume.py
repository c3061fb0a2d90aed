"""media.session across reconnects: the same call replayed whole, and cut once either way a
stream can be resumed (a new stream, or the same stream reconnecting with its chunks going on).

Speech is scripted as tone bursts (the RMS detector of test_session), and "transcribing" an
utterance looks its words up in the script by where it starts, so any difference between the
replays is the session's doing: where it put the audio, and what its detectors remembered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from media.codecs import UnsupportedFormat
from media.events import ConsentEvidence, EscalationRaised, MediaEvent, StreamStopped, Track
from media.events import TranscriptSegment as Segment
from media.protocol import Media
from media.session import CallPolicy, UtteranceReady
from media.transcription.engine import Transcription
from tests.media.test_session import RULES, make_session, make_start, ulaw_payloads

FRAME_MS = 20


@dataclass(frozen=True)
class Line:
    track: Track
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Drop:
    kind: Literal["new_stream", "same_stream"]
    at_s: float
    gap_s: float


@dataclass
class Replay:
    events: list[MediaEvent]
    stopped: list[StreamStopped]
    starts: list[tuple[str, int, int]]
    """(stream_sid, connection, offset_ms) of each connection."""

    def segments(self) -> list[tuple[str, int, int, str]]:
        return [
            (e.track, e.start_ms, e.end_ms, e.text) for e in self.events if isinstance(e, Segment)
        ]

    def verdicts(self) -> list[tuple[str | None, str, int]]:
        return [
            (e.verdict, e.detector, e.offset_ms)
            for e in self.events
            if isinstance(e, ConsentEvidence) and e.verdict is not None
        ]

    def escalations(self) -> list[tuple[str, str | None, int]]:
        return [
            (e.rule_name, e.track, e.start_ms)
            for e in self.events
            if isinstance(e, EscalationRaised)
        ]


def audio(script: list[Line], track: Track, seconds: float) -> list[bytes]:
    """The track as 20 ms μ-law payloads: tone where the script has that track speak."""
    frames = round(seconds * 1000 / FRAME_MS)
    voiced = ["."] * frames
    for line in script:
        if line.track == track:
            for i in range(round(line.start_s * 50), round(line.end_s * 50)):
                voiced[i] = "T"
    return ulaw_payloads("".join(voiced))


def replay(script: list[Line], seconds: float, drop: Drop | None, policy: CallPolicy) -> Replay:
    """Plays the script's two tracks into one call, cut by `drop` if given. Each utterance is
    heard as the words of the line it starts in (preroll may start it just before)."""
    first = make_start(tracks=("inbound", "outbound"))
    session = make_session(first, policy=policy)
    events: list[MediaEvent] = list(session.outbox)
    session.outbox.clear()
    stopped: list[StreamStopped] = []
    starts = [(first.stream_sid, session.connection, session.offset_ms)]

    def hear(ready: list[UtteranceReady]) -> None:
        for r in ready:
            if not r.utterance.final:
                continue
            at_s = r.utterance.start_ms / 1000
            [line] = [
                ln for ln in script if ln.track == r.track and ln.start_s - 0.3 <= at_s < ln.end_s
            ]
            result = Transcription(text=line.text, confidence=0.9)
            events.extend(session.on_transcript(r, result, "script"))

    tracks = {t: audio(script, t, seconds) for t in ("inbound", "outbound")}
    chunk_base = 0  # a new stream numbers its chunks from 1 again
    index = 0
    total = len(tracks["inbound"])
    while index < total:
        if drop is not None and index == round(drop.at_s * 50):
            hear(session.finish())
            stopped.append(session.stopped_event("disconnected", 0))
            index += round(drop.gap_s * 50)  # never delivered
            start = first
            if drop.kind == "new_stream":
                start = dataclasses.replace(first, stream_sid="second-stream")
                chunk_base = index
            # The resuming stream's start arrives when its first audio would have played.
            session.resume(start, index * FRAME_MS)
            starts.append((start.stream_sid, session.connection, session.offset_ms))
            continue
        for track in ("inbound", "outbound"):
            chunk = index - chunk_base + 1
            msg = Media(None, track, chunk, (chunk - 1) * FRAME_MS, tracks[track][index])
            hear(list(session.on_media(msg, now=index / 50)))
            events.extend(session.outbox)
            session.outbox.clear()
        index += 1
    hear(session.finish())
    events.extend(session.settle())
    stopped.append(session.stopped_event("stop", 0))
    events.extend(session.close())
    return Replay(events, stopped, starts)


def outside(
    segments: list[tuple[str, int, int, str]], drop: Drop, open_s: float = 0.0
) -> list[tuple[str, int, int, str]]:
    """(track, start_ms, end_ms, text) clear of the gap. `open_s`: how long before the cut an
    utterance may still have been open (then it ends at the cut, not where the voice faded)."""
    lost_from, lost_to = (drop.at_s - open_s) * 1000, (drop.at_s + drop.gap_s) * 1000
    return [s for s in segments if s[2] <= lost_from or s[1] >= lost_to]


ASKED_THEN_CUT = [
    Line("outbound", 0.5, 2.5, "This call is recorded. Is that okay with you?"),
    Line("inbound", 3.0, 3.6, "Sorry, one second."),
    # cut at 4.0 for 1.0 s: the answer comes on the stream that resumes the call
    Line("inbound", 6.0, 7.0, "Yes, that's fine."),
    Line("inbound", 8.0, 10.0, "I want to speak to your manager right now."),
    # cut at 11.0 in the second script; the same demand again, inside the rule's cooldown
    Line("inbound", 13.0, 15.0, "I want a manager, get me your manager."),
    Line("outbound", 16.0, 17.0, "One moment please."),
]
DROPS = [
    Drop("new_stream", 4.0, 1.0),
    Drop("same_stream", 4.0, 1.0),
    Drop("new_stream", 11.0, 1.5),
    Drop("same_stream", 11.0, 1.5),
]


@pytest.mark.parametrize("drop", DROPS, ids=lambda d: f"{d.kind}-at-{d.at_s}s")
def test_a_cut_call_is_recorded_as_the_same_call_uncut(drop: Drop) -> None:
    policy = CallPolicy(rules=RULES)
    whole = replay(ASKED_THEN_CUT, 19.0, None, policy)
    cut = replay(ASKED_THEN_CUT, 19.0, drop, policy)

    # The uncut call: consent granted by the answer to the question, one escalation (the
    # second demand falls in the rule's cooldown).
    assert [v[:2] for v in whole.verdicts()] == [("granted", "caller_speech")]
    assert [e[0] for e in whole.escalations()] == ["supervisor-request"]
    # Cut, everything said outside the gap is stored where it was said, and decided alike.
    assert outside(cut.segments(), drop) == outside(whole.segments(), drop)
    assert cut.verdicts() == whole.verdicts()
    assert cut.escalations() == whole.escalations()


@pytest.mark.parametrize("kind", ["new_stream", "same_stream"])
def test_each_connection_keeps_its_own_record_and_the_gap_is_lost_once(
    kind: Literal["new_stream", "same_stream"],
) -> None:
    drop = Drop(kind, 4.0, 2.0)
    cut = replay(ASKED_THEN_CUT, 19.0, drop, CallPolicy(rules=RULES))
    first, second = cut.stopped
    if kind == "new_stream":
        assert [s[:2] for s in cut.starts] == [(first.stream_sid, 1), ("second-stream", 1)]
        assert cut.starts[1][2] == 6_000  # it came in 6 s into the call
    else:
        assert [s[:2] for s in cut.starts] == [(first.stream_sid, 1), (first.stream_sid, 2)]
    assert (first.connection, second.connection) == (1, 1 if kind == "new_stream" else 2)
    assert first.reason == "disconnected" and second.reason == "stop"
    for track in first.tracks:
        assert (track.frames_received, track.frames_lost, track.audio_lost_ms) == (200, 0, 0)
    for track in second.tracks:
        # 19 s of call: 4 s on the first connection, 2 s lost once, 13 s on the second.
        assert track.frames_received == 650
        assert track.audio_lost_ms == 2_000
        # Chunks go on across the same stream's reconnect, so the gap shows in them too.
        assert track.frames_lost == (100 if kind == "same_stream" else 0)


def test_a_later_stream_must_keep_the_calls_sample_rate() -> None:
    session = make_session(make_start(tracks=("inbound",)))
    with pytest.raises(UnsupportedFormat):
        session.resume(make_start(encoding="audio/x-l16", sample_rate=16000), 1_000)


def test_a_track_first_heard_on_a_later_stream_starts_where_that_stream_does() -> None:
    session = make_session(make_start(tracks=("inbound",)))
    later = dataclasses.replace(make_start(tracks=("inbound", "outbound")), stream_sid="later")
    session.resume(later, 3_000)
    assert session.tracks["outbound"].endpointer.clock_ms == 3_000
    [stats] = [t for t in session.stopped_event("stop", 0).tracks if t.track == "outbound"]
    assert stats.audio_lost_ms == 0  # nothing of it was ever missed


def test_an_utterance_skipped_after_its_connection_handed_over_counts_on_that_connection() -> None:
    session = make_session(make_start(tracks=("inbound",)))
    utterances: list[UtteranceReady] = []
    for chunk, payload in enumerate(ulaw_payloads("." * 5 + "T" * 25 + "." * 30), start=1):
        utterances += session.on_media(Media(None, "inbound", chunk, (chunk - 1) * 20, payload), 0)
    [heard] = [u for u in utterances if u.utterance.final]
    handed_over = session.stopped_event("disconnected", 0)
    session.resume(make_start(tracks=("inbound",)), 1_200)  # the same stream reconnects
    # The first connection's utterance was still waiting for a decoder: it is given up now.
    session.on_transcript_lost(heard, skipped=True)

    [first] = session.recount_skipped(handed_over).tracks
    [second] = session.stopped_event("stop", 0).tracks
    assert (handed_over.connection, first.utterances_skipped) == (1, 1)
    assert second.utterances_skipped == 0
