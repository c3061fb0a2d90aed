"""Signing in and out: /api/auth/login, /logout, /me, /password."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, Field

from control import credentials
from control.api import audit
from control.api.bodies import parse_body, plain
from control.api.openapi import doc
from control.app_keys import EMAIL_ENABLED, POOL, REQUEST_ID
from control.auth import SESSION_COOKIE, principal, public, requires
from control.errors import ApiError, retry_later
from control.permissions import Action
from control.rate_limit import RateLimiter
from storage import accounts, email_outbox

# Verified when the email is unknown, so both cases take the same time.
_DUMMY_HASH = credentials.hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class SignInConfig:
    ttl: timedelta = timedelta(hours=12)
    secure_cookie: bool = True
    login_rate_per_s: float = 10 / 60
    login_burst: float = 10


class LoginBody(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    org_id: uuid.UUID | None = None


class ResetBody(BaseModel):
    email: str = Field(min_length=3, max_length=320)


class ResetConfirmBody(BaseModel):
    token: str = Field(min_length=10, max_length=200)
    new_password: str = Field(min_length=1, max_length=1024)


RESET_TTL = timedelta(hours=1)


class PasswordBody(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


def client_addr(request: web.Request) -> str:
    return request.remote or "unknown"


class SessionRoutes:
    def __init__(self, config: SignInConfig) -> None:
        self._config = config
        self._login_limiter = RateLimiter(config.login_rate_per_s, config.login_burst)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/auth/login", self.login),
            web.post("/api/auth/logout", self.logout),
            web.get("/api/auth/me", self.me),
            web.post("/api/auth/password", self.change_password),
            web.post("/api/auth/password-reset", self.request_reset),
            web.post("/api/auth/password-reset/confirm", self.confirm_reset),
        ]

    @doc(
        "Sign in; sets the session cookie and returns the CSRF token",
        body=LoginBody,
        errors=(401, 409),
    )
    @public
    async def login(self, request: web.Request) -> web.Response:
        wait = self._login_limiter.acquire(client_addr(request), time.monotonic())
        if wait:
            raise retry_later(429, "RATE_LIMITED", "too many sign-in attempts; slow down", wait)
        body = await parse_body(request, LoginBody)
        pool = request.app[POOL]
        now = datetime.now(UTC)
        user = await accounts.user_by_email(pool, body.email)
        if user is not None and user.locked_until is not None and user.locked_until > now:
            await _audit_login(request, "auth.login_locked", None, user.id, body.email)
            wait_s = (user.locked_until - now).total_seconds()
            raise retry_later(
                429, "ACCOUNT_LOCKED", "too many failed sign-ins; try again later", wait_s
            )
        stored = user.password_hash if user is not None else _DUMMY_HASH
        ok = await asyncio.to_thread(credentials.verify_password, stored, body.password)
        if user is None or not ok:
            if user is not None:
                await accounts.record_login_failure(pool, user.id, now)
            await _audit_login(request, "auth.login_failed", None, None, body.email)
            raise ApiError(401, "INVALID_CREDENTIALS", "wrong email or password")

        memberships = await accounts.memberships(pool, user.id)
        chosen = [m for m in memberships if body.org_id in (None, m.org_id)]
        if not chosen:
            raise ApiError(403, "NOT_A_MEMBER", "you are not a member of that organization")
        if len(chosen) > 1:
            orgs = [{"org_id": str(m.org_id), "name": m.org_name} for m in chosen]
            raise ApiError(409, "ORG_REQUIRED", "choose an organization", {"orgs": orgs})
        membership = chosen[0]
        await accounts.record_login_success(pool, user.id)
        token, csrf = credentials.new_session_token(), secrets.token_urlsafe(24)
        await accounts.create_session(
            pool,
            token_hash=credentials.token_hash(token),
            csrf_token=csrf,
            user_id=user.id,
            org_id=membership.org_id,
            expires_at=now + self._config.ttl,
        )
        await _audit_login(request, "auth.login", membership.org_id, user.id, user.email)
        response = web.json_response(
            {
                "user": {"id": str(user.id), "email": user.email},
                "org": {"id": str(membership.org_id), "name": membership.org_name},
                "role": membership.role,
                "csrf_token": csrf,
            }
        )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(self._config.ttl.total_seconds()),
            httponly=True,
            secure=self._config.secure_cookie,
            samesite="Strict",
            path="/",
        )
        return response

    @doc("Sign out (ends this session)", status=204)
    @requires(Action.SELF)
    async def logout(self, request: web.Request) -> web.Response:
        who = principal(request)
        if who.session_id is not None:
            await accounts.revoke_session(request.app[POOL], who.session_id)
            await audit.record(
                request.app[POOL], request, "auth.logout",
                resource_type="session", resource_id=str(who.session_id),
            )  # fmt: skip
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    @doc(
        "Who am I: the signed-in user or API key, its org, role and plan (and, for a browser "
        "session, its CSRF token, so a reloaded page can keep writing)"
    )
    @requires(Action.SELF)
    async def me(self, request: web.Request) -> web.Response:
        who = principal(request)
        return web.json_response(
            plain(
                {
                    "actor_type": who.actor_type,
                    "actor_id": who.actor_id,
                    "email": who.email,
                    "org_id": who.org_id,
                    "role": who.role,
                    "plan": who.plan,
                    # Readable only by a same-origin page: a cross-site one cannot read the
                    # response (no CORS for it), so the token still proves same origin.
                    "csrf_token": who.csrf_token,
                }
            )
        )

    @doc("Change your password (ends every session of yours)", body=PasswordBody, status=204)
    @requires(Action.SELF)
    async def change_password(self, request: web.Request) -> web.Response:
        who = principal(request)
        if who.actor_type != "user" or who.email is None:
            raise ApiError(403, "USERS_ONLY", "API keys have no password; sign in as a user")
        body = await parse_body(request, PasswordBody)
        pool = request.app[POOL]
        user = await accounts.user_by_email(pool, who.email)
        assert user is not None
        ok = await asyncio.to_thread(
            credentials.verify_password, user.password_hash, body.current_password
        )
        if not ok:
            raise ApiError(403, "INVALID_CREDENTIALS", "the current password is wrong")
        new_hash = await _new_password_hash(body.new_password)
        await accounts.set_password(pool, user.id, new_hash)
        await audit.record(
            pool, request, "auth.password_changed", resource_type="user", resource_id=str(user.id)
        )
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/")  # every session ended with the change
        return response

    @doc("Ask for a password reset code by email (answered the same for any address)",
         body=ResetBody, status=202, errors=(409, 429))  # fmt: skip
    @public
    async def request_reset(self, request: web.Request) -> web.Response:
        wait = self._login_limiter.acquire(client_addr(request), time.monotonic())
        if wait:
            raise retry_later(429, "RATE_LIMITED", "too many requests; slow down", wait)
        body = await parse_body(request, ResetBody)  # a bad body is the caller's fault first
        if not request.app[EMAIL_ENABLED]:
            # A 4xx: this is how the server is set up, not a fault, and it is no use retrying
            # (nor should anyone on the internet be able to raise the server's 5xx rate).
            raise ApiError(409, "EMAIL_NOT_CONFIGURED", "this server sends no email: an "
                           "administrator sets passwords (voxsouth admin)")  # fmt: skip
        pool = request.app[POOL]
        user = await accounts.user_by_email(pool, body.email)
        if user is not None:  # an unknown address gets the same answer, and no mail
            token = credentials.new_session_token()
            async with pool.acquire() as conn, conn.transaction():
                await accounts.create_password_reset(
                    conn, user.id, credentials.token_hash(token), datetime.now(UTC) + RESET_TTL
                )
                await email_outbox.queue(
                    conn, None, "password_reset", user.email, "Your password reset code",
                    f"Someone asked to reset the password of {user.email} on Voxsouth.\n\n"
                    f"Your code, valid for an hour: {token}\n\n"
                    "If it was not you, ignore this message: nothing has changed.\n",
                )  # fmt: skip
        await _audit_login(request, "auth.password_reset_requested", None,
                           user.id if user else None, body.email)  # fmt: skip
        return web.json_response({"status": "if the address is known, a code is on its way"},
                                 status=202)  # fmt: skip

    @doc("Set a new password with a reset code (ends every session)", body=ResetConfirmBody,
         status=204, errors=(400, 422))  # fmt: skip
    @public
    async def confirm_reset(self, request: web.Request) -> web.Response:
        wait = self._login_limiter.acquire(client_addr(request), time.monotonic())
        if wait:
            raise retry_later(429, "RATE_LIMITED", "too many requests; slow down", wait)
        body = await parse_body(request, ResetConfirmBody)
        new_hash = await _new_password_hash(body.new_password)
        pool = request.app[POOL]
        async with pool.acquire() as conn, conn.transaction():
            user_id = await accounts.use_password_reset(conn, credentials.token_hash(body.token))
            if user_id is None:
                raise ApiError(400, "INVALID_TOKEN", "the code is wrong, used or expired")
            await accounts.set_password(conn, user_id, new_hash)
            await accounts.record_audit(
                conn, org_id=None, actor_type="user", actor_id=user_id,
                action="auth.password_reset", resource_type="user", resource_id=str(user_id),
                request_id=request.get(REQUEST_ID), client_addr=client_addr(request),
            )  # fmt: skip
        return web.Response(status=204)


async def _new_password_hash(password: str) -> str:
    """The hash of an acceptable new password; 422 naming what is wrong with it otherwise."""
    if problem := credentials.password_problem(password):
        raise ApiError(
            422, "VALIDATION_FAILED", "the new password is not acceptable",
            {"fields": [{"field": "new_password", "message": problem}]},
        )  # fmt: skip
    return await asyncio.to_thread(credentials.hash_password, password)


async def _audit_login(
    request: web.Request,
    action: str,
    org_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    email: str,
) -> None:
    await accounts.record_audit(
        request.app[POOL],
        org_id=org_id,
        actor_type="user" if user_id else "anonymous",
        actor_id=user_id,
        action=action,
        resource_type="user",
        resource_id=email[:320],
        request_id=request.get(REQUEST_ID),
        client_addr=client_addr(request),
    )
