"""The calls `bench.alert_latency` plays: each trigger placed on a timeline, and the frames' send
times noted, so a trigger's latency is measured from the moment its last frame went out.

Clips come from the eval set (tests/fixtures/eval/clips, cut to the speech at -60 dB, so a
clip's last sample is the end of its speech), chosen by text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from bench.server_proc import BenchError
from media.codecs import ulaw_decode, ulaw_encode
from server.simulator.audio import OUTPUT_RATE, CallAudio, read_call_audio
from server.simulator.client import FRAME_S

PHRASE_RULE: Final = "supervisor-request"
"""The default rule the phrase clips must raise."""

CLIPS: Final = Path(__file__).resolve().parent.parent / "tests/fixtures/eval/clips"
# Clips by text key (a clip id is `<text key>_<voice key>`); the voice is picked at run time.
AGENT_TEXT: Final = "agent-help"
LEAD_IN_TEXTS: Final = ("caller-order-status", "caller-internet-down")
RAISED_TEXT: Final = "caller-refund-wait"
PHRASE_TEXTS: Final = ("escalate-manager-", "escalate-supervisor-")
"""Prefixes of the escalation clips tried as the phrase (whisper must hear the phrase)."""
WHISPER_MODEL: Final = os.environ.get("VOXSOUTH_WHISPER_MODEL") or "bundled:tiny.en"
"""The server's model: its default, or what the environment it inherits names."""
NORMAL_GAIN_DB: Final = -10.0
RAISED_GAIN_DB: Final = 2.0
"""12 dB above the normal level; the eval clips peak below -1.4 dBFS, and samples beyond full
scale would be clipped."""
FRAME_SAMPLES: Final = round(OUTPUT_RATE * FRAME_S)

# Layout of a call, in ms: each gap is silence on the caller's track.
AGENT_AT_MS: Final = 200
CALLER_AFTER_AGENT_MS: Final = 300
LEAD_IN_GAP_MS: Final = 400
PHRASE_GAP_MS: Final = 1_000
"""Silence before the phrase: past the endpointer's 500 ms hangover, so it is its own segment."""
DTMF_AFTER_PHRASE_MS: Final = 1_000
RAISED_GAP_MS: Final = 1_500
TAIL_MS: Final = 1_200

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TimedAudio(CallAudio):
    """CallAudio that notes when each frame has been sent.

    The simulator asks for frame k + 1 right after sending frame k (both tracks) and any DTMF
    due with it, so the moment the iterator resumes is frame k's send time.
    """

    sent_at: list[float] = field(default_factory=list)
    """`time.monotonic()` just after frame k (and its DTMF) went out, by k."""

    def frames(self) -> Iterator[tuple[bytes, bytes | None]]:
        sent_at = self.sent_at
        for pair in CallAudio.frames(self):
            yield pair
            sent_at.append(time.monotonic())


@dataclass(frozen=True, slots=True)
class Script:
    """One call's two tracks (8 kHz mu-law) and where its triggers sit."""

    caller: bytes
    agent: bytes
    phrase_clip: str
    phrase_ms: tuple[int, int]
    phrase_last_frame: int
    """The frame holding the phrase's last sample."""
    dtmf_frame: int
    """The DTMF goes out with this frame."""
    raised_ms: tuple[int, int]
    turn_starts: tuple[int, ...]
    """First frames of the caller's turns that open an utterance (the first lead-in, the
    phrase, the raised sentence): where the first partial of each is timed from."""

    @property
    def dtmf_at_s(self) -> float:
        # The simulator sends a DTMF with the first frame k where k * FRAME_S >= its time.
        return self.dtmf_frame * FRAME_S

    @property
    def seconds(self) -> float:
        return len(self.caller) / OUTPUT_RATE

    def audio(self) -> TimedAudio:
        return TimedAudio(caller=self.caller, agent=self.agent)


def _clip(name: str, gain_db: float = 0.0) -> FloatArray:
    audio = read_call_audio(CLIPS / f"{name}.wav")
    pcm = np.frombuffer(ulaw_decode(audio.caller), dtype=np.int16).astype(np.float64)
    return pcm * 10 ** (gain_db / 20)


def _samples(ms: int) -> int:
    return ms * OUTPUT_RATE // 1000


def _ms(samples: int) -> int:
    return samples * 1000 // OUTPUT_RATE


