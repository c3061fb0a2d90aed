"""Voice activity detection and endpointing: 20 ms frames in, utterances out.

`Endpointer` is a synchronous state machine. Time is counted in samples, never read from a
clock, so tests drive it frame by frame. The voice detector is injected (`VoiceDetector`);
production uses WebRTC's VAD through `WebRtcVoiceDetector`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import webrtcvad


class VoiceDetector(Protocol):
    def is_speech(self, frame: bytes, sample_rate: int) -> bool: ...


class WebRtcVoiceDetector:
    """WebRTC's GMM VAD; needs 10/20/30 ms frames of 16-bit PCM at 8/16/32/48 kHz."""

    def __init__(self, aggressiveness: int) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes, sample_rate: int) -> bool:
        return bool(self._vad.is_speech(frame, sample_rate))


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    frame_ms: int = 20
    start_window_frames: int = 5
    """Speech starts when `start_voiced_frames` of the last `start_window_frames` are voiced."""
    start_voiced_frames: int = 3
    hangover_ms: int = 500
    """Silence after the last voiced frame that ends an utterance (the endpointing delay)."""
    preroll_ms: int = 200
    """Audio kept from before the trigger, so the first syllable is not clipped."""
    tail_ms: int = 200
    """Silence kept after the last voiced frame."""
    min_speech_ms: int = 200
    """Utterances with less voiced audio than this are clicks and noise, and are dropped."""
    max_utterance_ms: int = 15_000
    """A monologue is cut here, so its text arrives while the speaker is still going."""
    early_decode_ms: int | None = 200
    """Silence after which the utterance so far is handed out as an early one, ahead of the
    hangover, so its decode runs while the endpointer waits. If speech does not resume, the
    final utterance is the same audio (this is at least `tail_ms`, and less than the hangover)
    and takes that decode's text; if it does, the early one is void. None: no early cut."""
    partial_every_ms: int | None = None
    """While someone speaks, the utterance so far is handed out as a partial one each time it
    has grown this much (the first once it is this long, preroll included), on a voiced frame:
    what offline partial text is decoded from. None: no partials."""


UtteranceKind = Literal["final", "early", "partial"]
"""`final`: speech ended (or a monologue was cut), the words to store. `early`: cut at
`early_decode_ms` of silence; a final utterance with the same start and end, if one follows, has
exactly this audio. `partial`: the words so far of an utterance still being spoken
(`partial_every_ms`), for screens and phrase rules only."""


@dataclass(frozen=True, slots=True)
class Utterance:
    start_sample: int
    end_sample: int
    """One past the last voiced sample: the end of speech."""
    pcm: bytes
    sample_rate: int
    kind: UtteranceKind = "final"

    @property
    def final(self) -> bool:
        return self.kind == "final"

    @property
    def start_ms(self) -> int:
        return self.start_sample * 1000 // self.sample_rate

    @property
    def end_ms(self) -> int:
        return self.end_sample * 1000 // self.sample_rate


