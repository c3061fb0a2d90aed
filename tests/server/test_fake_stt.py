"""server.simulator.fake_stt: the fake AssemblyAI and Deepgram servers, driven by a raw
websockets client the way an adapter author would, with a deterministic stub engine.

Audio is made here: tone bursts at known offsets (the fake's default voice detector is an energy
rule, so a tone is speech to it), mu-law encoded, in 100 ms chunks. The stub engine says how much
audio it was given, so every result's text comes from the audio the fake received.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from media.codecs import ulaw_encode
from media.transcription.engine import Transcription
from media.vad import WebRtcVoiceDetector
from server.simulator.audio import read_call_audio
from server.simulator.fake_stt import (
    EnergyVoiceDetector,
    Segmenter,
    running_fake_assemblyai,
    running_fake_deepgram,
)
from server.simulator.fake_stt.ears import PlaceholderEars
from tests.conftest import SPEECH, timeout

RATE = 8000
KEY = "test-key"
AAI_QUERY = "?speech_model=universal-streaming-english&encoding=pcm_mulaw&sample_rate=8000"
AAI_HEADERS = {"Authorization": KEY}
DG_QUERY = "?model=nova-3&encoding=mulaw&sample_rate=8000&channels=1"
DG_HEADERS = {"Authorization": f"Token {KEY}"}


class DurationEngine:
    """Says how much audio it was given ("Heard 1.2 seconds."), and remembers each call."""

    name = "stub:duration"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []
        """(PCM bytes, sample rate, thread id) per call."""

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        self.calls.append((len(pcm16), sample_rate, threading.get_ident()))
        return Transcription(f"Heard {len(pcm16) / 2 / sample_rate:.1f} seconds.", 0.9)


@pytest.fixture
def engine() -> DurationEngine:
    return DurationEngine()


# --- audio ----------------------------------------------------------------------------------


def tone(seconds: float, rate: int = RATE) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(2 * round(seconds * rate))


def mulaw(*parts: bytes) -> bytes:
    return ulaw_encode(b"".join(parts))


def chunks(audio: bytes, ms: int = 100, bytes_per_ms: int = RATE // 1000) -> Iterator[bytes]:
    size = bytes_per_ms * ms  # mu-law at 8 kHz: 8 bytes a millisecond
    return (audio[i : i + size] for i in range(0, len(audio), size))


# Bursts at 0.5-1.3 s and 2.3-2.9 s. With 200 ms of lead-in and tail around each, the engine
# hears 1.2 s and 1.0 s.
TWO_BURSTS = mulaw(silence(0.5), tone(0.8), silence(1.0), tone(0.6), silence(1.0))


async def send_all(ws: ClientConnection, audio: bytes, ms: int = 100) -> None:
    for chunk in chunks(audio, ms):
        await ws.send(chunk)


async def send_paced(ws: ClientConnection, audio: bytes, ms: int = 100) -> None:
    """In real time: chunk n goes at start + n × its duration, never earlier."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, chunk in enumerate(chunks(audio, ms)):
        await asyncio.sleep(max(0.0, start + n * ms / 1000 - loop.time()))
        await ws.send(chunk)


async def read_all(ws: ClientConnection, seconds: float = 5) -> list[Any]:
    """Every message until the server closes (JSON parsed where it parses)."""
    messages: list[Any] = []
    async with asyncio.timeout(timeout(seconds)):
        try:
            while True:
                message = await ws.recv()
                try:
                    messages.append(json.loads(message))
                except ValueError:
                    messages.append(message)
        except ConnectionClosed:
            return messages


async def next_json(ws: ClientConnection, seconds: float = 5) -> Any:
    async with asyncio.timeout(timeout(seconds)):
        return json.loads(await ws.recv())


def of_type(messages: list[Any], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if isinstance(m, dict) and m.get("type") == kind]


# --- the segmenter, without sockets ---------------------------------------------------------


def rounded(*values: float) -> tuple[float, ...]:
    return tuple(round(v, 3) for v in values)


