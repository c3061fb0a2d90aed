"""Raised voice, dead air and talk-over, driven frame by frame on the track clock. Pure."""

from __future__ import annotations

import numpy as np
import pytest

from media.codecs import level_dbfs
from media.detectors.acoustic import (
    FRAME_MS,
    AcousticConfig,
    AcousticSignal,
    DeadAir,
    RaisedVoice,
    TalkOver,
)
from media.events import Track

TRACKS: tuple[Track, ...] = ("inbound", "outbound")

CFG = AcousticConfig()


def test_level_of_silence_and_of_a_full_scale_square() -> None:
    assert level_dbfs(bytes(320)) == -120.0
    square = np.tile(np.array([32767, -32767], dtype=np.int16), 80).tobytes()
    assert abs(level_dbfs(square)) < 0.01


def feed_voice(detector: RaisedVoice, start_ms: int, frames: int, level: float) -> list[float]:
    fired = []
    for i in range(frames):
        signal = detector.feed(start_ms + (i + 1) * FRAME_MS, True, level)
        if signal is not None:
            fired.append(signal.detail)
    return fired


def test_a_voice_held_above_its_own_baseline_is_raised_once() -> None:
    caller = RaisedVoice("inbound", CFG)
    assert feed_voice(caller, 0, 200, -30.0) == []  # 4 s of ordinary speech
    assert caller.baseline_db == pytest.approx(-30.0, abs=0.5)
    # +10 dB fires once 1.5 s of it is heard (the present level, a half-second mean, rises
    # within 0.3 s); going on does not fire again.
    assert feed_voice(caller, 4_000, 85, -20.0) == []
    [detail] = feed_voice(caller, 5_700, 65, -20.0)
    assert 9.5 <= detail <= 10.5
    assert feed_voice(caller, 7_000, 50, -20.0) == []


def test_a_short_burst_and_an_unjudged_speaker_raise_nothing() -> None:
    caller = RaisedVoice("inbound", CFG)
    # Loud from the start: no usual level yet, so it becomes the usual level instead.
    assert feed_voice(caller, 0, 100, -10.0) == []
    assert feed_voice(caller, 2_000, 200, -10.0) == []
    settled = RaisedVoice("inbound", CFG)
    feed_voice(settled, 0, 200, -30.0)
    assert feed_voice(settled, 4_000, 50, -15.0) == []  # one loud second, then back to normal
    assert feed_voice(settled, 5_000, 250, -30.0) == []


def test_shouting_does_not_become_the_new_normal() -> None:
    caller = RaisedVoice("inbound", CFG)
    feed_voice(caller, 0, 200, -30.0)
    feed_voice(caller, 4_000, 500, -18.0)  # 10 s of raised voice
    baseline = caller.baseline_db
    assert baseline is not None and -30.5 < baseline < -29.0


def test_a_raised_voice_survives_the_gaps_between_words() -> None:
    caller = RaisedVoice("inbound", CFG)
    feed_voice(caller, 0, 200, -30.0)
    fired = []
    for word in range(6):  # 0.4 s words at +12 dB, 0.2 s of silence between them
        fired += feed_voice(caller, 4_000 + word * 600, 20, -18.0)
        for gap in range(1, 11):
            signal = caller.feed(4_000 + word * 600 + 400 + gap * FRAME_MS, False, -90.0)
            fired += [signal.detail] if signal else []
    [detail] = fired
    assert 11.5 <= detail <= 12.5


