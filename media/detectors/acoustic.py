"""Acoustic signals from the audio itself, not the text: raised voice, dead air, talk-over.

Pure state machines fed one 20 ms frame at a time with the track's clock (milliseconds of call
audio, counted in samples), whether the frame is voiced and its level in dBFS. They fire once
per episode: a new signal needs the condition to end and start again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from media.events import Track

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class AcousticConfig:
    raised_by_db: float = 8.0
    """Raised voice: this far above the speaker's own running level…"""
    raised_for_ms: int = 1_500
    """…for this long (voiced frames only)."""
    baseline_after_ms: int = 3_000
    """A speaker's level is only judged once this much of their speech has been heard."""
    baseline_window_ms: int = 20_000
    """Time constant of the running level (an exponential average over voiced frames)."""
    dead_air_ms: int = 10_000
    talk_over_ms: int = 2_000


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


class RaisedVoice:
    """One speaker's loudness against that speaker's own running level."""

    def __init__(self, track: Track, config: AcousticConfig) -> None:
        self._track = track
        self._config = config
        self._baseline: float | None = None
        self._heard_ms = 0
        self._run_start: int | None = None
        self._fired = False

    @property
    def baseline_db(self) -> float | None:
        return self._baseline

    def feed(self, clock_ms: int, voiced: bool, level_db: float) -> AcousticSignal | None:
        """`clock_ms` is the end of the frame on the track's clock."""
        cfg = self._config
        if not voiced:
            self._run_start, self._fired = None, False
            return None
        judged = self._baseline is not None and self._heard_ms >= cfg.baseline_after_ms
        raised = (
            judged
            and self._baseline is not None
            and level_db >= self._baseline + (cfg.raised_by_db)
        )
        if not raised:
            self._run_start, self._fired = None, False
            # Only ordinary speech moves the baseline, so shouting does not become normal.
            alpha = FRAME_MS / cfg.baseline_window_ms
            self._baseline = (
                level_db
                if self._baseline is None
                else self._baseline + alpha * (level_db - self._baseline)
            )
            self._heard_ms += FRAME_MS
            return None
        if self._run_start is None:
            self._run_start = clock_ms - FRAME_MS
        if self._fired or clock_ms - self._run_start < cfg.raised_for_ms:
            return None
        self._fired = True
        assert self._baseline is not None
        return AcousticSignal(
            kind="raised_voice",
            track=self._track,
            start_ms=self._run_start,
            end_ms=clock_ms,
            detail=round(level_db - self._baseline, 1),
        )


class Conversation:
    """Dead air and talk-over, from both tracks' voiced frames on the call's clock."""

    def __init__(self, config: AcousticConfig, tracks: tuple[Track, ...]) -> None:
        self._config = config
        self._voiced_until: dict[Track, int] = {t: 0 for t in tracks}
        self._now = 0
        self._quiet_fired = False
        self._overlap_start: int | None = None
        self._overlap_fired = False

    def feed(self, track: Track, clock_ms: int, voiced: bool) -> list[AcousticSignal]:
        self._voiced_until.setdefault(track, 0)
        if voiced:
            self._voiced_until[track] = max(self._voiced_until[track], clock_ms)
            self._quiet_fired = False
        self._now = max(self._now, clock_ms)
        return [s for s in (self._dead_air(), self._talk_over()) if s is not None]

    def _dead_air(self) -> AcousticSignal | None:
        last_voice = max(self._voiced_until.values())
        quiet_ms = self._now - last_voice
        if self._quiet_fired or quiet_ms < self._config.dead_air_ms:
            return None
        self._quiet_fired = True
        return AcousticSignal("dead_air", None, last_voice, self._now, quiet_ms / 1000)

    def _talk_over(self) -> AcousticSignal | None:
        # Both parties voiced in this slot. The two tracks' frames for one slot arrive one
        # after the other, so the other party's last voiced frame may be a slot behind.
        speaking = [t for t, until in self._voiced_until.items() if until >= self._now - FRAME_MS]
        if len(speaking) < 2:
            self._overlap_start, self._overlap_fired = None, False
            return None
        if self._overlap_start is None:
            self._overlap_start = self._now - FRAME_MS
        overlap_ms = self._now - self._overlap_start
        if self._overlap_fired or overlap_ms < self._config.talk_over_ms:
            return None
        self._overlap_fired = True
        return AcousticSignal("talk_over", None, self._overlap_start, self._now, overlap_ms / 1000)
