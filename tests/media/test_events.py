"""media.events: every event survives a trip through JSON, and malformed dicts are refused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from media.events import (
    ConsentEvidence,
    DtmfReceived,
    EscalationRaised,
    MediaEvent,
    StreamStarted,
    StreamStopped,
    TrackStats,
    TranscriptPartial,
    TranscriptSegment,
    event_from_dict,
    event_to_dict,
)

ORG = uuid.UUID("11111111-2222-3333-4444-555555555555")
CALL = uuid.UUID("66666666-7777-8888-9999-aaaaaaaaaaaa")
SID = "7d56cc11-536d-4a45-b4fb-ed3d55be843b"
COMMON: dict[str, Any] = {"org_id": ORG, "call_id": CALL, "stream_sid": SID}

EVENTS: list[MediaEvent] = [
    StreamStarted(
        **COMMON,
        call_sid="b3b8a2f4-2f35-4c8e-9a42-64cbbc3f2a11",
        stream_name="agent-leg",
        tracks=("inbound", "outbound"),
        encoding="audio/x-mulaw",
        sample_rate=8000,
    ),
    StreamStarted(
        **COMMON,
        call_sid="CA7b1b2a4b3c9d8e7f6a5b4c3d2e1f0a9b",
        stream_name=None,
        tracks=("inbound",),
        encoding="audio/x-L16",
        sample_rate=24000,
        occurred_at=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5))),
    ),
    StreamStopped(
        **COMMON,
        reason="stop",
        tracks=(
            TrackStats(track="inbound", frames_received=1500, frames_lost=3, audio_lost_ms=60),
            TrackStats(track="outbound", frames_received=1490, frames_lost=0, audio_lost_ms=0),
        ),
        messages_lost=3,
    ),
    StreamStopped(**COMMON, reason="disconnected", tracks=(), messages_lost=0),
    TranscriptSegment(
        **COMMON,
        track="inbound",
        start_ms=1240,
        end_ms=4460,
        text="Hello, I am calling about my account balance. «ñ» 😀",
        confidence=0.8125,
        is_final=True,
        engine="faster-whisper:tiny.en",
    ),
    TranscriptSegment(
        **COMMON,
        track="outbound",
        start_ms=0,
        end_ms=20,
        text="",
        confidence=None,
        is_final=False,
        engine="none",
    ),
    DtmfReceived(**COMMON, track="inbound", digit="#", offset_ms=5120),
    ConsentEvidence(
        **COMMON, kind="answer", detector="caller_speech", verdict="granted", track="inbound",
        offset_ms=3100, evidence="that's fine", segment_id=uuid.uuid4(),
    ),
    ConsentEvidence(
        **COMMON, kind="disclosure", detector="agent_speech", verdict=None, track="outbound",
        offset_ms=0, evidence="call may be recorded",
    ),
    EscalationRaised(
        **COMMON, rule_id=uuid.uuid4(), rule_name="supervisor-request", kind="phrase",
        severity="high", track="inbound", start_ms=9000, end_ms=10800, evidence="manager",
        segment_id=uuid.uuid4(),
    ),
    EscalationRaised(
        **COMMON, rule_id=None, rule_name="dead-air", kind="dead_air", severity="low",
        track=None, start_ms=0, end_ms=15000, evidence="15.0 s of silence",
    ),
    TranscriptPartial(**COMMON, track="inbound", start_ms=1240, text="Hello, I am calling"),
]  # fmt: skip


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: MediaEvent) -> None:
    data = event_to_dict(event)
    assert data["type"] == type(event).__name__
    restored = event_from_dict(json.loads(json.dumps(data)))
    assert restored == event
    assert type(restored) is type(event)
    assert restored.occurred_at.utcoffset() == event.occurred_at.utcoffset()


def test_every_event_type_is_covered() -> None:
    assert {type(e) for e in EVENTS} == set(get_args(MediaEvent))


def test_dict_shape_is_plain_json() -> None:
    event = EVENTS[2]
    data = event_to_dict(event)
    assert data["org_id"] == str(ORG)
    assert data["event_id"] == str(event.event_id)
    assert data["occurred_at"] == event.occurred_at.isoformat()
    assert data["tracks"][0] == {
        "track": "inbound",
        "frames_received": 1500,
        "frames_lost": 3,
        "audio_lost_ms": 60,
        "utterances_skipped": 0,
        "transcription_error": None,
    }
    assert json.loads(json.dumps(data)) == data


def test_new_events_get_unique_ids_and_an_aware_time() -> None:
    a = DtmfReceived(**COMMON, track="inbound", digit="1", offset_ms=0)
    b = DtmfReceived(**COMMON, track="inbound", digit="1", offset_ms=0)
    assert a.event_id != b.event_id
    assert a.occurred_at.tzinfo is not None
    assert abs(a.occurred_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_replayed_event_keeps_its_id() -> None:
    event = EVENTS[6]
    once = event_from_dict(json.loads(json.dumps(event_to_dict(event))))
    twice = event_from_dict(json.loads(json.dumps(event_to_dict(once))))
    assert once.event_id == twice.event_id == event.event_id


def _valid(index: int = 6) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(event_to_dict(EVENTS[index])))
    return data


def _without(key: str, index: int = 6) -> dict[str, Any]:
    data = _valid(index)
    del data[key]
    return data


def _with(index: int = 6, **changes: Any) -> dict[str, Any]:
    data = _valid(index)
    data.update(changes)
    return data


MALFORMED = [
    pytest.param({}, id="empty"),
    pytest.param(_without("type"), id="no-type"),
    pytest.param(_with(type="CallEnded"), id="unknown-type"),
    pytest.param(_with(type=None), id="type-null"),
    pytest.param(_without("org_id"), id="no-org-id"),
    pytest.param(_without("digit"), id="no-digit"),
    pytest.param(_with(org_id="not-a-uuid"), id="bad-uuid"),
    pytest.param(_with(event_id=""), id="empty-event-id"),
    pytest.param(_with(org_id=12345), id="uuid-as-number"),
    pytest.param(_with(call_id=None), id="uuid-null"),
    pytest.param(_with(event_id=["x"]), id="uuid-as-list"),
    pytest.param(_with(occurred_at="yesterday"), id="bad-time"),
    pytest.param(_with(occurred_at=1_700_000_000), id="time-as-number"),
    pytest.param(_with(2, tracks=[{"track": "inbound"}]), id="track-stats-missing-fields"),
    pytest.param(_with(2, tracks=["inbound"]), id="track-stats-not-object"),
    pytest.param(_with(2, tracks=None), id="track-stats-null"),
    pytest.param(
        _with(2, tracks=[{"track": "inbound", "frames_received": 1, "frames_lost": 0}]),
        id="track-stats-partial",
    ),
    pytest.param(
        _with(
            2,
            tracks=[
                {
                    "track": "inbound",
                    "frames_received": 1,
                    "frames_lost": 0,
                    "audio_lost_ms": 0,
                    "jitter": 3,
                }
            ],
        ),
        id="track-stats-unknown-field",
    ),
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_dicts_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        event_from_dict(data)
