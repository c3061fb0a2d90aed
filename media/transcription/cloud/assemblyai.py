"""AssemblyAI Universal-Streaming (API v3), sans-I/O: one session per telephony track.

The adapter opens `url()` with `headers(key)`, sends every `audio()` and `flush()` chunk as a
binary frame and every control message as text, feeds each received message to `receive()`,
and maps the closing code with `close_error()`. Wire facts: docs/protocols.md section f.

Audio: the service refuses chunks shorter than 50 ms or longer than 1000 ms (close 3007), and
telephony delivers 20 ms frames, so `audio()` batches them into fixed chunks (100 ms by default:
five μ-law frames at 8 kHz). Sent as they fill, the chunks never outrun real time.

Turns: one `Final` per `turn_order`, ever. With `format_turns` the Final is the formatted end
of turn. Older service versions sent an unformatted end-of-turn Turn first and the formatted
one after (section f); the unformatted one is held until its formatted copy arrives, and sent
as it is if a later turn or the session's end comes first, so a lost formatting pass costs
punctuation, never words.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias
from urllib.parse import quote, urlencode

import orjson

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
    int_field,
    load_object,
    mean_confidence,
    message_type,
    ms_field,
    objects_field,
    opt_number_field,
    query_bool,
    str_field,
)

Encoding: TypeAlias = Literal["pcm_mulaw", "pcm_s16le"]

DEFAULT_URL: typing.Final = "wss://streaming.assemblyai.com/v3/ws"
# The version header the SDK sends (section f, Connection).
API_VERSION: typing.Final = "2025-05-12"

# Section f, Client → server: every audio chunk 50–1000 ms, else close 3007.
MIN_CHUNK_MS: typing.Final = 50
MAX_CHUNK_MS: typing.Final = 1000

_SAMPLE_BYTES: typing.Final[dict[str, int]] = {"pcm_mulaw": 1, "pcm_s16le": 2}
# Padding for a short last chunk: μ-law 0xFF and PCM16 zero both decode to silence.
_SILENCE_BYTE: typing.Final[dict[str, bytes]] = {"pcm_mulaw": b"\xff", "pcm_s16le": b"\x00"}

# Section f, Close/error codes: code → (label, whether a new session may succeed).
_CLOSE_CODES: typing.Final[dict[int, tuple[str, bool]]] = {
    1008: ("unauthorized", False),
    1013: ("temporary", True),
    3005: ("server_error", True),
    3006: ("bad_message", False),
    # Chunks outside 50–1000 ms or audio faster than real time: our bug, a retry repeats it.
    3007: ("rate", False),
    # The session's time is up; a new session carries on.
    3008: ("max_duration", True),
    3009: ("too_many_sessions", True),
    # The legacy (v2) table the SDK still carries.
    4001: ("unauthorized", False),
    4002: ("insufficient_funds", False),
    4029: ("rate", False),
    4031: ("idle", True),
    4100: ("bad_message", False),
    4101: ("bad_message", False),
    4102: ("too_many_sessions", True),
}

_TERMINATE: typing.Final = control_message("Terminate")
_FORCE_ENDPOINT: typing.Final = control_message("ForceEndpoint")
_KEEPALIVE: typing.Final = control_message("KeepAlive")


class AssemblyAIProtocol:
    """One streaming session. Not thread-safe; one per track."""

    def __init__(
        self,
        sample_rate: int = 8000,
        encoding: Encoding = "pcm_mulaw",
        speech_model: str = "universal-streaming-english",
        keyterms: Sequence[str] = (),
        format_turns: bool = True,
        base_url: str = DEFAULT_URL,
        *,
        min_turn_silence_ms: int | None = None,
        max_turn_silence_ms: int | None = None,
        inactivity_timeout_s: int | None = None,
        chunk_ms: int = 100,
    ) -> None:
        """`min_turn_silence_ms`/`max_turn_silence_ms`: the silence that ends a turn when the
        model is confident / in any case (service defaults 400 and 1280 when None).
        `inactivity_timeout_s` (5–3600) ends a session that hears nothing; `keepalive()` then
        resets it. `chunk_ms` is the audio chunk length (50–1000)."""
        if encoding not in _SAMPLE_BYTES:
            raise ValueError(f"unsupported encoding {encoding!r}")
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if not MIN_CHUNK_MS <= chunk_ms <= MAX_CHUNK_MS:
            raise ValueError(f"chunk_ms must be {MIN_CHUNK_MS}..{MAX_CHUNK_MS}")
        if isinstance(keyterms, str):
            raise TypeError("keyterms is a sequence of terms, not one string")
        if inactivity_timeout_s is not None and not 5 <= inactivity_timeout_s <= 3600:
            raise ValueError("inactivity_timeout_s must be 5..3600")
        for name, value in (("min", min_turn_silence_ms), ("max", max_turn_silence_ms)):
            if value is not None and value < 0:
                raise ValueError(f"{name}_turn_silence_ms must not be negative")

        self.sample_rate = sample_rate
        self.encoding: Encoding = encoding
        self.speech_model = speech_model
        self.keyterms = tuple(keyterms)
        self.format_turns = format_turns
        self.base_url = base_url
        self.min_turn_silence_ms = min_turn_silence_ms
        self.max_turn_silence_ms = max_turn_silence_ms
        self.inactivity_timeout_s = inactivity_timeout_s

        self.session_id: str | None = None
        """From `Begin`; quote it to AssemblyAI support."""
        self.expires_at: int | None = None
        """From `Begin`: unix seconds when the service will end the session (close 3008)."""

        width = _SAMPLE_BYTES[encoding]
        # Whole samples, rounded up: a chunk is never a fraction of a sample under its length.
        self._chunks = AudioChunker(-(-sample_rate * chunk_ms // 1000) * width)
        self._min_bytes = -(-sample_rate * MIN_CHUNK_MS // 1000) * width
        self._width = width
        self._silence = _SILENCE_BYTE[encoding]

        self._gate = PartialGate()
        # Turn orders only grow, so the last one finished says which are done.
        self._last_done = -1
        self._held_order: int | None = None
        self._held: Final | None = None

    # Connection

    def url(self) -> str:
        params: list[tuple[str, str]] = [
            ("speech_model", self.speech_model),  # required: the service has no default
            ("encoding", self.encoding),
            ("sample_rate", str(self.sample_rate)),
            ("format_turns", query_bool(self.format_turns)),
        ]
        if self.keyterms:
            # Lists travel JSON-encoded in the query (section f, Connection).
            params.append(("keyterms_prompt", orjson.dumps(list(self.keyterms)).decode()))
        if self.min_turn_silence_ms is not None:
            params.append(("min_turn_silence", str(self.min_turn_silence_ms)))
        if self.max_turn_silence_ms is not None:
            params.append(("max_turn_silence", str(self.max_turn_silence_ms)))
        if self.inactivity_timeout_s is not None:
            params.append(("inactivity_timeout", str(self.inactivity_timeout_s)))
        return f"{self.base_url}?{urlencode(params, quote_via=quote)}"

    def headers(self, api_key: str) -> dict[str, str]:
        # The raw key, no "Bearer" (section f, Connection).
        return {"Authorization": api_key, "AssemblyAI-Version": API_VERSION}

    # Client → server

    def audio(self, payload: bytes) -> list[bytes]:
        """Binary messages to send now: every whole chunk the buffered audio fills."""
        return self._chunks.add(payload)

    def flush(self) -> list[bytes]:
        """The buffered rest as one last chunk, padded with silence to the 50 ms minimum and to
        whole samples. Send it before `terminate()`."""
        data = self._chunks.rest()
        if not data:
            return []
        length = max(self._min_bytes, -(-len(data) // self._width) * self._width)
        return [data + self._silence * (length - len(data))]

    def terminate(self) -> str:
        """Ends the session gracefully: the service sends the turns in flight, `Termination`
        (→ `Ended`), and closes with 1000."""
        return _TERMINATE

    def end(self) -> str:
        """The message that ends the session (what every protocol here has): `terminate()`."""
        return self.terminate()

    def force_endpoint(self) -> str:
        """Ends the current turn now (its Final follows)."""
        return _FORCE_ENDPOINT

    def keepalive(self) -> str:
        """Resets the inactivity timer; only meaningful with `inactivity_timeout_s`."""
        return _KEEPALIVE

    # Server → client

    def receive(self, message: str | bytes) -> list[Result]:
        """Results of one server message; raises ProtocolViolation for a malformed one."""
        obj = load_object(message)
        kind = message_type(obj)
        if kind == "Turn":
            return self._turn(obj)
        if kind == "Begin":
            self.session_id = str_field(obj, "id", "Begin")
            expires_at = opt_number_field(obj, "expires_at", "Begin")
            self.expires_at = None if expires_at is None else int(expires_at)
            return []
        if kind == "Termination":
            return [*self._release_held(), Ended()]
        if kind == "Error":
            return [_error(obj)]
        # SpeechStarted, Warning, Heartbeat, …: nothing a transcript needs (section f).
        return []

    @staticmethod
    def close_error(code: int, reason: str) -> ServiceError | None:
        """The error a websocket close code means; None for a normal close (1000)."""
        if code == 1000:
            return None
        label, retryable = _CLOSE_CODES.get(code, (f"closed_{code}", True))
        return ServiceError(label, clip(reason), retryable)

    def _turn(self, obj: dict[str, Any]) -> list[Result]:
        order = int_field(obj, "turn_order", "Turn")
        end_of_turn = bool_field(obj, "end_of_turn", "Turn")
        formatted = bool_field(obj, "turn_is_formatted", "Turn", default=False)
        transcript = str_field(obj, "transcript", "Turn").strip()
        words = _words(obj)

        results: list[Result] = []
        if self._held_order is not None and order > self._held_order:
            # The held turn's formatted copy did not come before the next turn did.
            results += self._release_held()
        if order <= self._last_done or (order == self._held_order and not end_of_turn):
            return results  # a copy of a finished turn
        if not end_of_turn:
            # `transcript` has only the finalized words; `words` has every word so far.
            text = " ".join(w.text for w in words if w.text) if words else transcript
            return results + self._gate.partial(text, words)

        final = _final(transcript, words)
        if self.format_turns and not formatted:
            self._held_order, self._held = order, final
            return results
        self._held_order = self._held = None
        self._last_done = order
        return results + self._gate.final(final)

    def _release_held(self) -> list[Result]:
        if self._held_order is None:
            return []
        self._last_done = self._held_order
        final, self._held_order, self._held = self._held, None, None
        return self._gate.final(final)


def _words(turn: dict[str, Any]) -> tuple[Word, ...]:
    where = "Turn.words[]"
    return tuple(
        Word(
            text=str_field(w, "text", where).strip(),
            start_ms=ms_field(w, "start", where),  # already ms (section f)
            end_ms=ms_field(w, "end", where),
            confidence=opt_number_field(w, "confidence", where),
        )
        for w in objects_field(turn, "words", "Turn", default=[])
    )


def _final(transcript: str, words: tuple[Word, ...]) -> Final | None:
    text = transcript or " ".join(w.text for w in words if w.text)
    if not text:
        return None  # an empty turn (e.g. ForceEndpoint in silence) is not a transcript
    return Final(
        text=text,
        words=words,
        start_ms=min((w.start_ms for w in words), default=0),
        end_ms=max((w.end_ms for w in words), default=0),
        # `end_of_turn_confidence` rates the turn's end, not its words.
        confidence=mean_confidence(words),
    )


def _error(obj: dict[str, Any]) -> ServiceError:
    message = clip(str_field(obj, "error", "Error", default=""))
    # `error_code` is optional and its type undocumented: a close code when it is one of ours.
    code = obj.get("error_code")
    if isinstance(code, int) and not isinstance(code, bool) and code in _CLOSE_CODES:
        label, retryable = _CLOSE_CODES[code]
        return ServiceError(label, message, retryable)
    # The service closes the socket after an Error; that close code is the better guide.
    return ServiceError("error", message, True)
