"""Secure mode in the call session (sans-I/O): while it is on, nothing the caller says or keys
in leaves the session as words or digits; the agent is heard as before."""

from __future__ import annotations

from collections.abc import Sequence

from media.events import DtmfReceived, MediaEvent, TranscriptPartial, TranscriptSegment
from media.protocol import Dtmf
from media.session import SECURE_TEXT, CallPolicy
from media.transcription.engine import Transcription
from tests.media.test_session import (
    feed,
    make_session,
    make_start,
    pattern,
    said,
    ulaw_payloads,
)

CARD = "my card is 4111 1111 1111 1111"
BOTH = make_start(tracks=("inbound", "outbound"))


def segments(events: Sequence[MediaEvent]) -> list[TranscriptSegment]:
    return [e for e in events if isinstance(e, TranscriptSegment)]


def test_the_callers_words_in_secure_mode_are_not_kept_and_the_agents_are() -> None:
    session = make_session(BOTH)
    feed(session, ulaw_payloads("." * 100))  # 2 s of the call heard
    session.set_secure(True)
    assert session.secure
    assert segments(said(session, "inbound", CARD, 2.5)) == []
    [agent] = segments(said(session, "outbound", "thank you, and the expiry?", 3.0))
    assert agent.text == "thank you, and the expiry?"
    assert session.on_partial("inbound", 2500, 3000, "four one one one") == []


def test_words_spoken_before_secure_mode_are_kept_and_after_it_again() -> None:
    session = make_session(BOTH)
    feed(session, ulaw_payloads("." * 100))
    [before] = segments(said(session, "inbound", "I'd like to pay my bill", 0.5))
    assert before.text == "I'd like to pay my bill"
    session.set_secure(True)
    feed(session, ulaw_payloads("." * 100), chunks=range(101, 201))  # to 4 s
    session.set_secure(False)
    assert not session.secure
    # Decoded after secure mode ended but spoken (2.5–3.5 s) while it was on: still dropped.
    assert segments(said(session, "inbound", CARD, 2.5)) == []
    [after] = segments(said(session, "inbound", "is that all done now", 4.5))
    assert after.text == "is that all done now"


def test_an_utterance_overlapping_the_start_of_secure_mode_is_dropped() -> None:
    session = make_session(BOTH)
    feed(session, ulaw_payloads("." * 100))
    session.set_secure(True)  # at 2 s; the utterance runs 1.5–2.5 s
    assert segments(said(session, "inbound", "it's four one one one", 1.5)) == []


def test_suspended_caller_audio_yields_no_utterance_to_transcribe() -> None:
    session = make_session(BOTH)
    session.set_secure(True)
    speech = pattern(("T", 50), (".", 40))
    assert feed(session, ulaw_payloads(speech)) == []
    # The agent's track is heard as ever.
    [agent] = feed(session, ulaw_payloads(speech), track="outbound")
    assert agent.track == "outbound"


def test_a_streaming_service_hears_silence_from_the_caller_in_secure_mode() -> None:
    session = make_session(BOTH)
    sent: list[tuple[str, bytes, bytes]] = []
    session.set_audio_sink(lambda track, payload, pcm, _lost: sent.append((track, payload, pcm)))
    loud = ulaw_payloads("T")
    feed(session, loud)
    session.set_secure(True)
    feed(session, loud, chunks=[2])
    feed(session, loud, track="outbound")
    session.set_secure(False)
    feed(session, loud, chunks=[3])
    assert [(t, p == loud[0]) for t, p, _ in sent] == [
        ("inbound", True),
        ("inbound", False),
        ("outbound", True),
        ("inbound", True),
    ]
    _, silent_payload, silent_pcm = sent[1]
    assert silent_payload == b"\xff" * 160  # mu-law silence, the length of the frame
    assert silent_pcm == bytes(320)


def test_redact_mode_keeps_the_turn_but_none_of_its_words() -> None:
    session = make_session(BOTH, policy=CallPolicy(secure=True, secure_words="redact"))
    sent: list[bytes] = []
    session.set_audio_sink(lambda _t, payload, _pcm, _lost: sent.append(payload))
    loud = ulaw_payloads("T")
    feed(session, loud)
    assert sent == loud  # the org chose to have the audio transcribed, and redacted after
    [segment] = segments(said(session, "inbound", CARD, 0.5))
    assert (segment.text, segment.redacted, segment.words) == (SECURE_TEXT, ("secure",), ())


def test_keys_pressed_in_secure_mode_are_stored_as_presses_without_digits() -> None:
    session = make_session(BOTH)
    [before] = session.on_dtmf(Dtmf(sequence_number=1, track="inbound", digit="1", duration_ms=1))
    session.set_secure(True)
    pressed = [
        session.on_dtmf(Dtmf(sequence_number=n, track="inbound", digit=d, duration_ms=100))
        for n, d in enumerate("4111", start=2)
    ]
    session.set_secure(False)
    [after] = session.on_dtmf(Dtmf(sequence_number=9, track="inbound", digit="#", duration_ms=1))
    assert isinstance(before, DtmfReceived) and before.digit == "1"
    presses = [event for events in pressed for event in events]
    assert [(type(e), getattr(e, "digit", "?")) for e in presses] == [(DtmfReceived, None)] * 4
    assert isinstance(after, DtmfReceived) and after.digit == "#"


def test_a_stream_opening_in_secure_mode_starts_in_it() -> None:
    session = make_session(BOTH, policy=CallPolicy(secure=True))
    assert session.secure
    assert segments(said(session, "inbound", CARD, 0.0)) == []


def test_secure_mode_drops_streamed_finals_and_partials_of_the_caller() -> None:
    session = make_session(BOTH, policy=CallPolicy(secure=True))
    heard = session.on_streamed_final(
        "inbound", 0, 900, Transcription(text=CARD, confidence=0.9), "deepgram", (), "s"
    )
    assert segments(heard) == []
    partials = session.on_partial("outbound", 0, 500, "and the card number")
    assert [type(p) for p in partials] == [TranscriptPartial]
