"""One track's session with a cloud speech service (media/transcription/cloud/stream.py) against
the fake AssemblyAI and Deepgram servers: what it hears, and every way a session fails mapped to
exactly one ServiceError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from bench.fake_service import free_port
from media.transcription.cloud.assemblyai import AssemblyAIProtocol
from media.transcription.cloud.deepgram import DeepgramProtocol
from media.transcription.cloud.results import Ended, Final, Result, ServiceError
from media.transcription.cloud.stream import SpeechProtocol, StreamingTrack
from server.simulator.fake_stt import running_fake_assemblyai, running_fake_deepgram
from tests.conftest import timeout
from tests.server.test_fake_stt import KEY, TWO_BURSTS, DurationEngine

Running = Callable[..., AbstractAsyncContextManager[Any]]
SERVICES: dict[str, tuple[Running, Callable[[str], SpeechProtocol]]] = {
    "assemblyai": (
        running_fake_assemblyai,
        lambda url: AssemblyAIProtocol(8000, "pcm_mulaw", base_url=url),
    ),
    "deepgram": (running_fake_deepgram, lambda url: DeepgramProtocol(8000, "mulaw", base_url=url)),
}
FRAME = 160
"""One 20 ms μ-law frame at 8 kHz, as SignalWire sends them."""


class Heard:
    def __init__(self) -> None:
        self.results: list[Result] = []

    def __call__(self, result: Result) -> None:
        self.results.append(result)

    @property
    def errors(self) -> list[ServiceError]:
        return [r for r in self.results if isinstance(r, ServiceError)]


@asynccontextmanager
async def session(
    service: str, *, key: str = KEY, connect_timeout_s: float = 5.0, **faults: Any
) -> AsyncIterator[tuple[StreamingTrack, Heard, SpeechProtocol]]:
    running, make_protocol = SERVICES[service]
    if service == "assemblyai":
        faults.setdefault("rate_burst_s", 10)  # the test feeds faster than real time
    async with running(DurationEngine(), api_key=KEY, **faults) as fake:
        protocol = make_protocol(fake.url)
        heard = Heard()
        track = StreamingTrack(protocol, key, heard, connect_timeout_s=connect_timeout_s)
        track.start()
        try:
            yield track, heard, protocol
        finally:
            await track.close()


def feed(track: StreamingTrack, audio: bytes) -> None:
    for i in range(0, len(audio), FRAME):
        track.feed(audio[i : i + FRAME])


@pytest.mark.parametrize("service", SERVICES)
async def test_what_was_said_arrives_as_finals_then_the_end(service: str) -> None:
    async with session(service) as (track, heard, _):
        feed(track, TWO_BURSTS)
        await track.finish(timeout(10))
    finals = [r.text for r in heard.results if isinstance(r, Final)]
    assert finals == ["Heard 1.2 seconds.", "Heard 1.0 seconds."]
    assert isinstance(heard.results[-1], Ended)
    assert track.error is None and heard.errors == []


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_nobody_answers_at_is_unreachable(service: str) -> None:
    _, make_protocol = SERVICES[service]
    heard = Heard()
    track = StreamingTrack(make_protocol(f"ws://127.0.0.1:{free_port()}"), KEY, heard)
    track.start()
    await asyncio.wait_for(track.ended.wait(), timeout(5))
    (error,) = heard.errors
    assert (error.code, error.retryable) == ("unreachable", True)
    assert track.error == error


@pytest.mark.parametrize(("status", "retryable"), [(401, False), (503, True)])
@pytest.mark.parametrize("service", SERVICES)
async def test_a_refused_handshake_says_its_status(
    service: str, status: int, retryable: bool
) -> None:
    async with session(service, reject_status=status) as (track, heard, _):
        await asyncio.wait_for(track.ended.wait(), timeout(5))
    (error,) = heard.errors
    assert (error.code, error.retryable) == (f"http_{status}", retryable)


@pytest.mark.parametrize("code", [1011, 3007])  # 3000 and up: the services' own codes
@pytest.mark.parametrize("service", SERVICES)
async def test_a_close_mid_session_is_mapped_by_its_code(service: str, code: int) -> None:
    async with session(service, close_after_s=(1.0, code, "boom")) as (track, heard, protocol):
        feed(track, TWO_BURSTS)
        await asyncio.wait_for(track.ended.wait(), timeout(5))
        feed(track, TWO_BURSTS)  # after the failure: dropped, nothing raised
    assert heard.errors == [protocol.close_error(code, "boom")]
    assert not any(isinstance(r, Ended) for r in heard.results)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_message_that_breaks_the_protocol_ends_the_session(service: str) -> None:
    async with session(service, malformed_after_s=0.5) as (track, heard, _):
        feed(track, TWO_BURSTS)
        await asyncio.wait_for(track.ended.wait(), timeout(5))
    (error,) = heard.errors
    assert error.code == "malformed"


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_that_never_confirms_the_end_times_out(service: str) -> None:
    async with session(service, silent=True) as (track, heard, _):
        feed(track, TWO_BURSTS)
        await track.finish(0.5)
    (error,) = heard.errors
    assert (error.code, error.retryable) == ("end_timeout", True)
    assert track.ended.is_set()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_track_closed_before_its_end_reports_nothing(service: str) -> None:
    async with session(service) as (track, heard, _):
        feed(track, TWO_BURSTS)
        await track.close()
    assert track.ended.is_set() and heard.errors == []


@pytest.mark.parametrize("service", SERVICES)
async def test_a_silence_is_bridged_with_keepalives_the_service_receives(service: str) -> None:
    running, make_protocol = SERVICES[service]
    async with running(DurationEngine(), api_key=KEY) as fake:
        protocol = make_protocol(fake.url)
        kept_alive = asyncio.Event()
        keepalive = protocol.keepalive

        def counted() -> str:
            kept_alive.set()
            return keepalive()

        protocol.keepalive = counted  # type: ignore[method-assign]
        heard = Heard()
        track = StreamingTrack(protocol, KEY, heard, keepalive_s=0.1)
        track.start()
        feed(track, TWO_BURSTS[: 8 * 500])  # half a second, then nothing: a hold
        await asyncio.wait_for(kept_alive.wait(), timeout(5))
        await track.finish(timeout(10))
        (ended,) = await fake.wait_ended(1, timeout(5))
    assert keepalive() in ended.messages
    assert heard.errors == [] and isinstance(heard.results[-1], Ended)
