"""HTTP hardening for the control plane: security headers, CORS for /api/, an API rate limit.

The order in `web.Application(middlewares=[...])`, outermost first:

    security_headers_middleware   sets headers on whatever response comes back and raises
                                  nothing, so it sits outside request_middleware: only there
                                  does it see the JSON errors request_middleware renders
    request_middleware            (server.middleware) request id; every exception below it
                                  becomes the JSON error shape
    cors_middleware               answers preflights before any authentication; grants CORS
                                  on responses and on ApiErrors passing through
    api_rate_limit_middleware     429 before any authentication work is done
    auth_middleware               (control.auth)

A middleware inside request_middleware never sees the response rendered from an exception
that passed it; the one route it has onto that response is `ApiError.headers`, which the
renderer copies (cors_middleware uses it). Responses rendered from aiohttp's own exceptions
(404, 405, 413) and from unhandled ones (500, 503) therefore carry no CORS headers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from control import credentials
from control.api.bodies import storable_text
from control.auth import SESSION_COOKIE
from control.errors import ApiError, retry_later
from control.rate_limit import RateLimiter

API_PREFIX = "/api/"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains"
CORS_ALLOW_METHODS = "GET, POST, PATCH, DELETE"
CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-CSRF-Token, X-Request-ID, Idempotency-Key"
CORS_EXPOSE_HEADERS = "X-Request-ID"
CORS_MAX_AGE_S = 600

# What a browser sends in Origin: lower-case scheme and host, an optional port, nothing after.
# Anything else in the configuration (a trailing slash, a path, "*", "null") would never match
# or would match something unintended, so it is refused at start-up.
_ORIGIN = re.compile(r"https?://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class HttpSecurityConfig:
    https: bool
    """The public URL is https: send HSTS."""
    cors_origins: frozenset[str]
    """Exact origins allowed to call /api/ from a browser, e.g. "https://app.example.com";
    empty means no cross-origin access."""
    api_rate_per_s: float = 20.0
    """Sustained /api/ requests per second per client (see `api_client_key`)."""
    api_burst: float = 60.0

    def __post_init__(self) -> None:
        bad = sorted(o for o in self.cors_origins if not _ORIGIN.fullmatch(o))
        if bad:
            raise ValueError(f"CORS origins must be exactly scheme://host[:port]: {bad}")
        if not self.api_rate_per_s > 0:
            raise ValueError("api_rate_per_s must be positive")
        if not self.api_burst >= 1:
            raise ValueError("api_burst must be at least 1")


def is_origin(value: str) -> bool:
    """Exactly scheme://host[:port], lower case, as browsers send it in `Origin`."""
    return bool(_ORIGIN.fullmatch(value))


