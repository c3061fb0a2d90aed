"""The fake Deepgram live streaming server (docs/protocols.md section g).

Where the doc is silent, this fake decides: bad auth is HTTP 401 and a bad query HTTP 400 at the
handshake; a control message it does not know closes 1008; an empty binary frame ends the stream
as CloseStream does. Results windows tile the audio (each final starts where the last ended), and
a flushed final (Finalize, CloseStream) has `speech_final: false`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final

from websockets.http11 import Request

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

_DEEPGRAM_ENCODINGS: Final = {"mulaw": True, "linear16": False}
_DEEPGRAM_CONTROL: Final = frozenset(("KeepAlive", "Finalize", "CloseStream"))
DEFAULT_SILENCE_MS: Final = 500
"""Deepgram utterances end after this much silence when `endpointing` is absent or false."""
MIN_ENDPOINTING_MS: Final = 100
"""`endpointing` below this is raised to it: frame-level voicing would otherwise end an
utterance at every gap between words (Deepgram's own default is 10 ms)."""


def _deepgram_query_error(query: dict[str, str]) -> str | None:
    encoding = query.get("encoding")
    if encoding not in _DEEPGRAM_ENCODINGS:
        return f"unsupported encoding {encoding!r} (this fake takes mulaw or linear16)"
    rate = query.get("sample_rate", "")
    if not rate.isdigit() or int(rate) not in SAMPLE_RATES:
        return f"unsupported sample_rate {rate!r} (this fake takes 8000 or 16000)"
    if query.get("channels", "1") != "1":
        return "this fake takes mono audio only (channels=1)"
    for name in ("endpointing", "utterance_end_ms"):
        value = query.get(name)
        if (
            value is not None
            and not value.isdigit()
            and not (name == "endpointing" and value == "false")
        ):
            return f"invalid {name} {value!r}"
    return None


class _DeepgramSession(_Session):
    def open(self) -> None:
        fake = self.fake
        assert isinstance(fake, FakeDeepgram)
        query = self.record.query
        self.idle_timeout_s = fake.idle_timeout_s
        self._request_id = str(uuid.uuid4())
        self._created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._model = query.get("model", "nova-3")
        self._interim = _flag(query, "interim_results")
        self._punctuated = _flag(query, "smart_format") or _flag(query, "punctuate")
        endpointing = query.get("endpointing")
        self._endpointing = endpointing != "false"
        silence = DEFAULT_SILENCE_MS
        if endpointing is not None and endpointing.isdigit():
            silence = max(MIN_ENDPOINTING_MS, int(endpointing))
        utterance_end = query.get("utterance_end_ms")
        self._utterance_end_s = None if utterance_end is None else int(utterance_end) / 1000
        # doc silent: where the next Results window starts; finals tile the audio.
        self._cursor = 0.0
        self._pending_end: float | None = None  # last_word_end awaiting its UtteranceEnd
        self._pending_utterance = -1
        self._last_final_had_words = False
        self._sha = hashlib.sha256()
        self.start_segmenter(
            mulaw=_DEEPGRAM_ENCODINGS[query["encoding"]],
            sample_rate=int(query["sample_rate"]),
            silence_ms=silence,
        )

    def partial_interval_ms(self) -> int | None:
        return self.fake.partial_interval_ms if self._interim else None

    def idle_end(self) -> _End:
        return _End(
            1011,
            "NET-0001: Deepgram did not receive audio data or a text message "
            "within the timeout window.",
        )

    def parse_text(self, text: str) -> dict[str, Any]:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict) or message.get("type") not in _DEEPGRAM_CONTROL:
            raise _End(1008, f"Invalid control message: {text}")  # doc silent
        return message

    def on_control(self, message: dict[str, Any]) -> bool:
        if message["type"] == "Finalize":
            self._flush(from_finalize=True)
        return bool(message["type"] == "CloseStream")

    def on_segments(self, segments: list[Segment]) -> None:
        for segment in segments:
            if self._pending_end is not None and segment.utterance > self._pending_utterance:
                self._check_utterance_end(segment.start_s, None)
            window = (self._cursor, segment.cut_s)
            # doc silent: an endpoint is a final cut by `endpointing` silence, unless disabled.
            speech_final = segment.final and self._endpointing
            self._decode_results(segment, window, speech_final, from_finalize=False)
        assert self.segmenter is not None
        if self._pending_end is not None:
            self._check_utterance_end(self.segmenter.open_onset_s, self.segmenter.clock_s)

    def _decode_results(
        self,
        segment: Segment,
        window: tuple[float, float],
        speech_final: bool,
        *,
        from_finalize: bool,
    ) -> None:
        if segment.final:
            self._cursor = window[1]
            self._pending_utterance = segment.utterance
            self._pending_end = segment.end_s if self._utterance_end_s is not None else None
        self.decode(
            segment, functools.partial(self._results, segment, window, speech_final, from_finalize)
        )

    def _check_utterance_end(self, onset_s: float | None, clock_s: float | None) -> None:
        """Queues the pending UtteranceEnd once `utterance_end_ms` of silence followed the last
        word: before the next speech (its onset `onset_s`; None: none yet) or, with none yet,
        before the audio clock `clock_s`. Speech resuming within the gap cancels it."""
        assert self._pending_end is not None and self._utterance_end_s is not None
        gap_end = self._pending_end + self._utterance_end_s
        if onset_s is not None and onset_s < gap_end:
            self._pending_end = None
        elif onset_s is not None or (clock_s is not None and clock_s >= gap_end):
            self._emit_utterance_end()

    def _emit_utterance_end(self) -> None:
        last_word_end, self._pending_end = self._pending_end, None
        assert last_word_end is not None
        self.emit(functools.partial(self._utterance_end, last_word_end))

    def _utterance_end(self, last_word_end: float) -> list[Message]:
        if not self._last_final_had_words:
            return []
        return [
            {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last_word_end, 3)}
        ]

    def _flush(self, *, from_finalize: bool) -> None:
        """Finalize and end of stream: the utterance in progress becomes a final now (doc
        silent: with `speech_final: false`, no endpoint having been heard)."""
        assert self.segmenter is not None
        segment = self.segmenter.end_utterance()
        window = (self._cursor, self.segmenter.clock_s)
        if segment is not None:
            self._decode_results(segment, window, False, from_finalize=from_finalize)
        elif from_finalize and window[1] > window[0]:  # audio but no words: an empty final
            self._cursor = window[1]
            empty = self._message(window, [], 0.0, True, False, True)
            self.emit(lambda: [empty])

    def finish(self) -> None:
        self._flush(from_finalize=False)
        if self._pending_end is not None:  # the audio has ended, and with it the gap
            self._emit_utterance_end()
        self.emit(self._metadata)

    def on_audio(self, data: bytes) -> bool:
        if not data:  # doc silent: Deepgram's legacy end-of-stream signal
            self.record.audio_chunks += 1
            return True
        self._sha.update(data)
        return super().on_audio(data)

    def _metadata(self) -> list[Message]:
        return [
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self._request_id,
                "sha256": self._sha.hexdigest(),
                "created": self._created,
                "duration": round(self.audio_s, 3),
                "channels": 1,
            }
        ]

    def _results(
        self,
        segment: Segment,
        window: tuple[float, float],
        speech_final: bool,
        from_finalize: bool,
        transcription: Transcription,
    ) -> list[Message]:
        tokens = _tokens(transcription)
        if not segment.final and not tokens:
            return []
        confidence = transcription.confidence if transcription.confidence is not None else 1.0
        words: list[dict[str, Any]] = []
        for token, start, end in _spread(tokens, segment.start_s, segment.end_s):
            word: dict[str, Any] = {
                "word": _plain(token),
                "start": round(start, 3),
                "end": round(end, 3),
                "confidence": confidence,
            }
            if self._punctuated:
                word["punctuated_word"] = token
            words.append(word)
        if segment.final:
            self._last_final_had_words = bool(words)
        confidence = confidence if words else 0.0
        return [
            self._message(window, words, confidence, segment.final, speech_final, from_finalize)
        ]

    def _message(
        self,
        window: tuple[float, float],
        words: list[dict[str, Any]],
        confidence: float,
        final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> dict[str, Any]:
        key = "punctuated_word" if self._punctuated else "word"
        alternative = {
            "transcript": " ".join(w[key] for w in words),
            "confidence": confidence,
            "words": words,
        }
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(window[1] - window[0], 3),
            "start": round(window[0], 3),
            "is_final": final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [alternative]},
            "metadata": {
                "request_id": self._request_id,
                "model_info": {"name": self._model, "version": "fake", "arch": self._model},
            },
        }


