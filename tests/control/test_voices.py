"""Text to speech: the ElevenLabs adapter against a fake that speaks its API and renders real
speech, each fault it can meet, the offline Piper voice, and prompts rendered once and played
from the cache (control.prompts) on a real Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import numpy as np
import pytest

from control.audio_convert import Telephony
from control.laml import Play
from control.metrics import TTS_CIRCUIT_OPEN, TTS_RENDERS
from control.play_urls import PlayUrls
from control.prompts import Prompts
from control.voices import ElevenLabs, ElevenLabsConfig, Piper, VoiceFailed
from media.codecs import ulaw_decode
from media.transcription.whisper import WhisperEngine
from storage import audio
from storage.db import Pool
from tests.support.accounts import make_org
from tests.support.audio_files import mulaw_samples, telephony_header
from tests.support.fake_elevenlabs import KEY, VOICES, FakeElevenLabs, detail, mp3
from tests.support.loopback import serving_app

TEXT = "This call may be recorded for quality and training purposes."


@pytest.fixture(scope="module")
def whisper() -> WhisperEngine:
    return WhisperEngine("bundled:tiny.en", Path("unused"), workers=1)


def heard(whisper: WhisperEngine, clip: Telephony | bytes) -> set[str]:
    wav = clip.wav if isinstance(clip, Telephony) else clip
    assert telephony_header(wav) == (7, 1, 8000)
    text = whisper.transcribe(ulaw_decode(mulaw_samples(wav)), 8000).text.lower()
    return set(text.replace(",", " ").replace(".", " ").split())


@pytest.fixture
async def eleven() -> AsyncIterator[FakeElevenLabs]:
    fake = FakeElevenLabs()
    async with serving_app(fake.app()) as base:
        fake.url = base
        yield fake


def adapter(http: aiohttp.ClientSession, fake: FakeElevenLabs, **config: object) -> ElevenLabs:
    return ElevenLabs(http, ElevenLabsConfig(api_key=KEY, base_url=fake.url, **config))  # type: ignore[arg-type]


def count(engine: str, outcome: str) -> float:
    return float(TTS_RENDERS.labels(engine, outcome)._value.get())


async def test_elevenlabs_renders_the_words_as_telephony_audio(
    http: aiohttp.ClientSession, eleven: FakeElevenLabs, whisper: WhisperEngine
) -> None:
    voice = adapter(http, eleven, model_id="eleven_turbo_v2_5")
    clip = await voice.render(TEXT, VOICES[1])
    assert {"call", "recorded", "quality"} <= heard(whisper, clip)
    assert 2_000 < clip.duration_ms < 8_000
    body = {"text": TEXT, "model_id": "eleven_turbo_v2_5"}
    assert eleven.requests == [{"voice": VOICES[1], "format": "ulaw_8000", "key": KEY,
                                "body": body}]  # fmt: skip
    assert (await voice.render("Goodbye.", None)).duration_ms > 0
    assert eleven.requests[-1]["voice"] == ElevenLabsConfig(api_key="k").voice  # the default
    # An answer in a container (MP3) is decoded like an upload.
    eleven.answer_next(mp3(TEXT), "audio/mpeg")
    assert {"recorded", "quality"} <= heard(whisper, await voice.render(TEXT, None))
    assert voice.health()["last_error"] is None


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (429, detail("too_many_concurrent_requests", "Too many concurrent requests"),
         "rate_limited"),
        (500, detail("internal_error", "Something went wrong"), "server_error"),
        (503, "<html>upstream unavailable</html>", "server_error"),
        (422, {"detail": [{"loc": ["body", "text"], "msg": "too long", "type": "value_error"}]},
         "rejected"),
    ],
)  # fmt: skip
async def test_each_error_answer_is_a_failure_with_the_services_reason(
    http: aiohttp.ClientSession, eleven: FakeElevenLabs, status: int, body: object, reason: str
) -> None:
    voice = adapter(http, eleven)
    before = count("elevenlabs", reason)
    eleven.fail_next(status, body)  # type: ignore[arg-type]
    with pytest.raises(VoiceFailed) as failed:
        await voice.render(TEXT, None)
    assert failed.value.reason == reason
    assert count("elevenlabs", reason) == before + 1
    assert reason in str(voice.health()["last_error"])


async def test_a_bad_key_an_unknown_voice_and_answers_without_audio_are_refused(
    http: aiohttp.ClientSession, eleven: FakeElevenLabs
) -> None:
    wrong = ElevenLabs(http, ElevenLabsConfig(api_key="wrong", base_url=eleven.url))
    with pytest.raises(VoiceFailed, match="Invalid API key") as failed:
        await wrong.render(TEXT, None)
    assert failed.value.reason == "unauthorized"
    voice = adapter(http, eleven)
    with pytest.raises(VoiceFailed, match="was not found") as failed:
        await voice.render(TEXT, "no-such-voice")
    assert failed.value.reason == "rejected"
    for body, content_type in ((b'{"ok": true}', "application/json"), (b"", "audio/basic"),
                               (b"RIFF\x10\x00\x00\x00WAVEjunk", "audio/wav")):  # fmt: skip
        eleven.answer_next(body, content_type)
        with pytest.raises(VoiceFailed) as failed:
            await voice.render(TEXT, None)
        assert failed.value.reason == "malformed"


async def test_a_slow_service_times_out_and_a_failing_one_is_left_alone_for_a_while(
    http: aiohttp.ClientSession, eleven: FakeElevenLabs
) -> None:
    voice = adapter(http, eleven, timeout_s=0.3, breaker_failures=2, breaker_reset_s=60)
    eleven.hold = asyncio.Event()
    with pytest.raises(VoiceFailed) as failed:
        await voice.render(TEXT, None)
    assert failed.value.reason == "timeout"
    eleven.hold.set()
    eleven.hold = None
    eleven.fail_next(500, detail("internal_error", "down"))
    with pytest.raises(VoiceFailed):
        await voice.render(TEXT, None)
    asked = len(eleven.requests)
    with pytest.raises(VoiceFailed) as failed:
        await voice.render(TEXT, None)
    assert failed.value.reason == "circuit_open"
    assert len(eleven.requests) == asked  # not sent
    assert voice.health()["circuit_open"] is True
    assert TTS_CIRCUIT_OPEN.labels("elevenlabs")._value.get() == 1


async def test_piper_renders_the_words_offline(whisper: WhisperEngine) -> None:
    clip = await Piper().render(TEXT, None)
    assert {"call", "recorded", "quality"} <= heard(whisper, clip)
    samples = np.frombuffer(ulaw_decode(mulaw_samples(clip.wav)), np.int16)
    assert len(samples) // 8 == clip.duration_ms


async def test_a_prompt_is_rendered_once_and_a_slow_render_never_holds_up_a_call(
    pool: Pool, http: aiohttp.ClientSession, eleven: FakeElevenLabs
) -> None:
    org = await make_org(pool, "Voiced org")
    urls = PlayUrls(b"secret", "https://voice.example.com")
    prompts = Prompts(pool, {"elevenlabs": adapter(http, eleven)}, urls, wait_s=2)
    assert await prompts.speak(org.id, TEXT) == TEXT  # the org's voice is SignalWire's <Say>
    async with pool.acquire() as conn:
        await audio.set_voice(conn, org.id, "elevenlabs", VOICES[1])
    # Rendered ahead (as `POST /api/audio/speech` does), so no call waits on it.
    first = await prompts.render(org.id, TEXT, "elevenlabs", VOICES[1], "test")
    spoken = await prompts.speak(org.id, TEXT)
    assert spoken == Play(urls.url(first["id"]))
    assert isinstance(spoken, Play) and spoken.url.startswith("https://voice.example.com/audio/")
    assert await prompts.speak(org.id, TEXT) == spoken  # from the cache: one request
    assert len(eleven.requests) == 1
    clip_id = uuid.UUID(spoken.url.split("/audio/")[1].split(".wav")[0])
    query = parse_qs(urlsplit(spoken.url).query)
    assert urls.verify(clip_id, query["expires"][0], query["signature"][0])
    # A render slower than the webhook's wait: the call hears the words, the render goes on.
    eleven.hold = asyncio.Event()
    other = "Press 1 to agree to recording."
    assert await prompts.speak(org.id, other) == other
    eleven.hold.set()
    clip = await prompts.render(org.id, other, "elevenlabs", VOICES[1], "test")  # joins it
    assert len(eleven.requests) == 2
    assert await prompts.speak(org.id, other) == Play(urls.url(clip["id"]))
    # A failing engine: the words are said.
    eleven.fail_next(500, detail("internal_error", "down"))
    assert await prompts.speak(org.id, "Goodbye.") == "Goodbye."
    await prompts.aclose()
