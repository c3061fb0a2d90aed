"""Recording control against a real Postgres and the fake SignalWire on loopback.

Two controllers over one database stand for two server processes hearing the same feed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import ANY

import aiohttp
import pytest
from prometheus_client import REGISTRY

from control.recordings import RecordingController
from control.signalwire import (
    SignalWireClient,
    SignalWireConfig,
    SignalWireRejected,
    SignalWireUnavailable,
)
from storage import calls, recordings
from storage.db import Pool
from storage.tenancy import tenant
from tests.conftest import timeout
from tests.support.fake_signalwire import Fail, FakeSignalWire, Hang, running_fake_signalwire

PROJECT = str(uuid.uuid4())
TOKEN = "PT" + uuid.uuid4().hex
CALLBACK = "https://voice.example.com/laml/recording"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    async with running_fake_signalwire(PROJECT, TOKEN) as fake:
        yield fake


def client_for(
    http: aiohttp.ClientSession, fake: FakeSignalWire, **overrides: Any
) -> SignalWireClient:
    settings: dict[str, Any] = {
        "space_url": fake.url,
        "project_id": PROJECT,
        "api_token": TOKEN,
        "request_timeout_s": timeout(2),
        "total_timeout_s": timeout(4),
        "max_attempts": 2,
        "backoff_initial_s": 0.001,
        "backoff_max_s": 0.004,
    }
    settings.update(overrides)
    return SignalWireClient(http, SignalWireConfig(**settings), rng=random.Random(7))


@pytest.fixture
async def nodes(
    pool: Pool, fake: FakeSignalWire, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[RecordingController, RecordingController]]:
    """Two processes' controllers, each with its own client (and circuit breaker)."""
    a = RecordingController(pool, client_for(http, fake), CALLBACK)
    b = RecordingController(pool, client_for(http, fake), CALLBACK)
    try:
        yield a, b
    finally:
        await a.aclose(timeout(2))
        await b.aclose(timeout(2))


async def make_call(
    pool: Pool,
    fake: FakeSignalWire,
    *,
    rule: str | None,
    consent: bool | None = None,
    status: str = "in-progress",
) -> tuple[uuid.UUID, str]:
    """A call in a fresh org, known to the fake SignalWire as an inbound call in progress."""
    org_id = await calls.create_org(pool, "Recording org")
    call_sid = str(uuid.uuid4())
    ref = await calls.open_call(
        pool, org_id=org_id, call_sid=call_sid, account_sid=PROJECT, direction="inbound",
        from_number="+15550100002", to_number="+15550100001", status=status,
    )  # fmt: skip
    await pool.execute(
        "UPDATE calls SET consent_rule = $2, recording_consent = $3 WHERE id = $1",
        ref.id,
        rule,
        consent,
    )
    fake.add_call(call_sid)
    return ref.id, call_sid


async def set_consent(pool: Pool, call_id: uuid.UUID, consent: bool | None) -> None:
    await pool.execute("UPDATE calls SET recording_consent = $2 WHERE id = $1", call_id, consent)


async def recording_of(pool: Pool, call_id: uuid.UUID) -> tuple[str, str | None]:
    row = await pool.fetchrow(
        "SELECT recording_state, recording_sid FROM calls WHERE id = $1", call_id
    )
    assert row is not None
    return row["recording_state"], row["recording_sid"]


async def idle(*controllers: RecordingController) -> None:
    async with asyncio.timeout(timeout(5)):
        for controller in controllers:
            await controller.wait_idle()


def actions(action: str, outcome: str) -> float:
    labels = {"action": action, "outcome": outcome}
    return REGISTRY.get_sample_value("voxsouth_recording_actions_total", labels) or 0.0


# The client's two recording calls, on the wire.


