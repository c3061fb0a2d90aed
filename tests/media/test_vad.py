"""media.vad: the endpointer frame by frame with a scripted detector, and WebRTC's VAD on the
speech fixtures.

Each test frame carries its own index (every sample is index + 1), so the detector can look up
its scripted verdict and a test can read back exactly which frames an utterance holds. Lost
frames (`skip`) are all zeros and read back as -1.
"""

from __future__ import annotations

import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from media.vad import Endpointer, EndpointerConfig, Utterance, WebRtcVoiceDetector

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
EARLY = EndpointerConfig()
DEFAULT = replace(EARLY, early_decode_ms=None)
"""The final utterances alone; the early cut has tests of its own (with EARLY)."""
# With the defaults: start = 3 voiced of the last 5 frames, hangover 25 frames, preroll 10,
# tail 10, at least 10 voiced frames, monologues cut every 750 frames.
HANGOVER = DEFAULT.hangover_ms // DEFAULT.frame_ms
PREROLL = DEFAULT.preroll_ms // DEFAULT.frame_ms
TAIL = DEFAULT.tail_ms // DEFAULT.frame_ms


def frame(index: int, samples: int = FRAME_SAMPLES) -> bytes:
    return np.full(samples, index + 1, dtype=np.int16).tobytes()


def frame_ids(pcm: bytes, samples: int = FRAME_SAMPLES) -> list[int]:
    values = np.frombuffer(pcm, dtype=np.int16).reshape(-1, samples)
    assert (values == values[:, :1]).all(), "a frame was split or mixed"
    return [int(v) - 1 for v in values[:, 0]]


class ScriptedVad:
    """Voiced where the script says `V`; the frame's own index picks the verdict."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.rates: set[int] = set()

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        self.rates.add(sample_rate)
        index = int(np.frombuffer(frame[:2], dtype=np.int16)[0]) - 1
        return self.script[index] == "V"


class Run:
    """Feeds a script's frames one by one and records what came out after which frame."""

    def __init__(self, script: str, config: EndpointerConfig = DEFAULT) -> None:
        self.script = script
        self.vad = ScriptedVad(script)
        self.ep = Endpointer(config, RATE, self.vad)
        self.next_index = 0
        self.emitted: list[tuple[int, Utterance]] = []

    def feed(self, count: int | None = None) -> list[Utterance]:
        stop = len(self.script) if count is None else self.next_index + count
        out = []
        while self.next_index < stop:
            u = self.ep.feed(frame(self.next_index))
            if u is not None:
                self.emitted.append((self.next_index, u))
                out.append(u)
            self.next_index += 1
        return out


def speaking(ep: Endpointer) -> bool:
    """`ep.in_speech`, read through a call so mypy does not narrow it across feeds."""
    return ep.in_speech


def script(*parts: tuple[str, int]) -> str:
    return "".join(ch * n for ch, n in parts)


def test_frame_size_and_clock() -> None:
    ep = Endpointer(DEFAULT, RATE, ScriptedVad("." * 10))
    assert (ep.frame_samples, ep.frame_bytes) == (160, 320)
    for i in range(7):
        ep.feed(frame(i))
    assert ep.sample_clock == 7 * 160
    assert ep.clock_ms == 140

    wide = Endpointer(DEFAULT, 16000, ScriptedVad(""))
    assert (wide.frame_samples, wide.frame_bytes) == (320, 640)


def test_detector_is_asked_at_the_stream_rate() -> None:
    run = Run("." * 3)
    run.feed()
    assert run.vad.rates == {RATE}


# --- start of speech ---------------------------------------------------------------------------


def test_start_needs_enough_voiced_frames_in_the_window() -> None:
    run = Run(".VV.V" + "." * 40)
    run.feed(3)
    assert not speaking(run.ep)  # two voiced
    run.feed(1)
    assert not speaking(run.ep)
    run.feed(1)  # third voiced frame within the last five
    assert speaking(run.ep)


def test_voiced_frames_spread_wider_than_the_window_do_not_start_speech() -> None:
    run = Run("V...V...V...V...V" + "." * 40)
    assert run.feed() == []
    assert run.emitted == []
    assert run.ep.flush() is None


