"""media.transcription.cloud: the AssemblyAI v3 and Deepgram live protocols, from the messages
docs/protocols.md (sections f and g) describes: what an adapter sends, and the transcript
results it gets from what the services send back."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from media.transcription.cloud.assemblyai import AssemblyAIProtocol
from media.transcription.cloud.deepgram import KEEPALIVE_INTERVAL_S, DeepgramProtocol
from media.transcription.cloud.results import (
    Ended,
    Final,
    Partial,
    ProtocolViolation,
    ServiceError,
    Word,
)

FRAME = bytes(range(160))  # 20 ms of PCMU at 8 kHz, as SignalWire sends it
MULAW_8K_BYTES_PER_MS = 8
PCM16_8K_BYTES_PER_MS = 16


def dumps(msg: Any) -> str:
    return json.dumps(msg)


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, strict_parsing=True)


# AssemblyAI: audio


def test_assemblyai_sends_20ms_frames_as_100ms_chunks_in_order() -> None:
    proto = AssemblyAIProtocol()
    frames = [bytes([i]) * 160 for i in range(12)]
    sent = [proto.audio(frame) for frame in frames]
    assert [len(out) for out in sent] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert sent[4] == [b"".join(frames[:5])]
    assert sent[9] == [b"".join(frames[5:10])]
    assert proto.flush() == [b"".join(frames[10:]) + b"\xff" * 80]  # 40 ms → padded to 50


@pytest.mark.parametrize("encoding", ["pcm_mulaw", "pcm_s16le"])
@pytest.mark.parametrize(
    "sizes",
    [
        [160] * 37,
        [1] * 999,
        [159, 1, 333, 7, 4000, 2, 800, 799],
        [20000],  # a stall then a burst: far more than 1000 ms at once
        [50_000, 3, 160],
    ],
)
def test_assemblyai_chunks_are_50_to_1000_ms_and_lose_no_audio(
    encoding: Any, sizes: list[int]
) -> None:
    proto = AssemblyAIProtocol(encoding=encoding)
    per_ms = MULAW_8K_BYTES_PER_MS if encoding == "pcm_mulaw" else PCM16_8K_BYTES_PER_MS
    audio = bytes(i % 251 for i in range(sum(sizes)))
    chunks: list[bytes] = []
    offset = 0
    for size in sizes:
        chunks += proto.audio(audio[offset : offset + size])
        offset += size
    tail = proto.flush()
    assert len(tail) <= 1
    for chunk in chunks + tail:
        assert 50 * per_ms <= len(chunk) <= 1000 * per_ms
        assert len(chunk) % (per_ms // 8) == 0  # whole samples
    sent = b"".join(chunks + tail)
    assert sent[: len(audio)] == audio
    silence = b"\xff" if encoding == "pcm_mulaw" else b"\x00"
    assert sent[len(audio) :] == silence * (len(sent) - len(audio))


def test_assemblyai_flush_pads_pcm16_with_zero_samples() -> None:
    proto = AssemblyAIProtocol(encoding="pcm_s16le")
    assert proto.audio(b"\x01\x02" * 160) == []  # 20 ms
    assert proto.flush() == [b"\x01\x02" * 160 + b"\x00" * (800 - 320)]


def test_assemblyai_flush_sends_a_tail_of_50ms_or_more_as_it_is() -> None:
    proto = AssemblyAIProtocol()
    for _ in range(3):
        assert proto.audio(FRAME) == []
    assert proto.flush() == [FRAME * 3]
    assert proto.flush() == []
    assert AssemblyAIProtocol().flush() == []


def test_assemblyai_chunk_length_follows_chunk_ms_and_sample_rate() -> None:
    proto = AssemblyAIProtocol(sample_rate=16000, encoding="pcm_s16le", chunk_ms=1000)
    out = proto.audio(bytes(32000 * 2 + 10))
    assert [len(chunk) for chunk in out] == [32000, 32000]  # exactly 1000 ms each


@pytest.mark.parametrize("chunk_ms", [49, 1001])
def test_assemblyai_refuses_chunk_lengths_the_service_refuses(chunk_ms: int) -> None:
    with pytest.raises(ValueError):
        AssemblyAIProtocol(chunk_ms=chunk_ms)


# AssemblyAI: connection and control messages


def test_assemblyai_url_asks_for_8k_mulaw_with_the_model_and_keyterms() -> None:
    proto = AssemblyAIProtocol(keyterms=["SignalWire", "refund, please"])
    url = proto.url()
    assert url.startswith("wss://streaming.assemblyai.com/v3/ws?")
    params = query(url)
    assert params["encoding"] == ["pcm_mulaw"]
    assert params["sample_rate"] == ["8000"]
    assert params["speech_model"] == ["universal-streaming-english"]
    assert params["format_turns"] == ["true"]
    assert json.loads(params["keyterms_prompt"][0]) == ["SignalWire", "refund, please"]
    assert "min_turn_silence" not in params and "max_turn_silence" not in params


def test_assemblyai_url_carries_the_turn_detection_knobs_when_set() -> None:
    proto = AssemblyAIProtocol(
        encoding="pcm_s16le",
        sample_rate=16000,
        speech_model="universal-streaming-multilingual",
        format_turns=False,
        base_url="wss://streaming.eu.assemblyai.com/v3/ws",
        min_turn_silence_ms=160,
        max_turn_silence_ms=2400,
        inactivity_timeout_s=30,
    )
    url = proto.url()
    assert url.startswith("wss://streaming.eu.assemblyai.com/v3/ws?")
    params = query(url)
    assert params["encoding"] == ["pcm_s16le"]
    assert params["sample_rate"] == ["16000"]
    assert params["speech_model"] == ["universal-streaming-multilingual"]
    assert params["format_turns"] == ["false"]
    assert params["min_turn_silence"] == ["160"]
    assert params["max_turn_silence"] == ["2400"]
    assert params["inactivity_timeout"] == ["30"]
    assert "keyterms_prompt" not in params


def test_assemblyai_headers_carry_the_raw_key_and_the_api_version() -> None:
    headers = AssemblyAIProtocol().headers("c0ffee")
    assert headers["Authorization"] == "c0ffee"
    assert headers["AssemblyAI-Version"]


def test_assemblyai_control_messages() -> None:
    proto = AssemblyAIProtocol()
    assert json.loads(proto.terminate()) == {"type": "Terminate"}
    assert json.loads(proto.force_endpoint()) == {"type": "ForceEndpoint"}
    assert json.loads(proto.keepalive()) == {"type": "KeepAlive"}


def test_keyterms_as_one_string_is_refused() -> None:
    with pytest.raises(TypeError):
        AssemblyAIProtocol(keyterms="SignalWire")
    with pytest.raises(TypeError):
        DeepgramProtocol(keyterms="SignalWire")


# AssemblyAI: turns

BEGIN = {"type": "Begin", "id": "de5d9927-73a6-4be8-b52d-b4c07be37e6b", "expires_at": 1759796682}

TURN0_PARTIAL = {
    "type": "Turn",
    "turn_order": 0,
    "turn_is_formatted": False,
    "end_of_turn": False,
    "transcript": "hi my",
    "end_of_turn_confidence": 0.02,
    "words": [
        {"start": 1520, "end": 1680, "text": "hi", "confidence": 0.92, "word_is_final": True},
        {"start": 1760, "end": 1840, "text": "my", "confidence": 0.81, "word_is_final": True},
        {"start": 1920, "end": 2000, "text": "nam", "confidence": 0.40, "word_is_final": False},
    ],
    "utterance": "",
}

TURN0_WORDS = [
    {"start": 1520, "end": 1680, "text": "hi", "confidence": 0.9, "word_is_final": True},
    {"start": 1760, "end": 1840, "text": "my", "confidence": 0.8, "word_is_final": True},
    {"start": 1920, "end": 2080, "text": "name", "confidence": 0.7, "word_is_final": True},
    {"start": 2160, "end": 2480, "text": "is", "confidence": 0.6, "word_is_final": True},
    {"start": 2560, "end": 2960, "text": "sam", "confidence": 0.5, "word_is_final": True},
]

TURN0_END_UNFORMATTED = {
    "type": "Turn",
    "turn_order": 0,
    "turn_is_formatted": False,
    "end_of_turn": True,
    "transcript": "hi my name is sam",
    "end_of_turn_confidence": 0.91,
    "words": TURN0_WORDS,
    "utterance": "hi my name is sam",
}

TURN0_END_FORMATTED = {
    **TURN0_END_UNFORMATTED,
    "turn_is_formatted": True,
    "transcript": "Hi, my name is Sam.",
    "words": [
        {**w, "text": text}
        for w, text in zip(TURN0_WORDS, ["Hi,", "my", "name", "is", "Sam."], strict=True)
    ],
}

TURN1_PARTIAL = {
    "type": "Turn",
    "turn_order": 1,
    "turn_is_formatted": False,
    "end_of_turn": False,
    "transcript": "",
    "end_of_turn_confidence": 0.01,
    "words": [
        {"start": 4100, "end": 4300, "text": "i'm", "confidence": 0.6, "word_is_final": False}
    ],
    "utterance": "",
}

TERMINATION = {"type": "Termination", "audio_duration_seconds": 6, "session_duration_seconds": 7}


def test_assemblyai_begin_gives_the_session_id() -> None:
    proto = AssemblyAIProtocol()
    assert proto.receive(dumps(BEGIN)) == []
    assert proto.session_id == "de5d9927-73a6-4be8-b52d-b4c07be37e6b"
    assert proto.expires_at == 1759796682


def test_assemblyai_partial_has_every_word_so_far_final_or_not() -> None:
    [partial] = AssemblyAIProtocol().receive(dumps(TURN0_PARTIAL))
    assert partial == Partial(
        "hi my nam",
        (
            Word("hi", 1520, 1680, 0.92),
            Word("my", 1760, 1840, 0.81),
            Word("nam", 1920, 2000, 0.40),
        ),
    )


def test_assemblyai_partial_without_words_uses_the_transcript() -> None:
    turn = {**TURN0_PARTIAL, "transcript": "hi there", "words": []}
    assert AssemblyAIProtocol().receive(dumps(turn)) == [Partial("hi there", ())]


def test_assemblyai_formatted_end_of_turn_is_the_final() -> None:
    proto = AssemblyAIProtocol()
    assert len(proto.receive(dumps(TURN0_PARTIAL))) == 1
    [final] = proto.receive(dumps(TURN0_END_FORMATTED))
    assert isinstance(final, Final)
    assert final.text == "Hi, my name is Sam."
    assert [w.text for w in final.words] == ["Hi,", "my", "name", "is", "Sam."]
    assert (final.start_ms, final.end_ms) == (1520, 2960)
    assert final.confidence == pytest.approx(0.7)  # the words' mean


def test_assemblyai_unformatted_end_is_replaced_by_its_formatted_copy() -> None:
    proto = AssemblyAIProtocol(format_turns=True)
    assert proto.receive(dumps(TURN0_END_UNFORMATTED)) == []  # held for its formatted copy
    [final] = proto.receive(dumps(TURN0_END_FORMATTED))
    assert isinstance(final, Final) and final.text == "Hi, my name is Sam."
    assert proto.receive(dumps(TURN1_PARTIAL)) == [Partial("i'm", (Word("i'm", 4100, 4300, 0.6),))]
    assert proto.receive(dumps(TERMINATION)) == [Ended()]


def test_assemblyai_held_turn_is_released_by_the_next_turn_and_never_sent_twice() -> None:
    proto = AssemblyAIProtocol()
    assert proto.receive(dumps(TURN0_END_UNFORMATTED)) == []
    released, partial = proto.receive(dumps(TURN1_PARTIAL))
    assert isinstance(released, Final) and released.text == "hi my name is sam"
    assert partial == Partial("i'm", (Word("i'm", 4100, 4300, 0.6),))
    # The formatted copy arriving late changes nothing.
    assert proto.receive(dumps(TURN0_END_FORMATTED)) == []
    assert proto.receive(dumps(TURN0_END_UNFORMATTED)) == []
    assert proto.receive(dumps(TERMINATION)) == [Ended()]


def test_assemblyai_held_turn_is_released_at_termination() -> None:
    proto = AssemblyAIProtocol()
    assert proto.receive(dumps(TURN0_END_UNFORMATTED)) == []
    final, ended = proto.receive(dumps(TERMINATION))
    assert isinstance(final, Final) and final.text == "hi my name is sam"
    assert ended == Ended()


def test_assemblyai_without_formatting_the_first_end_of_turn_is_final() -> None:
    proto = AssemblyAIProtocol(format_turns=False)
    [final] = proto.receive(dumps(TURN0_END_UNFORMATTED))
    assert isinstance(final, Final) and final.text == "hi my name is sam"
    assert proto.receive(dumps(TURN0_END_FORMATTED)) == []
    assert proto.receive(dumps(TERMINATION)) == [Ended()]


def test_assemblyai_each_turn_is_final_once_over_a_session() -> None:
    turn1_end = {
        **TURN1_PARTIAL,
        "end_of_turn": True,
        "turn_is_formatted": True,
        "transcript": "I'm calling about my bill.",
        "words": [
            {"start": 4100, "end": 4300, "text": "I'm", "confidence": 0.9, "word_is_final": True},
            {"start": 4380, "end": 4700, "text": "calling", "confidence": 0.9},
            {"start": 4780, "end": 4900, "text": "about", "confidence": 0.9},
            {"start": 4980, "end": 5100, "text": "my", "confidence": 0.9},
            {"start": 5180, "end": 5500, "text": "bill.", "confidence": 0.9},
        ],
    }
    messages = [
        BEGIN,
        TURN0_PARTIAL,
        TURN0_END_UNFORMATTED,
        TURN0_END_FORMATTED,
        TURN0_END_FORMATTED,
        TURN1_PARTIAL,
        turn1_end,
        turn1_end,
        TERMINATION,
    ]
    proto = AssemblyAIProtocol()
    results = [r for m in messages for r in proto.receive(dumps(m))]
    assert [type(r).__name__ for r in results] == ["Partial", "Final", "Partial", "Final", "Ended"]
    finals = [r.text for r in results if isinstance(r, Final)]
    assert finals == ["Hi, my name is Sam.", "I'm calling about my bill."]


def test_assemblyai_repeated_partials_and_empty_partials_are_not_sent() -> None:
    proto = AssemblyAIProtocol()
    silence = {**TURN0_PARTIAL, "transcript": "", "words": []}
    assert proto.receive(dumps(silence)) == []
    assert len(proto.receive(dumps(TURN0_PARTIAL))) == 1
    assert proto.receive(dumps(TURN0_PARTIAL)) == []


def test_assemblyai_a_turn_that_ends_empty_withdraws_its_partial() -> None:
    proto = AssemblyAIProtocol()
    um = {**TURN0_PARTIAL, "transcript": "", "words": [{"start": 0, "end": 200, "text": "um"}]}
    empty_end = {**TURN0_END_FORMATTED, "transcript": "", "words": []}
    assert proto.receive(dumps(um)) == [Partial("um", (Word("um", 0, 200, None),))]
    assert proto.receive(dumps(empty_end)) == [Partial("", ())]
    assert proto.receive(dumps(TERMINATION)) == [Ended()]


def test_assemblyai_error_message_is_a_service_error() -> None:
    proto = AssemblyAIProtocol()
    [error] = proto.receive(dumps({"type": "Error", "error": "Audio duration is too long"}))
    assert error == ServiceError("error", "Audio duration is too long", True)
    [coded] = proto.receive(dumps({"type": "Error", "error_code": 3009, "error": "Too many"}))
    assert coded == ServiceError("too_many_sessions", "Too many", True)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "SpeechStarted", "timestamp": 1520},
        {"type": "Warning", "warning_code": 1, "warning": "keyterm too long"},
        {"type": "Heartbeat"},
        {"type": "LLMGatewayResponse", "data": {"anything": [1, 2]}},
        {"type": "SomethingNewNextYear", "turn_order": "x"},
    ],
)
def test_assemblyai_ignores_messages_it_does_not_need(message: dict[str, Any]) -> None:
    proto = AssemblyAIProtocol()
    assert proto.receive(dumps(message)) == []
    assert len(proto.receive(dumps(TURN0_PARTIAL))) == 1  # and carries on


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        b"\xff\xfe",
        "[]",
        '"Turn"',
        dumps({"turn_order": 0}),
        dumps({"type": 5}),
        dumps({**TURN0_PARTIAL, "turn_order": "0"}),
        dumps({**TURN0_PARTIAL, "turn_order": True}),
        dumps({**TURN0_PARTIAL, "end_of_turn": "false"}),
        dumps({**TURN0_PARTIAL, "transcript": None}),
        dumps({**TURN0_PARTIAL, "words": {"text": "hi"}}),
        dumps({**TURN0_PARTIAL, "words": ["hi"]}),
        dumps({**TURN0_PARTIAL, "words": [{"start": "1520", "end": 1680, "text": "hi"}]}),
        dumps({**TURN0_PARTIAL, "words": [{"start": -5, "end": 1680, "text": "hi"}]}),
        dumps({**TURN0_PARTIAL, "words": [{"start": 0, "end": 1, "text": "a", "confidence": "x"}]}),
        dumps({**BEGIN, "id": 7}),
        dumps({"type": "Error", "error": {"message": "x"}}),
    ],
)
def test_assemblyai_malformed_messages_are_violations(message: str | bytes) -> None:
    with pytest.raises(ProtocolViolation):
        AssemblyAIProtocol().receive(message)


def test_assemblyai_accepts_messages_as_bytes() -> None:
    assert AssemblyAIProtocol().receive(dumps(TURN0_PARTIAL).encode())[0] == Partial(
        "hi my nam",
        (
            Word("hi", 1520, 1680, 0.92),
            Word("my", 1760, 1840, 0.81),
            Word("nam", 1920, 2000, 0.40),
        ),
    )


@pytest.mark.parametrize(
    ("code", "label", "retryable"),
    [
        (1008, "unauthorized", False),
        (3005, "server_error", True),
        (3006, "bad_message", False),
        (3007, "rate", False),
        (3008, "max_duration", True),
        (3009, "too_many_sessions", True),
        (1013, "temporary", True),
        (4001, "unauthorized", False),
        (4002, "insufficient_funds", False),
        (4029, "rate", False),
        (4031, "idle", True),
        (4100, "bad_message", False),
        (4101, "bad_message", False),
        (4102, "too_many_sessions", True),
        (1006, "closed_1006", True),
        (4999, "closed_4999", True),
    ],
)
def test_assemblyai_close_codes(code: int, label: str, retryable: bool) -> None:
    assert AssemblyAIProtocol.close_error(code, "why") == ServiceError(label, "why", retryable)


def test_close_errors_clip_the_reason_and_a_normal_close_is_none() -> None:
    assert AssemblyAIProtocol.close_error(1000, "") is None
    assert DeepgramProtocol.close_error(1000, "") is None
    error = AssemblyAIProtocol.close_error(3005, "x" * 10_000)
    assert error is not None and len(error.message) == 256


# Deepgram: connection, audio and control messages


def test_deepgram_url_asks_for_8k_mulaw_and_repeats_keyterm() -> None:
    url = DeepgramProtocol(keyterms=["refund", "SignalWire"]).url()
    assert url.startswith("wss://api.deepgram.com/v1/listen?")
    params = query(url)
    assert params["model"] == ["nova-3"]
    assert params["encoding"] == ["mulaw"]
    assert params["sample_rate"] == ["8000"]
    assert params["channels"] == ["1"]
    assert params["interim_results"] == ["true"]
    assert params["endpointing"] == ["300"]
    assert params["utterance_end_ms"] == ["1000"]
    assert params["smart_format"] == ["true"]
    assert params["keyterm"] == ["refund", "SignalWire"]


def test_deepgram_url_can_turn_endpointing_and_utterance_end_off() -> None:
    proto = DeepgramProtocol(
        encoding="linear16",
        sample_rate=16000,
        endpointing_ms=None,
        utterance_end_ms=None,
        interim_results=False,
        smart_format=False,
    )
    params = query(proto.url())
    assert params["encoding"] == ["linear16"]
    assert params["sample_rate"] == ["16000"]
    assert params["endpointing"] == ["false"]
    assert params["interim_results"] == ["false"]
    assert params["smart_format"] == ["false"]
    assert "utterance_end_ms" not in params and "keyterm" not in params


def test_deepgram_headers_use_the_token_scheme() -> None:
    assert DeepgramProtocol().headers("c0ffee") == {"Authorization": "Token c0ffee"}


def test_deepgram_sends_20ms_frames_as_100ms_chunks_and_never_an_empty_frame() -> None:
    proto = DeepgramProtocol()  # 8 kHz mu-law: 800 bytes a chunk
    sent = [proto.audio(FRAME) for _ in range(12)]
    assert [len(out) for out in sent] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert [len(chunk) for out in sent for chunk in out] == [800, 800]
    assert proto.audio(b"") == []
    assert proto.flush() == [FRAME * 2]  # the rest, as it is
    assert proto.flush() == []
    assert DeepgramProtocol(16000, "linear16", chunk_ms=50).audio(bytes(1700)) == [bytes(1600)]


def test_deepgram_control_messages() -> None:
    proto = DeepgramProtocol()
    assert json.loads(proto.keepalive()) == {"type": "KeepAlive"}
    assert json.loads(proto.finalize()) == {"type": "Finalize"}
    assert json.loads(proto.close_stream()) == {"type": "CloseStream"}
    assert 3 <= KEEPALIVE_INTERVAL_S <= 5  # section g: every 3–5 s, 10 s idle closes


# Deepgram: results

METADATA = {
    "type": "Metadata",
    "transaction_key": "deprecated",
    "request_id": "a847f427-4ad5-4d67-9b95-db801e58251c",
    "created": "2025-06-20T16:56:18.535Z",
    "duration": 6.2,
    "channels": 1,
}


def dg_word(word: str, start: float, end: float, punctuated: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"word": word, "start": start, "end": end, "confidence": 0.9}
    if punctuated is not None:
        out["punctuated_word"] = punctuated
    return out


def dg_results(
    transcript: str,
    words: list[dict[str, Any]],
    *,
    start: float,
    duration: float,
    is_final: bool,
    speech_final: bool = False,
    from_finalize: bool = False,
    confidence: float = 0.98,
) -> dict[str, Any]:
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": duration,
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {
            "alternatives": [{"transcript": transcript, "confidence": confidence, "words": words}]
        },
        "metadata": {
            "request_id": "a847f427-4ad5-4d67-9b95-db801e58251c",
            "model_info": {"name": "general-nova-3", "version": "2025-01-01", "arch": "nova-3"},
            "model_uuid": "40bd3654-e622-47c4-a111-63a61b23bcd6",
        },
    }


INTERIM = {
    "type": "Results",
    "channel_index": [0, 1],
    "duration": 1.02,
    "start": 0.0,
    "is_final": False,
    "speech_final": False,
    "channel": {
        "alternatives": [
            {
                "transcript": "I'd like a",
                "confidence": 0.91,
                "words": [
                    {"word": "i'd", "start": 0.32, "end": 0.56, "confidence": 0.9,
                     "punctuated_word": "I'd"},
                    {"word": "like", "start": 0.56, "end": 0.8, "confidence": 0.88,
                     "punctuated_word": "like"},
                    {"word": "a", "start": 0.8, "end": 0.88, "confidence": 0.7,
                     "punctuated_word": "a"},
                ],
            }
        ]
    },
    "metadata": {"request_id": "a847f427-4ad5-4d67-9b95-db801e58251c"},
}  # fmt: skip

SEGMENT1_FINAL = dg_results(
    "I'd like a refund",
    [
        dg_word("i'd", 0.32, 0.56, "I'd"),
        dg_word("like", 0.56, 0.8, "like"),
        dg_word("a", 0.8, 0.88, "a"),
        dg_word("refund", 0.88, 1.3199999, "refund"),
    ],
    start=0.0,
    duration=1.5,
    is_final=True,
)

SEGMENT2_INTERIM = dg_results(
    "for my", [dg_word("for", 1.5, 1.62), dg_word("my", 1.62, 1.7)], start=1.5, duration=0.5,
    is_final=False,
)  # fmt: skip

SEGMENT2_SPEECH_FINAL = dg_results(
    "for my order.",
    [
        dg_word("for", 1.5, 1.62, "for"),
        dg_word("my", 1.62, 1.7, "my"),
        dg_word("order", 1.7, 2.0004, "order."),
    ],
    start=1.5,
    duration=0.8,
    is_final=True,
    speech_final=True,
)

SILENCE = dg_results("", [], start=2.3, duration=1.0, is_final=True)


def test_deepgram_interim_is_a_partial_with_ms_times_and_punctuated_words() -> None:
    [partial] = DeepgramProtocol().receive(dumps(INTERIM))
    assert partial == Partial(
        "I'd like a",
        (Word("I'd", 320, 560, 0.9), Word("like", 560, 800, 0.88), Word("a", 800, 880, 0.7)),
    )


def test_deepgram_final_segments_join_until_speech_final() -> None:
    proto = DeepgramProtocol()
    assert len(proto.receive(dumps(INTERIM))) == 1
    # A settled segment is not yet the end of the utterance.
    [so_far] = proto.receive(dumps(SEGMENT1_FINAL))
    assert isinstance(so_far, Partial) and so_far.text == "I'd like a refund"
    [partial] = proto.receive(dumps(SEGMENT2_INTERIM))
    assert isinstance(partial, Partial) and partial.text == "I'd like a refund for my"
    assert len(partial.words) == 6
    [final] = proto.receive(dumps(SEGMENT2_SPEECH_FINAL))
    assert isinstance(final, Final)
    assert final.text == "I'd like a refund for my order."
    assert [w.text for w in final.words] == ["I'd", "like", "a", "refund", "for", "my", "order."]
    assert final.words[3] == Word("refund", 880, 1320, 0.9)
    assert (final.start_ms, final.end_ms) == (320, 2000)
    assert final.confidence == pytest.approx(0.9)  # two segments: the words' mean


def test_deepgram_starts_a_new_utterance_after_a_final() -> None:
    proto = DeepgramProtocol()
    for message in (SEGMENT1_FINAL, SEGMENT2_SPEECH_FINAL):
        proto.receive(dumps(message))
    second = dg_results(
        "Thanks.", [dg_word("thanks", 4.0, 4.4, "Thanks.")], start=4.0, duration=0.6,
        is_final=True, speech_final=True, confidence=0.97,
    )  # fmt: skip
    [final] = proto.receive(dumps(second))
    assert final == Final("Thanks.", (Word("Thanks.", 4000, 4400, 0.9),), 4000, 4400, 0.97)


def test_deepgram_utterance_end_finishes_what_is_collected() -> None:
    proto = DeepgramProtocol()
    proto.receive(dumps(SEGMENT1_FINAL))
    utterance_end = {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.32}
    [final] = proto.receive(dumps(utterance_end))
    assert isinstance(final, Final) and final.text == "I'd like a refund"
    assert (final.start_ms, final.end_ms) == (320, 1320)
    assert final.confidence == 0.98  # one segment: Deepgram's own figure
    assert proto.receive(dumps(utterance_end)) == []  # nothing left
    assert proto.receive(dumps(SEGMENT2_SPEECH_FINAL)) == [
        Final(
            "for my order.",
            (
                Word("for", 1500, 1620, 0.9),
                Word("my", 1620, 1700, 0.9),
                Word("order.", 1700, 2000, 0.9),
            ),
            1500,
            2000,
            0.98,
        )
    ]


def test_deepgram_from_finalize_finishes_the_utterance() -> None:
    proto = DeepgramProtocol()
    proto.receive(dumps(SEGMENT1_FINAL))
    flushed = dg_results(
        "please", [dg_word("please", 1.5, 1.9)], start=1.5, duration=0.4, is_final=True,
        from_finalize=True,
    )  # fmt: skip
    [final] = proto.receive(dumps(flushed))
    assert isinstance(final, Final) and final.text == "I'd like a refund please"


def test_deepgram_silence_makes_no_results() -> None:
    proto = DeepgramProtocol()
    empty_interim = dg_results("", [], start=0.0, duration=1.0, is_final=False)
    empty_end = dg_results("", [], start=1.0, duration=1.0, is_final=True, speech_final=True)
    for message in (empty_interim, SILENCE, empty_end, {"type": "UtteranceEnd"}):
        assert proto.receive(dumps(message)) == []


def test_deepgram_an_utterance_that_ends_empty_withdraws_its_partial() -> None:
    proto = DeepgramProtocol()
    um = dg_results("um", [dg_word("um", 0.1, 0.3)], start=0.0, duration=1.0, is_final=False)
    assert len(proto.receive(dumps(um))) == 1
    empty_end = dg_results("", [], start=0.0, duration=1.0, is_final=True, speech_final=True)
    assert proto.receive(dumps(empty_end)) == [Partial("", ())]


def test_deepgram_metadata_ends_the_session_only_after_close_stream() -> None:
    proto = DeepgramProtocol()
    proto.receive(dumps(SEGMENT1_FINAL))
    assert proto.receive(dumps(METADATA)) == []
    proto.close_stream()
    final, ended = proto.receive(dumps(METADATA))
    assert isinstance(final, Final) and final.text == "I'd like a refund"
    assert ended == Ended()


def test_deepgram_errors_are_service_errors() -> None:
    proto = DeepgramProtocol()
    message = {
        "type": "Error",
        "variant": "error",
        "description": "Failed to process audio",
        "code": "DATA-0000",
        "message": "payload cannot be decoded",
    }
    [error] = proto.receive(dumps(message))
    assert isinstance(error, ServiceError) and error.code == "error"
    assert "Failed to process audio" in error.message
    idle = {**message, "code": "NET-0001", "description": "no audio received (NET-0001)"}
    [idle_error] = proto.receive(dumps(idle))
    assert isinstance(idle_error, ServiceError)
    assert (idle_error.code, idle_error.retryable) == ("idle", True)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "SpeechStarted", "channel": [0], "timestamp": 2.1},
        {"type": "Open"},
        {"type": "SomethingNewNextYear", "is_final": "x"},
    ],
)
def test_deepgram_ignores_messages_it_does_not_need(message: dict[str, Any]) -> None:
    proto = DeepgramProtocol()
    assert proto.receive(dumps(message)) == []
    assert len(proto.receive(dumps(INTERIM))) == 1


@pytest.mark.parametrize(
    "message",
    [
        "{",
        "null",
        dumps({"is_final": True}),
        dumps({**INTERIM, "is_final": "false"}),
        dumps({**INTERIM, "is_final": None}),
        dumps({**INTERIM, "speech_final": 1}),
        dumps({**INTERIM, "channel": [{"alternatives": []}]}),
        dumps({**INTERIM, "channel": {"alternatives": {"transcript": "x"}}}),
        dumps({**INTERIM, "channel": {"alternatives": [{"transcript": 5}]}}),
        dumps(dg_results("x", [{"word": "x", "start": "0.5", "end": 1.0}], start=0, duration=1,
                         is_final=False)),
        dumps(dg_results("x", [{"word": 5, "start": 0.5, "end": 1.0}], start=0, duration=1,
                         is_final=False)),
        dumps(dg_results("x", [dg_word("x", -0.5, 1.0)], start=0, duration=1, is_final=False)),
        dumps(dg_results("x", [dg_word("x", 1e300, 1.0)], start=0, duration=1, is_final=False)),
    ],
)  # fmt: skip
def test_deepgram_malformed_messages_are_violations(message: str) -> None:
    with pytest.raises(ProtocolViolation):
        DeepgramProtocol().receive(message)


@pytest.mark.parametrize(
    ("code", "reason", "label", "retryable"),
    [
        (1008, "DATA-0000: invalid credentials", "policy", False),
        (1011, "internal error", "server_error", True),
        (1011, "NET-0001: no audio received within the timeout window", "idle", True),
        (4000, "", "closed_4000", True),
        (1006, "", "closed_1006", True),
    ],
)
def test_deepgram_close_codes(code: int, reason: str, label: str, retryable: bool) -> None:
    assert DeepgramProtocol.close_error(code, reason) == ServiceError(label, reason, retryable)