class FakeDeepgram(FakeSpeechService):
    """`idle_timeout_s`: with no message (audio or text) for this long, close 1011 NET-0001."""

    path = "/v1/listen"
    _session_class = _DeepgramSession

    def __init__(
        self, engine: TranscriptionEngine, *, idle_timeout_s: float = 10.0, **options: Any
    ) -> None:
        super().__init__(engine, **options)
        self.idle_timeout_s = idle_timeout_s

    def error_body(self, status: int, message: str) -> str:
        return json.dumps({"err_code": HTTPStatus(status).phrase, "err_msg": message,
                           "request_id": str(uuid.uuid4())})  # fmt: skip

    def check_handshake(self, request: Request, query: dict[str, str]) -> tuple[int, str] | None:
        if request.headers.get_all("Authorization") != [f"Token {self.api_key}"]:
            body = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                    "request_id": str(uuid.uuid4())}  # fmt: skip
            return 401, json.dumps(body)
        error = _deepgram_query_error(query)
        return None if error is None else (400, self.error_body(400, error))


@asynccontextmanager
async def running_fake_deepgram(
    engine: TranscriptionEngine, *, api_key: str, **options: Any
) -> AsyncIterator[FakeDeepgram]:
    """`options`: `FakeDeepgram`'s and `FakeSpeechService`'s keyword parameters."""
    fake = FakeDeepgram(engine, api_key=api_key, **options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