# --- one utterance, frame-exact ----------------------------------------------------------------


def test_utterance_has_preroll_speech_and_tail() -> None:
    # Silence 0-19, speech 20-34, silence 35-69.
    run = Run(script((".", 20), ("V", 15), (".", 35)))
    utterances = run.feed()

    assert len(utterances) == 1
    u = utterances[0]
    # Triggered on frame 22 (third voiced); the preroll is the ten frames before it.
    first = 22 - PREROLL
    assert first == 12
    assert u.start_sample == first * FRAME_SAMPLES
    # End of speech: one past the last voiced sample.
    assert u.end_sample == 35 * FRAME_SAMPLES
    # Audio: preroll, speech, then TAIL frames of the silence after it.
    assert frame_ids(u.pcm) == list(range(first, 35 + TAIL))
    assert u.sample_rate == RATE
    assert (u.start_ms, u.end_ms) == (240, 700)


def test_utterance_ends_exactly_after_the_hangover() -> None:
    run = Run(script(("V", 15), (".", 40)))
    run.feed(15 + HANGOVER - 1)
    assert run.emitted == []
    assert speaking(run.ep)
    run.feed(1)
    assert [index for index, _ in run.emitted] == [15 + HANGOVER - 1]
    assert not speaking(run.ep)
    u = run.emitted[0][1]
    assert (u.start_sample, u.end_sample) == (0, 15 * FRAME_SAMPLES)


def test_a_pause_shorter_than_the_hangover_keeps_one_utterance() -> None:
    pause = HANGOVER - 1
    run = Run(script(("V", 12), (".", pause), ("V", 12), (".", 40)))
    utterances = run.feed()
    assert len(utterances) == 1
    u = utterances[0]
    speech_end = 12 + pause + 12
    assert (u.start_sample, u.end_sample) == (0, speech_end * FRAME_SAMPLES)
    assert frame_ids(u.pcm) == list(range(speech_end + TAIL))


def test_a_pause_of_the_hangover_splits_utterances() -> None:
    run = Run(script(("V", 12), (".", HANGOVER), ("V", 12), (".", 40)))
    utterances = run.feed()
    assert len(utterances) == 2
    first, second = utterances
    assert (first.start_sample, first.end_sample) == (0, 12 * FRAME_SAMPLES)
    second_speech = 12 + HANGOVER
    # The second utterance holds all of its speech and none of the first one's.
    assert first.end_sample <= second.start_sample <= second_speech * FRAME_SAMPLES
    assert second.end_sample == (second_speech + 12) * FRAME_SAMPLES
    assert frame_ids(second.pcm)[-12 - TAIL :] == list(
        range(second_speech, second_speech + 12 + TAIL)
    )


EARLY_FRAMES = 200 // 20  # EARLY.early_decode_ms


def test_early_cut_hands_out_the_final_utterances_audio_before_the_hangover() -> None:
    run = Run(script(("V", 15), (".", 40)), EARLY)
    run.feed()
    (early_at, early), (final_at, final) = run.emitted
    assert (early_at, final_at) == (15 + EARLY_FRAMES - 1, 15 + HANGOVER - 1)
    assert (early.kind, final.kind) == ("early", "final")
    assert (early.start_sample, early.end_sample, early.pcm) == (
        final.start_sample,
        final.end_sample,
        final.pcm,
    )


def test_speech_resuming_after_an_early_cut_makes_a_longer_final_utterance() -> None:
    pause = EARLY_FRAMES + 3  # past the early cut, short of the hangover
    run = Run(script(("V", 12), (".", pause), ("V", 12), (".", 40)), EARLY)
    first, second, final = run.feed()
    assert (first.kind, second.kind, final.kind) == ("early", "early", "final")
    assert first.end_sample == 12 * FRAME_SAMPLES  # void: the speaker went on
    assert (second.end_sample, second.pcm) == (final.end_sample, final.pcm)
    assert final.end_sample == (12 + pause + 12) * FRAME_SAMPLES


