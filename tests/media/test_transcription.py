"""The transcription worker pool and the offline Whisper engine."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import sys
import threading
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from media import metrics
from media.transcription import whisper
from media.transcription.engine import Transcription
from media.transcription.service import TranscriptionService
from media.transcription.whisper import (
    BundledModel,
    ModelError,
    WhisperEngine,
    encoder_frames,
    resolve_model,
    upsample_8k_to_16k,
)
from tests.conftest import SPEECH, timeout


class GatedEngine:
    """Our engine interface, blocking until the test opens the gate: lets a test hold the
    workers busy and watch the queue."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.seen: list[bytes] = []

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        self.started.set()
        self.gate.wait(timeout(10))
        self.seen.append(pcm16)
        return Transcription(text=pcm16.decode(), confidence=1.0)


async def test_a_full_queue_skips_the_oldest_waiting_utterance_and_counts_it() -> None:
    engine = GatedEngine()
    dropped = metrics.DROPPED_WORK.labels("transcription_queue_full")
    before = dropped._value.get()
    async with TranscriptionService(engine, workers=1, max_queue=2) as service:
        busy = service.submit(b"busy", 8000)
        assert await asyncio.to_thread(engine.started.wait, timeout(5))  # the worker is busy
        waiting = [service.submit(t, 8000) for t in (b"one", b"two", b"three")]
        # "one" was the oldest waiting when "three" arrived: skipped, resolved as None.
        assert await asyncio.wait_for(waiting[0], timeout(5)) is None
        engine.gate.set()
        results = await asyncio.wait_for(asyncio.gather(busy, *waiting[1:]), timeout(10))
    assert [r.text if r else None for r in results] == ["busy", "two", "three"]
    assert dropped._value.get() == before + 1
    assert b"one" not in engine.seen


async def test_workers_take_the_best_ranked_utterance_first() -> None:
    engine = GatedEngine()
    async with TranscriptionService(engine, workers=1, max_queue=8) as service:
        busy = service.submit(b"busy", 8000)
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        agent = service.submit(b"agent", 8000, lambda: 2)
        caller = service.submit(b"caller", 8000, lambda: 1)
        answer = service.submit(b"answer", 8000, lambda: 0)
        engine.gate.set()
        await asyncio.wait_for(asyncio.gather(busy, agent, caller, answer), timeout(10))
    assert engine.seen == [b"busy", b"answer", b"caller", b"agent"]


async def test_a_full_queue_skips_the_worst_ranked_utterance_not_the_oldest() -> None:
    engine = GatedEngine()
    ranks = {b"first": 1, b"agent": 2, b"answer": 0}
    async with TranscriptionService(engine, workers=1, max_queue=2) as service:
        busy = service.submit(b"busy", 8000)
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        first = service.submit(b"first", 8000, lambda: ranks[b"first"])
        agent = service.submit(b"agent", 8000, lambda: ranks[b"agent"])
        answer = service.submit(b"answer", 8000, lambda: ranks[b"answer"])
        assert await asyncio.wait_for(agent, timeout(5)) is None  # skipped, though not oldest
        # A newcomer that ranks below everything waiting is the one skipped.
        assert await asyncio.wait_for(service.submit(b"late", 8000, lambda: 3), timeout(5)) is None
        # Ranks are asked when the queue chooses: "first" has become an answer meanwhile.
        ranks[b"first"] = 0
        engine.gate.set()
        results = await asyncio.wait_for(asyncio.gather(busy, first, answer), timeout(10))
    assert [r.text if r else None for r in results] == ["busy", "first", "answer"]
    assert engine.seen == [b"busy", b"first", b"answer"]


async def test_an_engine_failure_resolves_to_none_and_the_worker_goes_on() -> None:
    class Flaky:
        name = "flaky"

        def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
            if pcm16 == b"bad":
                raise RuntimeError("decoder exploded")
            return Transcription(text="fine", confidence=None)

    async with TranscriptionService(Flaky(), workers=1, max_queue=4) as service:
        bad, good = service.submit(b"bad", 8000), service.submit(b"good", 8000)
        assert await asyncio.wait_for(bad, timeout(5)) is None
        result = await asyncio.wait_for(good, timeout(5))
    assert result is not None and result.text == "fine"


def test_whisper_transcribes_a_phone_band_utterance() -> None:
    with wave.open(str(SPEECH / "caller_mono.wav")) as w:
        pcm = w.readframes(w.getnframes())
    # The first sentence: 0.5 s lead-in, then about 3 s of speech.
    first = pcm[: 8000 * 2 * 4]
    engine = WhisperEngine("bundled:tiny.en", Path("unused"), workers=1)
    result = engine.transcribe(first, 8000)
    assert engine.name == "faster-whisper:tiny.en"
    assert {"calling", "account"} <= set(result.text.lower().replace(",", "").split())
    assert result.confidence is not None and 0.3 < result.confidence <= 1.0


