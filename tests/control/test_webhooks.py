"""The LaML webhooks over HTTP against the real server and Postgres."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp

from server.app import RunningServer
from storage import calls
from storage.db import Pool
from tests.support.calls import answer_call, simulator


def voice_params(to: str, call_sid: str | None = None) -> dict[str, str]:
    return {
        "AccountSid": str(uuid.uuid4()),
        "CallSid": call_sid or str(uuid.uuid4()),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+15550199999",
        "To": to,
    }


async def test_unsigned_and_badly_signed_webhooks_are_refused_with_a_json_error(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    params = voice_params(org_number[1])
    for headers in ({}, {"X-SignalWire-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}):
        async with http.post(
            f"{srv.http_url}/laml/voice", data=params, headers={**headers, "X-Request-ID": "req-1"}
        ) as resp:
            assert resp.status == 403
            body = await resp.json()
    assert body["error"]["code"] == "FORBIDDEN"
    assert body["error"]["request_id"] == "req-1"
    assert (
        await pool.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", params["CallSid"])
        == 0
    )
    async with http.get(f"{srv.http_url}/metrics") as resp:
        assert 'voxsouth_webhook_signature_failures_total{route="voice"}' in await resp.text()


async def test_a_signature_over_another_url_is_refused(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str]
) -> None:
    sim = simulator(http, srv, srv.settings)
    from control.signatures import compute_signature

    params = voice_params(org_number[1])
    wrong = compute_signature(
        srv.settings.secret("signalwire_signing_key"),
        "https://elsewhere.example/laml/voice",
        params.items(),
    )
    async with http.post(
        f"{srv.http_url}/laml/voice", data=params, headers={"X-Twilio-Signature": wrong}
    ) as resp:
        assert resp.status == 403
    status, _ = await sim.post_signed(f"{srv.public_url}/laml/voice", params)
    assert status == 200  # the same request signed over the right URL


async def test_voice_webhook_answers_laml_that_streams_both_tracks_with_a_token(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    org_id, number = org_number
    params = voice_params(f"sip:{number}@sip.swire.io")
    status, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/voice", params
    )
    assert status == 200
    root = ET.fromstring(body)
    assert [child.tag for child in root] == ["Say", "Start", "Pause"]
    assert root[0].text == srv.settings.disclosure_text
    stream = root.find("./Start/Stream")
    assert stream is not None
    assert stream.attrib["url"] == srv.media_url
    assert stream.attrib["track"] == "both_tracks"
    assert stream.attrib["statusCallback"] == f"{srv.public_url}/laml/stream-status"
    [token] = [
        p.attrib["value"] for p in stream.findall("Parameter") if p.attrib["name"] == "token"
    ]
    assert token

    row = await pool.fetchrow("SELECT * FROM calls WHERE call_sid = $1", params["CallSid"])
    assert row is not None
    assert row["org_id"] == org_id and row["to_number"] == number
    assert row["status"] == "ringing" and row["direction"] == "inbound"

    # SignalWire retries a webhook it did not see answered: the same call, not a second one.
    status, _ = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/voice", params
    )
    assert status == 200
    assert (
        await pool.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", params["CallSid"])
        == 1
    )


async def test_a_number_with_a_dial_target_is_connected_to_it(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    org_id = await calls.create_org(pool, "Dialing org")
    number = "+1555" + str(uuid.uuid4().int)[:7]
    await calls.add_phone_number(pool, org_id, number, dial_target="+15557654321")
    _, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/voice", voice_params(number)
    )
    root = ET.fromstring(body)
    assert [child.tag for child in root] == ["Say", "Start", "Dial"]
    assert root[2].text == "+15557654321"


async def test_a_call_to_an_unknown_number_is_told_so_and_hung_up(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    params = voice_params("+15550000999")
    status, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/voice", params
    )
    assert status == 200
    assert [child.tag for child in ET.fromstring(body)] == ["Say", "Hangup"]
    assert (
        await pool.fetchval("SELECT count(*) FROM calls WHERE call_sid = $1", params["CallSid"])
        == 0
    )


async def test_status_callbacks_only_move_a_call_forward(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    answered = await answer_call(http, srv, srv.settings, org_number[1])
    sim = simulator(http, srv, srv.settings)
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    async def status(value: str, seq: int, at: datetime, duration: int | None = None) -> None:
        params = {
            "AccountSid": str(uuid.uuid4()),
            "CallSid": answered.call_sid,
            "CallStatus": value,
            "SequenceNumber": str(seq),
            "Timestamp": format_datetime(at),
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
        code, _ = await sim.post_signed(f"{srv.public_url}/laml/status", params)
        assert code == 204

    async def row() -> dict[str, object]:
        record = await pool.fetchrow(
            "SELECT status, answered_at, ended_at, duration_seconds FROM calls WHERE call_sid = $1",
            answered.call_sid,
        )
        assert record is not None
        return dict(record)

    await status("in-progress", 1, t0)
    await status("ringing", 0, t0 - timedelta(seconds=5))  # late: ignored
    assert (await row())["status"] == "in-progress"
    await status("completed", 3, t0 + timedelta(seconds=42), duration=42)
    await status("in-progress", 2, t0 + timedelta(seconds=1))  # out of order: ignored
    await status("completed", 3, t0 + timedelta(seconds=99), duration=99)  # repeated: no change
    assert await row() == {
        "status": "completed",
        "answered_at": t0,
        "ended_at": t0 + timedelta(seconds=42),
        "duration_seconds": 42,
    }


async def test_stream_status_callbacks_record_the_stream_and_never_reopen_it(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    answered = await answer_call(http, srv, srv.settings, org_number[1])
    sim = simulator(http, srv, srv.settings)
    stream_sid = str(uuid.uuid4())
    for event in ("stream-started", "stream-stopped", "stream-started"):
        code, _ = await sim.post_signed(
            f"{srv.public_url}/laml/stream-status",
            {
                "CallSid": answered.call_sid,
                "StreamSid": stream_sid,
                "StreamName": "voxsouth-x",
                "StreamEvent": event,
                "Timestamp": "2026-11-25T12:00:00Z",
            },
        )
        assert code == 204
    record = await pool.fetchrow(
        "SELECT status, name FROM media_streams WHERE stream_sid = $1", stream_sid
    )
    assert record is not None and dict(record) == {"status": "stopped", "name": "voxsouth-x"}


async def test_malformed_callbacks_get_400_with_the_field_named(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    sim = simulator(http, srv, srv.settings)
    code, body = await sim.post_signed(
        f"{srv.public_url}/laml/status", {"CallSid": "x", "CallStatus": "exploded"}
    )
    assert code == 400 and "CallStatus" in body
    code, body = await sim.post_signed(f"{srv.public_url}/laml/voice", {"To": "+15550100000"})
    assert code == 400 and "CallSid" in body


async def test_health_and_metrics(srv: RunningServer, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{srv.http_url}/health/live") as resp:
        assert resp.status == 200
    async with http.get(f"{srv.http_url}/health/ready") as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["checks"] == {"database": True, "migrations": True, "transcription": True}
    async with http.get(f"{srv.http_url}/metrics") as resp:
        text = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    for name in (
        "voxsouth_media_streams_active",
        "voxsouth_http_requests_total",
        "voxsouth_transcription_latency_seconds_bucket",
        "voxsouth_db_write_seconds_bucket",
    ):
        assert name in text
    async with http.get(f"{srv.http_url}/no/such/route") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "NOT_FOUND"


async def test_the_answer_webhook_of_a_call_we_placed_is_routed_by_our_from_number(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    org_id, number = org_number
    params = {**voice_params("+15557770000"), "From": number, "Direction": "outbound-api"}
    status, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/voice", params
    )
    assert status == 200 and ET.fromstring(body).find("./Start/Stream") is not None
    row = await pool.fetchrow(
        "SELECT org_id, direction, from_number, to_number FROM calls WHERE call_sid = $1",
        params["CallSid"],
    )
    assert row is not None and dict(row) == {
        "org_id": org_id,
        "direction": "outbound-api",
        "from_number": number,
        "to_number": "+15557770000",
    }