def test_segmenter_finds_bursts_on_the_audio_clock() -> None:
    pcm = silence(0.5) + tone(0.8) + silence(1.0) + tone(0.6) + silence(1.0)
    segmenter = Segmenter(
        RATE, EnergyVoiceDetector(), silence_ms=400, partial_interval_ms=500, min_speech_ms=100
    )
    segments = segmenter.feed(pcm[:1001]) + segmenter.feed(pcm[1001:])  # split mid-frame
    finals = [
        rounded(s.start_s, s.end_s, s.cut_s, len(s.pcm) / 2 / RATE) for s in segments if s.final
    ]
    assert finals == [(0.5, 1.3, 1.7, 1.2), (2.3, 2.9, 3.3, 1.0)]
    partials = [rounded(s.utterance, s.end_s) for s in segments if not s.final]
    assert partials == [(0, 1.0), (1, 2.8)]  # after 500 ms of voiced audio
    assert segmenter.clock_s == pytest.approx(3.9)


def test_segmenter_drops_clicks_and_ends_utterances_on_demand() -> None:
    segmenter = Segmenter(RATE, EnergyVoiceDetector(), silence_ms=400, partial_interval_ms=None)
    assert segmenter.feed(silence(0.2) + tone(0.04) + silence(0.6)) == []  # 40 ms: a click
    assert segmenter.feed(tone(0.3)) == []
    assert segmenter.open_onset_s == pytest.approx(0.84)
    forced = segmenter.end_utterance()
    assert forced is not None and forced.final
    assert rounded(forced.start_s, forced.end_s) == (0.84, 1.14)
    assert segmenter.end_utterance() is None


# --- AssemblyAI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "wrong"}, {"Authorization": f"Bearer {KEY}"}]
)
async def test_assemblyai_refuses_a_missing_or_wrong_key_with_1008(
    engine: DurationEngine, headers: dict[str, str]
) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=headers) as ws:
            assert await read_all(ws) == []  # no Begin
            assert ws.close_code == 1008
            assert "Unauthorized" in (ws.close_reason or "")
        (session,) = await fake.wait_ended(1, timeout(5))
        assert session.close_code == 1008 and session.sent == []


@pytest.mark.parametrize(
    "query",
    [
        "?encoding=pcm_mulaw&sample_rate=8000",  # speech_model is required
        "?speech_model=universal-streaming-english&encoding=opus&sample_rate=8000",
        "?speech_model=universal-streaming-english&encoding=pcm_mulaw&sample_rate=44100",
    ],
)
async def test_assemblyai_refuses_a_bad_query_with_3005(engine: DurationEngine, query: str) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY) as fake:
        async with connect(fake.url + query, additional_headers=AAI_HEADERS) as ws:
            assert await read_all(ws) == []
            assert ws.close_code == 3005


async def test_assemblyai_begin_then_final_turns_on_the_session_clock(
    engine: DurationEngine,
) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY, rate_burst_s=10) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            begin = await next_json(ws)
            assert begin["type"] == "Begin" and begin["id"]
            assert isinstance(begin["expires_at"], int)
            await send_all(ws, TWO_BURSTS)
            await ws.send(json.dumps({"type": "Terminate"}))
            messages = await read_all(ws)
            assert ws.close_code == 1000

    turns = of_type(messages, "Turn")
    assert [(t["turn_order"], t["end_of_turn"]) for t in turns] == [(0, True), (1, True)]
    assert [t["transcript"] for t in turns] == ["heard 1.2 seconds", "heard 1.0 seconds"]
    for turn, (start_ms, end_ms) in zip(turns, [(500, 1300), (2300, 2900)], strict=True):
        words = turn["words"]
        assert turn["turn_is_formatted"] is False and turn["utterance"] == turn["transcript"]
        assert [w["text"] for w in words] == ["heard", words[1]["text"], "seconds"]
        assert all(w["word_is_final"] and isinstance(w["start"], int) for w in words)
        assert abs(words[0]["start"] - start_ms) <= 100 and abs(words[-1]["end"] - end_ms) <= 100
        assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
    assert messages[-1] == {
        "type": "Termination",
        "audio_duration_seconds": 4,
        "session_duration_seconds": messages[-1]["session_duration_seconds"],
    }
    assert messages.index(turns[-1]) < len(messages) - 1

    (session,) = fake.sessions
    assert session.query["speech_model"] == "universal-streaming-english"
    assert session.headers["authorization"] == KEY
    assert session.audio_bytes == len(TWO_BURSTS) and session.audio_chunks == 39
    assert session.messages == ['{"type": "Terminate"}']
    assert session.close_code == 1000 and session.results == turns
    assert {rate for _, rate, _ in engine.calls} == {RATE}
    assert threading.get_ident() not in {thread for *_, thread in engine.calls}


