"""Secure mode through the API, against the fake SignalWire: the recording is paused while a
caller reads out a card and resumed after; a pause that fails stops the recording instead and
raises an alert; a call in secure mode is not started recording."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from control.app_keys import RECORDER
from server.app import RunningServer
from storage.db import Pool
from tests.conftest import timeout
from tests.control.test_api_access import new_call
from tests.support.accounts import Org, make_org
from tests.support.fake_signalwire import Fail, FakeSignalWire


async def recording_call(
    srv: RunningServer, pool: Pool, fake: FakeSignalWire, org: Org
) -> uuid.UUID:
    """A one-party call of the org whose recording the server has started at SignalWire."""
    call_id = await new_call(pool, org)
    call_sid = await pool.fetchval(
        "UPDATE calls SET consent_rule = 'one_party' WHERE id = $1 RETURNING call_sid", call_id
    )
    fake.add_call(call_sid, from_="+15550199999", to=org.number)
    await started(srv, call_id)
    assert await state(pool, call_id) == "recording"
    return call_id


async def started(srv: RunningServer, call_id: uuid.UUID) -> None:
    recorder = srv.app[RECORDER]
    recorder.stream_started(call_id)
    await asyncio.wait_for(recorder.wait_idle(), timeout(10))


async def state(pool: Pool, call_id: uuid.UUID) -> str:
    value: str = await pool.fetchval("SELECT recording_state FROM calls WHERE id = $1", call_id)
    return value


async def secure(
    srv: RunningServer, org: Org, call_id: uuid.UUID, on: bool, role: str = "operator"
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{srv.http_url}/api/calls/{call_id}/secure-mode",
            json={"on": on},
            headers=org.bearer(role),  # type: ignore[arg-type]
        ) as resp,
    ):
        return resp.status, await resp.json()


def recording_updates(fake: FakeSignalWire) -> list[dict[str, str]]:
    return [dict(r.form) for r in fake.requests_for("update_recording")]


async def test_secure_mode_pauses_the_recording_and_resumes_it_after(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Payments org")
    call_id = await recording_call(wired, pool, fake, org)
    status, body = await secure(wired, org, call_id, True)
    assert (status, body) == (200, {"id": str(call_id), "secure_mode": True, "recording": "paused"})
    assert await state(pool, call_id) == "paused"
    [recording] = fake.recordings.values()
    assert recording["status"] == "paused"
    # Asked again: already on, the recording already paused, nothing sent twice.
    assert (await secure(wired, org, call_id, True))[1]["recording"] == "none"
    status, body = await secure(wired, org, call_id, False)
    assert (status, body["secure_mode"], body["recording"]) == (200, False, "resumed")
    assert recording["status"] == "in-progress"
    assert recording_updates(fake) == [
        {"Status": "paused", "PauseBehavior": "skip"},
        {"Status": "in-progress"},
    ]
    # Supervisors' feeds and the audit log saw both changes, and by whom.
    feed = await pool.fetch(
        # In the order written (one request after the other): positions may still be coming.
        "SELECT payload FROM feed_events WHERE call_id = $1 AND type = 'secure_mode' ORDER BY id",
        call_id,
    )
    assert [json.loads(r["payload"])["on"] for r in feed] == [True, False]
    assert all(json.loads(r["payload"])["by"].startswith("api_key:") for r in feed)
    audits = await pool.fetch(
        "SELECT after FROM audit_log WHERE org_id = $1 AND action = 'call.secure_mode' ORDER BY id",
        org.id,
    )
    assert [json.loads(r["after"]) for r in audits] == [{"on": True}, {"on": False}]


async def test_the_orgs_pause_behaviour_is_sent_and_its_settings_are_validated(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Silence org")
    url = f"{wired.http_url}/api/org/secure-mode"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=org.bearer("viewer")) as resp:
            assert await resp.json() == {"pause_behavior": "skip", "caller_words": "suspend"}
        async with http.put(
            url, json={"pause_behavior": "loud", "caller_words": "suspend"},
            headers=org.bearer("admin"),
        ) as resp:  # fmt: skip
            assert (resp.status, (await resp.json())["error"]["code"]) == (
                422,
                "VALIDATION_FAILED",
            )
        async with http.put(
            url, json={"pause_behavior": "silence", "caller_words": "redact"},
            headers=org.bearer("operator"),
        ) as resp:  # fmt: skip
            assert resp.status == 403
        async with http.put(
            url, json={"pause_behavior": "silence", "caller_words": "redact"},
            headers=org.bearer("admin"),
        ) as resp:  # fmt: skip
            assert await resp.json() == {"pause_behavior": "silence", "caller_words": "redact"}
    call_id = await recording_call(wired, pool, fake, org)
    assert (await secure(wired, org, call_id, True))[1]["recording"] == "paused"
    assert recording_updates(fake) == [{"Status": "paused", "PauseBehavior": "silence"}]


async def alerts(pool: Pool, call_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT kind, severity FROM escalations WHERE call_id = $1 ORDER BY raised_at", call_id
    )
    return [(r["kind"], r["severity"]) for r in rows]


async def test_a_pause_that_fails_stops_the_recording_and_raises_an_alert(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Pause fails org")
    call_id = await recording_call(wired, pool, fake, org)
    fake.script("update_recording", [Fail(400)])  # the pause is refused; the stop goes through
    status, body = await secure(wired, org, call_id, True)
    assert (status, body["recording"]) == (200, "stopped")
    assert [r["Status"] for r in recording_updates(fake)] == ["paused", "stopped"]
    [recording] = fake.recordings.values()
    assert recording["status"] == "stopped"
    assert await state(pool, call_id) == "stopped"
    assert await alerts(pool, call_id) == [("secure_recording", "high")]
    escalated = await pool.fetchval("SELECT escalated FROM calls WHERE id = $1", call_id)
    assert escalated  # on the supervisors' screens as any escalation is
    # Leaving secure mode does not start a stopped recording again.
    assert (await secure(wired, org, call_id, False))[1]["recording"] == "none"
    await started(wired, call_id)
    assert await state(pool, call_id) == "stopped"


async def test_when_neither_pause_nor_stop_works_the_agent_is_told_not_to_take_the_card(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Nothing works org")
    call_id = await recording_call(wired, pool, fake, org)
    fake.script("update_recording", [Fail(400), Fail(400)])
    status, body = await secure(wired, org, call_id, True)
    assert status == 502
    assert body["error"]["code"] == "RECORDING_NOT_PAUSED"
    assert body["error"]["details"] == {"secure_mode": True}
    assert await alerts(pool, call_id) == [("secure_recording", "critical")]
    # Still recording as far as anyone knows, so asking again tries again, and now it works.
    assert await state(pool, call_id) == "recording"
    status, body = await secure(wired, org, call_id, True)
    assert (status, body["recording"]) == (200, "paused")


async def test_a_call_in_secure_mode_is_not_recorded_until_it_leaves_it(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Late start org")
    call_id = await new_call(pool, org)
    call_sid = await pool.fetchval(
        "UPDATE calls SET consent_rule = 'one_party' WHERE id = $1 RETURNING call_sid", call_id
    )
    fake.add_call(call_sid, from_="+15550199999", to=org.number)
    assert (await secure(wired, org, call_id, True))[1]["recording"] == "none"
    await started(wired, call_id)  # its stream starts: secure mode keeps the recording off
    assert fake.requests_for("create_recording") == []
    assert (await secure(wired, org, call_id, False))[1]["recording"] == "none"
    await asyncio.wait_for(wired.app[RECORDER].wait_idle(), timeout(10))
    assert len(fake.requests_for("create_recording")) == 1
    assert await state(pool, call_id) == "recording"


async def test_secure_mode_refuses_ended_unknown_and_other_orgs_calls(
    wired: RunningServer, pool: Pool
) -> None:
    org, other = await make_org(pool, "Mine"), await make_org(pool, "Theirs")
    call_id = await new_call(pool, org)
    assert (await secure(wired, other, call_id, True))[0] == 404
    assert (await secure(wired, org, uuid.uuid4(), True))[0] == 404
    await pool.execute("UPDATE calls SET status = 'completed' WHERE id = $1", call_id)
    status, body = await secure(wired, org, call_id, True)
    assert (status, body["error"]["code"]) == (409, "CALL_ENDED")
    assert (await secure(wired, org, call_id, True, role="analyst"))[0] == 403