@dataclass(frozen=True, slots=True)
class Clips:
    agent: str
    lead_ins: tuple[str, ...]
    raised: str


def find_clip(text: str) -> str:
    """The clip saying `text`, in the `us` voice if there is one (the set's voices change)."""
    names = sorted(p.stem for p in CLIPS.glob(f"{text}_*.wav"))
    if not names:
        raise BenchError(f"no clip {text}_*.wav in {CLIPS}")
    return next((n for n in names if n.endswith("_us")), names[0])


def pick_phrase_clips(cache_dir: Path) -> tuple[list[str], list[str]]:
    """The escalation clips whisper hears with a supervisor-request phrase in them, at the
    level the calls play them: (clips, what it heard of every candidate)."""
    from media.detectors.intents import find_intent
    from media.detectors.rules import DEFAULT_RULES
    from media.transcription.whisper import WhisperEngine

    rule = next(r for r in DEFAULT_RULES if r.name == PHRASE_RULE)
    params = rule.params
    engine = WhisperEngine(WHISPER_MODEL, cache_dir, 1)
    pad = np.zeros(_samples(200))  # the endpointer's pre-roll and tail, as silence
    picked, notes = [], []
    candidates = sorted({p.stem for t in PHRASE_TEXTS for p in CLIPS.glob(f"{t}*_*.wav")})
    for name in candidates:
        pcm = np.concatenate((pad, _clip(name, NORMAL_GAIN_DB), pad))
        text = engine.transcribe(_pcm16(pcm), OUTPUT_RATE).text
        heard = (
            find_intent(
                text,
                actions=params["actions"],
                targets=params["targets"],
                phrases=params["phrases"],
            )  # fmt: skip
            is not None
        )
        if heard:
            picked.append(name)
        notes.append(f"{'+' if heard else '-'} {name}: {text!r}")
    return picked, notes


def _pcm16(track: FloatArray) -> bytes:
    return np.clip(np.round(track), -32768, 32767).astype(np.int16).tobytes()


def build_script(clips: Clips, phrase_clip: str) -> Script:
    agent_clip = _clip(clips.agent)
    caller_parts: list[tuple[int, FloatArray]] = []
    at = _samples(AGENT_AT_MS) + len(agent_clip) + _samples(CALLER_AFTER_AGENT_MS)
    for i, name in enumerate(clips.lead_ins):
        if i:
            at += _samples(LEAD_IN_GAP_MS)
        clip = _clip(name, NORMAL_GAIN_DB)
        caller_parts.append((at, clip))
        at += len(clip)
    at += _samples(PHRASE_GAP_MS)
    # The second lead-in follows the first within the hangover: one utterance with it.
    turn_starts = [caller_parts[0][0], at]
    phrase = _clip(phrase_clip, NORMAL_GAIN_DB)
    caller_parts.append((at, phrase))
    phrase_span = (at, at + len(phrase))
    at += len(phrase)
    dtmf_frame = -(-(phrase_span[1] + _samples(DTMF_AFTER_PHRASE_MS)) // FRAME_SAMPLES)
    at = max(at + _samples(RAISED_GAP_MS), (dtmf_frame + 1) * FRAME_SAMPLES)
    raised = _clip(clips.raised, RAISED_GAIN_DB)
    caller_parts.append((at, raised))
    raised_span = (at, at + len(raised))
    turn_starts.append(at)
    total = raised_span[1] + _samples(TAIL_MS)
    caller = np.zeros(total)
    for start, clip in caller_parts:
        caller[start : start + len(clip)] = clip
    agent = np.zeros(total)
    agent_at = _samples(AGENT_AT_MS)
    agent[agent_at : agent_at + len(agent_clip)] = agent_clip

    return Script(
        caller=ulaw_encode(_pcm16(caller)),
        agent=ulaw_encode(_pcm16(agent)),
        phrase_clip=phrase_clip,
        phrase_ms=(_ms(phrase_span[0]), _ms(phrase_span[1])),
        phrase_last_frame=(phrase_span[1] - 1) // FRAME_SAMPLES,
        dtmf_frame=dtmf_frame,
        raised_ms=(_ms(raised_span[0]), _ms(raised_span[1])),
        turn_starts=tuple(at // FRAME_SAMPLES for at in turn_starts),
    )
