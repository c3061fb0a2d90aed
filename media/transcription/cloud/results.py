"""What a cloud speech protocol returns, and the strict JSON readers both protocols share.

Results, in the order a session produces them:

    Partial*  Final   (per utterance; a Partial's text may still change, a Final's will not)
    Ended             (the service confirmed the end we asked for)
    ServiceError      (the service reported an error, or closed the socket abnormally)

Times are integer milliseconds of audio since the session's first audio byte, whatever unit
the service uses on the wire.

A message the service should never send (not JSON, not an object, a known message with a field
of the wrong type) raises `ProtocolViolation`: the adapter ends the session rather than guess.
Message types we do not know are skipped, since services add types without notice.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

# A service's error text goes to logs and metrics annotations; keep a hostile or buggy peer
# from filling them.
MAX_MESSAGE_CHARS: typing.Final = 256
# Times fit a signed 32-bit column (24 days, against sessions of hours); beyond is garbage.
MAX_TIME_MS: typing.Final = 2**31


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_ms: int
    end_ms: int
    confidence: float | None
    """0..1 where the service reports one."""


@dataclass(frozen=True, slots=True)
class Partial:
    """The utterance so far. Replaces the previous Partial; `text` empty withdraws it (the
    words heard so far turned out to be nothing, so no Final follows)."""

    text: str
    words: tuple[Word, ...]


@dataclass(frozen=True, slots=True)
class Final:
    """One finished utterance (an AssemblyAI turn, a Deepgram utterance); never empty."""

    text: str
    words: tuple[Word, ...]
    start_ms: int
    end_ms: int
    confidence: float | None
    """The service's figure for the whole where it gives one, else the mean of the words'."""


@dataclass(frozen=True, slots=True)
class Ended:
    """The service confirmed the end of the session: every result has been delivered."""


@dataclass(frozen=True, slots=True)
class ServiceError:
    """`code` is a short, bounded label (a Prometheus label value); `message` the service's
    own text, clipped; `retryable` whether a new session may succeed where this one failed."""

    code: str
    message: str
    retryable: bool


Result: TypeAlias = Partial | Final | Ended | ServiceError


class ProtocolViolation(Exception):
    """The service sent a message that breaks its own protocol; the text names the field."""


class PartialGate:
    """Decides which Partials reach the user. Services repeat interim results unchanged and
    send empty ones all through silence: noise, except an empty one right after a non-empty
    Partial, which withdraws it. An utterance that ends in no words withdraws its Partial the
    same way."""

    __slots__ = ("_shown",)

    def __init__(self) -> None:
        self._shown = Partial("", ())

    def partial(self, text: str, words: tuple[Word, ...]) -> list[Result]:
        partial = Partial(text, words) if text else Partial("", ())
        if partial == self._shown:
            return []
        self._shown = partial
        return [partial]

    def final(self, final: Final | None) -> list[Result]:
        """The end of an utterance: its Final, or None when it came to nothing."""
        shown, self._shown = self._shown, Partial("", ())
        if final is not None:
            return [final]
        return [] if shown == self._shown else [self._shown]


def clip(text: str) -> str:
    return text[:MAX_MESSAGE_CHARS]


def mean_confidence(words: Iterable[Word]) -> float | None:
    values = [w.confidence for w in words if w.confidence is not None]
    return sum(values) / len(values) if values else None


def query_bool(value: bool) -> str:
    """Both services spell query-string booleans in lower case."""
    return "true" if value else "false"


def control_message(message_type: str) -> str:
    """A client → server control message with no fields, e.g. `{"type":"KeepAlive"}`."""
    return orjson.dumps({"type": message_type}).decode()


# Strict readers. Each names the field it refuses, so a violation in the logs says what changed.
# JSON null counts as absent: an optional field may be sent as null.


def load_object(message: str | bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(message)
    except ValueError:
        raise ProtocolViolation("message is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolViolation("message is not a JSON object")
    return obj


def message_type(obj: Mapping[str, Any]) -> str:
    return str_field(obj, "type", "message")


def str_field(obj: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise ProtocolViolation(f"{where}.{key} is not a string")
    return value


def opt_str_field(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if obj.get(key) is None else str_field(obj, key, where)


def bool_field(obj: Mapping[str, Any], key: str, where: str, default: bool | None = None) -> bool:
    value = obj.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise ProtocolViolation(f"{where}.{key} is not a boolean")
    return value


def int_field(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    # bool is an int subclass; `true` is not a number on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolViolation(f"{where}.{key} is not an integer")
    return value


def number_field(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = opt_number_field(obj, key, where)
    if value is None:
        raise ProtocolViolation(f"{where}.{key} is missing")
    return value


def opt_number_field(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProtocolViolation(f"{where}.{key} is not a number")
    return float(value)


def ms_field(obj: Mapping[str, Any], key: str, where: str, *, scale: float = 1.0) -> int:
    """A non-negative time as integer ms; `scale` converts the wire unit (1000 for seconds)."""
    ms = number_field(obj, key, where) * scale
    if not 0 <= ms < MAX_TIME_MS:
        raise ProtocolViolation(f"{where}.{key} is not a time")
    return round(ms)


def objects_field(
    obj: Mapping[str, Any], key: str, where: str, default: list[Any] | None = None
) -> list[dict[str, Any]]:
    """A list of JSON objects."""
    value = obj.get(key)
    if value is None and default is not None:
        value = default
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ProtocolViolation(f"{where}.{key} is not a list of objects")
    return value


def object_field(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ProtocolViolation(f"{where}.{key} is not an object")
    return value
