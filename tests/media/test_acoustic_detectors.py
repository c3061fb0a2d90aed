"""Raised voice, dead air and talk-over, driven frame by frame on the track clock. Pure."""

from __future__ import annotations

import numpy as np

from media.codecs import level_dbfs
from media.detectors.acoustic import FRAME_MS, AcousticConfig, Conversation, RaisedVoice

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
    assert caller.baseline_db == -30.0
    # 1.5 s at +10 dB fires once, when the 1.5 s are up; going on does not fire again.
    fired = feed_voice(caller, 4_000, 150, -20.0)
    assert fired == [10.0]
    assert feed_voice(caller, 7_000, 50, -20.0) == []


def test_short_bursts_and_an_unjudged_speaker_raise_nothing() -> None:
    caller = RaisedVoice("inbound", CFG)
    # Loud from the start: no baseline yet, so it becomes the baseline instead.
    assert feed_voice(caller, 0, 100, -10.0) == []
    settled = RaisedVoice("inbound", CFG)
    feed_voice(settled, 0, 200, -30.0)
    for burst in range(5):  # 1 s bursts broken by silence never reach 1.5 s
        assert feed_voice(settled, 4_000 + burst * 2_000, 50, -15.0) == []
        settled.feed(4_000 + burst * 2_000 + 1_020, False, -90.0)


def test_shouting_does_not_become_the_new_normal() -> None:
    caller = RaisedVoice("inbound", CFG)
    feed_voice(caller, 0, 200, -30.0)
    feed_voice(caller, 4_000, 500, -18.0)  # 10 s of raised voice
    assert caller.baseline_db == -30.0


def test_dead_air_fires_once_per_silence_on_both_tracks() -> None:
    talk = Conversation(CFG, ("inbound", "outbound"))
    signals = []
    for slot in range(1, 1_000):  # 20 s: speech for 1 s, then silence
        now = slot * FRAME_MS
        for track in ("inbound", "outbound"):
            signals += talk.feed(track, now, voiced=(track == "inbound" and now <= 1_000))
    [dead] = signals
    assert (dead.kind, dead.start_ms, dead.end_ms) == ("dead_air", 1_000, 11_000)


def test_one_party_speaking_is_not_dead_air() -> None:
    talk = Conversation(CFG, ("inbound", "outbound"))
    for slot in range(1, 1_000):
        assert talk.feed("outbound", slot * FRAME_MS, voiced=True) == []
        assert talk.feed("inbound", slot * FRAME_MS, voiced=False) == []


def test_talk_over_needs_both_parties_for_two_seconds() -> None:
    talk = Conversation(CFG, ("inbound", "outbound"))
    signals = []
    for slot in range(1, 400):
        now = slot * FRAME_MS
        # The agent talks throughout; the caller cuts in from 2 s to 3 s, then 4 s to 6.5 s.
        caller = 2_000 < now <= 3_000 or 4_000 < now <= 6_500
        signals += talk.feed("outbound", now, voiced=True)
        signals += talk.feed("inbound", now, voiced=caller)
    [over] = signals
    assert (over.kind, over.start_ms, over.end_ms) == ("talk_over", 4_000, 6_000)
