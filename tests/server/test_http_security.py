"""Security headers, CORS and the API rate limit, over loopback, in the recommended order.

Each test app is the real middleware chain (security headers outside request_middleware,
then CORS, the rate limit and the real auth middleware) around small handlers; no database:
the handlers are `@public`, and the one `@requires` route is only ever called without
credentials, which auth refuses before it touches the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from control import credentials
from control.app_keys import POOL
from control.auth import SESSION_COOKIE, auth_middleware, public, requires
from control.errors import ApiError
from control.permissions import Action
from server.http_security import (
    CONTENT_SECURITY_POLICY,
    STRICT_TRANSPORT_SECURITY,
    HttpSecurityConfig,
    api_client_key,
    api_rate_limit_middleware,
    cors_middleware,
    security_headers_middleware,
)
from server.middleware import request_middleware
from storage.db import Pool
from tests.conftest import timeout

APP_ORIGIN = "https://app.example.com"
Client = TestClient[web.Request, web.Application]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Handlers:
    """The test app's routes; counts what reached a handler."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.home),
            web.get("/old", self.old),
            web.get("/api/ok", self.ok),
            web.get("/api/private", self.private),
            web.get("/api/boom", self.boom),
            web.get("/api/gone", self.gone),
            web.get("/api/cached", self.cached),
            web.post("/api/echo", self.echo),
        ]

    async def home(self, request: web.Request) -> web.Response:
        self.reached.append(request.path)
        return web.Response(text="home")

    async def old(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    @public
    async def ok(self, request: web.Request) -> web.Response:
        self.reached.append(request.path)
        return web.json_response({"ok": True})

    @requires(Action.CALLS_READ)
    async def private(self, request: web.Request) -> web.Response:
        self.reached.append(request.path)
        return web.json_response({"secret": True})

    @public
    async def boom(self, request: web.Request) -> web.Response:
        raise RuntimeError("internal detail that must not leak")

    @public
    async def gone(self, request: web.Request) -> web.Response:
        raise ApiError(410, "GONE", "this thing is gone")

    @public
    async def cached(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Cache-Control": "private, max-age=60"})

    @public
    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response(await request.json())


@asynccontextmanager
async def serve(
    config: HttpSecurityConfig,
    handlers: Handlers | None = None,
    *,
    client_max_size: int = 64 * 1024,
    clock: FakeClock | None = None,
) -> AsyncIterator[Client]:
    rate_limit = (
        api_rate_limit_middleware(config)
        if clock is None
        else api_rate_limit_middleware(config, clock=clock)
    )
    app = web.Application(
        middlewares=[
            security_headers_middleware(config),
            request_middleware,
            cors_middleware(config),
            rate_limit,
            auth_middleware,
        ],
        client_max_size=client_max_size,
    )
    # authenticate() looks the pool up before it finds no credentials; it is never used here.
    app[POOL] = cast(Pool, None)
    app.add_routes((handlers or Handlers()).routes())
    async with asyncio.timeout(timeout(10)), TestClient(TestServer(app)) as client:
        yield client


def config(**overrides: Any) -> HttpSecurityConfig:
    values: dict[str, Any] = {"https": False, "cors_origins": frozenset({APP_ORIGIN})}
    values.update(overrides)
    return HttpSecurityConfig(**values)


def assert_error(body: Any, code: str, request_id: str) -> None:
    assert body == {
        "error": {
            "code": code,
            "message": body["error"]["message"],
            "request_id": request_id,
            "details": body["error"]["details"],
        }
    }
    assert isinstance(body["error"]["message"], str)


# --- security headers ---


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/", 200, None),
        ("/api/ok", 200, None),
        ("/api/missing", 404, "NOT_FOUND"),
        ("/api/private", 401, "UNAUTHENTICATED"),
        ("/api/gone", 410, "GONE"),
        ("/api/boom", 500, "INTERNAL_ERROR"),
        ("/old", 302, None),
    ],
)
async def test_security_headers_on_every_response(path: str, status: int, code: str | None) -> None:
    async with serve(config()) as client:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == status
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in resp.headers
        if path.startswith("/api/"):
            assert resp.headers["Cache-Control"] == "no-store"
        else:
            assert "Cache-Control" not in resp.headers
        if code is not None:
            body = await resp.json()
            assert_error(body, code, resp.headers["X-Request-ID"])
            assert "internal detail" not in str(body)


@pytest.mark.parametrize("path", ["/", "/api/ok", "/api/missing", "/api/boom"])
async def test_hsts_only_when_https(path: str) -> None:
    async with serve(config(https=True)) as client:
        resp = await client.get(path)
        assert resp.headers["Strict-Transport-Security"] == STRICT_TRANSPORT_SECURITY
    async with serve(config(https=False)) as client:
        resp = await client.get(path)
        assert "Strict-Transport-Security" not in resp.headers


