"""The media plane's public contract: the domain events a call's media stream produces.

Events are the media plane's only output. storage/ persists them (and may journal them to disk
and replay them, so every event round-trips through `event_to_dict` / `event_from_dict`);
control/ reads what storage wrote. Every event carries a unique `event_id` so that a replayed
event is written once.

Offsets (`start_ms`, `end_ms`) are milliseconds of call audio on that track since the stream
started, counted in samples (lost frames included), not wall-clock time.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias, get_args

Track: TypeAlias = Literal["inbound", "outbound"]
"""SignalWire's track names: inbound is the caller (far end), outbound the agent side."""

SPEAKER_BY_TRACK: dict[Track, str] = {"inbound": "caller", "outbound": "agent"}


def _new_id() -> uuid.UUID:
    return uuid.uuid4()


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEvent:
    """Fields every event has: which org, call and stream it belongs to, and when it happened."""

    org_id: uuid.UUID
    call_id: uuid.UUID
    stream_sid: str
    event_id: uuid.UUID = field(default_factory=_new_id)
    occurred_at: datetime = field(default_factory=_now)


RESTARTED_AFTER: Final = "restarted_after"
"""The `start.customParameters` entry by which the control plane says why it restarted a
stream mid-call (`StreamStarted.restarted_after`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStarted(StreamEvent):
    call_sid: str
    stream_name: str | None
    tracks: tuple[Track, ...]
    encoding: str
    sample_rate: int
    server_id: uuid.UUID | None = None
    """The server process serving the stream (which owns its row until it ends), carried in the
    event so that a replay from the journal by a later process still names the one that opened
    it; None where no process registered (and for events journaled before it was recorded)."""
    connection: int = 1
    """Which connection of the stream this is (the same `streamSid` may reconnect): each has
    its own record."""
    offset_ms: int = 0
    """Where the stream's audio begins on the call's clock (a later stream of a call starts
    after the earlier ones)."""
    restarted_after: str | None = None
    """Why the control plane started this stream itself mid-call (e.g. `process_lost`: the
    process carrying the call died), as its `start` said; None for a stream the call's LaML
    started."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackStats:
    """Audio accounting for one track of a stream."""

    track: Track
    frames_received: int
    frames_lost: int
    audio_lost_ms: int
    utterances_skipped: int = 0
    """Utterances never transcribed for want of time (overload, stream end)."""
    transcription_error: str | None = None
    """The error that made a cloud service's transcription of this track fall back to the
    offline engine (e.g. `server_error`, `slow`); None if it never did. Both default for events
    journaled before they were recorded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStopped(StreamEvent):
    """The last event of a stream: every transcript segment of the stream precedes it."""

    reason: str
    """`stop` (the platform's stop message), `disconnected` (socket dropped), or an error."""
    tracks: tuple[TrackStats, ...]
    messages_lost: int
    """Gaps in the global sequenceNumber (any message type)."""
    connection: int = 1


@dataclass(frozen=True, slots=True)
class WordTiming:
    """One word of a final segment as the engine timed it, on the call's clock."""

    text: str
    start_ms: int
    end_ms: int
    confidence: float | None


RedactionKind: TypeAlias = Literal[
    "card", "ssn", "account", "cvv", "expiry", "dob", "phone", "email"
]
"""What media.redaction finds and replaces, and an org may choose to redact."""
REDACTION_KINDS: Final[tuple[RedactionKind, ...]] = get_args(RedactionKind)


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptSegment(StreamEvent):
    track: Track
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None
    is_final: bool
    engine: str
    words: tuple[WordTiming, ...] = ()
    """Word timings where the engine gives them (the cloud engines; Whisper's are not kept),
    and none where anything was redacted (their words would carry it)."""
    redacted: tuple[str, ...] = ()
    """The kind of each span redacted from `text` (a `RedactionKind`, "digits" in a partial, or
    "secure" for a caller's words heard in secure mode), e.g. ("card",)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptPartial(StreamEvent):
    """What a speaker has said so far in an utterance still being heard (a cloud service's
    interim result): for supervisors' screens only, never stored, replaced by the next partial
    or by the utterance's final `TranscriptSegment`. Empty `text` withdraws it."""

    track: Track
    start_ms: int
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived(StreamEvent):
    track: Track
    digit: str | None
    """None for a key pressed while the call was in secure mode: the press is kept, not the
    digit."""
    offset_ms: int


ConsentVerdict: TypeAlias = Literal["granted", "refused"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentEvidence(StreamEvent):
    """Something that bears on the call's recording consent: the disclosure was spoken (`kind`
    "disclosure", no verdict), or the other party answered it (`kind` "answer", a verdict)."""

    kind: Literal["disclosure", "answer"]
    detector: str
    """What noticed it: `agent_speech`, `caller_speech` or `keypad`."""
    verdict: ConsentVerdict | None
    track: Track
    offset_ms: int
    evidence: str
    """The phrase or digit that decided it (never the whole utterance)."""
    segment_id: uuid.UUID | None = None
    """The transcript segment it was heard in (its `event_id`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationRaised(StreamEvent):
    rule_id: uuid.UUID | None
    rule_name: str
    kind: str
    severity: str
    track: Track | None
    """None for signals about both parties (dead air, talk-over, composites)."""
    start_ms: int
    end_ms: int
    evidence: str
    segment_id: uuid.UUID | None = None


MediaEvent: TypeAlias = (
    StreamStarted
    | StreamStopped
    | TranscriptSegment
    | TranscriptPartial
    | DtmfReceived
    | ConsentEvidence
    | EscalationRaised
)

_EVENT_TYPES: dict[str, type[MediaEvent]] = {
    cls.__name__: cls
    for cls in (
        StreamStarted,
        StreamStopped,
        TranscriptSegment,
        TranscriptPartial,
        DtmfReceived,
        ConsentEvidence,
        EscalationRaised,
    )
}
_UUID_FIELDS = frozenset({"org_id", "call_id", "event_id", "rule_id", "segment_id", "server_id"})
_OPTIONAL_UUID_FIELDS = frozenset({"rule_id", "segment_id", "server_id"})


def event_to_dict(event: MediaEvent) -> dict[str, Any]:
    """A JSON-ready dict with a `type` discriminator."""
    data: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        data[f.name] = _to_json(getattr(event, f.name))
    return data


def _to_json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, TrackStats | WordTiming):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def event_from_dict(data: dict[str, Any]) -> MediaEvent:
    """Inverse of `event_to_dict`; raises KeyError/ValueError/TypeError on a malformed dict."""
    cls = _EVENT_TYPES[data["type"]]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in _UUID_FIELDS and not (value is None and f.name in _OPTIONAL_UUID_FIELDS):
            if not isinstance(value, str):
                raise TypeError(f"{f.name} must be a string")
            value = uuid.UUID(value)
        elif f.name == "occurred_at":
            value = datetime.fromisoformat(value)
        elif f.name == "tracks" and cls is StreamStopped:
            value = tuple(TrackStats(**t) for t in value)
        elif f.name == "words" and cls is TranscriptSegment:
            value = tuple(WordTiming(**w) for w in value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
