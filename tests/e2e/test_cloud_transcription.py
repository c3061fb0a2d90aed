"""A call transcribed by a cloud streaming service (fakes that speak AssemblyAI's and
Deepgram's protocols and hear with the offline engine), and the offline engine standing in
when the service fails mid-call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from media import metrics
from media.transcription.whisper import WhisperEngine
from server.app import RunningServer
from server.simulator.audio import read_call_audio
from server.simulator.fake_stt import running_fake_assemblyai, running_fake_deepgram
from server.simulator.fake_stt.ears import PlaceholderEars
from server.simulator.report import wait_for_streams_done
from storage.db import Pool
from tests.conftest import SPEECH, timeout
from tests.e2e.test_call_path import recall
from tests.support.accounts import make_org
from tests.support.calls import simulator
from tests.support.feed import watch_feed

KEY = "test-cloud-key"


@pytest.fixture(scope="module")
def fake_ears() -> WhisperEngine:
    """What the fake services hear with (the offline engine, so nothing is scripted)."""
    return WhisperEngine("bundled:tiny.en", Path("unused"), workers=2)


@pytest.fixture
async def one_party_org(pool: Pool, org_number: tuple[uuid.UUID, str]) -> AsyncIterator[str]:
    org_id, number = org_number
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org_id
    )
    yield number


async def play(srv: RunningServer, number: str, speed: float) -> dict[str, Any]:
    audio = read_call_audio(SPEECH / "two_party.wav")
    async with aiohttp.ClientSession() as http:
        call = await simulator(http, srv, srv.settings).call(
            audio, to_number=number, from_number="+15550123456", speed=speed
        )
    assert call.errors == [] and call.close_code == 1000
    return await wait_for_streams_done(srv.dsn, call.call_sid, timeout(60))


def said_by(report: dict[str, Any]) -> dict[str, list[str]]:
    script = json.loads((SPEECH / "texts.json").read_text())["two_party.wav"]
    return {
        speaker: [t["text"] for t in script if t["track"] == track]
        for speaker, track in (("caller", "inbound"), ("agent", "outbound"))
    }


def heard_by(report: dict[str, Any]) -> dict[str, list[str]]:
    return {
        speaker: [s["text"] for s in report["transcript"] if s["speaker"] == speaker]
        for speaker in ("caller", "agent")
    }


async def test_a_call_is_transcribed_by_assemblyai_streaming(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    pool: Pool,
    fake_ears: WhisperEngine,
) -> None:
    org = await make_org(pool, "Cloud org")
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org.id
    )
    seen: list[dict[str, Any]] = []
    async with running_fake_assemblyai(fake_ears, api_key=KEY) as fake:
        settings = dict(
            transcription_engine="assemblyai",
            assemblyai_api_key=KEY,
            assemblyai_url=fake.url,
            cloud_grace_s=30,  # the fake hears with whisper: slow on a busy machine, not late
        )
        async with start_server(**settings) as srv:
            watching = asyncio.create_task(watch_feed(srv, org.keys["operator"], seen))
            report = await play(srv, org.number, speed=1.0)  # the service refuses faster
            await asyncio.wait_for(watching, timeout(10))
        sessions = await fake.wait_ended(2, timeout_s=timeout(10))

    # One session per track, μ-law passed through as it came, ended the way the service asks.
    assert len(sessions) == 2
    frames = report["streams"][0]["frames_received_inbound"]
    for session in sessions:
        assert session.headers["authorization"] == KEY
        assert session.query["encoding"] == "pcm_mulaw" and session.query["sample_rate"] == "8000"
        assert session.query["speech_model"] == "universal-streaming-english"
        assert session.audio_bytes >= frames * 160  # every frame (the last chunk padded)
        assert json.loads(session.messages[-1]) == {"type": "Terminate"}
        assert session.close_code == 1000
    # The service's words, on the call's clock, by speaker.
    segments = report["transcript"]
    assert segments and all(
        s["engine"] == "assemblyai:universal-streaming-english" for s in segments
    )
    expected, heard = said_by(report), heard_by(report)
    assert recall(expected["agent"], heard["agent"]) >= 0.7, heard
    assert recall(expected["caller"], heard["caller"]) >= 0.5, heard
    # With the service's word timings, inside each segment's span on the call's clock.
    rows = await pool.fetch(
        "SELECT start_ms, end_ms, text, words FROM transcript_segments WHERE call_id = $1",
        report["call"]["id"],
    )
    for row in rows:
        words = json.loads(row["words"])
        assert [w["text"] for w in words] == row["text"].split()
        assert all(row["start_ms"] <= w["start_ms"] <= w["end_ms"] <= row["end_ms"] for w in words)
    starts = sorted((s["start_ms"], s["speaker"]) for s in segments)
    assert [speaker for _, speaker in starts][:2] == ["agent", "caller"]
    [stream] = report["streams"]
    assert stream["utterances_skipped"] == 0
    assert stream["transcription_error_inbound"] is stream["transcription_error_outbound"] is None
    # Supervisors saw each speaker's words while they spoke, then the final words.
    kinds = [(m["type"], m["data"]["track"]) for m in seen if m["type"].startswith("transcript")]
    for track in ("inbound", "outbound"):
        first_partial = kinds.index(("transcript_partial", track))
        assert ("transcript", track) in kinds[first_partial:]


async def test_when_the_service_drops_mid_call_the_offline_engine_hears_the_rest(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    one_party_org: str,
    fake_ears: WhisperEngine,
) -> None:
    errors = metrics.CLOUD_ERRORS.labels("deepgram", "server_error")
    before = errors._value.get()
    # Deepgram closes both sessions with a server error 6 s into the call (3 s of playing).
    faults = dict(close_after_s=(6.0, 1011, "internal server error"))
    async with running_fake_deepgram(fake_ears, api_key=KEY, **faults) as fake:
        settings = dict(
            transcription_engine="deepgram", deepgram_api_key=KEY, deepgram_url=fake.url
        )
        async with start_server(**settings) as srv:
            report = await play(srv, one_party_org, speed=2.0)

    assert errors._value.get() == before + 2  # both tracks' sessions
    [stream] = report["streams"]
    assert stream["transcription_error_inbound"] == "server_error"
    assert stream["transcription_error_outbound"] == "server_error"
    segments = report["transcript"]
    engines = {s["engine"] for s in segments}
    assert engines <= {"deepgram:nova-3", "faster-whisper:tiny.en"}
    assert any(s["engine"] == "faster-whisper:tiny.en" and s["start_ms"] >= 6000 for s in segments)
    # Nothing lost across the switch: every sentence is there, each once.
    expected, heard = said_by(report), heard_by(report)
    assert recall(expected["agent"], heard["agent"]) >= 0.7, heard
    assert recall(expected["caller"], heard["caller"]) >= 0.5, heard
    assert len(segments) == len({(s["speaker"], s["start_ms"]) for s in segments})
    assert report["streams"][0]["utterances_skipped"] == 0


async def test_a_service_that_cannot_be_reached_is_skipped_once_it_keeps_failing(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    one_party_org: str,
    fake_ears: WhisperEngine,
) -> None:
    async with running_fake_deepgram(fake_ears, api_key=KEY, refuse=True) as fake:
        settings = dict(
            transcription_engine="deepgram", deepgram_api_key=KEY, deepgram_url=fake.url
        )
        async with start_server(**settings) as srv:
            reports = [await play(srv, one_party_org, speed=10.0) for _ in range(3)]
    # Refused connections: the offline engine hears each call whole.
    for report in reports:
        expected, heard = said_by(report), heard_by(report)
        assert recall(expected["agent"], heard["agent"]) >= 0.7, heard
        assert {s["engine"] for s in report["transcript"]} == {"faster-whisper:tiny.en"}
    errors = [
        (s["transcription_error_inbound"], s["transcription_error_outbound"])
        for r in reports
        for s in r["streams"]
    ]
    # Two calls, four failed sessions (three open the circuit); the third call is not tried.
    assert errors == [("unreachable",) * 2, ("unreachable",) * 2, ("circuit_open",) * 2]


async def test_a_service_that_answers_too_slowly_is_replaced_without_double_words(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    one_party_org: str,
    fake_ears: WhisperEngine,
) -> None:
    standins = metrics.CLOUD_STANDINS.labels("deepgram", "late")
    before = standins._value.get()
    # Every result arrives 10 s late: past the 3 s grace (even for the first words of a turn),
    # so whisper hears those utterances.
    async with running_fake_deepgram(fake_ears, api_key=KEY, delay_s=10.0) as fake:
        settings = dict(
            transcription_engine="deepgram", deepgram_api_key=KEY, deepgram_url=fake.url
        )
        async with start_server(**settings) as srv:
            report = await play(srv, one_party_org, speed=2.0)
    assert standins._value.get() >= before + 3  # all but the last, heard at the end
    expected, heard = said_by(report), heard_by(report)
    assert recall(expected["agent"], heard["agent"]) >= 0.7, heard
    assert recall(expected["caller"], heard["caller"]) >= 0.5, heard
    # The late service's words for what whisper already heard are not stored a second time.
    spans = sorted((s["speaker"], s["start_ms"], s["end_ms"]) for s in report["transcript"])
    for (who, _, end), (next_who, next_start, _) in zip(spans, spans[1:], strict=False):
        assert who != next_who or next_start >= end - 300, spans


async def test_each_org_is_heard_by_the_engine_it_chose_with_its_own_key(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    pool: Pool,
    fake_ears: WhisperEngine,
) -> None:
    own_key = "dg-org-key-0a1b2c3d4e5f"
    orgs = {
        label: await make_org(pool, f"Speech {label}")
        for label in ("own key", "default", "revoked key")
    }
    for org in orgs.values():
        await pool.execute(
            "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org.id
        )
    chosen = {"own key": own_key, "revoked key": "dg-revoked-key-99999999"}
    async with running_fake_deepgram(fake_ears, api_key=own_key) as fake:
        # The deployment hears offline and holds no Deepgram key of its own.
        async with start_server(transcription_engine="whisper", deepgram_url=fake.url) as srv:
            async with aiohttp.ClientSession() as http:
                for label, key in chosen.items():
                    async with http.put(
                        srv.http_url + "/api/org/transcription",
                        json={"engine": "deepgram", "api_key": key},
                        headers=orgs[label].bearer("admin"),
                    ) as resp:
                        assert resp.status == 200, await resp.text()
            reports = {label: await play(srv, org.number, speed=4.0) for label, org in orgs.items()}
        sessions = await fake.wait_ended(4, timeout_s=timeout(10))

    # Each org's own key, for its call's two tracks; the revoked one refused at the handshake.
    assert sorted((s.headers["authorization"], s.handshake_status) for s in sessions) == [
        (f"Token {own_key}", 101), (f"Token {own_key}", 101),
        (f"Token {chosen['revoked key']}", 401), (f"Token {chosen['revoked key']}", 401),
    ]  # fmt: skip
    engines = {label: {s["engine"] for s in r["transcript"]} for label, r in reports.items()}
    assert engines == {
        "own key": {"deepgram:nova-3"},
        "default": {"faster-whisper:tiny.en"},
        "revoked key": {"faster-whisper:tiny.en"},  # refused: the offline engine stands in
    }
    [refused] = reports["revoked key"]["streams"]
    assert refused["transcription_error_inbound"] == refused["transcription_error_outbound"]
    assert refused["transcription_error_inbound"] == "http_401"
    for report in reports.values():
        expected, heard = said_by(report), heard_by(report)
        assert recall(expected["agent"], heard["agent"]) >= 0.7, heard


async def test_a_service_that_ends_turns_sooner_than_we_do_leaves_nothing_to_decode_offline(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    one_party_org: str,
) -> None:
    """Deepgram ends an utterance after 300 ms of silence, our endpointing after 500 ms: the
    service's finals for a turn arrive while our utterance is still open. That utterance was
    heard, and needs no offline stand-in when it ends (with no fallback, one would count as
    skipped)."""
    late = metrics.CLOUD_STANDINS.labels("deepgram", "late")
    before = late._value.get()
    async with running_fake_deepgram(PlaceholderEars(), api_key=KEY) as fake:
        settings = dict(
            transcription_engine="deepgram", deepgram_api_key=KEY, deepgram_url=fake.url,
            transcription_fallback="none",
            cloud_grace_s=1.0,  # 4 s of audio at 4x: the next turn's final comes later
        )  # fmt: skip
        async with start_server(**settings) as srv:
            report = await play(srv, one_party_org, speed=4.0)
    [stream] = report["streams"]
    assert stream["utterances_skipped"] == 0
    assert stream["transcription_error_inbound"] is stream["transcription_error_outbound"] is None
    assert late._value.get() == before
    assert {s["engine"] for s in report["transcript"]} == {"deepgram:nova-3"}
    assert {s["speaker"] for s in report["transcript"]} == {"agent", "caller"}