async def test_assemblyai_format_turns_keeps_the_engines_formatting(engine: DurationEngine) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY) as fake:
        url = fake.url + AAI_QUERY + "&format_turns=true"
        async with connect(url, additional_headers=AAI_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.5), tone(0.8), silence(0.5)))
            await ws.send(json.dumps({"type": "Terminate"}))
            (turn,) = of_type(await read_all(ws), "Turn")
    assert turn["turn_is_formatted"] is True and turn["transcript"] == "Heard 1.2 seconds."
    assert turn["words"][-1]["text"] == "seconds."


async def test_assemblyai_takes_16_khz_pcm(engine: DurationEngine) -> None:
    query = "?speech_model=universal-streaming-english&encoding=pcm_s16le&sample_rate=16000"
    audio = silence(0.5, 16000) + tone(0.8, 16000) + silence(0.7, 16000)  # ten 200 ms chunks
    async with running_fake_assemblyai(engine, api_key=KEY) as fake:
        async with connect(fake.url + query, additional_headers=AAI_HEADERS) as ws:
            for chunk in chunks(audio, ms=200, bytes_per_ms=32):
                await ws.send(chunk[:3201])  # a sample split across two ~100 ms messages
                await ws.send(chunk[3201:])
            await ws.send(json.dumps({"type": "Terminate"}))
            messages = await read_all(ws)
    (turn,) = of_type(messages, "Turn")
    words = turn["words"]
    assert turn["transcript"] == "heard 1.2 seconds"
    assert abs(words[0]["start"] - 500) <= 100 and abs(words[-1]["end"] - 1300) <= 100
    assert messages[-1]["audio_duration_seconds"] == 2 and ws.close_code == 1000
    assert {rate for _, rate, _ in engine.calls} == {16000}


async def test_assemblyai_partial_turns_precede_the_final_one(engine: DurationEngine) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY, partial_interval_ms=500) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.2), tone(1.6), silence(0.6)))
            await ws.send(json.dumps({"type": "Terminate"}))
            turns = of_type(await read_all(ws), "Turn")
    *partials, final = turns
    assert partials, "no partial turn"
    for partial in partials:
        assert partial["turn_order"] == 0 and partial["end_of_turn"] is False
        assert partial["words"] and not any(w["word_is_final"] for w in partial["words"])
        assert partial["transcript"] == "" and abs(partial["words"][0]["start"] - 200) <= 100
    assert final["turn_order"] == 0 and final["end_of_turn"] is True
    assert abs(final["words"][-1]["end"] - 1800) <= 100


@pytest.mark.parametrize("ending", ["ForceEndpoint", "Terminate"])
async def test_assemblyai_forceendpoint_and_terminate_end_the_turn_in_flight(
    engine: DurationEngine, ending: str
) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY, partial_interval_ms=None) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            await next_json(ws)  # Begin
            await send_all(ws, mulaw(silence(0.3), tone(0.7)))  # still speaking
            await ws.send(json.dumps({"type": ending}))
            turn = await next_json(ws)
            assert turn["type"] == "Turn" and turn["end_of_turn"] is True
            assert abs(turn["words"][-1]["end"] - 1000) <= 100
            if ending == "ForceEndpoint":
                await ws.send(json.dumps({"type": "KeepAlive"}))
                await ws.send(json.dumps({"type": "Terminate"}))
            rest = await read_all(ws)
    assert [m["type"] for m in rest] == ["Termination"]
    assert ws.close_code == 1000


@pytest.mark.parametrize("ms", [40, 1100])
async def test_assemblyai_chunks_outside_50_to_1000_ms_close_3007(
    engine: DurationEngine, ms: int
) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.1)), ms=100)  # fine
            await ws.send(mulaw(silence(ms / 1000)))
            messages = await read_all(ws)
    assert [m["type"] for m in messages] == ["Begin"]
    assert ws.close_code == 3007
    assert ws.close_reason == f"Input duration violation: {ms} ms. Expected between 50 and 1000 ms"


