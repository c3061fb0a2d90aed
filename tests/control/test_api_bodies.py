"""Every route that takes a JSON body refuses a bad one with a 4xx in the one error shape.

The routes come from the live route table, so a route added later is walked too. Which of
them read a body is what the OpenAPI document says (its `requestBody`); the others are
still sent every bad body and must not fail with a 5xx.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from control.api.bodies import MAX_DEPTH
from server.app import MAX_BODY, RunningServer
from storage.db import Pool
from tests.support.accounts import PASSWORD, Org, make_org

WRITES = ("POST", "PUT", "PATCH")


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass(frozen=True, slots=True)
class BadBody:
    what: str
    body: bytes
    status: int
    code: str
    content_type: str = "application/json"


BAD_BODIES = [
    BadBody("50,000 unclosed arrays", b"[" * 50_000, 400, "INVALID_JSON"),
    BadBody("5,000 nested objects", b'{"a":' * 5_000 + b"1" + b"}" * 5_000, 400, "INVALID_JSON"),
    # Parses (orjson stops at 1024), but no Python code may recurse over it.
    BadBody("1,000 nested arrays", nested_arrays(1_000), 400, "INVALID_JSON"),
    BadBody("one level too deep", nested_arrays(MAX_DEPTH + 1), 400, "INVALID_JSON"),
    BadBody("as deep as allowed", nested_arrays(MAX_DEPTH), 422, "VALIDATION_FAILED"),
    BadBody("malformed", b"{", 400, "INVALID_JSON"),
    BadBody("not an object", b'"text"', 422, "VALIDATION_FAILED"),
    BadBody("a 5,000-digit number", b"1" * 5_000, 400, "INVALID_JSON"),
    BadBody("not JSON content", b"{}", 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain"),
    BadBody("too large", b'{"a": "' + b"x" * MAX_BODY + b'"}', 413, "REQUEST_ENTITY_TOO_LARGE"),
]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    takes_body: bool


async def write_routes(srv: RunningServer, http: aiohttp.ClientSession) -> list[Route]:
    """Every POST/PUT/PATCH under /api/, sign-out last (it ends the session the walk uses)."""
    async with http.get(f"{srv.http_url}/api/openapi.json") as resp:
        spec = await resp.json()
    routes = [
        Route(r.method, path, "requestBody" in spec["paths"][path][r.method.lower()])
        for r in srv.app.router.routes()
        if r.method in WRITES
        and r.resource is not None
        and (path := r.resource.canonical).startswith("/api/")
    ]
    return sorted(routes, key=lambda r: r.path == "/api/auth/logout")


@pytest.fixture
async def org(pool: Pool) -> Org:
    org = await make_org(pool, "Body org")
    # Past every plan gate (API keys, outbound calls): the body is what is under test.
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    return org


async def sign_in(srv: RunningServer, http: aiohttp.ClientSession, org: Org) -> dict[str, str]:
    """A browser session of the owner (change-password takes users only, not API keys);
    the headers its writes need."""
    credentials = {"email": org.emails["owner"], "password": PASSWORD}
    async with http.post(f"{srv.http_url}/api/auth/login", json=credentials) as resp:
        assert resp.status == 200, await resp.text()
        return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


def assert_error_shape(body: Any, headers: Any) -> None:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "request_id", "details"}, error
    assert isinstance(error["message"], str) and isinstance(error["details"], dict)
    assert error["request_id"] and error["request_id"] == headers["X-Request-ID"]


@pytest.mark.parametrize("bad", BAD_BODIES, ids=[b.what for b in BAD_BODIES])
async def test_every_body_route_refuses_a_bad_body_with_the_error_shape(
    srv: RunningServer, http: aiohttp.ClientSession, org: Org, bad: BadBody
) -> None:
    headers = {**await sign_in(srv, http, org), "Content-Type": bad.content_type}
    routes = await write_routes(srv, http)
    assert Route("POST", "/api/api-keys", True) in routes
    for route in routes:
        # Any value for a path parameter: a body refused is refused before any lookup.
        url = srv.http_url + re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), route.path)
        async with http.request(route.method, url, data=bad.body, headers=headers) as resp:
            where = f"{route.method} {route.path}"
            if resp.status < 400:
                assert not route.takes_body, where  # only a route without a body may ignore it
                continue
            body = await resp.json()
        assert resp.status < 500, (where, body)
        assert_error_shape(body, resp.headers)
        if route.takes_body:
            assert (resp.status, body["error"]["code"]) == (bad.status, bad.code), (where, body)