def test_an_utterance_longer_than_whisper_window_is_heard_to_its_end() -> None:
    with wave.open(str(SPEECH / "caller_mono.wav")) as w:
        pcm = w.readframes(w.getnframes())
    second_sentence = pcm[8000 * 2 * 4 :]
    # 39 s: the first sentence, 26 s of silence, the second ("...when my payment is due?")
    # past the 30 s that one Whisper window holds.
    long_utterance = pcm[: 8000 * 2 * 4] + bytes(8000 * 2 * 26) + second_sentence
    result = WhisperEngine("bundled:tiny.en", Path("unused"), workers=1).transcribe(
        long_utterance, 8000
    )
    words = set(result.text.lower().replace(",", "").replace("?", "").split())
    assert {"account", "payment"} <= words


@pytest.mark.parametrize(
    ("content_frames", "window_s", "frames"),
    [
        (300, 20.0, 2000),  # a short utterance: the window
        (1950, 20.0, 2050),  # nearly the window: a second of silence after it
        (2950, 20.0, 3000),  # never past Whisper's 30 s
        (300, 30.0, 3000),  # Whisper's own window
    ],
)
def test_encoder_window(content_frames: int, window_s: float, frames: int) -> None:
    assert encoder_frames(content_frames, window_s) == frames


@pytest.mark.parametrize("hz", [300, 1000, 3400])
def test_phone_audio_is_upsampled_without_images_above_its_band(hz: int) -> None:
    seconds = np.arange(8000) / 8000
    upsampled = upsample_8k_to_16k(np.sin(2 * np.pi * hz * seconds).astype(np.float32))
    assert upsampled.dtype == np.float32 and len(upsampled) == 16000
    # The tone itself, sample for sample, away from the zero-padded ends...
    true = np.sin(2 * np.pi * hz * np.arange(16000) / 16000)
    assert np.max(np.abs(upsampled - true)[500:-500]) < 1e-3
    # ...and nothing of it mirrored above 4 kHz (linear interpolation leaves -8 to -20 dB).
    spectrum = np.abs(np.fft.rfft(upsampled * np.hanning(16000)))
    above = spectrum[np.fft.rfftfreq(16000, 1 / 16000) > 4200]
    assert 20 * np.log10(above.max() / spectrum.max()) < -60


@pytest.mark.parametrize("samples", [0, 1, 63, 64])
def test_audio_shorter_than_the_filter_is_upsampled_too(samples: int) -> None:
    upsampled = upsample_8k_to_16k(np.full(samples, 0.5, dtype=np.float32))
    assert len(upsampled) == 2 * samples
    assert np.all(upsampled[0::2] == 0.5)  # the original samples are kept as they were


def test_a_local_model_folder_must_hold_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model.bin"):
        resolve_model(str(tmp_path), tmp_path)
    with pytest.raises(ModelError, match="unknown bundled model"):
        resolve_model("bundled:huge", tmp_path)
    # Anything else is a hub name, handed to faster-whisper as is.
    assert resolve_model("Systran/faster-whisper-small.en", tmp_path) == (
        "Systran/faster-whisper-small.en",
        "faster-whisper-small.en",
    )


def _split_model_packages(root: Path, content: bytes) -> tuple[str, str]:
    """Two importable packages holding a model split in two, like the base-model wheels."""
    names = (f"split_part1_{id(root)}", f"split_part2_{id(root)}")
    half = len(content) // 2
    chunks = (content[:half], content[half:])
    for i, (name, chunk) in enumerate(zip(names, chunks, strict=True), start=1):
        data = root / name / "data"
        data.mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
        (data / f"model.bin.part{i}").write_bytes(chunk)
        if i == 1:
            for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
                (data / extra).write_text(extra)
    return names