async def test_assemblyai_audio_faster_than_real_time_closes_3007(
    engine: DurationEngine,
) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY, rate_burst_s=1.0) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            await send_all(ws, mulaw(silence(3.0)))
            await read_all(ws)
        (session,) = await fake.wait_ended(1, timeout(5))
    assert ws.close_code == 3007
    assert (ws.close_reason or "").startswith("Audio Transmission Rate Exceeded: Received")
    assert session.audio_bytes <= 1.2 * RATE  # cut off once the burst allowance was spent


async def test_assemblyai_audio_in_real_time_is_accepted(engine: DurationEngine) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY, rate_burst_s=1.0) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            await send_paced(ws, mulaw(silence(0.3), tone(0.6), silence(0.6)), ms=50)
            await ws.send(json.dumps({"type": "Terminate"}))
            messages = await read_all(ws)
    assert [m["type"] for m in messages] == ["Begin", "Turn", "Termination"]
    assert ws.close_code == 1000


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "Invalid JSON: not json"),
        ('{"type": "Stop"}', "Invalid Message Type: Stop"),
        ("[]", "Invalid Message: []"),
    ],
)
async def test_assemblyai_invalid_client_messages_close_3006(
    engine: DurationEngine, text: str, reason: str
) -> None:
    async with running_fake_assemblyai(engine, api_key=KEY) as fake:
        async with connect(fake.url + AAI_QUERY, additional_headers=AAI_HEADERS) as ws:
            await ws.send(json.dumps({"type": "KeepAlive"}))  # accepted
            await ws.send(json.dumps({"type": "UpdateConfiguration", "max_turn_silence": 900}))
            await ws.send(text)
            assert [m["type"] for m in await read_all(ws)] == ["Begin"]
    assert (ws.close_code, ws.close_reason) == (3006, reason)


# --- Deepgram -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": KEY}, {"Authorization": "Token wrong"}])
async def test_deepgram_refuses_a_missing_or_wrong_key_with_401(
    engine: DurationEngine, headers: dict[str, str]
) -> None:
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(fake.url + DG_QUERY, additional_headers=headers):
                pass
        (session,) = await fake.wait_ended(1, timeout(5))
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["err_code"] == "INVALID_AUTH"
    assert session.handshake_status == 401


async def test_deepgram_refuses_a_bad_query_with_400(engine: DurationEngine) -> None:
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(fake.url + "?encoding=opus", additional_headers=DG_HEADERS):
                pass
    assert refused.value.response.status_code == 400


async def test_deepgram_final_results_on_the_session_clock_then_metadata(
    engine: DurationEngine,
) -> None:
    query = DG_QUERY + "&endpointing=300&utterance_end_ms=1000&smart_format=true"
    audio = mulaw(silence(0.5), tone(0.8), silence(1.2), tone(0.6), silence(1.2))
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        async with connect(fake.url + query, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, audio, ms=250)
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = await read_all(ws)
            assert ws.close_code == 1000

    assert [m["type"] for m in messages] == [
        "Results", "UtteranceEnd", "Results", "UtteranceEnd", "Metadata"
    ]  # fmt: skip
    first, second = of_type(messages, "Results")
    for results, (start, end) in zip([first, second], [(0.5, 1.3), (2.5, 3.1)], strict=True):
        assert results["is_final"] is True and results["speech_final"] is True
        assert results["from_finalize"] is False and results["channel_index"] == [0, 1]
        alternative = results["channel"]["alternatives"][0]
        words = alternative["words"]
        assert abs(words[0]["start"] - start) <= 0.1 and abs(words[-1]["end"] - end) <= 0.1
        assert words[0]["word"] == "heard" and words[-1]["punctuated_word"] == "seconds."
        assert alternative["transcript"].startswith("Heard ") and results["metadata"]["request_id"]
    # Finals tile the audio: each window starts where the last one ended.
    assert first["start"] == 0 and second["start"] == pytest.approx(first["duration"])
    ends = of_type(messages, "UtteranceEnd")
    assert [e["last_word_end"] for e in ends] == pytest.approx([1.3, 3.1], abs=0.1)
    metadata = messages[-1]
    assert metadata["request_id"] == first["metadata"]["request_id"]
    assert metadata["duration"] == pytest.approx(len(audio) / RATE)
    assert metadata["channels"] == 1 and metadata["transaction_key"] == "deprecated"
    assert isinstance(metadata["created"], str)


