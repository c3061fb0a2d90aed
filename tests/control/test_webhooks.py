"""The LaML webhooks over HTTP against the real server and Postgres."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from prometheus_client import REGISTRY

from server.app import RunningServer
from storage import calls
from storage.db import Pool
from tests.support.calls import answer_call, simulator
from tests.support.numbers import new_number


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
    call_id = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", params["CallSid"])
    assert stream.attrib["url"] == f"{srv.media_url}/{call_id}"
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
    number = new_number()
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


def us_number(area_code: str) -> str:
    """A fresh number in `area_code`: a valid US exchange, never one another test owns."""
    return f"+1{area_code}{2_000_000 + uuid.uuid4().int % 8_000_000}"


async def owned_number(
    pool: Pool, area_code: str, *, dial_target: str | None = None
) -> tuple[uuid.UUID, str]:
    org_id = await calls.create_org(pool, f"Org {area_code}")
    number = us_number(area_code)
    await calls.add_phone_number(pool, org_id, number, dial_target=dial_target)
    return org_id, number


async def post_voice(
    srv: RunningServer, http: aiohttp.ClientSession, params: dict[str, str]
) -> ET.Element:
    status, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/voice", params
    )
    assert status == 200, body
    return ET.fromstring(body)


async def consent_rule_of(pool: Pool, call_sid: str) -> tuple[str, str]:
    row = await pool.fetchrow(
        "SELECT consent_rule, consent_rule_reason FROM calls WHERE call_sid = $1", call_sid
    )
    assert row is not None
    return row["consent_rule"], row["consent_rule_reason"]


async def test_a_call_from_an_all_party_state_is_stored_as_all_party_with_the_state_named(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    # The org would record on one party's consent, and answers in a one-party state: the
    # California caller's law still wins.
    org_id, number = await owned_number(pool, "303")
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org_id
    )
    caller = us_number("415")
    params = {**voice_params(number), "From": caller}
    await post_voice(srv, http, params)
    rule, reason = await consent_rule_of(pool, params["CallSid"])
    assert rule == "all_party"
    assert "CA" in reason and "+1415" in reason
    assert caller not in reason  # an area code, never a whole number


async def test_a_call_between_two_one_party_states_is_stored_as_one_party(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    _, number = await owned_number(pool, "303")  # Colorado; the org's default is all-party
    params = {**voice_params(number), "From": us_number("212")}  # New York
    await post_voice(srv, http, params)
    rule, reason = await consent_rule_of(pool, params["CallSid"])
    assert rule == "one_party"
    assert "NY" in reason and "CO" in reason


@pytest.mark.parametrize("consent_default", ["one_party", "all_party"])
@pytest.mark.parametrize("caller", ["+15550123456", "sip:alice@example.com"])
async def test_a_call_with_an_unknown_party_follows_the_orgs_default(
    srv: RunningServer,
    http: aiohttp.ClientSession,
    pool: Pool,
    consent_default: str,
    caller: str,
) -> None:
    # The org's own number is in a one-party state: the unknown caller alone decides it.
    org_id, number = await owned_number(pool, "303")
    await pool.execute(
        "UPDATE organizations SET consent_default = $2 WHERE id = $1", org_id, consent_default
    )
    params = {**voice_params(number), "From": caller}
    await post_voice(srv, http, params)
    rule, reason = await consent_rule_of(pool, params["CallSid"])
    assert rule == consent_default
    assert reason.startswith("org default")
    stored = await pool.fetchval(
        "SELECT from_number FROM calls WHERE call_sid = $1", params["CallSid"]
    )
    assert stored == caller


async def test_the_disclosure_and_the_call_start_are_recorded_once_however_often_delivered(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    org_id, number = org_number
    params = voice_params(number)
    for _ in range(2):
        root = await post_voice(srv, http, params)
        assert root[0].tag == "Say" and root[0].text == srv.settings.disclosure_text
    call_id = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", params["CallSid"])
    events = await pool.fetch(
        "SELECT org_id, kind, detector, verdict, offset_ms, evidence FROM consent_events "
        "WHERE call_id = $1",
        call_id,
    )
    assert [dict(e) for e in events] == [
        {
            "org_id": org_id,
            "kind": "disclosure",
            "detector": "laml_say",
            "verdict": None,
            "offset_ms": 0,
            "evidence": srv.settings.disclosure_text,
        }
    ]
    started = await pool.fetch(
        "SELECT org_id, payload->>'call_sid' AS call_sid, payload->>'consent_rule' AS rule "
        "FROM feed_events WHERE call_id = $1 AND type = 'call_started'",
        call_id,
    )
    assert [dict(s) for s in started] == [
        {"org_id": org_id, "call_sid": params["CallSid"], "rule": "all_party"}
    ]
    admission = await calls.call_admission(pool, call_id, org_id)
    assert admission is not None and admission["played_by"] == "laml_say"


async def test_without_a_disclosure_no_disclosure_evidence_is_stored(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    http: aiohttp.ClientSession,
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    for blank in ("", "  "):
        async with start_server(disclosure_text=blank) as server:
            params = voice_params(org_number[1])
            root = await post_voice(server, http, params)
        assert [child.tag for child in root] == ["Start", "Pause"], blank
        stored = await pool.fetchval(
            "SELECT count(*) FROM consent_events e JOIN calls c ON c.id = e.call_id "
            "WHERE c.call_sid = $1",
            params["CallSid"],
        )
        assert stored == 0, f"disclosure evidence stored for {blank!r}, none was played"


async def test_an_asking_org_plays_a_question_answered_by_voice_or_keypad(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    org_id = await calls.create_org(pool, "Asking org", consent_mode="ask")
    number = new_number()
    await calls.add_phone_number(pool, org_id, number)
    params = voice_params(number)
    root = await post_voice(srv, http, params)
    assert [child.tag for child in root] == ["Start", "Gather"]
    gather = root[1]
    assert gather.attrib["input"] == "dtmf speech"
    [say] = list(gather)
    assert say.text is not None and srv.settings.disclosure_text in say.text
    assert "Is that okay with you?" in say.text and "press 1" in say.text
    call_id = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", params["CallSid"])
    admission = await calls.call_admission(pool, call_id, org_id)
    assert admission is not None and admission["played_by"] == "laml_ask"


# Keypad consent: the disclosure is the prompt of a one-digit <Gather>.


async def keypad_org(pool: Pool, *, dial_target: str | None = None) -> tuple[uuid.UUID, str]:
    org_id = await calls.create_org(pool, "Keypad org")
    await pool.execute("UPDATE organizations SET consent_mode = 'keypad' WHERE id = $1", org_id)
    number = new_number()
    await calls.add_phone_number(pool, org_id, number, dial_target=dial_target)
    return org_id, number


async def press(
    srv: RunningServer, http: aiohttp.ClientSession, call_sid: str, digits: str | None
) -> ET.Element:
    params = {"AccountSid": str(uuid.uuid4()), "CallSid": call_sid}
    if digits is not None:
        params["Digits"] = digits
    status, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/consent", params
    )
    assert status == 200, body
    return ET.fromstring(body)


async def consent_of(pool: Pool, call_sid: str) -> tuple[bool | None, str | None]:
    row = await pool.fetchrow(
        "SELECT recording_consent, consent_verified_by FROM calls WHERE call_sid = $1", call_sid
    )
    assert row is not None
    return row["recording_consent"], row["consent_verified_by"]


async def answers_of(pool: Pool, call_sid: str) -> list[dict[str, object]]:
    rows = await pool.fetch(
        """SELECT e.kind, e.detector, e.verdict, e.evidence FROM consent_events e
           JOIN calls c ON c.id = e.call_id
           WHERE c.call_sid = $1 AND e.kind <> 'disclosure' ORDER BY e.occurred_at""",
        call_sid,
    )
    return [dict(r) for r in rows]


async def test_a_keypad_org_starts_the_stream_then_asks_for_consent_by_keypad(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    _, number = await keypad_org(pool, dial_target="+15557654321")
    params = voice_params(number)
    root = await post_voice(srv, http, params)
    assert [child.tag for child in root] == ["Start", "Gather"]
    assert root.find("./Start/Stream") is not None
    gather = root[1]
    assert gather.attrib["input"] == "dtmf"
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"] == f"{srv.public_url}/laml/consent"
    assert gather.attrib["method"] == "POST"
    assert gather.attrib["actionOnEmptyResult"] == "true"
    [say] = list(gather)
    assert say.tag == "Say" and say.text is not None
    assert srv.settings.disclosure_text in say.text and "Press 1" in say.text
    # The call goes on in the document the action returns, not in this one.
    assert not [el.tag for el in root.iter() if el.tag in ("Dial", "Pause", "Hangup")]
    events = await pool.fetch(
        """SELECT e.kind, e.detector, e.offset_ms, e.evidence FROM consent_events e
           JOIN calls c ON c.id = e.call_id WHERE c.call_sid = $1""",
        params["CallSid"],
    )
    assert [dict(e) for e in events] == [
        {"kind": "disclosure", "detector": "laml_gather", "offset_ms": 0, "evidence": say.text}
    ]


@pytest.mark.parametrize("dial_target", ["+15557654321", None])
async def test_pressing_1_grants_consent_and_the_call_goes_on(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool, dial_target: str | None
) -> None:
    org_id, number = await keypad_org(pool, dial_target=dial_target)
    params = voice_params(number)
    await post_voice(srv, http, params)
    root = await press(srv, http, params["CallSid"], "1")
    if dial_target:
        assert [child.tag for child in root] == ["Dial"]
        assert root[0].text == dial_target
    else:
        assert [child.tag for child in root] == ["Pause"]
        assert root[0].attrib == {"length": str(srv.settings.hold_seconds)}
    assert await consent_of(pool, params["CallSid"]) == (True, "detector:keypad")
    assert await answers_of(pool, params["CallSid"]) == [
        {"kind": "answer", "detector": "keypad", "verdict": "granted", "evidence": "digit 1"}
    ]
    fed = await pool.fetch(
        """SELECT f.org_id, f.payload->>'verdict' AS verdict, (f.payload->>'applied')::boolean
                  AS applied
           FROM feed_events f JOIN calls c ON c.id = f.call_id
           WHERE c.call_sid = $1 AND f.type = 'consent'""",
        params["CallSid"],
    )
    assert [dict(f) for f in fed] == [{"org_id": org_id, "verdict": "granted", "applied": True}]


async def test_pressing_2_refuses_and_the_caller_is_told_the_call_will_not_be_recorded(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    _, number = await keypad_org(pool, dial_target="+15557654321")
    params = voice_params(number)
    await post_voice(srv, http, params)
    root = await press(srv, http, params["CallSid"], "2")
    assert [child.tag for child in root] == ["Say", "Dial"]
    assert root[0].text is not None and "will not be recorded" in root[0].text
    assert root[1].text == "+15557654321"
    assert await consent_of(pool, params["CallSid"]) == (False, "detector:keypad")
    assert await answers_of(pool, params["CallSid"]) == [
        {"kind": "answer", "detector": "keypad", "verdict": "refused", "evidence": "digit 2"}
    ]


@pytest.mark.parametrize("digits", ["", None, "9", "*"])
async def test_no_answer_or_another_key_leaves_consent_undecided(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool, digits: str | None
) -> None:
    _, number = await keypad_org(pool)
    params = voice_params(number)
    await post_voice(srv, http, params)
    root = await press(srv, http, params["CallSid"], digits)
    assert [child.tag for child in root] == ["Pause"]
    assert await consent_of(pool, params["CallSid"]) == (None, None)
    assert await answers_of(pool, params["CallSid"]) == []


async def test_the_keypad_never_replaces_a_persons_verdict(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    _, number = await keypad_org(pool)
    params = voice_params(number)
    await post_voice(srv, http, params)
    person = f"user:{uuid.uuid4()}"
    await pool.execute(
        "UPDATE calls SET recording_consent = false, consent_verified_by = $2 WHERE call_sid = $1",
        params["CallSid"],
        person,
    )
    root = await press(srv, http, params["CallSid"], "1")
    assert [child.tag for child in root] == ["Pause"]
    assert await consent_of(pool, params["CallSid"]) == (False, person)
    # The answer is still kept as evidence, marked as not applied.
    assert await answers_of(pool, params["CallSid"]) == [
        {"kind": "answer", "detector": "keypad", "verdict": "granted", "evidence": "digit 1"}
    ]
    applied = await pool.fetchval(
        """SELECT (f.payload->>'applied')::boolean FROM feed_events f
           JOIN calls c ON c.id = f.call_id WHERE c.call_sid = $1 AND f.type = 'consent'""",
        params["CallSid"],
    )
    assert applied is False


async def test_an_unsigned_keypad_answer_is_refused(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    _, number = await keypad_org(pool)
    params = voice_params(number)
    await post_voice(srv, http, params)
    async with http.post(
        f"{srv.http_url}/laml/consent", data={"CallSid": params["CallSid"], "Digits": "1"}
    ) as resp:
        assert resp.status == 403
    assert await consent_of(pool, params["CallSid"]) == (None, None)
    assert await answers_of(pool, params["CallSid"]) == []


async def test_a_keypad_answer_for_an_unknown_call_is_hung_up(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    root = await press(srv, http, str(uuid.uuid4()), "1")
    assert [child.tag for child in root] == ["Say", "Hangup"]


# Recording status callbacks.


def recording_params(
    call_sid: str, recording_sid: str, status: str, **extra: str
) -> dict[str, str]:
    return {
        "AccountSid": str(uuid.uuid4()),
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingStatus": status,
        **extra,
    }


async def test_recording_callbacks_file_one_recording_under_the_call(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    org_id, number = org_number
    answered = await answer_call(http, srv, srv.settings, number)
    sim = simulator(http, srv, srv.settings)
    recording_sid = str(uuid.uuid4())
    url = f"https://files.example.com/recordings/{recording_sid}?a=1&b=2"
    unconfigured = {"action": "stop", "outcome": "unconfigured"}
    accounted_before = REGISTRY.get_sample_value("voxsouth_recording_actions_total", unconfigured)
    for params in (
        recording_params(answered.call_sid, recording_sid, "in-progress"),
        recording_params(
            answered.call_sid,
            recording_sid,
            "completed",
            RecordingUrl=url,
            RecordingDuration="42",
            RecordingChannels="2",
        ),
        # Late and re-delivered: neither undoes what the final callback said.
        recording_params(answered.call_sid, recording_sid, "in-progress"),
    ):
        code, _ = await sim.post_signed(f"{srv.public_url}/laml/recording", params)
        assert code == 204
    rows = await pool.fetch(
        """SELECT r.org_id, r.recording_sid, r.status, r.url, r.duration_s, r.channels
           FROM recordings r JOIN calls c ON c.id = r.call_id WHERE c.call_sid = $1""",
        answered.call_sid,
    )
    assert [dict(r) for r in rows] == [
        {
            "org_id": org_id,
            "recording_sid": recording_sid,
            "status": "completed",
            "url": url,
            "duration_s": 42,
            "channels": 2,
        }
    ]
    # Each in-progress report went to the recording controller, to be adopted or stopped (this
    # server has no SignalWire credentials, so it only counts them).
    accounted = REGISTRY.get_sample_value("voxsouth_recording_actions_total", unconfigured)
    assert (accounted or 0) - (accounted_before or 0) == 2


async def test_a_recording_callback_for_an_unknown_call_stores_nothing(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    recording_sid = str(uuid.uuid4())
    code, _ = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/recording",
        recording_params(str(uuid.uuid4()), recording_sid, "completed", RecordingDuration="3"),
    )
    assert code == 204
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM recordings WHERE recording_sid = $1", recording_sid
        )
        == 0
    )


async def test_unsigned_or_incomplete_recording_callbacks_are_refused(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    answered = await answer_call(http, srv, srv.settings, org_number[1])
    recording_sid = str(uuid.uuid4())
    params = recording_params(answered.call_sid, recording_sid, "completed")
    async with http.post(f"{srv.http_url}/laml/recording", data=params) as resp:
        assert resp.status == 403
    del params["RecordingSid"]
    code, body = await simulator(http, srv, srv.settings).post_signed(
        f"{srv.public_url}/laml/recording", params
    )
    assert code == 400 and "RecordingSid" in body
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM recordings r JOIN calls c ON c.id = r.call_id "
            "WHERE c.call_sid = $1",
            answered.call_sid,
        )
        == 0
    )


async def test_only_an_applied_call_status_reaches_the_feed(
    srv: RunningServer, http: aiohttp.ClientSession, org_number: tuple[uuid.UUID, str], pool: Pool
) -> None:
    answered = await answer_call(http, srv, srv.settings, org_number[1])
    sim = simulator(http, srv, srv.settings)
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    async def status(value: str, seq: int) -> None:
        code, _ = await sim.post_signed(
            f"{srv.public_url}/laml/status",
            {
                "AccountSid": str(uuid.uuid4()),
                "CallSid": answered.call_sid,
                "CallStatus": value,
                "SequenceNumber": str(seq),
                "Timestamp": format_datetime(t0 + timedelta(seconds=seq)),
            },
        )
        assert code == 204

    async def fed() -> list[str]:
        rows = await pool.fetch(
            """SELECT f.payload->>'status' AS status FROM feed_events f
               JOIN calls c ON c.id = f.call_id
               WHERE c.call_sid = $1 AND f.type = 'call_status' ORDER BY f.id""",
            answered.call_sid,
        )
        return [r["status"] for r in rows]

    await status("in-progress", 1)
    assert await fed() == ["in-progress"]
    await status("in-progress", 1)  # duplicate
    await status("ringing", 0)  # stale
    assert await fed() == ["in-progress"]
    await status("completed", 2)
    await status("completed", 2)  # duplicate
    await status("in-progress", 1)  # after the end
    assert await fed() == ["in-progress", "completed"]


async def test_a_keypad_answer_on_a_call_we_placed_continues_by_our_from_number(
    srv: RunningServer, http: aiohttp.ClientSession, pool: Pool
) -> None:
    _, number = await keypad_org(pool, dial_target="+15557654321")
    params = {**voice_params("+15557770000"), "From": number, "Direction": "outbound-api"}
    root = await post_voice(srv, http, params)
    assert [child.tag for child in root] == ["Start", "Gather"]
    root = await press(srv, http, params["CallSid"], "1")
    assert [(child.tag, child.text) for child in root] == [("Dial", "+15557654321")]
    assert await consent_of(pool, params["CallSid"]) == (True, "detector:keypad")