def test_no_early_cut_for_too_little_speech() -> None:
    run = Run(script(("V", 5), (".", 40)), EARLY)
    assert run.feed() == []


PARTIAL = replace(DEFAULT, partial_every_ms=200)


def test_partials_hand_out_the_words_so_far_while_someone_speaks() -> None:
    run = Run(script((".", 10), ("V", 29), (".", 3), ("V", 20), (".", 40)), PARTIAL)
    *partials, final = run.feed()
    assert [u.kind for u in partials] == ["partial"] * len(partials) and final.kind == "final"
    # Each is the utterance so far: same start, a prefix of the final audio, voiced at its end.
    for u in partials:
        assert u.start_sample == final.start_sample
        assert final.pcm.startswith(u.pcm)
        assert frame_ids(u.pcm)[-1] * FRAME_SAMPLES == u.end_sample - FRAME_SAMPLES
        assert run.script[frame_ids(u.pcm)[-1]] == "V"
    # One as soon as enough of it is voiced (the 10th voiced frame, 19), then one each time it
    # has grown by 10 frames, but none in a pause (39..41): that one waits for speech (42).
    assert [i for i, u in run.emitted if u.kind == "partial"] == [19, 29, 42, 52]


def test_no_partials_when_they_are_off_or_speech_is_too_short() -> None:
    assert [u.kind for u in Run(script(("V", 60), (".", 40))).feed()] == ["final"]
    assert Run(script(("V", 6), (".", 40)), PARTIAL).feed() == []


def test_partials_of_a_cut_monologue_restart_with_each_piece() -> None:
    config = replace(PARTIAL, max_utterance_ms=1_000)  # pieces of 50 frames
    run = Run(script(("V", 120), (".", 40)), config)
    finals = [u for u in run.feed() if u.final]
    assert len(finals) == 3
    for piece in finals:
        mine = [u for u in (u for _, u in run.emitted) if u.kind == "partial"
                and u.start_sample == piece.start_sample]  # fmt: skip
        assert mine and all(piece.pcm.startswith(u.pcm) for u in mine)


def test_partials_need_at_least_a_frame_between_them() -> None:
    with pytest.raises(ValueError, match="partial_every_ms"):
        Endpointer(replace(DEFAULT, partial_every_ms=10), RATE, ScriptedVad(""))


@pytest.mark.parametrize("early_ms", [100, 500, 600])
def test_early_cut_must_lie_between_the_tail_and_the_hangover(early_ms: int) -> None:
    with pytest.raises(ValueError, match="early_decode_ms"):
        Endpointer(replace(EARLY, early_decode_ms=early_ms), RATE, ScriptedVad(""))


def test_no_early_cut_at_zero_silence_even_with_no_tail() -> None:
    with pytest.raises(ValueError, match="early_decode_ms"):
        Endpointer(replace(EARLY, tail_ms=0, early_decode_ms=0), RATE, ScriptedVad(""))


@pytest.mark.parametrize("tail_ms", [0, 100, 200, 400])
def test_tail_keeps_that_much_silence(tail_ms: int) -> None:
    config = replace(DEFAULT, tail_ms=tail_ms)
    run = Run(script(("V", 15), (".", 40)), config)
    (u,) = run.feed()
    tail_frames = tail_ms // 20
    assert frame_ids(u.pcm) == list(range(15 + tail_frames))
    assert u.end_sample == 15 * FRAME_SAMPLES
    assert len(u.pcm) == (u.end_sample - u.start_sample) * 2 + tail_ms * RATE // 1000 * 2


def test_zero_preroll_starts_at_the_trigger_frame() -> None:
    config = replace(DEFAULT, preroll_ms=0)
    run = Run(script((".", 5), ("V", 15), (".", 40)), config)
    (u,) = run.feed()
    assert u.start_sample == 7 * FRAME_SAMPLES
    assert frame_ids(u.pcm)[0] == 7


# --- too little speech -------------------------------------------------------------------------