async def test_deepgram_speech_resuming_within_utterance_end_ms_sends_no_utterance_end(
    engine: DurationEngine,
) -> None:
    query = DG_QUERY + "&endpointing=300&utterance_end_ms=1000"
    audio = mulaw(silence(0.2), tone(0.5), silence(0.6), tone(0.5), silence(0.4))
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        async with connect(fake.url + query, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, audio)
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = await read_all(ws)
    # One UtteranceEnd, after the second burst (sent at the end of the stream).
    assert [m["type"] for m in messages] == ["Results", "Results", "UtteranceEnd", "Metadata"]


async def test_deepgram_interim_results_precede_the_final(engine: DurationEngine) -> None:
    query = DG_QUERY + "&interim_results=true"
    async with running_fake_deepgram(engine, api_key=KEY, partial_interval_ms=500) as fake:
        async with connect(fake.url + query, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.2), tone(1.6), silence(0.7)))
            await ws.send(json.dumps({"type": "CloseStream"}))
            results = of_type(await read_all(ws), "Results")
    *interims, final = results
    assert interims and all(r["is_final"] is False for r in interims)
    assert final["is_final"] is True
    assert abs(final["channel"]["alternatives"][0]["words"][-1]["end"] - 1.8) <= 0.1


async def test_deepgram_without_interim_results_sends_finals_only(engine: DurationEngine) -> None:
    async with running_fake_deepgram(engine, api_key=KEY, partial_interval_ms=500) as fake:
        async with connect(fake.url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.2), tone(1.6), silence(0.7)))
            await ws.send(json.dumps({"type": "CloseStream"}))
            results = of_type(await read_all(ws), "Results")
    assert [r["is_final"] for r in results] == [True]


async def test_deepgram_finalize_flushes_the_utterance_in_flight(engine: DurationEngine) -> None:
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        async with connect(fake.url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.3), tone(0.7)))  # still speaking
            await ws.send(json.dumps({"type": "Finalize"}))
            results = await next_json(ws)
            await ws.send(json.dumps({"type": "CloseStream"}))
            rest = await read_all(ws)
    assert results["type"] == "Results" and results["from_finalize"] is True
    assert results["is_final"] is True and results["speech_final"] is False
    assert abs(results["channel"]["alternatives"][0]["words"][-1]["end"] - 1.0) <= 0.1
    assert [m["type"] for m in rest] == ["Metadata"] and ws.close_code == 1000


async def test_deepgram_closes_an_idle_stream_with_net_0001(engine: DurationEngine) -> None:
    idle = 0.4
    async with running_fake_deepgram(engine, api_key=KEY, idle_timeout_s=idle) as fake:
        async with connect(fake.url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            loop = asyncio.get_running_loop()
            for _ in range(3):  # each KeepAlive restarts the idle timer
                await asyncio.sleep(idle * 0.6)
                await ws.send(json.dumps({"type": "KeepAlive"}))
            last_sent = loop.time()
            assert await read_all(ws) == []
            closed_after = loop.time() - last_sent
    assert ws.close_code == 1011 and "NET-0001" in (ws.close_reason or "")
    assert closed_after >= idle * 0.9


async def test_deepgram_with_the_webrtc_vad_hears_the_speech_fixture(
    engine: DurationEngine,
) -> None:
    audio = read_call_audio(SPEECH / "caller_mono.wav").caller
    async with running_fake_deepgram(
        engine, api_key=KEY, voice_detector=lambda: WebRtcVoiceDetector(2)
    ) as fake:
        async with connect(fake.url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, audio, ms=500)
            await ws.send(json.dumps({"type": "CloseStream"}))
            results = of_type(await read_all(ws), "Results")
    starts = [r["channel"]["alternatives"][0]["words"][0]["start"] for r in results]
    assert len(starts) >= 2 and 0.4 <= starts[0] <= 0.8  # the file starts with 0.5 s of silence


async def test_deepgram_rejects_an_unknown_control_message_with_1008(
    engine: DurationEngine,
) -> None:
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        async with connect(fake.url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            await ws.send(json.dumps({"type": "KeepAlive"}))
            await ws.send(json.dumps({"type": "Flush"}))
            assert await read_all(ws) == []
    assert ws.close_code == 1008


async def test_deepgram_takes_an_empty_binary_frame_as_closestream(engine: DurationEngine) -> None:
    async with running_fake_deepgram(engine, api_key=KEY) as fake:
        async with connect(fake.url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.2), tone(0.5)))
            await ws.send(b"")
            messages = await read_all(ws)
    assert [m["type"] for m in messages] == ["Results", "Metadata"] and ws.close_code == 1000