def _bundle_split_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, content: bytes
) -> tuple[str, str]:
    """`bundled:<label>`: `content` split over two importable packages, which it returns."""
    packages = _split_model_packages(tmp_path / "site", content)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = BundledModel(label, packages, hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(whisper.BUNDLED_MODELS, label, model)
    return packages


def test_a_split_bundled_model_is_reassembled_once_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"model weights " * 1000
    packages = _bundle_split_model(tmp_path, monkeypatch, "split", content)
    folder, label = resolve_model("bundled:split", tmp_path / "cache")
    assert label == "split"
    assert (Path(folder) / "model.bin").read_bytes() == content
    assert (Path(folder) / "tokenizer.json").exists()

    bad = BundledModel("split-bad", packages, "0" * 64)
    monkeypatch.setitem(whisper.BUNDLED_MODELS, "split-bad", bad)
    with pytest.raises(ModelError, match="sha256"):
        resolve_model("bundled:split-bad", tmp_path / "cache")
    assert not (tmp_path / "cache" / "whisper-split-bad").exists()


def test_a_missing_model_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = BundledModel("gone", ("no_such_model_package",), "0" * 64)
    monkeypatch.setitem(whisper.BUNDLED_MODELS, "gone", missing)
    with pytest.raises(ModelError, match="no_such_model_package"):
        resolve_model("bundled:gone", tmp_path)
    assert "no_such_model_package" not in sys.modules


async def test_work_that_may_be_wasted_is_taken_only_by_an_idle_worker() -> None:
    engine = GatedEngine()
    async with TranscriptionService(engine, workers=1, max_queue=4) as service:
        early = service.submit_if_idle(b"early", 8000)
        assert early is not None  # the worker was waiting
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        assert service.submit_if_idle(b"second", 8000) is None  # it would wait behind "early"
        final = service.submit(b"final", 8000)  # work that counts still queues
        engine.gate.set()
        results = await asyncio.wait_for(asyncio.gather(early, final), timeout(10))
    assert [r.text if r else None for r in results] == ["early", "final"]
    assert b"second" not in engine.seen


def test_processes_reassembling_a_split_model_at_once_all_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers or an evaluation's pool start together on an empty cache."""
    content = b"model weights " * 100_000
    _bundle_split_model(tmp_path, monkeypatch, "race", content)
    cache = tmp_path / "cache"
    fork = multiprocessing.get_context("fork")  # the children see the patched model table
    with ProcessPoolExecutor(4, mp_context=fork) as pool:
        folders = list(pool.map(resolve_model, ["bundled:race"] * 4, [cache] * 4))
    assert {folder for folder, _ in folders} == {str(cache / "whisper-race")}
    assert (cache / "whisper-race" / "model.bin").read_bytes() == content
    assert sorted(p.name for p in cache.iterdir()) == ["whisper-race"]  # no staging left


def test_a_broken_copy_in_the_cache_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"model weights " * 1000
    _bundle_split_model(tmp_path, monkeypatch, "fixed", content)
    broken = tmp_path / "cache" / "whisper-fixed"
    broken.mkdir(parents=True)
    (broken / "model.bin").write_bytes(content[:100])  # a copy cut short
    folder, _ = resolve_model("bundled:fixed", tmp_path / "cache")
    assert (Path(folder) / "model.bin").read_bytes() == content


async def test_partials_leave_a_worker_free_for_the_utterances_that_end_meanwhile() -> None:
    engine = GatedEngine()
    async with TranscriptionService(engine, workers=2, max_queue=4) as service:
        partial = service.submit_if_spare(b"partial", 8000)
        assert partial is not None  # both workers were waiting
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        # One worker left: an early decode may take it, a second partial may not.
        assert service.submit_if_spare(b"partial 2", 8000) is None
        early = service.submit_if_idle(b"early", 8000)
        assert early is not None
        engine.gate.set()
        results = await asyncio.wait_for(asyncio.gather(partial, early), timeout(10))
    assert sorted(r.text for r in results if r) == ["early", "partial"]
    assert b"partial 2" not in engine.seen


async def test_partials_stop_while_the_workers_are_busy_most_of_the_time() -> None:
    now = [100.0]
    engine = GatedEngine()
    async with TranscriptionService(engine, 2, 4, clock=lambda: now[0]) as service:
        assert service.load() == 0.0
        first = service.submit(b"one", 8000)
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        now[0] += 2.0  # one of two workers busy for 2 s of the last 3: a third of the time
        assert service.load() == pytest.approx(1 / 3)
        engine.gate.set()
        await asyncio.wait_for(first, timeout(10))
        engine.gate.clear()
        engine.started.clear()
        second = service.submit(b"two", 8000)
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        now[0] += 1.0  # the second decode: 2 + 1 s of the last 3 s on two workers
        assert service.load() == pytest.approx(0.5)
        assert service.submit_if_spare(b"partial", 8000) is None  # no headroom: shed
        now[0] += 0.5
        engine.gate.set()
        await asyncio.wait_for(second, timeout(10))
        now[0] += 3.0  # all of it older than the window: idle again
        assert service.load() == 0.0
        engine.gate.clear()
        engine.started.clear()
        partial = service.submit_if_spare(b"partial", 8000)
        assert partial is not None
        assert await asyncio.to_thread(engine.started.wait, timeout(5))
        now[0] += 2.0
        assert service.load() == 0.0  # partials are not the load they give way to
        engine.gate.set()
        result = await asyncio.wait_for(partial, timeout(10))
    assert result is not None and result.text == "partial"