@pytest.mark.parametrize("voiced", [3, 5, 9])
def test_bursts_with_too_little_voiced_audio_are_dropped(voiced: int) -> None:
    run = Run(script((".", 10), ("V", voiced), (".", 60)))
    assert run.feed() == []
    assert not speaking(run.ep)


def test_a_dropped_burst_does_not_block_the_next_utterance() -> None:
    run = Run(script(("V", 4), (".", 30), ("V", 20), (".", 30)))
    utterances = run.feed()
    assert len(utterances) == 1
    assert utterances[0].end_sample == 54 * FRAME_SAMPLES


def test_exactly_min_speech_of_voiced_audio_is_kept() -> None:
    """min_speech_ms is 200 ms: ten voiced frames are not "less voiced audio than this"."""
    voiced = DEFAULT.min_speech_ms // DEFAULT.frame_ms
    run = Run(script((".", 10), ("V", voiced), (".", 60)))
    utterances = run.feed()
    assert len(utterances) == 1
    assert utterances[0].end_sample == (10 + voiced) * FRAME_SAMPLES


def test_voiced_frames_with_gaps_count_towards_min_speech() -> None:
    # 12 voiced frames interleaved with silence: "VV." repeated, one utterance.
    run = Run("." * 5 + "VV." * 6 + "." * 40)
    utterances = run.feed()
    assert len(utterances) == 1


# --- monologues --------------------------------------------------------------------------------


def test_max_utterance_cuts_a_monologue_into_consecutive_pieces() -> None:
    config = replace(DEFAULT, max_utterance_ms=1000)  # 50 frames a piece
    run = Run(script(("V", 120), (".", 40)), config)
    pieces = run.feed()

    assert len(pieces) == 3
    # Cut after exactly 50 frames held, twice; the last 20 frames end by hangover.
    assert [index for index, _ in run.emitted] == [49, 99, 119 + HANGOVER]
    for before, after in zip(pieces, pieces[1:], strict=False):
        # The next piece starts at the sample right after the previous piece's audio.
        assert after.start_sample == before.start_sample + len(before.pcm) // 2
        assert after.start_sample == before.end_sample
    assert pieces[0].start_sample == 0
    assert pieces[-1].end_sample == 120 * FRAME_SAMPLES
    # No frame lost or repeated across the cuts.
    speech = [i for p in pieces for i in frame_ids(p.pcm) if i < 120]
    assert speech == list(range(120))


def test_default_monologue_is_cut_at_fifteen_seconds() -> None:
    run = Run(script(("V", 1000), (".", 30)))
    pieces = run.feed()
    assert [p.end_ms - p.start_ms for p in pieces] == [15_000, 5_000]
    assert pieces[1].start_ms == 15_000


def test_speech_just_past_a_cut_is_not_dropped() -> None:
    """A monologue 100 ms longer than max_utterance_ms: its last 100 ms are still speech."""
    max_frames = DEFAULT.max_utterance_ms // DEFAULT.frame_ms
    run = Run(script(("V", max_frames + 5), (".", 40)))
    pieces = run.feed()
    speech = [i for p in pieces for i in frame_ids(p.pcm) if i < max_frames + 5]
    assert speech == list(range(max_frames + 5))
    assert pieces[-1].end_sample == (max_frames + 5) * FRAME_SAMPLES


# --- lost frames -------------------------------------------------------------------------------


def test_skip_moves_the_clock_when_idle() -> None:
    run = Run(script((".", 10), ("V", 15), (".", 40)))
    run.feed(10)
    assert run.ep.skip(50 * FRAME_SAMPLES) is None
    assert run.ep.sample_clock == 60 * FRAME_SAMPLES
    (u,) = run.feed()
    # Speech frames 10-24 now sit 50 frames later on the track's clock; the preroll holds only
    # what arrived after the outage.
    assert u.start_sample == 60 * FRAME_SAMPLES
    assert u.end_sample == (60 + 15) * FRAME_SAMPLES
    assert frame_ids(u.pcm)[:15] == list(range(10, 25))


