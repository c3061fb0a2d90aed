"""Acoustic signals from the audio itself, not the text: raised voice, dead air, talk-over.

Pure state machines fed one 20 ms frame at a time with the track's clock (milliseconds of call
audio, counted in samples), whether the frame is voiced and its level in dBFS. They fire once
per episode: a new signal needs the condition to end and start again. They sit on the media
hot path (every frame of every call), so feeding them allocates nothing unless they fire.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from media.events import Track

FRAME_MS = 20
MIN_COUNTED_OVERLAP_MS = 300
"""An overlap shorter than this is a backchannel ("mm-hm") or a VAD blip, not a talk-over."""
COUNT_WINDOW_MS = 60_000
TALK_DIP_MS = 300
"""A party is still speaking through a pause this short (between words)."""
TALK_WINDOW_EXTRA_MS = 1_500
"""Talk-over's held time may be spread over this much more time than itself."""


@dataclass(frozen=True, slots=True)
class AcousticConfig:
    """How `RaisedVoice` judges one speaker."""

    raised_by_db: float = 8.0
    """Raised voice: this far above the speaker's own usual level…"""
    raised_for_ms: int = 1_500
    """…in this much voiced speech…"""
    within_ms: int | None = None
    """…within this much time (default twice `raised_for_ms` plus a second): loud speech
    comes in runs with pauses between them, and an outburst is several such runs."""
    baseline_after_ms: int = 3_000
    """A speaker's level is only judged once this much of their speech has been heard."""
    baseline_percentile: float = 50.0
    """The usual level: this percentile of the speaker's present levels over their speech."""
    short_ms: int = 500
    """The present level is the mean over this much audio (at least half of it voiced)."""

    @property
    def window_ms(self) -> int:
        return self.within_ms if self.within_ms is not None else 2 * self.raised_for_ms + 1_000


@dataclass(frozen=True, slots=True)
class AcousticSignal:
    kind: Literal["raised_voice", "dead_air", "talk_over"]
    track: Track | None
    """The raised voice's track; None for signals about both parties."""
    start_ms: int
    end_ms: int
    """When the signal fired (the condition had then held from start_ms)."""
    detail: float
    """Raised voice: dB above the speaker's baseline; otherwise the duration in seconds."""
    overlaps: int = 0
    """Talk-over: how many overlaps it is about (1 for one overlap held long enough)."""


_LEVEL_FLOOR_DB = -100
_LEVEL_BINS = 200
"""The usual level is kept as a histogram of present levels in half-dB bins, -100 to 0 dBFS."""
_HISTORY_FRAMES = 3_000
"""At this many frames (a minute of speech) the histogram's counts are halved, so a speaker
who settles into a new normal over minutes is followed, and an outburst of seconds is not."""
_RECOMPUTE_EVERY = 10
"""Frames between recomputing the usual level (a scan of the histogram)."""