# --- faults, both services ------------------------------------------------------------------

SERVICES = {
    "assemblyai": (running_fake_assemblyai, AAI_QUERY, AAI_HEADERS),
    "deepgram": (running_fake_deepgram, DG_QUERY, DG_HEADERS),
}
ENDING = {"assemblyai": "Terminate", "deepgram": "CloseStream"}


@pytest.mark.parametrize("service", SERVICES)
async def test_refuse_means_nothing_listens(engine: DurationEngine, service: str) -> None:
    running, query, headers = SERVICES[service]
    async with running(engine, api_key=KEY, refuse=True) as fake:
        with pytest.raises(OSError):
            await connect(fake.url + query, additional_headers=headers, open_timeout=timeout(5))
    assert fake.sessions == []


@pytest.mark.parametrize("status", [401, 503])
@pytest.mark.parametrize("service", SERVICES)
async def test_reject_status_refuses_every_handshake(
    engine: DurationEngine, service: str, status: int
) -> None:
    running, query, headers = SERVICES[service]
    async with running(engine, api_key=KEY, reject_status=status) as fake:
        for _ in range(2):
            with pytest.raises(InvalidStatus) as refused:
                await connect(fake.url + query, additional_headers=headers)
            assert refused.value.response.status_code == status
        sessions = await fake.wait_ended(2, timeout(5))
    assert [s.handshake_status for s in sessions] == [status, status]


@pytest.mark.parametrize("service", SERVICES)
async def test_close_after_s_closes_mid_session(engine: DurationEngine, service: str) -> None:
    running, query, headers = SERVICES[service]
    async with running(engine, api_key=KEY, close_after_s=(1.0, 1011, "boom")) as fake:
        async with connect(fake.url + query, additional_headers=headers) as ws:
            await send_all(ws, mulaw(silence(2.0)))
            await read_all(ws)
        (session,) = await fake.wait_ended(1, timeout(5))
    assert (ws.close_code, ws.close_reason) == (1011, "boom")
    assert session.audio_bytes == RATE  # closed on the chunk that reached 1 s
    assert (session.close_code, session.close_reason) == (1011, "boom")


@pytest.mark.parametrize("service", SERVICES)
async def test_silent_accepts_audio_and_sends_nothing(engine: DurationEngine, service: str) -> None:
    running, query, headers = SERVICES[service]
    options: dict[str, Any] = {"rate_burst_s": 10} if service == "assemblyai" else {}
    ending = json.dumps({"type": ENDING[service]})
    async with running(engine, api_key=KEY, silent=True, **options) as fake:
        async with connect(fake.url + query, additional_headers=headers) as ws:
            await send_all(ws, TWO_BURSTS)
            await ws.send(ending)  # not answered either: the fake reads on
            await send_all(ws, mulaw(silence(0.5)))
        (session,) = await fake.wait_ended(1, timeout(5))
    assert session.audio_bytes == len(TWO_BURSTS) + RATE // 2
    assert session.messages == [ending]
    assert session.sent == [] and session.close_code is None


@pytest.mark.parametrize("service", SERVICES)
async def test_delay_s_holds_every_result_back(engine: DurationEngine, service: str) -> None:
    running, query, headers = SERVICES[service]
    delay = 0.5
    async with running(engine, api_key=KEY, delay_s=delay) as fake:
        async with connect(fake.url + query, additional_headers=headers) as ws:
            loop = asyncio.get_running_loop()
            if service == "assemblyai":
                assert (await next_json(ws))["type"] == "Begin"  # not a result: not delayed
            await send_all(ws, mulaw(silence(0.2), tone(0.6), silence(0.8)))
            sent = loop.time()
            result = await next_json(ws)
            waited = loop.time() - sent
            await ws.send(json.dumps({"type": ENDING[service]}))
            await read_all(ws)
    assert result["type"] in ("Turn", "Results") and waited >= delay * 0.9


