"""Who may use the API: sign-in, sessions, CSRF, API keys, roles and org isolation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from control.auth import declared_permission
from control.permissions import ROLES, Action, allowed
from server.app import RunningServer
from storage import calls, recordings
from storage.db import Pool
from tests.support.accounts import PASSWORD, Org, make_org

# The dashboard page itself is static; everything it shows comes from the API.
# /audio/: clips for SignalWire's <Play>, by signed URL (tests/control/test_audio_api.py).
NOT_BEHIND_AUTH = ("/laml/", "/health/", "/metrics", "/dashboard", "/audio/")
# Endless streams (WebSocket, SSE): described in the README, not in OpenAPI.
FEED_STREAMS = ("/api/feed", "/api/feed/sse")


@pytest.fixture
async def org(pool: Pool) -> Org:
    return await make_org(pool, "Org A")


async def login(
    http: aiohttp.ClientSession, srv: RunningServer, email: str, password: str = PASSWORD
) -> tuple[int, dict[str, object]]:
    async with http.post(
        f"{srv.http_url}/api/auth/login", json={"email": email, "password": password}
    ) as resp:
        return resp.status, await resp.json()


async def new_call(pool: Pool, org: Org) -> uuid.UUID:
    ref = await calls.open_call(
        pool, org_id=org.id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550199999", to_number=org.number, status="in-progress",
    )  # fmt: skip
    return ref.id


def test_every_api_route_declares_a_permission(srv: RunningServer) -> None:
    for route in srv.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith(NOT_BEHIND_AUTH):
            continue
        assert path.startswith("/api/"), f"{path} is neither API nor webhook/health/metrics"
        assert declared_permission(route.handler) is not None, f"{route.method} {path}"


async def test_every_role_against_every_route(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    http: aiohttp.ClientSession,
    org: Org,
) -> None:
    # Each role's key asks every route once: more requests than the default burst allows.
    async with start_server(api_rate_per_s=1000, api_burst=1000) as srv:
        await every_role_against_every_route(srv, http, org)


async def every_role_against_every_route(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org
) -> None:
    routes = [
        (r.method, r.resource.canonical, declared_permission(r.handler))
        for r in srv.app.router.routes()
        if r.resource and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    ]
    checked = 0
    for method, path, declared in routes:
        if not isinstance(declared, Action):
            continue
        url = srv.http_url + re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
        if path in FEED_STREAMS:
            url += "?last_event_id=x"  # past the guard: a quick 400 instead of an endless stream
        for role in ROLES:
            async with http.request(method, url, headers=org.bearer(role), json={}) as resp:
                body = await resp.json() if resp.status != 204 else {}
            refused = resp.status == 403 and body["error"]["code"] == "FORBIDDEN"
            if allowed(role, declared):  # past the guard: the route's own answer, not a failure
                assert resp.status not in (401, 500) and not refused, (role, path, body)
            else:
                assert (resp.status, body["error"]["code"]) == (403, "FORBIDDEN"), (role, path)
            checked += 1
    assert checked >= len(ROLES) * 5
    assert any(
        not allowed(role, a) for _, _, a in routes if isinstance(a, Action) for role in ROLES
    )


async def test_sign_in_sets_a_safe_cookie_and_the_session_identifies_the_member(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org
) -> None:
    async with http.post(
        f"{srv.http_url}/api/auth/login",
        json={"email": org.emails["operator"].upper(), "password": PASSWORD},
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
        cookie = resp.cookies["voxsouth_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert body["role"] == "operator" and body["org"]["id"] == str(org.id)
    async with http.get(f"{srv.http_url}/api/auth/me") as resp:
        me = await resp.json()
    assert me["email"] == org.emails["operator"] and me["role"] == "operator"


async def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_account(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    email = org.emails["viewer"]
    for _ in range(5):
        status, body = await login(http, srv, email, "not the password")
        assert (status, body["error"]["code"]) == (401, "INVALID_CREDENTIALS")  # type: ignore[index]
    async with http.post(
        f"{srv.http_url}/api/auth/login", json={"email": email, "password": PASSWORD}
    ) as resp:
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "ACCOUNT_LOCKED"
        assert int(resp.headers["Retry-After"]) > 0
    failures = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed' AND resource_id = $1",
        email,
    )
    assert failures == 5


async def test_sign_in_attempts_from_one_address_are_rate_limited(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    statuses = [(await login(http, srv, f"nobody{i}@example.com", "x"))[0] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


async def test_cookie_sessions_need_the_csrf_token_to_change_anything(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org
) -> None:
    _, body = await login(http, srv, org.emails["admin"])
    async with http.post(f"{srv.http_url}/api/auth/logout") as resp:
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "CSRF_FAILED"
    async with http.post(
        f"{srv.http_url}/api/auth/logout", headers={"X-CSRF-Token": str(body["csrf_token"])}
    ) as resp:
        assert resp.status == 204
    async with http.get(f"{srv.http_url}/api/auth/me") as resp:
        assert resp.status == 401


async def test_an_expired_session_and_a_revoked_or_forged_key_are_refused(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    await login(http, srv, org.emails["analyst"])
    await pool.execute(
        "UPDATE sessions SET expires_at = $1 "
        "WHERE user_id = (SELECT id FROM users WHERE email = $2)",
        datetime.now(UTC) - timedelta(seconds=1),
        org.emails["analyst"],
    )
    async with http.get(f"{srv.http_url}/api/auth/me") as resp:
        assert resp.status == 401
    http.cookie_jar.clear()

    prefix = org.keys["viewer"].split("_")[1]
    for headers in (
        {"Authorization": "Bearer " + org.keys["viewer"][:-1] + "x"},  # right prefix, wrong key
        {"Authorization": "Bearer nonsense"},
        {},
    ):
        async with http.get(f"{srv.http_url}/api/calls", headers=headers) as resp:
            assert resp.status == 401 and (await resp.json())["error"]["code"] == "UNAUTHENTICATED"
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = $1", prefix)
    async with http.get(f"{srv.http_url}/api/calls", headers=org.bearer("viewer")) as resp:
        assert resp.status == 401


async def test_one_org_can_never_see_another_orgs_calls(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    other = await make_org(pool, "Org B")
    call_id = await new_call(pool, org)
    async with http.get(f"{srv.http_url}/api/calls/{call_id}", headers=other.bearer("owner")) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "NOT_FOUND"
    async with http.get(f"{srv.http_url}/api/calls", headers=other.bearer("owner")) as r:
        assert str(call_id) not in {c["id"] for c in (await r.json())["calls"]}
    async with http.get(f"{srv.http_url}/api/calls/{call_id}", headers=org.bearer("owner")) as r:
        assert r.status == 200 and (await r.json())["id"] == str(call_id)


async def test_a_call_is_shown_with_the_recordings_signalwire_reported(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    call_id = await new_call(pool, org)
    call_sid = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call_id)
    recording_sid = str(uuid.uuid4())
    assert await recordings.apply_status(
        pool, call_sid=call_sid, recording_sid=recording_sid, status="completed", url=None,
        duration_s=42, channels=2,
    )  # fmt: skip
    async with http.get(f"{srv.http_url}/api/calls/{call_id}", headers=org.bearer("viewer")) as r:
        body = await r.json()
    assert [
        (x["recording_sid"], x["status"], x["duration_s"], x["channels"])
        for x in body["recordings"]
    ] == [(recording_sid, "completed", 42, 2)]


async def test_transcripts_are_shown_only_to_roles_that_may_read_them_and_reads_are_audited(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    call_id = await new_call(pool, org)
    async with http.get(f"{srv.http_url}/api/calls/{call_id}", headers=org.bearer("viewer")) as r:
        assert "transcript" not in await r.json()
    async with http.get(f"{srv.http_url}/api/calls/{call_id}", headers=org.bearer("analyst")) as r:
        body = await r.json()
    assert body["transcript"] == [] and body["streams"] == []
    reads = await pool.fetch(
        "SELECT actor_type, request_id FROM audit_log WHERE action = 'transcript.read' "
        "AND resource_id = $1",
        str(call_id),
    )
    assert [r["actor_type"] for r in reads] == ["api_key"] and reads[0]["request_id"]


async def test_calls_are_listed_newest_first_a_page_at_a_time_with_filters(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    ids = [await new_call(pool, org) for _ in range(3)]
    await pool.execute("UPDATE calls SET status = 'completed' WHERE id = $1", ids[0])
    seen: list[str] = []
    url = f"{srv.http_url}/api/calls?limit=2"
    while url:
        async with http.get(url, headers=org.bearer("viewer")) as r:
            page = await r.json()
        seen += [c["id"] for c in page["calls"]]
        cursor = page["next_cursor"]
        url = f"{srv.http_url}/api/calls?limit=2&cursor={cursor}" if cursor else ""
    assert seen == [str(i) for i in reversed(ids)]
    async with http.get(
        f"{srv.http_url}/api/calls?status=completed", headers=org.bearer("viewer")
    ) as r:
        assert [c["id"] for c in (await r.json())["calls"]] == [str(ids[0])]
    await pool.execute("UPDATE calls SET recording_consent = false WHERE id = $1", ids[1])
    for consent, expected in (("refused", [ids[1]]), ("unknown", [ids[2], ids[0]])):
        async with http.get(
            f"{srv.http_url}/api/calls?consent={consent}", headers=org.bearer("viewer")
        ) as r:
            assert [c["id"] for c in (await r.json())["calls"]] == [str(i) for i in expected]
    bad_queries = (
        "limit=0", "status=exploded", "escalated=maybe", "from=yesterday", "cursor=%21",
        "consent=maybe",
    )  # fmt: skip
    for bad in bad_queries:
        async with http.get(f"{srv.http_url}/api/calls?{bad}", headers=org.bearer("viewer")) as r:
            body = await r.json()
        assert r.status == 400 and body["error"]["code"] == "INVALID_QUERY", bad
        assert body["error"]["details"]["fields"][0]["field"] == bad.split("=")[0]


async def test_changing_the_password_ends_every_session(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org
) -> None:
    _, body = await login(http, srv, org.emails["operator"])
    csrf = {"X-CSRF-Token": str(body["csrf_token"])}
    url = f"{srv.http_url}/api/auth/password"
    attempts = [
        ({"current_password": "wrong", "new_password": "a long new password"}, 403),
        ({"current_password": PASSWORD, "new_password": "short"}, 422),
        ({"current_password": PASSWORD}, 422),
        ({"current_password": PASSWORD, "new_password": "a long new password"}, 204),
    ]
    for payload, expected in attempts:
        async with http.post(url, json=payload, headers=csrf) as resp:
            assert resp.status == expected, payload
    async with http.get(f"{srv.http_url}/api/auth/me") as resp:
        assert resp.status == 401
    assert (await login(http, srv, org.emails["operator"]))[0] == 401
    assert (await login(http, srv, org.emails["operator"], "a long new password"))[0] == 200


async def test_admins_read_their_own_orgs_audit_trail(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    other = await make_org(pool, "Org C")
    await login(http, srv, org.emails["viewer"])
    await login(http, srv, other.emails["viewer"])
    async with http.get(
        f"{srv.http_url}/api/audit-logs?action=auth.login", headers=org.bearer("admin")
    ) as resp:
        records = (await resp.json())["records"]
    assert [r["resource_id"] for r in records] == [org.emails["viewer"]]
    assert records[0]["client_addr"] == "127.0.0.1" and records[0]["actor_type"] == "user"
    async with http.get(f"{srv.http_url}/api/audit-logs", headers=org.bearer("operator")) as r:
        assert r.status == 403


async def test_the_audit_log_cannot_be_changed_or_deleted(pool: Pool, org: Org) -> None:
    import asyncpg

    await pool.execute(
        "INSERT INTO audit_log (org_id, actor_type, action) VALUES ($1, 'system', 'test')", org.id
    )
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute(statement)


async def test_responses_carry_security_headers_even_when_refused(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/api/calls", "/health/live", "/no/such/page"):
        async with http.get(srv.http_url + path) as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
    async with http.get(srv.http_url + "/api/calls") as resp:
        assert resp.status == 401 and resp.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in resp.headers  # served over plain http here


async def test_the_openapi_document_describes_every_api_route(
    srv: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{srv.http_url}/api/openapi.json") as resp:
        spec = await resp.json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)  # raises on anything OpenAPI 3.1 does not allow
    served = {
        (r.method.lower(), r.resource.canonical)
        for r in srv.app.router.routes()
        if r.resource
        and r.resource.canonical.startswith("/api/")
        and r.method != "HEAD"
        and r.resource.canonical not in ("/api/openapi.json", "/api/docs", *FEED_STREAMS)
    }
    documented = {(m, p) for p, methods in spec["paths"].items() for m in methods}
    assert documented == served
    login = spec["paths"]["/api/auth/login"]["post"]
    assert login["security"] == [] and "401" in login["responses"]
    start = spec["paths"]["/api/calls"]["post"]
    assert start["description"] == "Needs the `calls:create` permission."
    body = spec["components"]["schemas"]["OutboundCall"]
    assert set(body["required"]) == {"to", "from"}
    assert [p["name"] for p in spec["paths"]["/api/calls/{call_id}"]["get"]["parameters"]] == [
        "call_id"
    ]
    async with http.get(f"{srv.http_url}/api/docs") as resp:
        page = await resp.text()
    assert resp.status == 200 and "/api/calls/{call_id}/hangup" in page


async def test_text_postgres_cannot_store_is_refused_not_crashed_on(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org
) -> None:
    admin = org.bearer("admin")

    async def invite(raw: bytes) -> tuple[int, dict[str, Any]]:
        async with http.post(
            f"{srv.http_url}/api/team/invitations",
            data=raw,
            headers={**admin, "Content-Type": "application/json"},
        ) as resp:
            return resp.status, (await resp.json())["error"]

    status, error = await invite(b'{"email": "a\\u0000b@example.com", "role": "viewer"}')
    assert (status, error["code"]) == (422, "VALIDATION_FAILED")
    assert error["details"]["fields"][0]["field"] == "email"
    # JSON's grammar allows a lone surrogate escape; the parser refuses it, saying where.
    status, error = await invite(b'{"email": "\\ud8cd@example.com", "role": "viewer"}')
    assert (status, error["code"], error["details"]) == (
        400, "INVALID_JSON", {"line": 1, "column": 12}
    )  # fmt: skip
    for query in ("action=%00", "before=-99999999999999999999999", "before=0"):
        async with http.get(f"{srv.http_url}/api/audit-logs?{query}", headers=admin) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "INVALID_QUERY"


async def test_an_api_keys_last_use_is_recorded_at_most_once_a_minute(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, pool: Pool
) -> None:
    prefix = org.keys["viewer"].split("_")[1]
    query = "SELECT last_used_at FROM api_keys WHERE prefix = $1"
    assert await pool.fetchval(query, prefix) is None
    async with http.get(f"{srv.http_url}/api/calls", headers=org.bearer("viewer")) as resp:
        assert resp.status == 200
    first = await pool.fetchval(query, prefix)
    assert first is not None
    async with http.get(f"{srv.http_url}/api/calls", headers=org.bearer("viewer")) as resp:
        assert resp.status == 200
    assert await pool.fetchval(query, prefix) == first
