"""Placing calls through the API against a fake SignalWire on loopback."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from server.app import RunningServer
from storage import calls
from storage.db import Pool
from tests.support.accounts import Org, make_org
from tests.support.fake_signalwire import Fail, FakeSignalWire
from tests.support.numbers import new_number


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


async def open_call(pool: Pool, org: Org, status: str) -> uuid.UUID:
    ref = await calls.open_call(
        pool, org_id=org.id, call_sid=str(uuid.uuid4()), account_sid=None,
        direction="outbound-api", from_number=org.number, to_number="+15557654321",
        status=status,
    )  # fmt: skip
    return ref.id


async def add_caller_id(pool: Pool, org: Org) -> tuple[uuid.UUID, str]:
    """A caller ID SignalWire took (written directly: these tests run without SignalWire)."""
    number = new_number()
    row_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO caller_ids (org_id, number, signalwire_id) VALUES ($1, $2, $3) RETURNING id",
        org.id, number, f"sw-{uuid.uuid4()}",
    )  # fmt: skip
    return row_id, number


async def send(
    srv: RunningServer, method: str, path: str, headers: dict[str, str], raw: bytes | None
) -> tuple[int, Any]:
    headers = {**headers, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, srv.http_url + path, headers=headers, data=raw) as resp,
    ):
        return resp.status, await resp.json()


async def test_without_signalwire_settings_what_is_wrong_with_the_request_comes_first(
    srv: RunningServer, org: Org, pool: Pool
) -> None:
    """Without SignalWire settings a request that is wrong on its own (its body, another
    org's id, an ended call) gets that answer; only one that would reach SignalWire gets the
    503, and nothing is stored for it."""
    other = await make_org(pool, "Other outbound org")
    live, ended = await open_call(pool, org, "in-progress"), await open_call(pool, org, "completed")
    others_call = await open_call(pool, other, "in-progress")
    mine, my_number = await add_caller_id(pool, org)
    others, _ = await add_caller_id(pool, other)
    call = {"to": "+15557654321", "from": org.number}
    missing = (503, "SIGNALWIRE_CONFIG_MISSING")
    cases: list[tuple[str, str, Any, tuple[int, str]]] = [
        ("POST", "/api/calls", b"{", (400, "INVALID_JSON")),
        ("POST", "/api/calls", {"to": "+15557654321"}, (422, "VALIDATION_FAILED")),
        ("POST", "/api/calls", {**call, "from": other.number}, (422, "FROM_NOT_ALLOWED")),
        ("POST", "/api/calls", call, missing),
        ("POST", f"/api/calls/{others_call}/hangup", None, (404, "NOT_FOUND")),
        ("POST", f"/api/calls/{ended}/hangup", None, (409, "CALL_ENDED")),
        ("POST", f"/api/calls/{live}/hangup", None, missing),
        ("POST", "/api/caller-ids", b"{", (400, "INVALID_JSON")),
        ("POST", "/api/caller-ids", {"number": "555"}, (422, "VALIDATION_FAILED")),
        ("POST", "/api/caller-ids", {"number": my_number}, (409, "CALLER_ID_EXISTS")),
        ("POST", "/api/caller-ids", {"number": new_number()}, missing),
        ("POST", f"/api/caller-ids/{mine}/verify", {"code": "12"}, (422, "VALIDATION_FAILED")),
        ("POST", f"/api/caller-ids/{others}/verify", {"code": "123456"}, (404, "NOT_FOUND")),
        ("POST", f"/api/caller-ids/{mine}/verify", {"code": "123456"}, missing),
        ("DELETE", f"/api/caller-ids/{others}", None, (404, "NOT_FOUND")),
        ("DELETE", f"/api/caller-ids/{mine}", None, missing),
    ]
    for method, path, body, expected in cases:
        raw = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        status, answer = await send(srv, method, path, org.bearer("admin"), raw)
        assert (status, answer["error"]["code"]) == expected, (method, path, body, answer)
    stored = await pool.fetchval("SELECT count(*) FROM calls WHERE org_id = $1", org.id)
    assert stored == 2  # no call invented
    kept = await pool.fetch("SELECT id FROM caller_ids WHERE org_id = $1", org.id)
    assert [r["id"] for r in kept] == [mine]  # none added, and not removed on our side alone


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
