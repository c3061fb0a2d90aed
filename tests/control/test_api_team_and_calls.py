"""Changing calls and teams through the API: what changes, who may, and the audit trail."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from server.app import RunningServer
from storage import calls
from storage.db import Pool
from tests.support.accounts import PASSWORD, Org, make_org
from tests.support.numbers import new_number


@pytest.fixture
async def org(pool: Pool) -> Org:
    return await make_org(pool, "Team org")


async def call(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], **kw: Any
) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers, **kw) as resp:
        return resp.status, (await resp.json() if resp.status != 204 else None)


async def user_id(pool: Pool, email: str) -> uuid.UUID:
    value = await pool.fetchval("SELECT id FROM users WHERE email = $1", email)
    assert isinstance(value, uuid.UUID)
    return value


async def test_an_operator_sets_a_disposition_and_records_consent_and_both_are_audited(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    ref = await calls.open_call(
        pool, org_id=org.id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550199999", to_number=org.number, status="in-progress",
    )  # fmt: skip
    url = f"{srv.http_url}/api/calls/{ref.id}"
    op = org.bearer("operator")
    status, body = await call(http, "PATCH", url, op, json={"disposition": "resolved"})
    assert status == 200 and body["disposition"] == "resolved"
    assert (await call(http, "PATCH", url, op, json={"status": "completed"}))[0] == 422
    assert (await call(http, "PATCH", url, op, json={}))[0] == 422
    assert (await call(http, "PATCH", url, org.bearer("analyst"), json={"disposition": "x"}))[
        0
    ] == 403

    status, body = await call(http, "POST", url + "/consent", op, json={"recording_consent": True})
    assert status == 200 and body["recording_consent"] is True
    key_id = await pool.fetchval(
        "SELECT id FROM api_keys WHERE prefix = $1", org.keys["operator"].split("_")[1]
    )
    row = await pool.fetchrow(
        "SELECT recording_consent, consent_verified_by FROM calls WHERE id = $1", ref.id
    )
    assert row is not None and dict(row) == {
        "recording_consent": True,
        "consent_verified_by": f"api_key:{key_id}",
    }
    audited = await pool.fetch(
        "SELECT action, before, after FROM audit_log WHERE resource_id = $1 ORDER BY id",
        str(ref.id),
    )
    assert [a["action"] for a in audited] == ["call.update", "call.consent"]
    assert '"disposition": null' in audited[0]["before"]
    assert '"disposition": "resolved"' in audited[0]["after"]

    other = await make_org(pool, "Other team org")
    status, _ = await call(http, "PATCH", url, other.bearer("owner"), json={"disposition": "x"})
    assert status == 404


async def test_an_invitation_brings_a_new_member_in_once(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    base = f"{srv.http_url}/api/team"
    status, invitation = await call(
        http, "POST", base + "/invitations", org.bearer("admin"),
        json={"email": email, "role": "analyst"},
    )  # fmt: skip
    assert status == 201 and invitation["token"]
    accept = {"token": invitation["token"], "password": "short"}
    assert (await call(http, "POST", base + "/invitations/accept", {}, json=accept))[0] == 422
    accept["password"] = "a long enough password"
    status, joined = await call(http, "POST", base + "/invitations/accept", {}, json=accept)
    assert status == 200 and joined == {"org_id": str(org.id), "email": email, "role": "analyst"}
    status, again = await call(http, "POST", base + "/invitations/accept", {}, json=accept)
    assert (status, again["error"]["code"]) == (404, "INVITATION_INVALID")

    status, listing = await call(http, "GET", base, org.bearer("viewer"))
    assert {m["email"]: m["role"] for m in listing["members"]}[email] == "analyst"
    assert "password_hash" not in listing["members"][0]
    async with http.post(
        f"{srv.http_url}/api/auth/login",
        json={"email": email, "password": "a long enough password"},
    ) as resp:
        assert resp.status == 200 and (await resp.json())["role"] == "analyst"


async def test_only_owners_make_owners_and_the_last_owner_stays(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    base = f"{srv.http_url}/api/team"
    owner = await user_id(pool, org.emails["owner"])
    viewer = await user_id(pool, org.emails["viewer"])
    admin, owner_key = org.bearer("admin"), org.bearer("owner")

    status, body = await call(http, "PATCH", f"{base}/{viewer}", admin, json={"role": "owner"})
    assert (status, body["error"]["code"]) == (403, "OWNER_ONLY")
    status, body = await call(
        http, "POST", base + "/invitations", admin, json={"email": "x@example.com", "role": "owner"}
    )
    assert (status, body["error"]["code"]) == (403, "OWNER_ONLY")
    status, body = await call(http, "PATCH", f"{base}/{owner}", owner_key, json={"role": "admin"})
    assert (status, body["error"]["code"]) == (409, "LAST_OWNER")
    assert (await call(http, "DELETE", f"{base}/{owner}", owner_key))[0] == 409

    assert (await call(http, "PATCH", f"{base}/{viewer}", owner_key, json={"role": "owner"}))[
        0
    ] == 200
    assert (await call(http, "PATCH", f"{base}/{owner}", owner_key, json={"role": "admin"}))[
        0
    ] == 200
    assert (await call(http, "DELETE", f"{base}/{viewer}", admin))[0] == 403  # an owner now
    status, _ = await call(http, "DELETE", f"{base}/{owner}", admin)
    assert status == 204
    roles = await pool.fetch(
        "SELECT user_id, role FROM memberships WHERE org_id = $1 AND role = 'owner'", org.id
    )
    assert [r["user_id"] for r in roles] == [viewer]
    changes = await pool.fetch(
        "SELECT action FROM audit_log WHERE org_id = $1 AND action LIKE 'team.%' ORDER BY id",
        org.id,
    )
    assert [c["action"] for c in changes] == ["team.role_change", "team.role_change", "team.remove"]


async def test_a_removed_member_is_signed_out_of_that_org(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    async with http.post(
        f"{srv.http_url}/api/auth/login",
        json={"email": org.emails["analyst"], "password": PASSWORD},
    ) as resp:
        assert resp.status == 200
    analyst = await user_id(pool, org.emails["analyst"])
    status, _ = await call(
        http, "DELETE", f"{srv.http_url}/api/team/{analyst}", org.bearer("admin")
    )
    assert status == 204
    async with http.get(f"{srv.http_url}/api/auth/me") as resp:
        assert resp.status == 401


async def test_numbers_are_managed_per_org_and_a_taken_number_is_not_revealed(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    other = await make_org(pool, "Numbers rival")
    base = f"{srv.http_url}/api/numbers"
    number = new_number()
    status, _ = await call(
        http,
        "POST",
        base,
        org.bearer("admin"),
        json={"number": number, "dial_target": "+15557654321"},
    )
    assert status == 201
    status, body = await call(http, "POST", base, other.bearer("admin"), json={"number": number})
    assert (status, body["error"]["code"]) == (409, "NUMBER_TAKEN")
    assert str(org.id) not in str(body)
    status, body = await call(http, "POST", base, org.bearer("admin"), json={"number": "555"})
    assert status == 422 and body["error"]["details"]["fields"][0]["field"] == "number"

    status, listing = await call(http, "GET", base, org.bearer("viewer"))
    numbers = {n["number"]: n for n in listing["numbers"]}
    assert numbers[number]["dial_target"] == "+15557654321" and org.number in numbers
    _, rival = await call(http, "GET", base, other.bearer("viewer"))
    assert number not in {n["number"] for n in rival["numbers"]}

    number_id = numbers[number]["id"]
    assert (await call(http, "DELETE", f"{base}/{number_id}", other.bearer("owner")))[0] == 404
    assert (await call(http, "DELETE", f"{base}/{number_id}", org.bearer("admin")))[0] == 204
    assert await pool.fetchval("SELECT count(*) FROM phone_numbers WHERE number = $1", number) == 0


async def test_api_keys_are_shown_once_listed_by_prefix_and_revocable(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    await pool.execute("UPDATE organizations SET plan = 'pro' WHERE id = $1", org.id)
    base = f"{srv.http_url}/api/api-keys"
    status, created = await call(
        http, "POST", base, org.bearer("admin"), json={"name": "crm", "role": "viewer"}
    )
    assert status == 201 and created["key"].startswith(f"vxs_{created['prefix']}_")
    status, listing = await call(http, "GET", base, org.bearer("admin"))
    listed = {k["id"]: k for k in listing["api_keys"]}[created["id"]]
    assert "key" not in listed and "key_hash" not in listed and listed["role"] == "viewer"
    new_key = {"Authorization": f"Bearer {created['key']}"}
    assert (await call(http, "GET", f"{srv.http_url}/api/calls", new_key))[0] == 200
    assert (await call(http, "DELETE", f"{base}/{created['id']}", org.bearer("admin")))[0] == 204
    assert (await call(http, "GET", f"{srv.http_url}/api/calls", new_key))[0] == 401
    assert (await call(http, "DELETE", f"{base}/{created['id']}", org.bearer("admin")))[0] == 404
    status, body = await call(
        http, "POST", base, org.bearer("admin"), json={"name": "x", "role": "owner"}
    )
    assert (status, body["error"]["code"]) == (403, "OWNER_ONLY")
    await pool.execute("UPDATE organizations SET plan = 'base' WHERE id = $1", org.id)
    status, body = await call(
        http, "POST", base, org.bearer("owner"), json={"name": "x", "role": "viewer"}
    )
    assert (status, body["error"]["code"]) == (403, "PLAN_REQUIRED")
