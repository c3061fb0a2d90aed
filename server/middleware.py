"""HTTP middleware, in one place: request id, errors as JSON, request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Histogram

from control.app_keys import REQUEST_ID
from control.errors import ApiError
from server import request_context
from server.errors import code_for_status, error_body

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "voxsouth_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
HTTP_SECONDS = Histogram(
    "voxsouth_http_request_seconds",
    "HTTP request handling time by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _route_label(request: web.Request) -> str:
    # The route's template, never the raw path: label values stay a bounded set.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    token = request_context.request_id.set(rid)
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    route = _route_label(request)
    try:
        response = await _handle(request, handler, rid)
    finally:
        request_context.request_id.reset(token)
    response.headers["X-Request-ID"] = rid
    HTTP_REQUESTS.labels(route, str(response.status)).inc()
    HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
    return response


def _kept_header(name: str) -> bool:
    """Headers of aiohttp's own HTTP errors that survive into our JSON error response."""
    lowered = name.lower()
    return lowered in ("allow", "retry-after", "vary") or lowered.startswith("access-control-")


async def _handle(request: web.Request, handler: Handler, rid: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(
            error_body(exc.code, exc.message, rid, exc.details),
            status=exc.status,
            headers=exc.headers,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            error_body(code_for_status(exc.status), exc.reason, rid, {}),
            status=exc.status,
            headers={k: v for k, v in exc.headers.items() if _kept_header(k)},
        )
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
        log.exception("dependency unavailable")
        return web.json_response(
            error_body("SERVICE_UNAVAILABLE", "a dependency is unavailable; retry", rid, {}),
            status=503,
            headers={"Retry-After": "1"},
        )
    except Exception:
        log.exception("unhandled error")
        return web.json_response(
            error_body("INTERNAL_ERROR", "internal error", rid, {}), status=500
        )