async def test_start_and_stop_recording_send_the_documented_forms(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    call_sid = str(uuid.uuid4())
    fake.add_call(call_sid)
    client = client_for(http, fake)
    async with asyncio.timeout(timeout(5)):
        recording_sid = await client.start_recording(call_sid, CALLBACK)
        await client.stop_recording(call_sid, recording_sid)

    (start,) = fake.requests_for("create_recording")
    base = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{call_sid}/Recordings"
    assert (start.method, start.path) == ("POST", f"{base}.json")
    assert start.form == [
        ("RecordingChannels", "dual"),
        ("RecordingStatusCallback", CALLBACK),
        ("RecordingStatusCallbackEvent", "in-progress completed absent"),
        ("RecordingStatusCallbackMethod", "POST"),
        ("RecordingTrack", "both"),
    ]
    (stop,) = fake.requests_for("update_recording")
    assert (stop.method, stop.path) == ("POST", f"{base}/{recording_sid}.json")
    assert stop.form == [("Status", "stopped")]
    recording = fake.recordings[recording_sid]
    assert (recording["call_sid"], recording["channels"], recording["status"]) == (
        call_sid,
        2,
        "stopped",
    )


async def test_stopping_a_recording_signalwire_never_made_is_rejected_with_20404(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    call_sid = str(uuid.uuid4())
    fake.add_call(call_sid)
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireRejected) as caught:
            await client_for(http, fake).stop_recording(call_sid, str(uuid.uuid4()))
    assert (caught.value.status, caught.value.code) == (404, "20404")
    assert len(fake.requests) == 1


async def test_a_start_that_timed_out_after_sending_is_not_sent_again_but_a_stop_is(
    fake: FakeSignalWire, http: aiohttp.ClientSession
) -> None:
    call_sid = str(uuid.uuid4())
    fake.add_call(call_sid)
    client = client_for(http, fake, request_timeout_s=timeout(0.2))
    fake.script("create_recording", [Hang()])
    async with asyncio.timeout(timeout(5)):
        with pytest.raises(SignalWireUnavailable) as caught:
            await client.start_recording(call_sid, CALLBACK)
        assert "may have been carried out" in caught.value.message
        assert len(fake.requests_for("create_recording")) == 1

        recording_sid = await client.start_recording(call_sid, CALLBACK)
        fake.script("update_recording", [Hang()])
        await client.stop_recording(call_sid, recording_sid)
    assert len(fake.requests_for("update_recording")) == 2
    assert fake.recordings[recording_sid]["status"] == "stopped"


# The controller: consent decides, claims make one process act.


async def test_a_one_party_call_is_recorded_once_when_two_processes_hear_its_stream_start(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, call_sid = await make_call(pool, fake, rule="one_party")
    hang = Hang()  # hold the first start in flight while the others try their claims
    fake.script("create_recording", [hang])
    a.stream_started(call_id)
    async with asyncio.timeout(timeout(5)):
        await fake.wait_for_requests(1)  # a's claim is made and its start in flight
    b.stream_started(call_id)
    a.stream_started(call_id)
    await idle(b)
    assert await recording_of(pool, call_id) == ("starting", None)
    hang.release.set()
    await idle(a, b)

    (start,) = fake.requests_for("create_recording")
    assert start.path.endswith(f"/Calls/{call_sid}/Recordings.json")
    [recording_sid] = fake.recordings
    assert await recording_of(pool, call_id) == ("recording", recording_sid)


async def test_an_all_party_call_is_recorded_only_once_consent_is_granted(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, _ = await make_call(pool, fake, rule="all_party")
    undecided_rule_id, _ = await make_call(pool, fake, rule=None)  # treated as all-party
    for node in nodes:
        node.stream_started(call_id)
        node.stream_started(undecided_rule_id)
    await idle(a, b)
    assert fake.requests == []
    assert await recording_of(pool, call_id) == ("none", None)

    await set_consent(pool, call_id, True)
    a.consent_decided(call_id, "granted")
    b.consent_decided(call_id, "granted")
    await idle(a, b)
    [recording_sid] = fake.recordings
    assert await recording_of(pool, call_id) == ("recording", recording_sid)
    assert await recording_of(pool, undecided_rule_id) == ("none", None)


async def test_a_refusal_after_the_start_stops_the_recording_through_signalwire(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, call_sid = await make_call(pool, fake, rule="one_party")
    a.stream_started(call_id)
    await idle(a)
    [recording_sid] = fake.recordings
    stops_before = actions("stop", "ok")

    await set_consent(pool, call_id, False)
    a.consent_decided(call_id, "refused")
    b.consent_decided(call_id, "refused")
    await idle(a, b)
    (stop,) = fake.requests_for("update_recording")
    assert stop.path.endswith(f"/Calls/{call_sid}/Recordings/{recording_sid}.json")
    assert fake.recordings[recording_sid]["status"] == "stopped"
    assert await recording_of(pool, call_id) == ("stopped", recording_sid)
    assert actions("stop", "ok") == stops_before + 1

    await set_consent(pool, call_id, True)  # a person overrides: a stopped recording stays so
    a.consent_decided(call_id, "granted")
    a.stream_started(call_id)
    await idle(a)
    assert len(fake.requests_for("create_recording")) == 1


async def test_a_refusal_before_any_start_means_nothing_is_ever_recorded(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, _ = await make_call(pool, fake, rule="one_party")
    await set_consent(pool, call_id, False)
    a.consent_decided(call_id, "refused")
    b.consent_decided(call_id, "refused")
    await idle(a, b)
    a.stream_started(call_id)  # the stream starts later (or again)
    b.stream_started(call_id)
    await idle(a, b)
    assert fake.requests == []
    assert await recording_of(pool, call_id) == ("none", None)


async def test_a_refusal_while_the_start_is_in_flight_stops_the_recording_once_started(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, _ = await make_call(pool, fake, rule="one_party")
    hang = Hang()
    fake.script("create_recording", [hang])
    a.stream_started(call_id)
    async with asyncio.timeout(timeout(5)):
        await fake.wait_for_requests(1)
    await set_consent(pool, call_id, False)
    b.consent_decided(call_id, "refused")  # finds 'starting': nothing it can stop yet
    await idle(b)
    assert fake.requests_for("update_recording") == []

    hang.release.set()
    await idle(a)
    [recording_sid] = fake.recordings
    assert len(fake.requests_for("update_recording")) == 1
    assert fake.recordings[recording_sid]["status"] == "stopped"
    assert await recording_of(pool, call_id) == ("stopped", recording_sid)


# Recordings SignalWire reports that no claim accounts for (status callbacks, in progress).


async def start_unanswered(http: aiohttp.ClientSession, fake: FakeSignalWire, call_sid: str) -> str:
    """A recording SignalWire runs whose start's answer never reached the call's row (a start
    that timed out after sending, or a process that died mid-start): its SID."""
    async with asyncio.timeout(timeout(5)):
        return await client_for(http, fake).start_recording(call_sid, CALLBACK)


async def test_a_recording_whose_start_went_unanswered_becomes_the_calls_and_a_refusal_stops_it(
    pool: Pool,
    fake: FakeSignalWire,
    http: aiohttp.ClientSession,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, call_sid = await make_call(pool, fake, rule="one_party")
    recording_sid = await start_unanswered(http, fake, call_sid)
    a.recording_in_progress(call_sid, recording_sid)
    await idle(a)
    assert await recording_of(pool, call_id) == ("recording", recording_sid)
    a.stream_started(call_id)  # and no second recording is started beside it
    await idle(a)
    assert len(fake.requests_for("create_recording")) == 1

    await set_consent(pool, call_id, False)
    b.consent_decided(call_id, "refused")
    await idle(b)
    assert fake.recordings[recording_sid]["status"] == "stopped"
    assert await recording_of(pool, call_id) == ("stopped", recording_sid)


@pytest.mark.parametrize("state", ["refused", "undecided all-party", "already recorded"])
async def test_a_reported_recording_nobody_may_keep_is_stopped_at_once(
    pool: Pool,
    fake: FakeSignalWire,
    http: aiohttp.ClientSession,
    nodes: tuple[RecordingController, RecordingController],
    state: str,
) -> None:
    a, _ = nodes
    if state == "refused":
        call_id, call_sid = await make_call(pool, fake, rule="one_party", consent=False)
    elif state == "undecided all-party":
        call_id, call_sid = await make_call(pool, fake, rule="all_party")
    else:
        call_id, call_sid = await make_call(pool, fake, rule="one_party")
        a.stream_started(call_id)
        await idle(a)
    before = await recording_of(pool, call_id)
    stops_before = actions("stop", "ok")
    extra = await start_unanswered(http, fake, call_sid)
    a.recording_in_progress(call_sid, extra)
    if before[1] is not None:
        a.recording_in_progress(call_sid, before[1])  # the call's own: left alone
    await idle(a)
    assert fake.recordings[extra]["status"] == "stopped"
    assert await recording_of(pool, call_id) == before
    assert [r.path for r in fake.requests_for("update_recording")] == [
        f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{call_sid}/Recordings/{extra}.json"
    ]
    assert actions("stop", "ok") == stops_before + 1


async def test_a_callback_ahead_of_the_starts_answer_keeps_the_recording(
    pool: Pool, fake: FakeSignalWire
) -> None:
    call_id, call_sid = await make_call(pool, fake, rule="one_party")
    assert await recordings.claim_start(pool, call_id) == call_sid
    recording_sid = str(uuid.uuid4())
    # SignalWire's in-progress callback lands before its answer to the start does.
    assert await recordings.account_for(pool, call_sid, recording_sid) == "adopted"
    assert await recordings.started(pool, call_id, recording_sid)  # still allowed: not stopped
    assert await recording_of(pool, call_id) == ("recording", recording_sid)
    assert await recordings.account_for(pool, call_sid, recording_sid) == "ours"
    assert await recordings.account_for(pool, str(uuid.uuid4()), recording_sid) == "unknown_call"


async def test_a_start_whose_process_died_is_released_and_made_by_exactly_one_sweeper(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    died, died_sid = await make_call(pool, fake, rule="one_party")
    refused_since, _ = await make_call(pool, fake, rule="one_party")
    in_flight, _ = await make_call(pool, fake, rule="one_party")
    for call_id in (died, refused_since, in_flight):
        assert await recordings.claim_start(pool, call_id) is not None  # then nothing more
    await pool.execute(
        "UPDATE calls SET recording_claimed_at = now() - interval '10 minutes' "
        "WHERE id = ANY($1::uuid[])",
        [died, refused_since],
    )
    await set_consent(pool, refused_since, False)

    await asyncio.gather(a.sweep(), b.sweep())
    await idle(a, b)
    (start,) = fake.requests_for("create_recording")
    assert start.path.endswith(f"/Calls/{died_sid}/Recordings.json")
    [recording_sid] = fake.recordings
    assert await recording_of(pool, died) == ("recording", recording_sid)
    assert await recording_of(pool, refused_since) == ("none", None)
    assert await recording_of(pool, in_flight) == ("starting", None)  # young: left alone


async def test_a_signalwire_failure_puts_the_call_back_to_none_and_is_counted(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = nodes
    call_id, _ = await make_call(pool, fake, rule="one_party")
    failed_before = actions("start", "failed")
    fake.script("create_recording", [Fail(503), Fail(503)])  # both of the client's attempts
    a.stream_started(call_id)
    await idle(a)
    assert await recording_of(pool, call_id) == ("none", None)
    assert actions("start", "failed") == failed_before + 1
    assert fake.recordings == {}
    assert "recording start for call" in caplog.text

    ok_before = actions("start", "ok")
    a.stream_started(call_id)  # a later trigger may try again, and succeed
    await idle(a)
    [recording_sid] = fake.recordings
    assert await recording_of(pool, call_id) == ("recording", recording_sid)
    assert actions("start", "ok") == ok_before + 1


async def test_a_call_signalwire_will_not_record_goes_back_to_none(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, _ = nodes
    call_id, call_sid = await make_call(pool, fake, rule="one_party")
    fake.calls[call_sid]["status"] = "completed"  # ended at SignalWire; our callback is late
    a.stream_started(call_id)
    await idle(a)
    (start,) = fake.requests_for("create_recording")  # a rejection is not retried
    assert await recording_of(pool, call_id) == ("none", None)


async def test_a_finished_call_is_never_claimed(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, _ = nodes
    call_id, _ = await make_call(pool, fake, rule="one_party", consent=True, status="completed")
    a.stream_started(call_id)
    a.consent_decided(call_id, "granted")
    await idle(a)
    assert fake.requests == []


async def test_a_failed_stop_keeps_the_recording_claimable_and_is_counted(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, b = nodes
    call_id, _ = await make_call(pool, fake, rule="one_party")
    a.stream_started(call_id)
    await idle(a)
    [recording_sid] = fake.recordings
    await set_consent(pool, call_id, False)
    failed_before = actions("stop", "failed")
    fake.script("update_recording", [Fail(500), Fail(500)])
    a.consent_decided(call_id, "refused")
    await idle(a)
    assert actions("stop", "failed") == failed_before + 1
    assert await recording_of(pool, call_id) == ("recording", recording_sid)

    b.consent_decided(call_id, "refused")  # the next refusal (or retry) gets it stopped
    await idle(b)
    assert fake.recordings[recording_sid]["status"] == "stopped"
    assert await recording_of(pool, call_id) == ("stopped", recording_sid)


async def test_stopping_a_recording_signalwire_no_longer_has_marks_it_stopped(
    pool: Pool,
    fake: FakeSignalWire,
    nodes: tuple[RecordingController, RecordingController],
) -> None:
    a, _ = nodes
    call_id, _ = await make_call(pool, fake, rule="one_party", consent=False)
    gone = str(uuid.uuid4())
    await pool.execute(
        "UPDATE calls SET recording_state = 'recording', recording_sid = $2 WHERE id = $1",
        call_id,
        gone,
    )
    a.consent_decided(call_id, "refused")
    await idle(a)
    assert len(fake.requests_for("update_recording")) == 1  # 404: not retried
    assert await recording_of(pool, call_id) == ("stopped", gone)


async def test_without_signalwire_credentials_nothing_is_claimed_and_it_is_counted(
    pool: Pool, fake: FakeSignalWire, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="control.recordings")
    controller = RecordingController(pool, None, CALLBACK)
    call_id, _ = await make_call(pool, fake, rule="one_party")
    before = actions("start", "unconfigured")
    controller.stream_started(call_id)
    controller.consent_decided(call_id, "granted")
    await idle(controller)
    await controller.aclose()
    assert actions("start", "unconfigured") == before + 2
    assert await recording_of(pool, call_id) == ("none", None)  # left for a configured process
    warnings = [r for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1


# Recording status callbacks.


async def test_apply_status_upserts_keeps_the_final_status_and_ignores_unknown_calls(
    pool: Pool, fake: FakeSignalWire
) -> None:
    call_id, call_sid = await make_call(pool, fake, rule="one_party")
    org_id = await pool.fetchval("SELECT org_id FROM calls WHERE id = $1", call_id)
    sid = str(uuid.uuid4())
    url = f"https://example.signalwire.com/api/laml/2010-04-01/Accounts/{PROJECT}/Recordings/{sid}"

    async def report(status: str, **fields: Any) -> bool:
        values: dict[str, Any] = {"url": None, "duration_s": None, "channels": None}
        values.update(fields)
        return await recordings.apply_status(
            pool, call_sid=call_sid, recording_sid=sid, status=status, **values
        )

    assert await report("in-progress", url=url, channels=2)
    assert await report("completed", url=url, duration_s=42, channels=2)
    assert await report("in-progress")  # late and out of order: changes nothing
    assert not await recordings.apply_status(
        pool, call_sid=str(uuid.uuid4()), recording_sid=str(uuid.uuid4()), status="completed",
        url=None, duration_s=None, channels=None,
    )  # fmt: skip

    async with tenant(pool, org_id) as conn:
        call = await calls.get_call(conn, org_id, call_id, with_transcript=False)
    assert call is not None
    assert call["recordings"] == [
        {"recording_sid": sid, "status": "completed", "has_audio": True, "duration_s": 42,
         "channels": 2, "created_at": ANY, "updated_at": ANY}
    ]  # fmt: skip
    # Its public media URL is kept for the server, never handed out.
    assert await pool.fetchval("SELECT url FROM recordings WHERE recording_sid = $1", sid) == url
    other_org = await calls.create_org(pool, "Other org")
    async with tenant(pool, other_org) as conn:
        assert await calls.get_call(conn, other_org, call_id, with_transcript=False) is None
        # Row-level security hides the rows even when asked with the other org's id.
        rows = await conn.fetch("SELECT 1 FROM recordings WHERE call_id = $1", call_id)
        assert rows == []
    assert await pool.fetchval("SELECT count(*) FROM recordings WHERE recording_sid = $1", sid) == 1
