"""media.protocol: the media-stream wire format as Twilio and SignalWire send it, every refusal
with its close code, the flood guard, and the server → platform serializers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from media.protocol import (
    CLOSE_INVALID_DATA,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    MAX_PAYLOAD_BYTES,
    Connected,
    Dtmf,
    FloodGuard,
    Mark,
    Media,
    Start,
    Stop,
    StreamParser,
    StreamProtocolError,
    UnknownEvent,
    clear_message,
    mark_message,
    media_message,
)

FRAME = bytes(range(160))  # 20 ms of PCMU
FRAME_B64 = base64.b64encode(FRAME).decode()

# Shaped after the recorded Twilio session (twilio/media-streams node/connect-basic/output.txt).
TW_STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
TW_CALL = "CA7b1b2a4b3c9d8e7f6a5b4c3d2e1f0a9b"
TW_ACCOUNT = "AC3c4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"

# Shaped after the SignalWire docs examples: UUID ids, fewer fields.
SW_STREAM = "7d56cc11-536d-4a45-b4fb-ed3d55be843b"
SW_CALL = "b3b8a2f4-2f35-4c8e-9a42-64cbbc3f2a11"
SW_ACCOUNT = "0f9e1d2c-3b4a-5968-7f6e-5d4c3b2a1908"


def dumps(msg: Any) -> str:
    return json.dumps(msg)


def sw_start(**start_fields: Any) -> dict[str, Any]:
    """A SignalWire `start`; keyword arguments replace (or, with None, remove) fields."""
    body: dict[str, Any] = {
        "streamSid": SW_STREAM,
        "accountSid": SW_ACCOUNT,
        "callSid": SW_CALL,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    for key, value in start_fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return {"event": "start", "sequenceNumber": "1", "start": body}


def sw_media(chunk: Any = "1", seq: Any = "2", **media_fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "track": "inbound",
        "chunk": chunk,
        "timestamp": "20",
        "payload": FRAME_B64,
    }
    for key, value in media_fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return {"event": "media", "sequenceNumber": seq, "media": body}


def state(parser: StreamParser) -> str:
    """`parser.state`, read through a call so mypy does not narrow it across messages."""
    return parser.state


def started() -> StreamParser:
    parser = StreamParser()
    parser.receive(dumps(sw_start()))
    return parser


# --- whole sessions ----------------------------------------------------------------------------


def test_twilio_shaped_session() -> None:
    parser = StreamParser()
    messages = [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": TW_ACCOUNT,
                "streamSid": TW_STREAM,
                "callSid": TW_CALL,
                "tracks": ["inbound", "outbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"FirstName": "Jane", "RemoteParty": "Bob"},
            },
            "streamSid": TW_STREAM,
        },
        {
            "event": "media",
            "sequenceNumber": "2",
            "media": {"track": "inbound", "chunk": "1", "timestamp": "52", "payload": FRAME_B64},
            "streamSid": TW_STREAM,
        },
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {"track": "outbound", "chunk": "1", "timestamp": "53", "payload": FRAME_B64},
            "streamSid": TW_STREAM,
        },
        {
            "event": "dtmf",
            "streamSid": TW_STREAM,
            "sequenceNumber": "4",
            "dtmf": {"track": "inbound_track", "digit": "#"},
        },
        {
            "event": "mark",
            "sequenceNumber": "5",
            "streamSid": TW_STREAM,
            "mark": {"name": "greeting-done"},
        },
        {
            "event": "stop",
            "sequenceNumber": "6",
            "streamSid": TW_STREAM,
            "stop": {"accountSid": TW_ACCOUNT, "callSid": TW_CALL},
        },
    ]
    parsed = [parser.receive(dumps(m)) for m in messages]

    assert parsed == [
        Connected(protocol="Call", version="1.0.0"),
        Start(
            sequence_number=1,
            stream_sid=TW_STREAM,
            account_sid=TW_ACCOUNT,
            call_sid=TW_CALL,
            tracks=("inbound", "outbound"),
            custom_parameters={"FirstName": "Jane", "RemoteParty": "Bob"},
            encoding="audio/x-mulaw",
            sample_rate=8000,
            channels=1,
        ),
        Media(sequence_number=2, track="inbound", chunk=1, timestamp_ms=52, payload=FRAME),
        Media(sequence_number=3, track="outbound", chunk=1, timestamp_ms=53, payload=FRAME),
        Dtmf(sequence_number=4, track="inbound", digit="#", duration_ms=None),
        Mark(sequence_number=5, name="greeting-done"),
        Stop(sequence_number=6),
    ]
    assert state(parser) == "stopped"
    assert parser.messages_lost == 0


def test_signalwire_shaped_session() -> None:
    parser = StreamParser()
    assert state(parser) == "awaiting_start"
    messages: list[dict[str, Any]] = [
        {"event": "connected", "protocol": "Call", "version": "0.2.0"},
        sw_start(),  # no top-level streamSid, no customParameters
        sw_media(chunk="1", seq="2"),
        sw_media(chunk="2", seq="3", timestamp="40"),
        {"event": "dtmf", "sequenceNumber": "4", "dtmf": {"digit": "5", "duration": 250}},
        {"event": "stop", "sequenceNumber": "5"},  # no body, no streamSid
    ]
    parsed = [parser.receive(dumps(m)) for m in messages]

    assert parsed[0] == Connected(protocol="Call", version="0.2.0")
    start = parsed[1]
    assert isinstance(start, Start)
    assert start.stream_sid == SW_STREAM
    assert start.call_sid == SW_CALL
    assert start.account_sid == SW_ACCOUNT
    assert start.tracks == ("inbound",)
    assert dict(start.custom_parameters) == {}
    assert (start.encoding, start.sample_rate, start.channels) == ("audio/x-mulaw", 8000, 1)
    assert parsed[2:] == [
        Media(sequence_number=2, track="inbound", chunk=1, timestamp_ms=20, payload=FRAME),
        Media(sequence_number=3, track="inbound", chunk=2, timestamp_ms=40, payload=FRAME),
        Dtmf(sequence_number=4, track="inbound", digit="5", duration_ms=250),
        Stop(sequence_number=5),
    ]
    assert state(parser) == "stopped"
    assert parser.messages_lost == 0


def test_signalwire_l16_start_and_empty_custom_parameters() -> None:
    parser = StreamParser()
    start = parser.receive(
        dumps(
            sw_start(
                mediaFormat={"encoding": "audio/x-L16", "sampleRate": 24000},  # no channels
                customParameters={},
                accountSid=None,
            )
        )
    )
    assert isinstance(start, Start)
    assert (start.encoding, start.sample_rate, start.channels) == ("audio/x-L16", 24000, 1)
    assert start.account_sid == ""
    assert dict(start.custom_parameters) == {}


def test_start_is_accepted_without_connected() -> None:
    parser = StreamParser()
    assert isinstance(parser.receive(dumps(sw_start())), Start)
    assert state(parser) == "streaming"


def test_counters_as_json_numbers_are_accepted() -> None:
    parser = StreamParser()
    start_msg = sw_start()
    start_msg["sequenceNumber"] = 1
    parser.receive(dumps(start_msg))

    media = parser.receive(dumps(sw_media(chunk=7, seq=2, timestamp=140)))
    dtmf = parser.receive(
        dumps({"event": "dtmf", "sequenceNumber": 3, "dtmf": {"digit": "9", "duration": 80}})
    )
    stop = parser.receive(dumps({"event": "stop", "sequenceNumber": 4}))

    assert media == Media(
        sequence_number=2, track="inbound", chunk=7, timestamp_ms=140, payload=FRAME
    )
    assert dtmf == Dtmf(sequence_number=3, track="inbound", digit="9", duration_ms=80)
    assert stop == Stop(sequence_number=4)


@pytest.mark.parametrize(
    ("written", "read"),
    [("7", 7), (7, 7), ("0", 0), ("1e3", 1000), (1.0, 1), (10**12, 10**12)],
)
def test_counters_follow_one_rule_in_media_and_other_messages(written: Any, read: int) -> None:
    """Media messages are read by a fast decoder and the rest by the general one: a counter
    either accepts is read alike by both."""
    parser = started()
    media = parser.receive(dumps(sw_media(chunk=written, seq=written, timestamp=written)))
    dtmf = parser.receive(
        dumps({"event": "dtmf", "sequenceNumber": written, "dtmf": {"digit": "1"}})
    )

    assert isinstance(media, Media) and isinstance(dtmf, Dtmf)
    assert (media.chunk, media.sequence_number, media.timestamp_ms) == (read, read, read)
    assert dtmf.sequence_number == read


@pytest.mark.parametrize("written", ["-1", "+1", " 1", "1.5", 1.5, "007", 10**12 + 1, True])
def test_counters_refused_in_media_are_refused_in_other_messages(written: Any) -> None:
    for message in (
        sw_media(seq=written),
        sw_media(chunk=written),
        {"event": "stop", "sequenceNumber": written},
    ):
        with pytest.raises(StreamProtocolError) as refused:
            started().receive(dumps(message))
        assert refused.value.kind == "invalid_field"


def test_outbound_dtmf_track_and_missing_timestamp() -> None:
    parser = started()
    dtmf = parser.receive(
        dumps({"event": "dtmf", "sequenceNumber": "2", "dtmf": {"digit": "A", "track": "outbound"}})
    )
    media = parser.receive(dumps(sw_media(seq="3", timestamp=None)))
    assert isinstance(dtmf, Dtmf)
    assert dtmf.track == "outbound"
    assert isinstance(media, Media)
    assert media.timestamp_ms == 0


def test_media_without_track_is_inbound_and_empty_payload_is_allowed() -> None:
    parser = started()
    media = parser.receive(dumps(sw_media(track=None, payload="")))
    assert isinstance(media, Media)
    assert media.track == "inbound"
    assert media.payload == b""


def test_largest_legitimate_payload_is_accepted() -> None:
    parser = started()
    payload = bytes(MAX_PAYLOAD_BYTES)  # one second of L16@24000
    media = parser.receive(dumps(sw_media(payload=base64.b64encode(payload).decode())))
    assert isinstance(media, Media)
    assert media.payload == payload


# --- sequence numbers --------------------------------------------------------------------------


def test_sequence_gaps_are_counted_and_repeats_are_not() -> None:
    parser = started()  # sequenceNumber 1
    parser.receive(dumps(sw_media(chunk="1", seq="2")))
    parser.receive(dumps(sw_media(chunk="2", seq="5")))  # 3 and 4 lost
    assert parser.messages_lost == 2

    parser.receive(dumps(sw_media(chunk="3", seq="5")))  # repeated
    parser.receive(dumps(sw_media(chunk="4", seq="4")))  # late
    assert parser.messages_lost == 2

    parser.receive(dumps(sw_media(chunk="5", seq="6")))
    parser.receive(dumps({"event": "mark", "sequenceNumber": "9", "mark": {"name": "m"}}))
    assert parser.messages_lost == 4  # 7 and 8, across message types


def test_messages_without_sequence_number_do_not_count_as_gaps() -> None:
    parser = started()
    parser.receive(dumps({"event": "dtmf", "dtmf": {"digit": "1"}}))
    parser.receive(dumps(sw_media(seq="2")))
    assert parser.messages_lost == 0


# --- unknown events ----------------------------------------------------------------------------


def test_unknown_events_are_tolerated_in_every_live_state() -> None:
    parser = StreamParser()
    assert parser.receive(dumps({"event": "ping"})) == UnknownEvent(event="ping")
    parser.receive(dumps(sw_start()))
    unknown = parser.receive(dumps({"event": "speech-started", "sequenceNumber": "4"}))
    assert unknown == UnknownEvent(event="speech-started")
    assert parser.messages_lost == 2  # its sequenceNumber still counts
    assert state(parser) == "streaming"
    # Still streaming: media keeps flowing.
    assert isinstance(parser.receive(dumps(sw_media(seq="5"))), Media)


def test_unknown_event_name_is_truncated() -> None:
    parser = started()
    unknown = parser.receive(dumps({"event": "x" * 1000}))
    assert isinstance(unknown, UnknownEvent)
    assert unknown.event == "x" * 64


# --- refusals ----------------------------------------------------------------------------------

# Fragments of Python's own exception messages that must never reach the peer.
PYTHON_TEXT = (
    "Traceback",
    "Error",
    "Expecting",
    "line 1",
    "char ",
    "padding",
    "Non-base64",
    "invalid literal",
    "unhashable",
    "has no attribute",
)


def _refusal(
    name: str, message: str | bytes, kind: str, code: int, *, start_first: bool = True
) -> Any:
    return pytest.param(message, kind, code, start_first, id=name)


def _media(**fields: Any) -> str:
    return dumps(sw_media(**fields))


def _start(**fields: Any) -> str:
    return dumps(sw_start(**fields))


REFUSALS = [
    # framing
    _refusal("binary-frame", b'{"event": "media"}', "binary_frame", CLOSE_UNSUPPORTED_DATA),
    _refusal("invalid-json", '{"event": "media",', "invalid_json", CLOSE_INVALID_DATA),
    _refusal("json-array", "[]", "invalid_message", CLOSE_INVALID_DATA),
    _refusal("json-number", "42", "invalid_message", CLOSE_INVALID_DATA),
    _refusal("json-string", '"media"', "invalid_message", CLOSE_INVALID_DATA),
    _refusal("json-null", "null", "invalid_message", CLOSE_INVALID_DATA),
    _refusal("missing-event", '{"sequenceNumber": "2"}', "invalid_message", CLOSE_INVALID_DATA),
    _refusal("event-not-string", '{"event": 5}', "invalid_message", CLOSE_INVALID_DATA),
    # order
    _refusal(
        "media-before-start", _media(), "before_start", CLOSE_PROTOCOL_ERROR, start_first=False
    ),
    _refusal(
        "dtmf-before-start",
        dumps({"event": "dtmf", "dtmf": {"digit": "1"}}),
        "before_start",
        CLOSE_PROTOCOL_ERROR,
        start_first=False,
    ),
    _refusal(
        "mark-before-start",
        dumps({"event": "mark", "mark": {"name": "m"}}),
        "before_start",
        CLOSE_PROTOCOL_ERROR,
        start_first=False,
    ),
    _refusal(
        "stop-before-start",
        dumps({"event": "stop"}),
        "before_start",
        CLOSE_PROTOCOL_ERROR,
        start_first=False,
    ),
    _refusal("second-start", _start(), "duplicate_start", CLOSE_PROTOCOL_ERROR),
    _refusal(
        "connected-after-start",
        dumps({"event": "connected", "protocol": "Call", "version": "0.2.0"}),
        "out_of_order",
        CLOSE_PROTOCOL_ERROR,
    ),
    # media fields
    _refusal("invalid-base64", _media(payload="!!!!not base64!!!!"), "invalid_base64", 1007),
    _refusal("base64-bad-padding", _media(payload="AAA"), "invalid_base64", 1007),
    _refusal("base64-with-newline", _media(payload="AAAA\nAAAA"), "invalid_base64", 1007),
    _refusal(
        "oversized-payload",
        _media(payload="A" * (MAX_PAYLOAD_BYTES * 2)),
        "payload_too_large",
        CLOSE_INVALID_DATA,
    ),
    _refusal("payload-missing", _media(payload=None), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("payload-not-string", _media(payload=[1, 2]), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("media-body-missing", dumps({"event": "media"}), "invalid_field", 1007),
    _refusal("track-both", _media(track="both"), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("track-twilio-name", _media(track="inbound_track"), "invalid_field", 1007),
    _refusal("track-number", _media(track=1), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("track-list", _media(track=["inbound"]), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("track-object", _media(track={"name": "inbound"}), "invalid_field", 1007),
    _refusal("chunk-negative", _media(chunk=-1), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-negative-string", _media(chunk="-1"), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-non-numeric", _media(chunk="one"), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-empty", _media(chunk=""), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-float", _media(chunk=1.5), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-non-ascii-digits", _media(chunk="١٢"), "invalid_field", 1007),
    _refusal("chunk-huge-string", _media(chunk="9" * 40), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-missing", _media(chunk=None), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("chunk-bool", _media(chunk=True), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("sequence-bool", _media(seq=True), "invalid_field", CLOSE_INVALID_DATA),
    _refusal("timestamp-bool", _media(timestamp=False), "invalid_field", CLOSE_INVALID_DATA),
    # start fields
    _refusal(
        "start-missing-callsid", _start(callSid=None), "invalid_field", 1007, start_first=False
    ),
    _refusal("start-empty-callsid", _start(callSid=""), "invalid_field", 1007, start_first=False),
    _refusal(
        "start-missing-streamsid", _start(streamSid=None), "invalid_field", 1007, start_first=False
    ),
    _refusal(
        "start-huge-streamsid",
        _start(streamSid="s" * 300),
        "invalid_field",
        1007,
        start_first=False,
    ),
    _refusal(
        "start-missing-mediaformat",
        _start(mediaFormat=None),
        "invalid_field",
        1007,
        start_first=False,
    ),
    _refusal(
        "start-missing-encoding",
        _start(mediaFormat={"sampleRate": 8000}),
        "invalid_field",
        1007,
        start_first=False,
    ),
    _refusal(
        "start-missing-samplerate",
        _start(mediaFormat={"encoding": "audio/x-mulaw"}),
        "invalid_field",
        1007,
        start_first=False,
    ),
    _refusal(
        "start-samplerate-bool",
        _start(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": True}),
        "invalid_field",
        1007,
        start_first=False,
    ),
    _refusal(
        "start-body-missing",
        dumps({"event": "start", "sequenceNumber": "1"}),
        "invalid_field",
        1007,
        start_first=False,
    ),
    _refusal("tracks-string", _start(tracks="inbound"), "invalid_field", 1007, start_first=False),
    _refusal("tracks-empty", _start(tracks=[]), "invalid_field", 1007, start_first=False),
    _refusal("tracks-unknown", _start(tracks=["both"]), "invalid_field", 1007, start_first=False),
    _refusal(
        "tracks-nested-list", _start(tracks=[["inbound"]]), "invalid_field", 1007, start_first=False
    ),
    _refusal(
        "tracks-object-item", _start(tracks=[{"a": 1}]), "invalid_field", 1007, start_first=False
    ),
    _refusal(
        "custom-parameters-not-strings",
        _start(customParameters={"n": 1}),
        "invalid_field",
        1007,
        start_first=False,
    ),
    # dtmf and mark
    _refusal(
        "dtmf-bad-digit",
        dumps({"event": "dtmf", "dtmf": {"digit": "x"}}),
        "invalid_field",
        CLOSE_INVALID_DATA,
    ),
    _refusal(
        "dtmf-two-digits",
        dumps({"event": "dtmf", "dtmf": {"digit": "12"}}),
        "invalid_field",
        CLOSE_INVALID_DATA,
    ),
    _refusal("dtmf-no-body", dumps({"event": "dtmf"}), "invalid_field", CLOSE_INVALID_DATA),
    _refusal(
        "dtmf-negative-duration",
        dumps({"event": "dtmf", "dtmf": {"digit": "1", "duration": -5}}),
        "invalid_field",
        CLOSE_INVALID_DATA,
    ),
    _refusal(
        "mark-without-name",
        dumps({"event": "mark", "mark": {}}),
        "invalid_field",
        CLOSE_INVALID_DATA,
    ),
]


@pytest.mark.parametrize(("message", "kind", "close_code", "start_first"), REFUSALS)
def test_refusals_carry_kind_close_code_and_a_safe_reason(
    message: str | bytes, kind: str, close_code: int, start_first: bool
) -> None:
    parser = started() if start_first else StreamParser()
    with pytest.raises(StreamProtocolError) as info:
        parser.receive(message)
    err = info.value
    assert (err.kind, err.close_code) == (kind, close_code)
    assert err.reason
    assert str(err) == err.reason
    # A websocket close reason is at most 123 bytes (RFC 6455 5.5.1).
    assert len(err.reason.encode()) <= 123
    for fragment in PYTHON_TEXT:
        assert fragment not in err.reason, (fragment, err.reason)
    assert err.__cause__ is None


def test_message_after_stop_is_refused() -> None:
    parser = started()
    parser.receive(dumps({"event": "stop", "sequenceNumber": "2"}))
    for late in (_media(seq="3"), dumps({"event": "stop"}), dumps({"event": "x"}), "not json"):
        with pytest.raises(StreamProtocolError) as info:
            parser.receive(late)
        assert (info.value.kind, info.value.close_code) == ("after_stop", CLOSE_PROTOCOL_ERROR)


def test_invalid_json_reason_hides_the_decoder_message() -> None:
    try:
        json.loads("{oops")
    except json.JSONDecodeError as exc:
        python_text = str(exc)
    with pytest.raises(StreamProtocolError) as info:
        StreamParser().receive("{oops")
    assert python_text not in info.value.reason
    assert info.value.reason == "message is not valid JSON"


def test_refused_start_leaves_the_parser_waiting_for_start() -> None:
    parser = StreamParser()
    with pytest.raises(StreamProtocolError):
        parser.receive(_start(callSid=None))
    assert state(parser) == "awaiting_start"


# --- flood guard -------------------------------------------------------------------------------

# Rates and steps are powers of two, so the token arithmetic is exact in floating point.
RATE = 64.0
STEP = 1 / 64


def test_flood_guard_allows_the_burst_then_refuses() -> None:
    guard = FloodGuard(rate_per_s=RATE, burst=8)
    now = 1000.0
    assert [guard.allow(now) for _ in range(8)] == [True] * 8
    assert guard.allow(now) is False
    assert guard.allow(now) is False


def test_flood_guard_refills_at_the_rate() -> None:
    guard = FloodGuard(rate_per_s=RATE, burst=8)
    now = 1000.0
    for _ in range(8):
        guard.allow(now)
    assert guard.allow(now) is False

    now += 4 * STEP  # four tokens back
    assert [guard.allow(now) for _ in range(5)] == [True] * 4 + [False]

    now += STEP / 2  # half a token is not enough
    assert guard.allow(now) is False
    now += STEP / 2
    assert guard.allow(now) is True


def test_flood_guard_never_holds_more_than_the_burst() -> None:
    guard = FloodGuard(rate_per_s=RATE, burst=8)
    guard.allow(0.0)
    now = 3600.0  # an hour idle
    assert sum(guard.allow(now) for _ in range(100)) == 8


def test_flood_guard_passes_a_peer_at_the_rate_and_cuts_one_far_above_it() -> None:
    steady = FloodGuard(rate_per_s=RATE, burst=8)
    assert all(steady.allow(1000.0 + i * STEP) for i in range(10_000))

    flooding = FloodGuard(rate_per_s=RATE, burst=8)
    allowed = sum(flooding.allow(1000.0 + i * STEP / 4) for i in range(4 * 64))  # 1 s at 4x
    assert allowed == 8 + 64 - 1  # the burst plus one second of refill (first step refills 0)


# --- server → platform messages ----------------------------------------------------------------


@pytest.mark.parametrize("payload", [FRAME, b"", bytes(range(256)) * 40])
def test_media_message_shape_and_payload_round_trip(payload: bytes) -> None:
    text = media_message(SW_STREAM, payload)
    msg = json.loads(text)
    assert msg == {
        "event": "media",
        "streamSid": SW_STREAM,
        "media": {"payload": base64.b64encode(payload).decode()},
    }
    assert base64.b64decode(msg["media"]["payload"], validate=True) == payload
    assert "\n" not in text


def test_mark_message_shape() -> None:
    assert json.loads(mark_message(SW_STREAM, "greeting-done")) == {
        "event": "mark",
        "streamSid": SW_STREAM,
        "mark": {"name": "greeting-done"},
    }


def test_clear_message_shape() -> None:
    assert json.loads(clear_message(SW_STREAM)) == {"event": "clear", "streamSid": SW_STREAM}


def test_own_media_message_parses_back_to_the_same_audio() -> None:
    """What we send is valid for the platform's parser rules too (track defaults to inbound)."""
    parser = started()
    sent = json.loads(media_message(SW_STREAM, FRAME))
    sent["media"]["chunk"] = "1"
    received = parser.receive(json.dumps(sent))
    assert isinstance(received, Media)
    assert received.payload == FRAME
