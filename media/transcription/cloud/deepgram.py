"""Deepgram live streaming (`/v1/listen`), sans-I/O: one session per telephony track.

The adapter opens `url()` with `headers(key)`, sends each `audio()` chunk as a binary frame and
each control message as text, sends `keepalive()` when no audio went out for
`KEEPALIVE_INTERVAL_S`, feeds each received message to `receive()`, and maps the closing code
with `close_error()`. Wire facts: docs/protocols.md section g.

Utterances: Deepgram sends a segment's text as interim `Results` until it is `is_final`; an
utterance is every final segment up to one marked `speech_final` (silence reached the
`endpointing` length) or `from_finalize` (we asked), or up to an `UtteranceEnd` (no word for
`utterance_end_ms`, which catches the ends that background noise keeps `endpointing` from
seeing). Each utterance becomes one `Final`.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias
from urllib.parse import quote, urlencode

from media.transcription.cloud.chunks import AudioChunker
from media.transcription.cloud.results import (
    Ended,
    Final,
    PartialGate,
    Result,
    ServiceError,
    Word,
    bool_field,
    clip,
    control_message,
    load_object,
    mean_confidence,
    message_type,
    ms_field,
    object_field,
    objects_field,
    opt_number_field,
    opt_str_field,
    query_bool,
    str_field,
)

Encoding: TypeAlias = Literal["mulaw", "linear16"]

DEFAULT_URL: typing.Final = "wss://api.deepgram.com/v1/listen"

# Section g: KeepAlive every 3–5 s of silence; 10 s with neither audio nor KeepAlive closes the
# session with NET-0001.
KEEPALIVE_INTERVAL_S: typing.Final = 4.0
IDLE_ERROR: typing.Final = "NET-0001"

# Section g: Deepgram's word and segment times are seconds.
_MS_PER_S: typing.Final = 1000.0

_KEEPALIVE: typing.Final = control_message("KeepAlive")
_FINALIZE: typing.Final = control_message("Finalize")
_CLOSE_STREAM: typing.Final = control_message("CloseStream")


class DeepgramProtocol:
    """One live session. Not thread-safe; one per track."""

    def __init__(
        self,
        sample_rate: int = 8000,
        encoding: Encoding = "mulaw",
        model: str = "nova-3",
        endpointing_ms: int | None = 300,
        utterance_end_ms: int | None = 1000,
        interim_results: bool = True,
        smart_format: bool = True,
        keyterms: Sequence[str] = (),
        base_url: str = DEFAULT_URL,
        chunk_ms: int = 100,
    ) -> None:
        """`endpointing_ms` None turns endpointing off (`speech_final` then never comes);
        `utterance_end_ms` None asks for no `UtteranceEnd`. `chunk_ms`: audio goes in chunks
        this long (Deepgram takes any size; one message per 20 ms frame would double the
        messages the server handles per call)."""
        if chunk_ms <= 0:
            raise ValueError("chunk_ms must be positive")
        if encoding not in ("mulaw", "linear16"):
            raise ValueError(f"unsupported encoding {encoding!r}")
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if isinstance(keyterms, str):
            raise TypeError("keyterms is a sequence of terms, not one string")
        self.sample_rate = sample_rate
        self.encoding: Encoding = encoding
        self.model = model
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.interim_results = interim_results
        self.smart_format = smart_format
        self.keyterms = tuple(keyterms)
        self.base_url = base_url
        width = 1 if encoding == "mulaw" else 2
        self._chunks = AudioChunker(sample_rate * chunk_ms // 1000 * width)

        self._gate = PartialGate()
        self._closing = False
        # The utterance so far: its final segments.
        self._texts: list[str] = []
        self._words: list[Word] = []
        self._confidences: list[float | None] = []
        self._start_ms = 0
        self._end_ms = 0

    # Connection

    def url(self) -> str:
        params: list[tuple[str, str]] = [
            ("model", self.model),
            ("encoding", self.encoding),
            ("sample_rate", str(self.sample_rate)),
            ("channels", "1"),
            ("interim_results", query_bool(self.interim_results)),
            (
                "endpointing",
                "false" if self.endpointing_ms is None else str(self.endpointing_ms),
            ),
            ("smart_format", query_bool(self.smart_format)),
        ]
        if self.utterance_end_ms is not None:
            params.append(("utterance_end_ms", str(self.utterance_end_ms)))
        # One `keyterm` parameter per term.
        params += [("keyterm", term) for term in self.keyterms]
        return f"{self.base_url}?{urlencode(params, quote_via=quote)}"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Token {api_key}"}

    # Client → server

    def audio(self, payload: bytes) -> list[bytes]:
        """Binary messages to send now: every whole chunk the buffered audio fills. Never an
        empty frame: Deepgram's older protocol read one as the end of the stream (its own docs,
        not docs/protocols.md; `close_stream()` is the way now)."""
        return self._chunks.add(payload)

    def flush(self) -> list[bytes]:
        """The buffered rest (any length does), before the session ends."""
        rest = self._chunks.rest()
        return [rest] if rest else []

    def keepalive(self) -> str:
        return _KEEPALIVE

    def finalize(self) -> str:
        """Ends the current utterance now: its Final follows (`from_finalize`)."""
        return _FINALIZE

    def close_stream(self) -> str:
        """Ends the session: the last results follow, then `Metadata` (→ `Ended`)."""
        self._closing = True
        return _CLOSE_STREAM

    def end(self) -> str:
        """The message that ends the session (what every protocol here has): `close_stream()`."""
        return self.close_stream()

    # Server → client

    def receive(self, message: str | bytes) -> list[Result]:
        """Results of one server message; raises ProtocolViolation for a malformed one."""
        obj = load_object(message)
        kind = message_type(obj)
        if kind == "Results":
            return self._results(obj)
        if kind == "UtteranceEnd":
            return self._end_utterance()
        if kind == "Metadata":
            # Deepgram's summary of the session; the end of it only once we asked for the end.
            return [*self._end_utterance(), Ended()] if self._closing else []
        if kind == "Error":
            return [_error(obj)]
        # SpeechStarted and anything newer: nothing a transcript needs.
        return []

    @staticmethod
    def close_error(code: int, reason: str) -> ServiceError | None:
        """The error a websocket close means; None for a normal close (1000)."""
        if IDLE_ERROR in reason:
            # We sent neither audio nor KeepAlive for 10 s: a new session works.
            return ServiceError("idle", clip(reason), True)
        if code == 1000:
            return None
        if code == 1008:
            # Policy: a bad or missing key, or a request Deepgram refuses; retrying repeats it.
            return ServiceError("policy", clip(reason), False)
        if code == 1011:
            return ServiceError("server_error", clip(reason), True)
        return ServiceError(f"closed_{code}", clip(reason), True)

    def _results(self, obj: dict[str, Any]) -> list[Result]:
        is_final = bool_field(obj, "is_final", "Results")
        speech_final = bool_field(obj, "speech_final", "Results", default=False)
        ends = bool_field(obj, "from_finalize", "Results", default=False) or speech_final
        channel = object_field(obj, "channel", "Results")
        alternatives = objects_field(channel, "alternatives", "Results.channel")
        alt = alternatives[0] if alternatives else {}
        where = "Results.channel.alternatives[0]"
        transcript = str_field(alt, "transcript", where, default="").strip()
        words = _words(alt)

        if not (is_final or ends):
            text = " ".join([*self._texts, transcript] if transcript else self._texts)
            return self._gate.partial(text, (*self._words, *words))

        if transcript:
            # Times from the words; from the segment's span only if it has none.
            start = _segment_ms(obj, "start")
            if not self._texts:
                self._start_ms = words[0].start_ms if words else start
            self._end_ms = words[-1].end_ms if words else start + _segment_ms(obj, "duration")
            self._texts.append(transcript)
            self._words += words
            self._confidences.append(opt_number_field(alt, "confidence", where))
        if ends:
            return self._end_utterance()
        # The segment is settled but the utterance goes on: show it as it now stands.
        return self._gate.partial(" ".join(self._texts), tuple(self._words))

    def _end_utterance(self) -> list[Result]:
        final: Final | None = None
        if self._texts:
            words = tuple(self._words)
            single = self._confidences[0] if len(self._confidences) == 1 else None
            final = Final(
                text=" ".join(self._texts),
                words=words,
                start_ms=self._start_ms,
                end_ms=self._end_ms,
                # Deepgram rates each segment; for several, the words are the common measure.
                confidence=single if single is not None else mean_confidence(words),
            )
        self._texts, self._words, self._confidences = [], [], []
        return self._gate.final(final)


def _words(alternative: dict[str, Any]) -> tuple[Word, ...]:
    where = "Results.channel.alternatives[0].words[]"
    return tuple(
        Word(
            # Punctuated and capitalised where smart_format or punctuate is on.
            text=(
                opt_str_field(w, "punctuated_word", where) or str_field(w, "word", where)
            ).strip(),
            start_ms=ms_field(w, "start", where, scale=_MS_PER_S),
            end_ms=ms_field(w, "end", where, scale=_MS_PER_S),
            confidence=opt_number_field(w, "confidence", where),
        )
        for w in objects_field(alternative, "words", "Results", default=[])
    )


def _segment_ms(obj: dict[str, Any], key: str) -> int:
    return 0 if obj.get(key) is None else ms_field(obj, key, "Results", scale=_MS_PER_S)


def _error(obj: dict[str, Any]) -> ServiceError:
    description = opt_str_field(obj, "description", "Error")
    message = opt_str_field(obj, "message", "Error")
    text = " ".join(part for part in (description, message) if part)
    code = obj.get("code")
    if IDLE_ERROR in text or code == IDLE_ERROR:
        return ServiceError("idle", clip(text), True)
    # The close that follows an Error carries the code that decides a retry.
    return ServiceError("error", clip(text), True)