async def test_a_header_the_handler_set_is_kept() -> None:
    async with serve(config()) as client:
        resp = await client.get("/api/cached")
        assert resp.headers["Cache-Control"] == "private, max-age=60"


# --- CORS ---


def assert_no_cors(resp: Any) -> None:
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]
    assert "Vary" not in resp.headers


async def test_cors_allowed_origin_is_granted() -> None:
    async with serve(config()) as client:
        resp = await client.get("/api/ok", headers={"Origin": APP_ORIGIN})
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert resp.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
        assert resp.headers["Vary"] == "Origin"


@pytest.mark.parametrize(("path", "status"), [("/api/private", 401), ("/api/gone", 410)])
async def test_cors_granted_on_api_errors_so_the_page_can_read_them(path: str, status: int) -> None:
    async with serve(config()) as client:
        resp = await client.get(path, headers={"Origin": APP_ORIGIN})
        assert resp.status == status
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert resp.headers["Vary"] == "Origin"
        assert (await resp.json())["error"]["request_id"] == resp.headers["X-Request-ID"]


async def test_cors_disallowed_origin_gets_no_cors_headers() -> None:
    handlers = Handlers()
    async with serve(config(), handlers) as client:
        resp = await client.get("/api/ok", headers={"Origin": "https://evil.example.com"})
        assert resp.status == 200
        assert_no_cors(resp)
        assert resp.headers["X-Frame-Options"] == "DENY"


async def test_cors_preflight_allowed_is_answered_without_the_handler_or_auth() -> None:
    handlers = Handlers()
    async with serve(config(), handlers) as client:
        resp = await client.options(
            "/api/private",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, x-csrf-token",
            },
        )
        assert resp.status == 204
        assert await resp.read() == b""
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert resp.headers["Access-Control-Allow-Methods"] == "GET, POST, PATCH, DELETE"
        assert resp.headers["Access-Control-Allow-Headers"] == (
            "Authorization, Content-Type, X-CSRF-Token, X-Request-ID, Idempotency-Key"
        )
        assert resp.headers["Access-Control-Max-Age"] == "600"
        assert resp.headers["Vary"] == "Origin"
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert handlers.reached == []


