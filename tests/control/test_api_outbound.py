"""Placing calls through the API against a fake SignalWire on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest

from server.app import RunningServer
from storage.db import Pool
from tests.support.accounts import Org, make_org
from tests.support.fake_signalwire import Fail, FakeSignalWire, running_fake_signalwire

PROJECT, TOKEN = str(uuid.uuid4()), "PT-test-token"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    async with running_fake_signalwire(PROJECT, TOKEN) as fake_signalwire:
        yield fake_signalwire


@pytest.fixture
async def wired(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], fake: FakeSignalWire
) -> AsyncIterator[RunningServer]:
    async with start_server(
        signalwire_space_url=fake.url,
        signalwire_project_id=PROJECT,
        signalwire_api_token=TOKEN,
    ) as server:
        yield server


@pytest.fixture
async def org(pool: Pool) -> Org:
    return await make_org(pool, "Outbound org")


async def post(
    srv: RunningServer, path: str, headers: dict[str, str], body: Any
) -> tuple[int, Any, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(srv.http_url + path, headers=headers, json=body) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


async def test_without_signalwire_settings_no_call_is_invented(
    srv: RunningServer, org: Org
) -> None:
    status, body, _ = await post(
        srv, "/api/calls", org.bearer("operator"), {"to": "+15557654321", "from": org.number}
    )
    assert (status, body["error"]["code"]) == (503, "SIGNALWIRE_CONFIG_MISSING")


async def test_a_call_placed_through_signalwire_is_stored_with_its_sid(
    wired: RunningServer, fake: FakeSignalWire, org: Org, pool: Pool
) -> None:
    status, body, _ = await post(
        wired, "/api/calls", org.bearer("operator"), {"to": "+15557654321", "from": org.number}
    )
    assert status == 201, body
    [sent] = fake.requests_for("create")
    form = dict(sent.form)
    assert (form["To"], form["From"]) == ("+15557654321", org.number)
    assert form["Url"] == f"{wired.public_url}/laml/voice"
    assert form["StatusCallback"] == f"{wired.public_url}/laml/status"
    assert body["call_sid"] in fake.calls  # SignalWire's own SID, nothing invented
    row = await pool.fetchrow(
        "SELECT org_id, call_sid, direction, to_number FROM calls WHERE id = $1",
        uuid.UUID(body["id"]),
    )
    assert row is not None and dict(row) == {
        "org_id": org.id,
        "call_sid": body["call_sid"],
        "direction": "outbound-api",
        "to_number": "+15557654321",
    }
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'call.start' AND resource_id = $1",
            body["id"],
        )
        == 1
    )


async def test_an_idempotency_key_replays_the_first_call_and_refuses_another_body(
    wired: RunningServer, fake: FakeSignalWire, org: Org
) -> None:
    headers = {**org.bearer("operator"), "Idempotency-Key": "order-42"}
    request = {"to": "+15557654321", "from": org.number}
    first = await post(wired, "/api/calls", headers, request)
    again = await post(wired, "/api/calls", headers, request)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert len(fake.requests_for("create")) == 1  # one call, however often the client retries
    status, body, _ = await post(wired, "/api/calls", headers, {**request, "to": "+15550000001"})
    assert (status, body["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")


async def test_bad_requests_never_reach_signalwire(
    wired: RunningServer, fake: FakeSignalWire, org: Org, pool: Pool
) -> None:
    other = await make_org(pool, "Other outbound org")
    cases = [
        ({"to": "5557654321", "from": org.number}, 422, "VALIDATION_FAILED"),
        ({"to": "+15557654321", "from": other.number}, 422, "FROM_NOT_ALLOWED"),
        ({"to": "+15557654321"}, 422, "VALIDATION_FAILED"),
    ]
    for request, status, code in cases:
        got, body, _ = await post(wired, "/api/calls", org.bearer("operator"), request)
        assert (got, body["error"]["code"]) == (status, code), request
    assert (await post(wired, "/api/calls", org.bearer("analyst"), cases[0][0]))[0] == 403
    assert fake.requests_for("create") == []


async def test_signalwire_failures_become_clear_errors(
    wired: RunningServer, fake: FakeSignalWire, org: Org
) -> None:
    request = {"to": "+15557654321", "from": org.number}
    fake.script("create", [Fail(400, body={"errors": [{"code": "21217", "message": "bad To"}]})])
    status, body, _ = await post(wired, "/api/calls", org.bearer("operator"), request)
    assert (status, body["error"]["code"]) == (422, "SIGNALWIRE_REJECTED")
    assert body["error"]["details"]["signalwire_code"] == "21217"

    fake.script("create", [Fail(500)] * 10)
    status, body, headers = await post(wired, "/api/calls", org.bearer("operator"), request)
    assert (status, body["error"]["code"]) == (503, "SIGNALWIRE_UNAVAILABLE")
    assert int(headers["Retry-After"]) >= 1


async def test_hanging_up_asks_signalwire_to_complete_the_call(
    wired: RunningServer, fake: FakeSignalWire, org: Org
) -> None:
    _, placed, _ = await post(
        wired, "/api/calls", org.bearer("operator"), {"to": "+15557654321", "from": org.number}
    )
    status, body, _ = await post(
        wired, f"/api/calls/{placed['id']}/hangup", org.bearer("operator"), None
    )
    assert status == 202, body
    [update] = fake.requests_for("update")
    assert dict(update.form) == {"Status": "completed"} and placed["call_sid"] in update.path


async def test_a_caller_id_is_usable_once_signalwire_verified_it(
    wired: RunningServer, fake: FakeSignalWire, org: Org, pool: Pool
) -> None:
    admin, operator = org.bearer("admin"), org.bearer("operator")
    number = "+15558880000"
    call_from_it = {"to": "+15557654321", "from": number}
    status, added, _ = await post(wired, "/api/caller-ids", admin, {"number": number})
    assert status == 201 and added["verified"] is False
    [signalwire_id] = fake.caller_ids
    assert fake.caller_ids[signalwire_id]["number"] == number
    # Not verified yet: it cannot be the caller ID of a call.
    status, body, _ = await post(wired, "/api/calls", operator, call_from_it)
    assert (status, body["error"]["code"]) == (422, "FROM_NOT_ALLOWED")

    verify = f"/api/caller-ids/{added['id']}/verify"
    status, body, _ = await post(wired, verify, admin, {"code": "999999"})
    assert (status, body["error"]["code"]) == (422, "CODE_REJECTED")
    code = fake.verification_codes[signalwire_id]
    status, body, _ = await post(wired, verify, admin, {"code": code})
    assert status == 200 and body["verified"] is True
    assert (await post(wired, "/api/calls", operator, call_from_it))[0] == 201

    status, body, _ = await post(wired, "/api/caller-ids", admin, {"number": number})
    assert (status, body["error"]["code"]) == (409, "CALLER_ID_EXISTS")
    other = await make_org(pool, "Caller ID rival")
    status, _, _ = await post(wired, verify, other.bearer("admin"), {"code": code})
    assert status == 404  # another org's caller ID does not exist for it
    assert (await post(wired, "/api/calls", other.bearer("operator"), call_from_it))[0] == 422

    async with (
        aiohttp.ClientSession() as http,
        http.delete(f"{wired.http_url}/api/caller-ids/{added['id']}", headers=admin) as resp,
    ):
        assert resp.status == 204
    assert fake.caller_ids == {}
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE org_id = $1 AND action LIKE 'caller_id.%' ORDER BY id",
        org.id,
    )
    assert [a["action"] for a in actions] == [
        "caller_id.add",
        "caller_id.verify",
        "caller_id.remove",
    ]
