"""The SignalWire REST client against the fake SignalWire over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from control.signalwire import (
    CallCreated,
    SignalWireClient,
    SignalWireConfig,
    SignalWireError,
    SignalWireRejected,
    SignalWireUnavailable,
)
from tests.conftest import timeout
from tests.support.fake_signalwire import (
    Fail,
    FakeSignalWire,
    Hang,
    create_error_body,
    running_fake_signalwire,
)

PROJECT = str(uuid.uuid4())
TOKEN = "PT" + uuid.uuid4().hex
CALLS_PATH = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls.json"
TO, FROM = "+15550100001", "+15550100002"
CXML_URL = "https://voice.example.com/laml/outbound"
STATUS_URL = "https://voice.example.com/laml/status"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MaxJitter(random.Random):
    """Full jitter that always draws the top of its range: the longest backoff allowed."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    async with running_fake_signalwire(PROJECT, TOKEN) as fake:
        yield fake


def client_for(
    http: aiohttp.ClientSession,
    space_url: str,
    *,
    clock: FakeClock | None = None,
    rng: random.Random | None = None,
    **overrides: Any,
) -> SignalWireClient:
    settings: dict[str, Any] = {
        "project_id": PROJECT,
        "api_token": TOKEN,
        "request_timeout_s": timeout(2),
        "total_timeout_s": timeout(4),
        "backoff_initial_s": 0.001,
        "backoff_max_s": 0.004,
    }
    settings.update(overrides)
    return SignalWireClient(
        http,
        SignalWireConfig(space_url=space_url, **settings),
        clock=clock or FakeClock(),
        rng=rng or random.Random(7),
    )


async def place_call(client: SignalWireClient, to: str = TO) -> CallCreated:
    return await client.create_call(to=to, from_=FROM, url=CXML_URL, status_callback=STATUS_URL)


def requests_counted(operation: str, outcome: str) -> float:
    labels = {"operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("voxsouth_signalwire_requests_total", labels) or 0.0


def circuit_open_gauge() -> float | None:
    return REGISTRY.get_sample_value("voxsouth_signalwire_circuit_open")


async def test_a_created_call_returns_signalwires_sid_and_sends_exactly_the_documented_form(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url)
    async with asyncio.timeout(timeout(5)):
        created = await place_call(client)
        only_completed = await client.create_call(
            to=TO,
            from_=FROM,
            url=CXML_URL,
            status_callback=STATUS_URL,
            status_callback_events=["completed"],
        )

    assert list(fake.calls) == [created.sid, only_completed.sid]  # SignalWire's sids, in order
    assert created.status == "queued"
    assert created.raw == fake.calls[created.sid]
    first, second = fake.requests
    assert (first.method, first.path) == ("POST", CALLS_PATH)
    assert first.form == [
        ("To", TO),
        ("From", FROM),
        ("Url", CXML_URL),
        ("Method", "POST"),
        ("StatusCallback", STATUS_URL),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
    ]
    assert [v for k, v in second.form if k == "StatusCallbackEvent"] == ["completed"]
    assert first.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    credentials = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    assert first.headers["Authorization"] == f"Basic {credentials}"


async def test_a_wrong_token_is_rejected_with_signalwires_code_and_not_retried(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url, api_token="PT-not-the-token")
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireRejected) as caught:
            await place_call(client)
    assert (caught.value.status, caught.value.code) == (401, "20003")
    assert caught.value.message == "Authenticate"
    assert len(fake.requests) == 1
    assert fake.calls == {}


async def test_a_missing_number_is_rejected_with_the_code_from_the_errors_array(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url)
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireRejected) as caught:
            await place_call(client, to="")
    assert (caught.value.status, caught.value.code) == (400, "21211")
    assert caught.value.message == "Missing required parameter: To"
    assert len(fake.requests) == 1
    assert fake.calls == {}


async def test_a_scripted_400_in_the_errors_shape_keeps_signalwires_string_code(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Fail(400, body=create_error_body("30010", "Price exceeds max"))])
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireRejected) as caught:
            await place_call(client_for(http, fake.url))
    assert (caught.value.code, caught.value.message) == ("30010", "Price exceeds max")
    assert len(fake.requests) == 1


async def test_two_server_errors_then_success_places_exactly_one_call(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Fail(500), Fail(500)])
    async with asyncio.timeout(timeout(5)):
        created = await place_call(client_for(http, fake.url))
    assert len(fake.requests) == 3
    assert list(fake.calls) == [created.sid]