class RaisedVoice:
    """One speaker's loudness against that speaker's own usual level.

    The present level is a power mean over the voiced frames of the last `short_ms` (not a
    mean of dB values, which syllable peaks and word tails swing by ±10 dB). The usual level is
    a percentile of the present levels heard while the speaker was not raised: loud speech
    cannot drag it up, because while raised nothing is added, and a percentile is not pulled
    by the loud minutes a running mean would average in. A frame is raised when the present
    level is `raised_by_db` above the usual; it fires when raised voiced frames add up to
    `raised_for_ms` within the last `window_ms`, pauses between runs of words and all.
    """

    def __init__(self, track: Track, config: AcousticConfig) -> None:
        self._track = track
        self._config = config
        self._factor = 10 ** (config.raised_by_db / 10)
        self._min_voiced = max(1, config.short_ms // FRAME_MS // 2)
        self._need = max(1, config.raised_for_ms // FRAME_MS)
        self._recent: deque[tuple[int, float]] = deque()
        self._recent_sum = 0.0
        self._histogram = [0] * _LEVEL_BINS
        self._counted = 0
        self._since_recompute = 0
        self._usual: float | None = None
        """The usual level as power, once judged."""
        self._heard_ms = 0
        self._raised: deque[int] = deque()
        """End of each raised frame within the window."""
        self._fired = False

    @property
    def baseline_db(self) -> float | None:
        return None if self._usual is None else 10 * math.log10(self._usual)

    def feed(self, clock_ms: int, voiced: bool, level_db: float) -> AcousticSignal | None:
        """`clock_ms` is the end of the frame on the track's clock."""
        recent, raised = self._recent, self._raised
        if not voiced and not recent and not raised:
            return None  # silence with nothing in the present window: nothing can change
        cfg = self._config
        while recent and recent[0][0] <= clock_ms - cfg.short_ms:
            self._recent_sum -= recent.popleft()[1]
        while raised and raised[0] <= clock_ms - cfg.window_ms:
            raised.popleft()
        if not raised:
            self._fired = False  # the episode is over: a new one may fire again
        if not voiced:
            return None
        power = 10 ** (level_db / 10)
        recent.append((clock_ms, power))
        self._recent_sum += power
        self._heard_ms += FRAME_MS
        if len(recent) < self._min_voiced:
            return None
        present = self._recent_sum / len(recent)
        usual = self._usual
        if usual is not None and present >= usual * self._factor:
            raised.append(clock_ms)
        elif not raised:
            self._learn(present)  # only while not raised: shouting does not become normal
        if self._fired or len(raised) < self._need:
            return None
        assert usual is not None
        self._fired = True
        return AcousticSignal(
            kind="raised_voice",
            track=self._track,
            start_ms=raised[0] - FRAME_MS,
            end_ms=clock_ms,
            detail=round(10 * math.log10(present / usual), 1),
        )

    def _learn(self, present: float) -> None:
        level = 10 * math.log10(present) if present > 0 else _LEVEL_FLOOR_DB
        index = min(_LEVEL_BINS - 1, max(0, int((level - _LEVEL_FLOOR_DB) * 2)))
        self._histogram[index] += 1
        self._counted += 1
        if self._counted >= _HISTORY_FRAMES:
            self._histogram = [n // 2 for n in self._histogram]
            self._counted = sum(self._histogram)
        self._since_recompute += 1
        if self._heard_ms < self._config.baseline_after_ms:
            return
        if self._usual is not None and self._since_recompute < _RECOMPUTE_EVERY:
            return
        self._since_recompute = 0
        rank = self._counted * self._config.baseline_percentile / 100
        seen = 0
        for index, count in enumerate(self._histogram):
            seen += count
            if seen >= rank:
                self._usual = 10 ** ((_LEVEL_FLOOR_DB + (index + 0.5) / 2) / 10)
                return


class DeadAir:
    """Nobody on the call has spoken for `after_ms`, on the call's clock (the latest frame of
    any track). Silence from the stream's start counts too."""

    def __init__(self, after_ms: int) -> None:
        self._after_ms = after_ms
        self._last_voice = 0
        self._now = 0
        self._fired = False

    def feed(self, clock_ms: int, voiced: bool) -> AcousticSignal | None:
        if voiced:
            self._last_voice = max(self._last_voice, clock_ms)
            self._fired = False
        self._now = max(self._now, clock_ms)
        quiet_ms = self._now - self._last_voice
        if self._fired or quiet_ms < self._after_ms:
            return None
        self._fired = True
        return AcousticSignal("dead_air", None, self._last_voice, self._now, quiet_ms / 1000)


class TalkOver:
    """Both parties speaking at once: `held_ms` of it within `held_ms` + `TALK_WINDOW_EXTRA_MS`
    (people talking over each other pause between words and sentences too), or (when
    `per_minute` is set) that many separate overlaps of at least `MIN_COUNTED_OVERLAP_MS`
    within a minute."""

    def __init__(
        self, tracks: tuple[Track, ...], *, held_ms: int, per_minute: int | None = None
    ) -> None:
        self._held_ms = held_ms
        self._window_ms = held_ms + TALK_WINDOW_EXTRA_MS
        self._per_minute = per_minute
        self._voiced_until: dict[Track, int] = dict.fromkeys(tracks, -TALK_DIP_MS - FRAME_MS)
        self._now = 0
        self._start: int | None = None
        self._counted = False
        self._overlapped: deque[int] = deque()
        """The slots (their end) in which both spoke, within the window."""
        self._held_fired = False
        self._recent: deque[int] = deque()
        """Start of each counted overlap in the last minute."""

    def feed(self, track: Track, clock_ms: int, voiced: bool) -> AcousticSignal | None:
        if clock_ms > self._now:
            self._now = clock_ms
        overlapped = self._overlapped
        while overlapped and overlapped[0] <= self._now - self._window_ms:
            overlapped.popleft()
        if not overlapped:
            self._held_fired = False  # the episode is over
        if not voiced:
            if self._start is None:
                return None  # only a voiced frame can make two parties speak at once
        elif clock_ms > self._voiced_until.get(track, 0):
            self._voiced_until[track] = clock_ms
        # Both parties speaking: each voiced within the last `TALK_DIP_MS`, so the gaps between
        # words (and the other track's frame for this slot, which may not have arrived yet) do
        # not end an overlap.
        speaking = 0
        for until in self._voiced_until.values():
            if until >= self._now - TALK_DIP_MS:
                speaking += 1
        if speaking < 2:
            self._start, self._counted = None, False
            return None
        if self._start is None:
            self._start = self._now - FRAME_MS
        if not overlapped or overlapped[-1] < self._now:
            overlapped.append(self._now)  # a slot both spoke in, counted once
        both_voiced = min(self._voiced_until.values())
        # Measured to the latest frame both were voiced in: a pause is bridged, not counted.
        if not self._counted and both_voiced - self._start >= MIN_COUNTED_OVERLAP_MS:
            self._counted = True
            if (signal := self._count(self._start)) is not None:
                return signal
        if self._held_fired or len(overlapped) * FRAME_MS < self._held_ms:
            return None
        self._held_fired = True
        start = overlapped[0] - FRAME_MS
        return AcousticSignal(
            "talk_over", None, start, self._now, len(overlapped) * FRAME_MS / 1000, 1
        )

    def _count(self, start: int) -> AcousticSignal | None:
        if self._per_minute is None:
            return None
        recent = self._recent
        recent.append(start)
        while recent[0] < self._now - COUNT_WINDOW_MS:
            recent.popleft()
        if len(recent) < self._per_minute:
            return None
        # Counted overlaps are spent: the next signal needs as many new ones.
        first, count = recent[0], len(recent)
        recent.clear()
        return AcousticSignal(
            "talk_over", None, first, self._now, (self._now - first) / 1000, count
        )