@pytest.mark.parametrize("service", SERVICES)
async def test_malformed_after_s_sends_one_non_json_message(
    engine: DurationEngine, service: str
) -> None:
    running, query, headers = SERVICES[service]
    async with running(engine, api_key=KEY, malformed_after_s=0.5) as fake:
        async with connect(fake.url + query, additional_headers=headers) as ws:
            await send_all(ws, mulaw(silence(1.0)))
            await ws.send(json.dumps({"type": ENDING[service]}))
            messages = await read_all(ws)
    malformed = [m for m in messages if isinstance(m, str)]
    assert len(malformed) == 1
    with pytest.raises(ValueError):
        json.loads(malformed[0])


class FailingEngine:
    name = "stub:failing"

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        raise RuntimeError("model fell over")


@pytest.mark.parametrize(("service", "code"), [("assemblyai", 3005), ("deepgram", 1011)])
async def test_an_engine_failure_closes_as_a_server_error(service: str, code: int) -> None:
    running, query, headers = SERVICES[service]
    async with running(FailingEngine(), api_key=KEY) as fake:
        async with connect(fake.url + query, additional_headers=headers) as ws:
            await send_all(ws, mulaw(silence(0.2), tone(0.5), silence(0.6)))
            await read_all(ws)
    assert ws.close_code == code
    assert "model fell over" not in (ws.close_reason or "")  # no internal detail to the peer


@pytest.mark.parametrize("service", SERVICES)
async def test_a_wrong_path_is_404_and_recorded(engine: DurationEngine, service: str) -> None:
    running, query, headers = SERVICES[service]
    async with running(engine, api_key=KEY) as fake:
        with pytest.raises(InvalidStatus) as refused:
            await connect(fake.url + "/extra" + query, additional_headers=headers)
        (session,) = await fake.wait_ended(1, timeout(5))
    assert refused.value.response.status_code == 404
    assert session.handshake_status == 404 and session.path.endswith("/extra")


# --- the CLI --------------------------------------------------------------------------------


async def test_cli_prints_its_url_and_serves() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.simulator.fake_stt", "--service", "deepgram",
        "--api-key", KEY, "--workers", "1",
        cwd=Path(__file__).parents[2], stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(timeout(60)):
            url = (await proc.stdout.readline()).decode().strip()
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/v1/listen")
        async with connect(url + DG_QUERY, additional_headers=DG_HEADERS) as ws:
            await send_all(ws, mulaw(silence(0.5)))
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = await read_all(ws)
        assert [m["type"] for m in messages] == ["Metadata"] and ws.close_code == 1000
    finally:
        proc.terminate()
        async with asyncio.timeout(timeout(10)):
            assert await proc.wait() == 0


async def test_each_final_records_the_fakes_own_share_of_the_latency(
    engine: DurationEngine,
) -> None:
    """From the audio where the speech ended reaching the fake to the result leaving it: its
    endpointing silence (300 ms asked) and any hold-back (`delay_s`)."""
    query = DG_QUERY + "&endpointing=300&interim_results=false"
    async with running_fake_deepgram(engine, api_key=KEY, delay_s=0.5) as fake:
        async with connect(fake.url + query, additional_headers=DG_HEADERS) as ws:
            await send_paced(ws, TWO_BURSTS)
            await ws.send(json.dumps({"type": "CloseStream"}))
            await read_all(ws)
        [session] = await fake.wait_ended(1, timeout_s=timeout(5))
    assert len(session.final_latency_s) == 2
    # Silence is heard in 100 ms chunks: the last voiced one may arrive up to 100 ms late.
    assert all(0.5 + 0.2 <= s < 0.5 + timeout(1.5) for s in session.final_latency_s)


def test_placeholder_ears_hear_as_many_words_as_the_speech_is_long() -> None:
    heard = PlaceholderEars().transcribe(tone(4.0), RATE)
    assert heard.text.split() == [f"word{n}" for n in range(1, 11)]  # 2.5 words a second
    assert PlaceholderEars().transcribe(tone(0.1), RATE).text == "word1"