def test_an_outburst_in_runs_with_pauses_is_raised() -> None:
    """Natural loud speech: runs of 0.5-1.7 s at +12 dB with pauses of up to 0.7 s; no single
    run is 1.5 s of raised voice, and the usual level must not climb with them."""
    caller = RaisedVoice("inbound", CFG)
    feed_voice(caller, 0, 300, -30.0)
    clock, fired = 6_000, []
    for run_ms, pause_ms in ((900, 600), (500, 700), (1_200, 400), (700, 500)):
        fired += feed_voice(caller, clock, run_ms // FRAME_MS, -18.0)
        clock += run_ms
        for gap in range(1, pause_ms // FRAME_MS + 1):
            signal = caller.feed(clock + gap * FRAME_MS, False, -90.0)
            fired += [signal.detail] if signal else []
        clock += pause_ms
    assert len(fired) == 1


def test_a_new_episode_fires_once_the_last_one_has_passed() -> None:
    caller = RaisedVoice("inbound", CFG)
    feed_voice(caller, 0, 200, -30.0)
    assert len(feed_voice(caller, 4_000, 100, -20.0)) == 1
    for gap in range(1, 251):  # five seconds of silence: the window empties
        caller.feed(6_000 + gap * FRAME_MS, False, -90.0)
    assert len(feed_voice(caller, 11_000, 100, -20.0)) == 1


def feed_both(
    detector: DeadAir | TalkOver, slots: range, voiced: dict[Track, bool] | None = None
) -> list[AcousticSignal]:
    """Both tracks' frames for each 20 ms slot; `voiced` per track, else silence."""
    signals = []
    for slot in slots:
        now = slot * FRAME_MS
        for track in TRACKS:
            is_voiced = bool(voiced and voiced.get(track))
            if isinstance(detector, DeadAir):
                signal = detector.feed(now, is_voiced)
            else:
                signal = detector.feed(track, now, is_voiced)
            if signal is not None:
                signals.append(signal)
    return signals


def test_dead_air_fires_once_per_silence_on_both_tracks() -> None:
    quiet = DeadAir(10_000)
    signals = feed_both(quiet, range(1, 51), {"inbound": True})  # 1 s of caller speech
    signals += feed_both(quiet, range(51, 1_000))  # then 19 s of silence
    [dead] = signals
    assert (dead.kind, dead.start_ms, dead.end_ms, dead.detail) == ("dead_air", 1_000, 11_000, 10)


def test_one_party_speaking_is_not_dead_air() -> None:
    quiet = DeadAir(10_000)
    assert feed_both(quiet, range(1, 1_000), {"outbound": True}) == []


def test_dead_air_fires_again_after_someone_speaks() -> None:
    quiet = DeadAir(2_000)
    signals = feed_both(quiet, range(1, 201))
    signals += feed_both(quiet, range(201, 211), {"inbound": True})
    signals += feed_both(quiet, range(211, 400))
    assert [s.start_ms for s in signals] == [0, 4_200]


def test_talk_over_needs_both_parties_for_two_seconds() -> None:
    talk = TalkOver(("inbound", "outbound"), held_ms=2_000)
    signals = []
    for slot in range(1, 400):
        now = slot * FRAME_MS
        # The agent talks throughout; the caller cuts in from 2 s to 3 s, then 4 s to 6.5 s.
        caller = 2_000 < now <= 3_000 or 4_000 < now <= 6_500
        frames: tuple[tuple[Track, bool], ...] = (("outbound", True), ("inbound", caller))
        for track, voiced in frames:
            if (signal := talk.feed(track, now, voiced)) is not None:
                signals.append(signal)
    # Two seconds of it within 3.5 s: the first second (and the 0.3 s after it, a pause),
    # then the start of the next.
    [over] = signals
    assert (over.kind, over.start_ms, over.end_ms, over.overlaps) == ("talk_over", 2_000, 4_700, 1)


def test_one_short_overlap_is_not_talk_over() -> None:
    talk = TalkOver(("inbound", "outbound"), held_ms=2_000)
    for slot in range(1, 400):
        now = slot * FRAME_MS
        caller = 2_000 < now <= 3_500  # 1.5 s over the agent, then silence
        for track, voiced in (("outbound", True), ("inbound", caller)):
            assert talk.feed(track, now, voiced) is None  # type: ignore[arg-type]


def interruptions(talk: TalkOver, starts_s: list[float], each_ms: int) -> list[AcousticSignal]:
    """The agent talks throughout; the caller cuts in at each start for `each_ms`."""
    signals = []
    for slot in range(1, 120_000 // FRAME_MS):
        now = slot * FRAME_MS
        caller = any(s * 1000 < now <= s * 1000 + each_ms for s in starts_s)
        frames: tuple[tuple[Track, bool], ...] = (("outbound", True), ("inbound", caller))
        for track, voiced in frames:
            if (signal := talk.feed(track, now, voiced)) is not None:
                signals.append(signal)
    return signals


def test_repeated_interruptions_within_a_minute_are_talk_over() -> None:
    talk = TalkOver(("inbound", "outbound"), held_ms=2_000, per_minute=3)
    [over] = interruptions(talk, [5, 20, 40], each_ms=500)
    assert (over.start_ms, over.overlaps) == (5_000, 3)
    assert over.end_ms == 40_300  # when the third one had lasted the counted 0.3 s


def test_interruptions_spread_out_or_too_short_are_not_counted() -> None:
    spread = TalkOver(("inbound", "outbound"), held_ms=2_000, per_minute=3)
    assert interruptions(spread, [5, 50, 95], each_ms=500) == []  # never 3 within 60 s
    short = TalkOver(("inbound", "outbound"), held_ms=2_000, per_minute=3)
    assert interruptions(short, [5, 10, 15, 20], each_ms=200) == []  # "mm-hm" is not one


def test_counted_interruptions_are_spent_once_they_fire() -> None:
    talk = TalkOver(("inbound", "outbound"), held_ms=2_000, per_minute=2)
    signals = interruptions(talk, [5, 10, 15, 20, 25], each_ms=500)
    assert [(s.start_ms, s.overlaps) for s in signals] == [(5_000, 2), (15_000, 2)]


def test_a_quiet_first_word_does_not_make_ordinary_speech_look_raised() -> None:
    caller = RaisedVoice("inbound", CFG)
    feed_voice(caller, 0, 10, -45.0)  # a soft onset
    assert feed_voice(caller, 200, 300, -30.0) == []  # then 6 s at the speaker's usual level
    baseline = caller.baseline_db
    assert baseline is not None and -30.5 < baseline < -29.5


def test_talk_over_holds_through_the_gaps_between_words() -> None:
    talk = TalkOver(("inbound", "outbound"), held_ms=2_000)
    signals = []
    for slot in range(1, 400):
        now = slot * FRAME_MS
        # The agent talks throughout; the caller talks over them from 2 s to 5 s in 0.4 s
        # words with 0.2 s between them.
        caller = 2_000 < now <= 5_000 and (now - 2_000) % 600 <= 400
        frames: tuple[tuple[Track, bool], ...] = (("outbound", True), ("inbound", caller))
        for track, voiced in frames:
            if (signal := talk.feed(track, now, voiced)) is not None:
                signals.append(signal)
    [over] = signals
    assert over.start_ms == 2_000 and over.overlaps == 1