async def test_retry_after_on_429_is_honoured_instead_of_the_backoff(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    # The backoff would wait 60 s, past the 4 s deadline, so the client would give up at once:
    # only honouring `Retry-After: 0` lets it retry, and succeed.
    client = client_for(http, fake.url, rng=MaxJitter(), backoff_initial_s=60.0, backoff_max_s=60.0)
    fake.script("create", [Fail(429, retry_after=0)])
    async with asyncio.timeout(timeout(5)):
        created = await place_call(client)
    assert len(fake.requests) == 2
    assert list(fake.calls) == [created.sid]


async def test_a_retry_after_beyond_the_deadline_fails_at_once_and_says_when_to_come_back(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Fail(429, retry_after=30)])
    async with asyncio.timeout(timeout(2)):  # waiting the 30 s would trip this
        with pytest.raises(SignalWireUnavailable) as caught:
            await place_call(client_for(http, fake.url))
    assert (caught.value.status, caught.value.code) == (429, "20429")
    assert caught.value.retry_after_s == 30
    assert len(fake.requests) == 1


async def test_persistent_server_errors_give_up_after_max_attempts_within_the_deadline(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Fail(500)] * 10)
    client = client_for(http, fake.url, max_attempts=3, total_timeout_s=timeout(1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable) as caught:
            await place_call(client)
    assert loop.time() - started < timeout(1)
    assert caught.value.status == 500
    assert len(fake.requests) == 3
    assert fake.calls == {}


async def test_a_backoff_that_would_end_past_the_deadline_is_not_slept(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Fail(503)] * 4)
    client = client_for(http, fake.url, rng=MaxJitter(), backoff_initial_s=60.0, backoff_max_s=60.0)
    async with asyncio.timeout(timeout(2)):  # sleeping the 60 s backoff would trip this
        with pytest.raises(SignalWireUnavailable) as caught:
            await place_call(client)
    assert caught.value.status == 503
    assert len(fake.requests) == 1


async def test_a_hung_create_call_fails_within_its_timeout_and_is_not_sent_twice(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Hang()])
    client = client_for(http, fake.url, request_timeout_s=timeout(0.2))
    timeouts_before = requests_counted("create_call", "timeout")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable) as caught:
            await place_call(client)
    assert loop.time() - started < timeout(4)  # well inside total_timeout_s
    assert "may have been carried out" in caught.value.message
    # SignalWire may well have created that call: a second request could place another one.
    assert len(fake.requests) == 1
    assert requests_counted("create_call", "timeout") == timeouts_before + 1


async def test_the_total_deadline_cuts_a_hung_request_short_of_its_own_timeout(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url, request_timeout_s=60.0, total_timeout_s=timeout(0.3))
    async with asyncio.timeout(timeout(5)):
        created = await place_call(client)
        fake.script("update", [Hang()])
        with pytest.raises(SignalWireUnavailable):
            await client.hang_up(created.sid)
    assert len(fake.requests_for("update")) == 1  # no time was left for a retry


async def test_hang_up_sends_status_completed_and_the_call_ends(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url)
    async with asyncio.timeout(timeout(5)):
        created = await place_call(client)
        await client.hang_up(created.sid)
    (update,) = fake.requests_for("update")
    assert (update.method, update.path) == (
        "POST",
        f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{created.sid}.json",
    )
    assert update.form == [("Status", "completed")]
    assert fake.calls[created.sid]["status"] == "completed"


async def test_hang_up_is_retried_after_a_timeout_because_asking_twice_is_harmless(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url, request_timeout_s=timeout(0.2))
    async with asyncio.timeout(timeout(5)):
        created = await place_call(client)
        fake.script("update", [Hang()])
        await client.hang_up(created.sid)
    assert len(fake.requests_for("update")) == 2
    assert fake.calls[created.sid]["status"] == "completed"


async def test_hanging_up_an_unknown_call_is_rejected_with_20404(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireRejected) as caught:
            await client_for(http, fake.url).hang_up(str(uuid.uuid4()))
    assert (caught.value.status, caught.value.code) == (404, "20404")
    assert len(fake.requests) == 1


async def test_a_success_without_a_sid_is_a_malformed_response_and_not_retried(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    fake.script("create", [Fail(201, body={"status": "queued"})])  # a 2xx without a sid
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireError) as caught:
            await place_call(client_for(http, fake.url))
    assert type(caught.value) is SignalWireError
    assert caught.value.message == "malformed response"
    assert len(fake.requests) == 1


async def test_connection_refused_is_retried_even_for_create_call(
    http: aiohttp.ClientSession,
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = requests_counted("create_call", "connection_error")
    client = client_for(http, f"http://127.0.0.1:{port}", max_attempts=3)
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable) as caught:
            await place_call(client)
    assert "cannot connect" in caught.value.message
    assert requests_counted("create_call", "connection_error") == before + 3