def test_skip_ends_an_utterance_in_progress() -> None:
    run = Run(script(("V", 15), (".", 40)))
    run.feed(15)
    u = run.ep.skip(100 * FRAME_SAMPLES)
    assert u is not None
    assert (u.start_sample, u.end_sample) == (0, 15 * FRAME_SAMPLES)
    assert frame_ids(u.pcm) == list(range(15))
    assert not speaking(run.ep)
    assert run.ep.sample_clock == 115 * FRAME_SAMPLES
    assert run.ep.last_frame_voiced is False


# --- end of stream -----------------------------------------------------------------------------


def test_flush_returns_the_open_utterance() -> None:
    run = Run(script(("V", 15), (".", 5)))
    assert run.feed() == []
    u = run.ep.flush()
    assert u is not None
    assert (u.start_sample, u.end_sample) == (0, 15 * FRAME_SAMPLES)
    assert frame_ids(u.pcm) == list(range(20))
    assert not speaking(run.ep)
    assert run.ep.flush() is None


def test_flush_keeps_only_the_tail_of_trailing_silence() -> None:
    run = Run(script(("V", 15), (".", HANGOVER - 1)))
    run.feed()
    u = run.ep.flush()
    assert u is not None
    assert frame_ids(u.pcm) == list(range(15 + TAIL))


def test_flush_when_idle_or_too_short_returns_nothing() -> None:
    idle = Run("." * 20)
    idle.feed()
    assert idle.ep.flush() is None

    short = Run("VVVV")
    short.feed()
    assert speaking(short.ep)
    assert short.ep.flush() is None


# --- WebRTC VAD on real speech -----------------------------------------------------------------


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return w.readframes(w.getnframes())


def speech_regions(pcm: bytes, min_gap_frames: int) -> list[tuple[int, int]]:
    """(start_ms, end_ms) of runs of loud 20 ms frames, merging gaps shorter than the given."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 100.0)
    regions: list[list[int]] = []
    for index in loud.tolist():
        if regions and index - regions[-1][1] <= min_gap_frames:
            regions[-1][1] = index
        else:
            regions.append([index, index])
    return [(a * 20, (b + 1) * 20) for a, b in regions]


def run_webrtc(pcm: bytes, aggressiveness: int) -> tuple[list[Utterance], Utterance | None]:
    ep = Endpointer(DEFAULT, RATE, WebRtcVoiceDetector(aggressiveness))
    utterances = []
    usable = len(pcm) // ep.frame_bytes * ep.frame_bytes
    for offset in range(0, usable, ep.frame_bytes):
        u = ep.feed(pcm[offset : offset + ep.frame_bytes])
        if u is not None:
            utterances.append(u)
    return utterances, ep.flush()


@pytest.mark.parametrize("aggressiveness", [0, 2, 3])
def test_webrtc_finds_the_two_sentences_of_caller_mono(aggressiveness: int) -> None:
    pcm = read_wav(SPEECH / "caller_mono.wav")
    # Pauses inside a sentence are shorter than the 1 s between sentences.
    regions = speech_regions(pcm, min_gap_frames=HANGOVER)
    assert len(regions) == 2, regions

    utterances, leftover = run_webrtc(pcm, aggressiveness)

    assert leftover is None  # the file ends with 0.7 s of silence: both closed in time
    assert len(utterances) == 2
    for u, (speech_start, speech_end) in zip(utterances, regions, strict=True):
        assert speech_start - DEFAULT.preroll_ms - 100 <= u.start_ms <= speech_start + 60
        assert speech_end - 100 <= u.end_ms <= speech_end + 300
        assert (
            len(u.pcm) == (u.end_sample - u.start_sample) * 2 + DEFAULT.tail_ms * RATE // 1000 * 2
        )
    # Each utterance stays on its side of the pause between the sentences.
    gap_middle = (regions[0][1] + regions[1][0]) // 2
    assert utterances[0].end_ms < gap_middle < utterances[1].start_ms


def test_webrtc_finds_nothing_in_silence() -> None:
    pcm = read_wav(SPEECH / "silence_5s.wav")
    assert len(pcm) == 5 * RATE * 2
    utterances, leftover = run_webrtc(pcm, aggressiveness=0)
    assert utterances == []
    assert leftover is None
