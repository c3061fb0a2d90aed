"""Who is calling, and may they: authentication and the route guard for /api/.

Every /api/ handler is decorated with `@requires(Action.X)` or `@public`; the middleware
refuses to serve one that is neither (and a test walks the route table so none ships).
Principals come from an API key (`Authorization: Bearer vxs_…`) or a browser session cookie.
Mutating requests made with a session cookie must echo the session's CSRF token in
`X-CSRF-Token`: a cross-site form can send the cookie but cannot read the token.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from control import credentials
from control.app_keys import POOL
from control.errors import ApiError
from control.permissions import Action, Plan, Role, allowed
from storage import accounts

SESSION_COOKIE = "voxsouth_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_PERMISSION_ATTR = "__voxsouth_permission__"
_PUBLIC_ATTR = "__voxsouth_public__"

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: uuid.UUID
    role: Role
    plan: Plan
    actor_type: Literal["user", "api_key"]
    actor_id: uuid.UUID
    session_id: uuid.UUID | None = None
    csrf_token: str | None = None
    email: str | None = None


def requires(action: Action) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _PERMISSION_ATTR, action)
        return handler

    return mark


def public(handler: H) -> H:
    setattr(handler, _PUBLIC_ATTR, True)
    return handler


def declared_permission(handler: object) -> Action | Literal["public"] | None:
    """What a route handler declared; None when it declared nothing."""
    if getattr(handler, _PUBLIC_ATTR, False):
        return "public"
    action = getattr(handler, _PERMISSION_ATTR, None)
    return action if isinstance(action, Action) else None


PRINCIPAL = web.RequestKey("principal", Principal)
current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
"""The caller of the request in progress, for log lines."""


def principal(request: web.Request) -> Principal:
    """The authenticated caller of a route declared with `requires`."""
    return request[PRINCIPAL]


async def authenticate(request: web.Request) -> Principal | None:
    pool = request.app[POOL]
    now = datetime.now(UTC)
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        prefix = credentials.api_key_prefix(value.strip())
        key = await accounts.api_key_principal(pool, prefix) if prefix else None
        if key is None or not credentials.api_key_matches(value.strip(), key.key_hash):
            return None
        if key.last_used_at is None or now - key.last_used_at >= accounts.TOUCH_EVERY:
            await accounts.touch_api_key(pool, key.key_id, now)
        return Principal(
            org_id=key.org_id,
            role=key.role,  # type: ignore[arg-type]  # constrained by a CHECK in the schema
            plan=key.plan,  # type: ignore[arg-type]
            actor_type="api_key",
            actor_id=key.key_id,
        )
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 256:
        return None
    session = await accounts.session_principal(pool, credentials.token_hash(token), now)
    if session is None:
        return None
    return Principal(
        org_id=session.org_id,
        role=session.role,  # type: ignore[arg-type]
        plan=session.plan,  # type: ignore[arg-type]
        actor_type="user",
        actor_id=session.user_id,
        session_id=session.session_id,
        csrf_token=session.csrf_token,
        email=session.email,
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.match_info.http_exception is not None:
        return await handler(request)  # not the API, or a 404/405 the router answers
    declared = declared_permission(request.match_info.handler)
    if declared == "public":
        return await handler(request)
    if declared is None:
        raise ApiError(500, "INTERNAL_ERROR", "internal error")  # see module docstring
    who = await authenticate(request)
    if who is None:
        raise ApiError(401, "UNAUTHENTICATED", "sign in, or send an API key as a Bearer token")
    if who.session_id is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not who.csrf_token or not hmac.compare_digest(sent, who.csrf_token):
            raise ApiError(403, "CSRF_FAILED", f"missing or wrong {CSRF_HEADER} header")
    if not allowed(who.role, declared):
        raise ApiError(403, "FORBIDDEN", f"the {who.role} role may not {declared.value}")
    request[PRINCIPAL] = who
    token = current_principal.set(who)
    try:
        return await handler(request)
    finally:
        current_principal.reset(token)