async def test_the_circuit_opens_after_consecutive_failures_and_closes_after_a_good_trial(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    client = client_for(
        http, fake.url, clock=clock, max_attempts=1, breaker_failures=2, breaker_reset_s=30.0
    )
    fake.script("create", [Fail(503), Fail(503)])
    refused_before = requests_counted("create_call", "circuit_open")
    async with asyncio.timeout(timeout(5)):
        for _ in range(2):
            with pytest.raises(SignalWireUnavailable):
                await place_call(client)
        assert circuit_open_gauge() == 1

        with pytest.raises(SignalWireUnavailable) as caught:
            await place_call(client)
        assert caught.value.retry_after_s == 30
        clock.advance(29.5)
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)
        assert len(fake.requests) == 2  # nothing sent while open
        assert requests_counted("create_call", "circuit_open") == refused_before + 2

        clock.advance(0.5)
        trial = await place_call(client)
        assert circuit_open_gauge() == 0
        after = await place_call(client)
    assert list(fake.calls) == [trial.sid, after.sid]
    assert len(fake.requests) == 4


async def test_a_failed_trial_opens_the_circuit_again(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    client = client_for(
        http, fake.url, clock=clock, max_attempts=2, breaker_failures=1, breaker_reset_s=30.0
    )
    fake.script("create", [Fail(503)] * 3)
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)  # two attempts, both 503: open
        assert len(fake.requests) == 2
        clock.advance(30)
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)  # the trial gets one attempt only
        assert len(fake.requests) == 3
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)  # open again: nothing sent
        assert len(fake.requests) == 3
        assert circuit_open_gauge() == 1
        clock.advance(30)
        created = await place_call(client)
    assert list(fake.calls) == [created.sid]
    assert circuit_open_gauge() == 0


async def test_while_a_trial_is_in_flight_other_calls_fail_fast(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    client = client_for(
        http, fake.url, clock=clock, max_attempts=1, breaker_failures=1, breaker_reset_s=30.0
    )
    hang = Hang()
    fake.script("create", [Fail(500), hang])
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)
        clock.advance(30)
        trial = asyncio.create_task(place_call(client))
        await fake.wait_for_requests(2)
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)
        assert len(fake.requests) == 2
        hang.release.set()
        created = await trial
    assert list(fake.calls) == [created.sid]


async def test_rejections_count_as_signalwire_being_up_for_the_breaker(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    client = client_for(http, fake.url, max_attempts=1, breaker_failures=2)
    fake.script("create", [Fail(503)])
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)
        with pytest.raises(SignalWireRejected):
            await place_call(client, to="")
        fake.script("create", [Fail(503)])
        with pytest.raises(SignalWireUnavailable):
            await place_call(client)
        created = await place_call(client)  # two failures, but not consecutive: still closed
    assert list(fake.calls) == [created.sid]
    assert len(fake.requests) == 4


async def test_the_api_token_never_reaches_logs_errors_or_reprs(
    fake: FakeSignalWire, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(http, fake.url, request_timeout_s=timeout(0.2))
    config = SignalWireConfig(space_url=fake.url, project_id=PROJECT, api_token=TOKEN)
    fake.script("create", [Fail(500), Fail(429, retry_after=0), Hang()])
    errors: list[SignalWireError] = []
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable) as unavailable:
            await place_call(client)
        errors.append(unavailable.value)
        with pytest.raises(SignalWireRejected) as rejected:
            await place_call(client_for(http, fake.url, api_token=TOKEN + "x"))
        errors.append(rejected.value)
    assert len(fake.requests) == 4
    encoded = base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
    seen = [caplog.text, repr(config), *(str(e) for e in errors), *(repr(e) for e in errors)]
    assert "retrying" in caplog.text  # the retries were logged
    for text in seen:
        assert TOKEN not in text
        assert encoded not in text


async def test_caller_id_verification_speaks_the_space_rest_api() -> None:
    async with running_fake_signalwire(PROJECT, TOKEN) as fake, aiohttp.ClientSession() as http:
        client = SignalWireClient(http, SignalWireConfig(fake.url, PROJECT, TOKEN))
        created = await client.create_verified_caller_id("+15558880001", "Front desk")
        assert created.verified is False and created.number == "+15558880001"
        [sent] = fake.requests_for("caller_id")
        assert (sent.method, sent.path) == ("POST", "/api/relay/rest/verified_caller_ids")
        assert sent.headers["Content-Type"] == "application/json"
        assert dict(sent.form) == {"number": "+15558880001", "name": "Front desk"}
        with pytest.raises(SignalWireRejected):
            await client.submit_caller_id_code(created.id, "000000")
        verified = await client.submit_caller_id_code(
            created.id, fake.verification_codes[created.id]
        )
        assert verified.verified is True
        submitted = fake.requests_for("caller_id")[-1]
        assert (submitted.method, submitted.path) == (
            "PUT",
            f"/api/relay/rest/verified_caller_ids/{created.id}/verification",
        )
        assert dict(submitted.form) == {"verification_code": fake.verification_codes[created.id]}
        await client.delete_caller_id(created.id)
        assert fake.caller_ids == {}