@pytest.mark.parametrize("origins", [frozenset({APP_ORIGIN}), frozenset()])
async def test_cors_preflight_from_a_disallowed_origin_is_refused(origins: frozenset[str]) -> None:
    handlers = Handlers()
    async with serve(config(cors_origins=origins), handlers) as client:
        resp = await client.options(
            "/api/ok",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert resp.status == 403
        assert_error(await resp.json(), "CORS_ORIGIN_DENIED", resp.headers["X-Request-ID"])
        assert_no_cors(resp)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert handlers.reached == []


async def test_no_origin_passes_through_untouched() -> None:
    handlers = Handlers()
    async with serve(config(), handlers) as client:
        resp = await client.get("/api/ok")
        assert resp.status == 200
        assert_no_cors(resp)
        # Not a preflight without an Origin: the router answers, as it would without CORS.
        resp = await client.options("/api/ok", headers={"Access-Control-Request-Method": "GET"})
        assert resp.status == 405
        assert_no_cors(resp)
        assert_error(await resp.json(), "METHOD_NOT_ALLOWED", resp.headers["X-Request-ID"])
    assert handlers.reached == ["/api/ok"]


async def test_cors_is_only_for_the_api() -> None:
    async with serve(config()) as client:
        resp = await client.get("/", headers={"Origin": APP_ORIGIN})
        assert resp.status == 200
        assert_no_cors(resp)


@pytest.mark.parametrize(
    "origin",
    ["https://app.example.com/", "*", "null", "HTTPS://APP.EXAMPLE.COM", "app.example.com"],
)
def test_config_refuses_an_origin_that_cannot_match_exactly(origin: str) -> None:
    with pytest.raises(ValueError, match="CORS origins"):
        config(cors_origins=frozenset({origin}))


def test_config_accepts_origins_with_ports_and_addresses() -> None:
    origins = frozenset({"http://localhost:5173", "https://[::1]:8443", "https://10.0.0.2"})
    assert config(cors_origins=origins).cors_origins == origins


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 60.0), (-1.0, 60.0), (20.0, 0.5)])
def test_config_refuses_a_limit_that_cannot_work(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        config(api_rate_per_s=rate, api_burst=burst)


# --- rate limit ---


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_rate_limit_per_api_key() -> None:
    key_a, key_b = credentials.new_api_key(), credentials.new_api_key()
    async with serve(config(api_rate_per_s=0.001, api_burst=3)) as client:
        for _ in range(3):
            assert (await client.get("/api/ok", headers=bearer(key_a.key))).status == 200
        resp = await client.get("/api/ok", headers=bearer(key_a.key))
        assert resp.status == 429
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 1000
        body = await resp.json()
        assert_error(body, "RATE_LIMITED", resp.headers["X-Request-ID"])
        assert body["error"]["details"] == {"retry_after_s": retry}
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
        # Someone who knows key A's (public) prefix cannot drain key A's bucket, or use it.
        same_prefix = f"vxs_{key_a.prefix}_{'x' * 43}"
        assert (await client.get("/api/ok", headers=bearer(same_prefix))).status == 200
        # Other callers have their own buckets.
        assert (await client.get("/api/ok", headers=bearer(key_b.key))).status == 200
        assert (await client.get("/api/ok")).status == 200


async def test_rate_limit_refills_and_says_when() -> None:
    clock = FakeClock()
    key = credentials.new_api_key().key
    async with serve(config(api_rate_per_s=0.001, api_burst=3), clock=clock) as client:
        for _ in range(3):
            assert (await client.get("/api/ok", headers=bearer(key))).status == 200
        resp = await client.get("/api/ok", headers=bearer(key))
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1000"
        clock.now += 999.0
        resp = await client.get("/api/ok", headers=bearer(key))
        assert resp.headers["Retry-After"] == "1"  # whole seconds, rounded up, at least 1
        clock.now += 1.0
        assert (await client.get("/api/ok", headers=bearer(key))).status == 200


async def test_rate_limit_by_session_then_by_address() -> None:
    async with serve(config(api_rate_per_s=0.001, api_burst=3)) as client:
        for cookie in ("session-one", "session-two"):
            headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
            for _ in range(3):
                assert (await client.get("/api/ok", headers=headers)).status == 200
            assert (await client.get("/api/ok", headers=headers)).status == 429
        # A malformed bearer token is not a key: it counts against the address.
        for _ in range(3):
            assert (await client.get("/api/ok", headers=bearer("not-a-key"))).status == 200
        assert (await client.get("/api/ok")).status == 429


async def test_rate_limit_applies_to_errors_and_not_outside_the_api() -> None:
    async with serve(config(api_rate_per_s=0.001, api_burst=3)) as client:
        for _ in range(3):
            assert (await client.get("/api/private")).status == 401
        assert (await client.get("/api/private")).status == 429
        for _ in range(5):
            assert (await client.get("/")).status == 200


async def test_rate_limited_response_is_readable_cross_origin() -> None:
    async with serve(config(api_rate_per_s=0.001, api_burst=1)) as client:
        origin = {"Origin": APP_ORIGIN}
        assert (await client.get("/api/ok", headers=origin)).status == 200
        resp = await client.get("/api/ok", headers=origin)
        assert resp.status == 429
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert resp.headers["Retry-After"] == "1000"


def test_client_key() -> None:
    key = credentials.new_api_key()
    assert api_client_key(make_mocked_request("GET", "/", headers=bearer(key.key))) == (
        f"key:{key.key_hash.hex()}"
    )
    cookie = {"Cookie": f"{SESSION_COOKIE}=abc"}
    assert api_client_key(make_mocked_request("GET", "/", headers=cookie)) == (
        f"session:{credentials.token_hash('abc').hex()}"
    )
    both = {**bearer(key.key), **cookie}
    assert (
        api_client_key(make_mocked_request("GET", "/", headers=both)) == f"key:{key.key_hash.hex()}"
    )


# --- 413 ---


async def test_request_body_over_the_limit_is_a_json_413() -> None:
    async with serve(config(), client_max_size=1024) as client:
        small = await client.post("/api/echo", json={"a": "b"})
        assert small.status == 200
        assert await small.json() == {"a": "b"}
        resp = await client.post("/api/echo", json={"a": "x" * 2000})
        assert resp.status == 413
        assert_error(await resp.json(), "REQUEST_ENTITY_TOO_LARGE", resp.headers["X-Request-ID"])
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["Cache-Control"] == "no-store"


async def test_one_address_cannot_escape_the_limit_by_inventing_credentials() -> None:
    async with serve(config(api_rate_per_s=0.001, api_burst=1)) as client:
        # Each made-up key has its own client bucket; the address bucket (10x) still ends it.
        statuses = [
            (await client.get("/api/ok", headers=bearer(credentials.new_api_key().key))).status
            for _ in range(11)
        ]
    assert statuses == [200] * 10 + [429]


async def test_aiohttp_own_errors_are_readable_cross_origin() -> None:
    async with serve(config()) as client:
        resp = await client.get("/api/no-such-route", headers={"Origin": APP_ORIGIN})
        assert resp.status == 404
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert (await resp.json())["error"]["code"] == "NOT_FOUND"
        resp = await client.get("/api/no-such-route", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in resp.headers