def _is_api(request: web.BaseRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def security_headers_middleware(config: HttpSecurityConfig) -> Middleware:
    """Security headers on every response, errors included, when placed outside
    request_middleware. A header the handler set itself is left as it is."""
    common = {
        hdrs.CONTENT_SECURITY_POLICY: CONTENT_SECURITY_POLICY,
        hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff",
        "Referrer-Policy": "no-referrer",
        hdrs.X_FRAME_OPTIONS: "DENY",
    }
    if config.https:
        common[hdrs.STRICT_TRANSPORT_SECURITY] = STRICT_TRANSPORT_SECURITY
    api = {**common, hdrs.CACHE_CONTROL: "no-store"}

    def decorate(request: web.Request, response: web.StreamResponse) -> None:
        if response.prepared:
            return  # streamed by the handler (a websocket, say): its headers are already sent
        for name, value in (api if _is_api(request) else common).items():
            response.headers.setdefault(name, value)

    @web.middleware
    async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # A redirect request_middleware lets through: aiohttp sends the exception itself.
            decorate(request, exc)
            raise
        decorate(request, response)
        return response

    return security_headers


def _add_vary_origin(headers: MutableMapping[str, str]) -> None:
    vary = headers.get(hdrs.VARY)
    if vary is None:
        headers[hdrs.VARY] = "Origin"
    elif not {v.strip().lower() for v in vary.split(",")} & {"origin", "*"}:
        headers[hdrs.VARY] = f"{vary}, Origin"


def _grant(headers: MutableMapping[str, str], origin: str) -> None:
    headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
    _add_vary_origin(headers)


def cors_middleware(config: HttpSecurityConfig) -> Middleware:
    """CORS for /api/ with credentials, for the configured origins only. Place it inside
    request_middleware: a refused preflight is an ApiError(403, "CORS_ORIGIN_DENIED")."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not _is_api(request):
            return await handler(request)
        allowed = origin in config.cors_origins
        if (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        ):
            # A preflight carries no credentials: answer it here, before authentication.
            if not allowed:
                raise ApiError(403, "CORS_ORIGIN_DENIED", "this origin may not call the API")
            preflight = web.Response(status=204)
            _grant(preflight.headers, origin)
            preflight.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = CORS_ALLOW_METHODS
            preflight.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = CORS_ALLOW_HEADERS
            preflight.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(CORS_MAX_AGE_S)
            return preflight
        if not allowed:
            return await handler(request)  # the browser withholds the response
        try:
            response = await handler(request)
        except (ApiError, web.HTTPException) as exc:
            # request_middleware renders it with these headers, so the page can read the error
            # (ours, or aiohttp's own 404, 405 and 413).
            _grant(exc.headers, origin)
            exc.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSE_HEADERS
            raise
        _grant(response.headers, origin)
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSE_HEADERS
        return response

    return cors


def api_client_key(request: web.BaseRequest) -> str:
    """Whose bucket a request draws on: a hash of the whole API key, else of the session
    cookie, else the peer address. Nothing here is verified yet (authentication runs later),
    and the key's prefix is public, so keying on it would let anyone drain another's bucket."""
    scheme, _, value = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer":
        key = value.strip()
        if credentials.api_key_prefix(key) is not None:
            return f"key:{credentials.token_hash(key).hex()}"
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        return f"session:{credentials.token_hash(token).hex()}"
    return f"addr:{request.remote or 'unknown'}"


ADDRESS_FACTOR = 10


def api_rate_limit_middleware(
    config: HttpSecurityConfig, *, clock: Callable[[], float] = time.monotonic
) -> Middleware:
    """A token bucket per `api_client_key` for /api/; over it, ApiError(429, "RATE_LIMITED")
    with Retry-After. In memory, per process.

    Made-up keys and cookies each get a fresh client bucket, so every address also has a
    bucket ADDRESS_FACTOR times larger: enough for many honest clients behind one NAT, not
    for one address cycling through invented credentials."""
    limiter = RateLimiter(config.api_rate_per_s, config.api_burst)
    by_address = RateLimiter(
        config.api_rate_per_s * ADDRESS_FACTOR, config.api_burst * ADDRESS_FACTOR
    )

    @web.middleware
    async def api_rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_api(request):
            now, client = clock(), api_client_key(request)
            address = f"addr:{request.remote or 'unknown'}"
            if client == address:  # no credentials: the address is the client
                wait = limiter.acquire(client, now)
            else:
                wait = by_address.acquire(address, now) or limiter.acquire(client, now)
            if wait > 0:
                raise retry_later(429, "RATE_LIMITED", "too many requests; slow down", wait)
        return await handler(request)

    return api_rate_limit


@web.middleware
async def api_query_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuses /api/ query strings carrying text Postgres cannot store (a %00, or bytes that
    decode to lone surrogates) before any handler passes them to a query."""
    if _is_api(request):
        for name, value in request.query.items():
            if not storable_text(name + value):
                raise ApiError(
                    400, "INVALID_QUERY", f"query parameter {name[:40]!r} is not valid text",
                    {"fields": [{"field": name[:40], "message": "not valid text"}]},
                )  # fmt: skip
    return await handler(request)
