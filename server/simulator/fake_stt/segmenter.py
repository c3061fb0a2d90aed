"""Finding utterances in a session's audio (pure: no I/O, no clock).

`Segmenter` is our own small state machine rather than `media.vad.Endpointer`: partial results
need the utterance-so-far and word times need the voiced onset, neither of which the endpointer
exposes. The default voice detector is an energy rule (`EnergyVoiceDetector`): a fake must cut
where a test can predict from synthetic audio (tone bursts at known offsets), and judging speech
with the same WebRTC VAD as our own pipeline would only hide disagreements between the two.
`voice_detector=lambda: WebRtcVoiceDetector(2)` (or `--vad webrtc`) is there for noisy audio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from media.codecs import level_dbfs
from media.vad import VoiceDetector

FRAME_MS: Final = 20


class EnergyVoiceDetector:
    """A frame is voiced when its RMS level reaches `threshold_dbfs`."""

    def __init__(self, threshold_dbfs: float = -40.0) -> None:
        self._threshold = threshold_dbfs

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        return level_dbfs(frame) >= self._threshold


@dataclass(frozen=True, slots=True)
class Segment:
    """Speech handed to the engine: a finished utterance, or (a partial) one so far."""

    utterance: int
    """The utterance's ordinal in the session (partials and final of one utterance share it)."""
    final: bool
    start_s: float
    """Start of its first voiced frame, on the session's audio clock."""
    end_s: float
    """End of its last voiced frame so far."""
    cut_s: float
    """The audio clock when it was cut: how much audio the result accounts for."""
    pcm: bytes
    """16-bit PCM: a little lead-in, the speech, and (finals) a little of the silence after."""
    sample_rate: int


class Segmenter:
    """20 ms frames of 16-bit PCM in, `Segment`s out; time is counted in samples.

    An utterance starts at a voiced frame and ends after `silence_ms` of unvoiced frames (or at
    `end_utterance()`); one with less than `min_speech_ms` voiced is noise and is dropped. While
    it lasts, every `partial_interval_ms` of voiced audio yields a partial segment.
    """

    def __init__(
        self,
        sample_rate: int,
        detector: VoiceDetector,
        *,
        silence_ms: int,
        partial_interval_ms: int | None,
        min_speech_ms: int = 100,
        preroll_ms: int = 200,
        tail_ms: int = 200,
        max_utterance_ms: int = 15_000,
    ) -> None:
        self._rate = sample_rate
        self._detector = detector
        self._frame_samples = sample_rate * FRAME_MS // 1000
        self._frame_bytes = self._frame_samples * 2
        self._silence_frames = max(1, silence_ms // FRAME_MS)
        self._partial_frames = (
            None if partial_interval_ms is None else max(1, partial_interval_ms // FRAME_MS)
        )
        self._min_voiced = max(1, min_speech_ms // FRAME_MS)
        self._tail_frames = tail_ms // FRAME_MS
        self._max_frames = max_utterance_ms // FRAME_MS
        self._preroll: deque[bytes] = deque(maxlen=preroll_ms // FRAME_MS)
        self._pending = bytearray()
        self._frames: list[bytes] = []
        self._clock = 0
        self._utterances = 0
        self._onset: int | None = None
        self._voiced_end = 0
        self._voiced = 0
        self._silent_run = 0
        self._next_partial = 0

    @property
    def clock_s(self) -> float:
        """Audio seen so far (whole frames), in seconds."""
        return self._clock / self._rate

    @property
    def open_onset_s(self) -> float | None:
        """Where the utterance still being heard began, or None between utterances."""
        return None if self._onset is None else self._onset / self._rate

    def feed(self, pcm: bytes) -> list[Segment]:
        """Any amount of PCM; a part frame waits for the rest of its frame."""
        self._pending += pcm
        segments: list[Segment] = []
        whole = len(self._pending) - len(self._pending) % self._frame_bytes
        for offset in range(0, whole, self._frame_bytes):
            segment = self._feed_frame(bytes(self._pending[offset : offset + self._frame_bytes]))
            if segment is not None:
                segments.append(segment)
        del self._pending[:whole]
        return segments

    def end_utterance(self) -> Segment | None:
        """Ends the utterance in progress now (ForceEndpoint, Finalize, end of stream)."""
        return self._close() if self._onset is not None else None

    def _feed_frame(self, frame: bytes) -> Segment | None:
        voiced = self._detector.is_speech(frame, self._rate)
        frame_start = self._clock
        self._clock += self._frame_samples
        if self._onset is None:
            if not voiced:
                self._preroll.append(frame)
                return None
            self._onset = frame_start
            self._frames = [*self._preroll, frame]
            self._preroll.clear()
            self._voiced, self._silent_run, self._voiced_end = 1, 0, self._clock
            self._next_partial = self._partial_frames or 0
            return None
        self._frames.append(frame)
        if voiced:
            self._voiced += 1
            self._silent_run = 0
            self._voiced_end = self._clock
            if (
                self._partial_frames is not None
                and self._voiced >= max(self._next_partial, self._min_voiced)
                and len(self._frames) < self._max_frames
            ):
                self._next_partial = self._voiced + self._partial_frames
                return self._segment(final=False)
        else:
            self._silent_run += 1
            if self._silent_run >= self._silence_frames:
                return self._close()
        if len(self._frames) >= self._max_frames:  # a monologue is cut so its text arrives
            return self._close()
        return None

    def _segment(self, *, final: bool) -> Segment:
        frames = self._frames
        if final:
            frames = frames[
                : len(frames) - self._silent_run + min(self._silent_run, self._tail_frames)
            ]
        assert self._onset is not None
        return Segment(
            utterance=self._utterances,
            final=final,
            start_s=self._onset / self._rate,
            end_s=self._voiced_end / self._rate,
            cut_s=self._clock / self._rate,
            pcm=b"".join(frames),
            sample_rate=self._rate,
        )

    def _close(self) -> Segment | None:
        segment = self._segment(final=True) if self._voiced >= self._min_voiced else None
        if segment is not None:
            self._utterances += 1
        self._preroll.extend(self._frames[-(self._preroll.maxlen or 1) :])
        self._onset = None
        self._frames = []
        self._voiced = self._silent_run = 0
        return segment
