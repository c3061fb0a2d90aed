"""The fake AssemblyAI Universal-Streaming v3 server (docs/protocols.md section f).

Where the doc is silent, this fake decides: a missing or wrong key closes 1008 right after the
handshake (the doc's close table); a bad query (no or unknown `speech_model`, another encoding or
rate) closes 3005. Temporary tokens are not issued here, so `token=` alone is refused like a
missing key. A turn ends after `min_turn_silence` (default 400 ms) as if always confident; the
other turn-taking parameters are recorded, not applied, and so is `UpdateConfiguration`.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from media.transcription.engine import Transcription, TranscriptionEngine
from server.simulator.fake_stt.segmenter import Segment
from server.simulator.fake_stt.service import (
    SAMPLE_RATES,
    FakeSpeechService,
    Message,
    _End,
    _flag,
    _Session,
)
from server.simulator.fake_stt.words import _plain, _spread, _tokens

ASSEMBLYAI_SPEECH_MODELS: Final = frozenset(
    "universal-streaming-english universal-streaming-multilingual whisper-rt u3-rt-pro "
    "universal-3-5-pro universal-3-6 universal-3-6-pro".split()
)
_ASSEMBLYAI_CONTROL: Final = frozenset(
    ("Terminate", "ForceEndpoint", "KeepAlive", "UpdateConfiguration")
)


class _RateBucket:
    """Audio seconds may run ahead of wall-clock seconds by at most `burst_s`."""

    def __init__(self, burst_s: float, now: float) -> None:
        self._burst = self._tokens = burst_s
        self._last = now

    def take(self, seconds: float, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._last))
        self._last = now
        if seconds > self._tokens + 1e-6:
            return False
        self._tokens -= seconds
        return True


class _AssemblyAISession(_Session):
    def server_error(self) -> _End:
        return _End(3005, "Session Cancelled: An error occurred")

    def open(self) -> None:
        fake = self.fake
        assert isinstance(fake, FakeAssemblyAI)
        query = self.record.query
        key = self.record.headers.get("authorization")
        if key is None:
            raise _End(1008, "Unauthorized Connection: Missing Authorization header")
        if key != fake.api_key:
            raise _End(1008, "Unauthorized Connection: Invalid API key")
        # doc silent on how a bad query is refused: 3005, the catch-all, after the handshake.
        model = query.get("speech_model")
        if model not in ASSEMBLYAI_SPEECH_MODELS:
            raise _End(3005, f"Session Cancelled: invalid speech_model {model!r}")
        encoding = query.get("encoding", "pcm_s16le")
        if encoding not in ("pcm_s16le", "pcm_mulaw"):
            raise _End(3005, f"Session Cancelled: unsupported encoding {encoding!r}")
        rate = query.get("sample_rate", "16000")
        if not rate.isdigit() or int(rate) not in SAMPLE_RATES:
            raise _End(3005, f"Session Cancelled: unsupported sample_rate {rate!r}")
        # doc silent: no end-of-turn model here, so a turn ends at `min_turn_silence` as if the
        # model were always confident.
        silence = query.get("min_turn_silence", query.get("min_end_of_turn_silence_when_confident"))
        self._formatted = _flag(query, "format_turns")
        self._turn_order = 0
        self._partials_in_turn = False
        self._bucket = (
            None if fake.rate_burst_s is None else _RateBucket(fake.rate_burst_s, self.started)
        )
        self.start_segmenter(
            mulaw=encoding == "pcm_mulaw",
            sample_rate=int(rate),
            silence_ms=int(silence) if silence and silence.isdigit() else 400,
        )
        if not fake.silent:
            self.send_now(
                {
                    "type": "Begin",
                    "id": str(uuid.uuid4()),
                    "expires_at": int(time.time()) + 3 * 3600,  # sessions end after 3 h
                }
            )

    def check_chunk(self, seconds: float) -> None:
        ms = seconds * 1000
        if not 50 <= ms <= 1000:
            raise _End(
                3007, f"Input duration violation: {ms:.0f} ms. Expected between 50 and 1000 ms"
            )
        now = self.loop.time()
        if self._bucket is not None and not self._bucket.take(seconds, now):
            raise _End(
                3007,
                f"Audio Transmission Rate Exceeded: Received {self.audio_s:.1f} sec. audio "
                f"in {now - self.started:.1f} sec",
            )

    def parse_text(self, text: str) -> dict[str, Any]:
        try:
            message = json.loads(text)
        except ValueError:
            raise _End(3006, f"Invalid JSON: {text}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise _End(3006, f"Invalid Message: {text}")
        if message["type"] not in _ASSEMBLYAI_CONTROL:
            raise _End(3006, f"Invalid Message Type: {message['type']}")
        return message

    def on_control(self, message: dict[str, Any]) -> bool:
        # KeepAlive and UpdateConfiguration are accepted; the latter is recorded, not applied.
        if message["type"] == "ForceEndpoint":
            self._end_turn()
        return bool(message["type"] == "Terminate")

    def on_segments(self, segments: list[Segment]) -> None:
        for segment in segments:
            self.decode(segment, functools.partial(self._turn, segment))

    def finish(self) -> None:
        self._end_turn()
        self.emit(self._termination)

    def _end_turn(self) -> None:
        assert self.segmenter is not None
        if (segment := self.segmenter.end_utterance()) is not None:
            self.on_segments([segment])

    def _termination(self) -> list[Message]:
        return [
            {
                "type": "Termination",
                "audio_duration_seconds": round(self.audio_s),
                "session_duration_seconds": round(self.loop.time() - self.started),
            }
        ]

    def _turn(self, segment: Segment, transcription: Transcription) -> list[Message]:
        tokens = _tokens(transcription)
        if not self._formatted:
            tokens = [_plain(t) for t in tokens]
        if not tokens and not (segment.final and self._partials_in_turn):
            return []  # no words: no turn (an open turn still gets its end, below)
        confidence = transcription.confidence if transcription.confidence is not None else 1.0
        words = [
            {
                "start": round(start * 1000),
                "end": round(end * 1000),
                "text": token,
                "confidence": confidence,
                "word_is_final": segment.final,
            }
            for token, start, end in _spread(tokens, segment.start_s, segment.end_s)
        ]
        text = " ".join(tokens)
        turn = {
            "type": "Turn",
            "turn_order": self._turn_order,
            "turn_is_formatted": self._formatted,
            "end_of_turn": segment.final,
            # `transcript` holds the turn's finalized words: none until the turn ends, since a
            # partial's words may still change on the next decode.
            "transcript": text if segment.final else "",
            "end_of_turn_confidence": 1.0 if segment.final else 0.0,
            "words": words,
            "utterance": text if segment.final else "",
        }
        if segment.final:
            self._turn_order += 1
        self._partials_in_turn = not segment.final
        return [turn]


class FakeAssemblyAI(FakeSpeechService):
    """`rate_burst_s`: how far (seconds of audio) a client may get ahead of real time before
    3007 "Audio Transmission Rate Exceeded" (at least 1, the longest chunk; None: no check)."""

    path = "/v3/ws"
    _session_class = _AssemblyAISession

    def __init__(
        self, engine: TranscriptionEngine, *, rate_burst_s: float | None = 3.0, **options: Any
    ) -> None:
        super().__init__(engine, **options)
        if rate_burst_s is not None and rate_burst_s < 1:
            raise ValueError("rate_burst_s must allow one 1000 ms chunk")
        self.rate_burst_s = rate_burst_s


@asynccontextmanager
async def running_fake_assemblyai(
    engine: TranscriptionEngine, *, api_key: str, **options: Any
) -> AsyncIterator[FakeAssemblyAI]:
    """`options`: `FakeAssemblyAI`'s and `FakeSpeechService`'s keyword parameters."""
    fake = FakeAssemblyAI(engine, api_key=api_key, **options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
