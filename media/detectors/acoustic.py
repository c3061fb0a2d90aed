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


@dataclass(frozen=True, slots=True)
class AcousticConfig:
    """How `RaisedVoice` judges one speaker."""

    raised_by_db: float = 8.0
    """Raised voice: this far above the speaker's own running level…"""
    raised_for_ms: int = 1_500
    """…for this long…"""
    dip_ms: int = 300
    """…through dips (quieter or unvoiced frames, the gaps between words) no longer than this."""
    baseline_after_ms: int = 3_000
    """A speaker's level is only judged once this much of their speech has been heard."""
    baseline_window_ms: int = 20_000
    """Time constant of the running level (an exponential average over voiced frames)."""
    short_ms: int = 500
    """The present level is the mean over this much audio (at least half of it voiced)."""


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


class RaisedVoice:
    """One speaker's loudness against that speaker's own running level.

    Both levels are power means over voiced frames (not means of dB values, which syllable
    peaks and word tails swing by ±10 dB): the speaker's level is an exponential average over
    their ordinary speech, and the present level a mean over the last `short_ms`. Speech is
    raised while the present level is `raised_by_db` above the speaker's level; it fires when
    that has held for `raised_for_ms`.
    """

    def __init__(self, track: Track, config: AcousticConfig) -> None:
        self._track = track
        self._config = config
        self._factor = 10 ** (config.raised_by_db / 10)
        self._alpha = FRAME_MS / config.baseline_window_ms
        self._min_voiced = max(1, config.short_ms // FRAME_MS // 2)
        self._recent: deque[tuple[int, float]] = deque()
        self._recent_sum = 0.0
        self._baseline: float | None = None
        self._heard_ms = 0
        self._run_start: int | None = None
        self._last_raised = 0
        self._fired = False

    @property
    def baseline_db(self) -> float | None:
        return None if self._baseline is None else 10 * math.log10(self._baseline)

    def feed(self, clock_ms: int, voiced: bool, level_db: float) -> AcousticSignal | None:
        """`clock_ms` is the end of the frame on the track's clock."""
        recent = self._recent
        if not voiced and not recent and self._run_start is None:
            return None  # silence with nothing in the present window: nothing can change
        cfg = self._config
        while recent and recent[0][0] <= clock_ms - cfg.short_ms:
            self._recent_sum -= recent.popleft()[1]
        power = 0.0
        if voiced:
            power = 10 ** (level_db / 10)
            recent.append((clock_ms, power))
            self._recent_sum += power
        baseline = self._baseline
        present = self._recent_sum / len(recent) if len(recent) >= self._min_voiced else 0.0
        raised = (
            baseline is not None
            and self._heard_ms >= cfg.baseline_after_ms
            and present >= baseline * self._factor
        )
        if not raised:
            if self._run_start is not None and clock_ms - self._last_raised > cfg.dip_ms:
                self._run_start, self._fired = None, False
            if voiced and self._run_start is None:
                # Only ordinary speech moves the baseline, so shouting does not become normal.
                # Until the speaker is judged it is the plain mean of what was heard: an
                # exponential average started from the first frame would stay near that one
                # frame (often a quiet onset) for many seconds.
                self._heard_ms += FRAME_MS
                warming = self._heard_ms <= cfg.baseline_after_ms
                alpha = FRAME_MS / self._heard_ms if warming else self._alpha
                self._baseline = (
                    power if baseline is None else baseline + alpha * (power - baseline)
                )
            return None
        assert baseline is not None
        # A gap in the frames themselves (none fed for a while) ends a run like a long dip.
        if self._run_start is None or clock_ms - FRAME_MS - self._last_raised > cfg.dip_ms:
            self._run_start, self._fired = clock_ms - FRAME_MS, False
        self._last_raised = clock_ms
        if self._fired or clock_ms - self._run_start < cfg.raised_for_ms:
            return None
        self._fired = True
        return AcousticSignal(
            kind="raised_voice",
            track=self._track,
            start_ms=self._run_start,
            end_ms=clock_ms,
            detail=round(10 * math.log10(present / baseline), 1),
        )


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
    """Both parties speaking at once: one overlap held `held_ms`, or (when `per_minute` is set)
    that many separate overlaps of at least `MIN_COUNTED_OVERLAP_MS` within a minute."""

    def __init__(
        self, tracks: tuple[Track, ...], *, held_ms: int, per_minute: int | None = None
    ) -> None:
        self._held_ms = held_ms
        self._per_minute = per_minute
        self._voiced_until: dict[Track, int] = dict.fromkeys(tracks, 0)
        self._now = 0
        self._start: int | None = None
        self._held_fired = False
        self._counted = False
        self._recent: deque[int] = deque()
        """Start of each counted overlap in the last minute."""

    def feed(self, track: Track, clock_ms: int, voiced: bool) -> AcousticSignal | None:
        if clock_ms > self._now:
            self._now = clock_ms
        if not voiced:
            if self._start is None:
                return None  # only a voiced frame can make two parties speak at once
        elif clock_ms > self._voiced_until.get(track, 0):
            self._voiced_until[track] = clock_ms
        # Both parties voiced in this slot. The two tracks' frames for one slot arrive one
        # after the other, so the other party's last voiced frame may be a slot behind.
        speaking = 0
        for until in self._voiced_until.values():
            if until >= self._now - FRAME_MS:
                speaking += 1
        if speaking < 2:
            self._start, self._held_fired, self._counted = None, False, False
            return None
        if self._start is None:
            self._start = self._now - FRAME_MS
        overlap_ms = self._now - self._start
        if not self._counted and overlap_ms >= MIN_COUNTED_OVERLAP_MS:
            self._counted = True
            if (signal := self._count(self._start)) is not None:
                return signal
        if self._held_fired or overlap_ms < self._held_ms:
            return None
        self._held_fired = True
        return AcousticSignal("talk_over", None, self._start, self._now, overlap_ms / 1000, 1)

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