class Endpointer:
    """Groups voiced frames into utterances for one track."""

    def __init__(self, config: EndpointerConfig, sample_rate: int, vad: VoiceDetector) -> None:
        self._config = config
        self._rate = sample_rate
        self._vad = vad
        self.frame_samples = sample_rate * config.frame_ms // 1000
        self.frame_bytes = self.frame_samples * 2
        self._hangover = config.hangover_ms // config.frame_ms
        early = config.early_decode_ms
        # At least one frame too: at 0 every voiced frame would cut an early utterance.
        if (
            early is not None
            and not max(config.tail_ms, config.frame_ms) <= early < config.hangover_ms
        ):
            raise ValueError("early_decode_ms must be at least tail_ms and below hangover_ms")
        self._early = early // config.frame_ms if early is not None else None
        self._tail = config.tail_ms // config.frame_ms
        self._min_voiced = max(1, config.min_speech_ms // config.frame_ms)
        self._max_frames = config.max_utterance_ms // config.frame_ms
        every = config.partial_every_ms
        if every is not None and every < config.frame_ms:
            raise ValueError("partial_every_ms must be at least one frame")
        self._partial_every = every // config.frame_ms if every is not None else None
        self._next_partial = 0
        """Frames of the utterance in progress at which the next partial is cut."""
        self._window: deque[bool] = deque(maxlen=config.start_window_frames)
        self._preroll: deque[bytes] = deque(maxlen=config.preroll_ms // config.frame_ms)
        self._frames: list[bytes] = []
        self._in_speech = False
        self._continuation = False
        self._start_sample = 0
        self._voiced_frames = 0
        self._trailing_silence = 0
        self.sample_clock = 0
        """Samples of this track seen so far, lost audio included: the track's time."""
        self.last_frame_voiced = False

    @property
    def clock_ms(self) -> int:
        return self.sample_clock * 1000 // self._rate

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def open_start_ms(self) -> int | None:
        """Where the utterance still being heard began, or None between utterances."""
        return self._start_sample * 1000 // self._rate if self._in_speech else None

    def feed(self, frame: bytes) -> Utterance | None:
        """Feed exactly one frame (`frame_bytes` of 16-bit PCM); returns a finished utterance."""
        voiced = self._vad.is_speech(frame, self._rate)
        self.last_frame_voiced = voiced
        self.sample_clock += self.frame_samples
        if not self._in_speech:
            self._window.append(voiced)
            if voiced and sum(self._window) >= self._config.start_voiced_frames:
                self._begin(frame)
            else:
                self._preroll.append(frame)
            return None

        self._frames.append(frame)
        if voiced:
            self._voiced_frames += 1
            self._trailing_silence = 0
        else:
            self._trailing_silence += 1
        if self._trailing_silence >= self._hangover:
            return self._finish()
        if self._trailing_silence == self._early:
            return self._cut("early")
        if len(self._frames) >= self._max_frames:
            # Cut the monologue but stay in speech: the next frames open the next piece.
            utterance = self._finish()
            self._begin_continuation()
            return utterance
        if voiced and self._partial_every and len(self._frames) >= self._next_partial:
            partial = self._cut("partial")  # None until enough of it is voiced
            if partial is not None:
                self._next_partial = len(self._frames) + self._partial_every
            return partial
        return None

    def skip(self, samples: int) -> Utterance | None:
        """A long stretch of lost audio: it ends the utterance in progress (as silence would)
        and the clock moves on by `samples`, so later offsets stay true."""
        utterance = self._finish() if self._in_speech else None
        self.sample_clock += samples
        self.last_frame_voiced = False
        self._window.clear()
        self._preroll.clear()
        return utterance

    def flush(self) -> Utterance | None:
        """End of stream: finish the utterance in progress, if it holds enough speech."""
        if not self._in_speech:
            return None
        return self._finish()

    def _begin(self, frame: bytes) -> None:
        self._in_speech = True
        self._continuation = False
        self._frames = [*self._preroll, frame]
        self._start_sample = self.sample_clock - len(self._frames) * self.frame_samples
        # The voiced frames of the start window are in the utterance too (preroll + this one).
        self._voiced_frames = min(sum(self._window), len(self._frames))
        self._preroll.clear()
        self._window.clear()
        self._trailing_silence = 0
        self._next_partial = self._partial_every or 0

    def _begin_continuation(self) -> None:
        self._in_speech = True
        self._continuation = True
        self._frames = []
        self._start_sample = self.sample_clock
        self._voiced_frames = 0
        self._trailing_silence = 0
        self._next_partial = self._partial_every or 0

    def _finish(self) -> Utterance | None:
        utterance = self._cut("final")
        self._in_speech = False
        self._continuation = False
        self._frames = []
        self._window.clear()
        return utterance

    def _cut(self, kind: UtteranceKind) -> Utterance | None:
        """The utterance so far (None if too little of it is voiced), state left alone."""
        # The rest of a cut monologue is kept however short: it is the end of real speech.
        if self._voiced_frames < (1 if self._continuation else self._min_voiced):
            return None
        speech_frames = len(self._frames) - self._trailing_silence
        kept = self._frames[: speech_frames + min(self._trailing_silence, self._tail)]
        return Utterance(
            start_sample=self._start_sample,
            end_sample=self._start_sample + speech_frames * self.frame_samples,
            pcm=b"".join(kept),
            sample_rate=self._rate,
            kind=kind,
        )
