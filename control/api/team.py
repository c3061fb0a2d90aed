"""Team management: members, roles, invitations. Only owners make or unmake owners, and the
last owner can be neither demoted nor removed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from control import credentials
from control.api import audit
from control.api.bodies import parse_body, path_uuid, plain
from control.api.openapi import doc
from control.app_keys import EMAIL_ENABLED, POOL, REQUEST_ID
from control.auth import principal, public, requires
from control.errors import ApiError
from control.permissions import Action, Role
from storage import accounts, email_outbox, team
from storage.db import Connection
from storage.tenancy import tenant

INVITATION_TTL = timedelta(days=7)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/team", list_members),
        web.post("/api/team/invitations", invite),
        web.post("/api/team/invitations/accept", accept_invitation),
        web.patch("/api/team/{user_id}", change_role),
        web.delete("/api/team/{user_id}", remove_member),
    ]


class InviteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Role


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=10, max_length=200)
    password: str | None = Field(default=None, max_length=1024)


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role


def _only_owners_touch_owners(request: web.Request, *roles: str) -> None:
    if "owner" in roles and principal(request).role != "owner":
        raise ApiError(403, "OWNER_ONLY", "only an owner can grant or take the owner role")


async def _role_of(conn: Connection, org_id: uuid.UUID, user_id: uuid.UUID) -> str:
    role = await team.role_of(conn, org_id, user_id)
    if role is None:
        raise ApiError(404, "NOT_FOUND", "no such member")
    return role


@doc("List the members of the organization and their roles")
@requires(Action.TEAM_READ)
async def list_members(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await team.members(conn, org_id)
    return web.json_response({"members": plain(rows)})


@doc("Invite someone (the token is shown once)", body=InviteBody, status=201)
@requires(Action.TEAM_MANAGE)
async def invite(request: web.Request) -> web.Response:
    body = await parse_body(request, InviteBody)
    _only_owners_touch_owners(request, body.role)
    who = principal(request)
    token = credentials.new_session_token()
    expires_at = datetime.now(UTC) + INVITATION_TTL
    async with tenant(request.app[POOL], who.org_id) as conn:
        invitation_id = await team.create_invitation(
            conn,
            org_id=who.org_id,
            email=body.email,
            role=body.role,
            token_hash=credentials.token_hash(token),
            created_by=who.actor_id if who.actor_type == "user" else None,
            expires_at=expires_at,
        )
        after = {"email": body.email.lower(), "role": body.role}
        await audit.record(
            conn, request, "team.invite", resource_type="invitation",
            resource_id=str(invitation_id), after=after,
        )  # fmt: skip
        emailed = request.app[EMAIL_ENABLED]
        if emailed:
            await email_outbox.queue(
                conn, who.org_id, "invitation", body.email,
                "You are invited to Voxsouth", _invitation_text(body.role, token, expires_at),
            )  # fmt: skip
    # The token is shown once, here, and mailed to the invitee where the server sends email.
    return web.json_response(
        plain({"id": invitation_id, **after, "expires_at": expires_at, "token": token,
               "emailed": emailed}),
        status=201,
    )  # fmt: skip


def _invitation_text(role: str, token: str, expires_at: datetime) -> str:
    return (
        f"You have been invited to join an organization on Voxsouth as {role}.\n\n"
        f"Your invitation code: {token}\n"
        f"Accept it (POST /api/team/invitations/accept) before {expires_at:%Y-%m-%d %H:%M} UTC."
        "\n"
    )


@doc("Accept an invitation (creates the account when new)", body=AcceptBody, errors=(404,))
@public
async def accept_invitation(request: web.Request) -> web.Response:
    body = await parse_body(request, AcceptBody)
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        # Before the claim nobody knows the org: this runs as the system, not a tenant.
        invitation = await team.claim_invitation(
            conn, credentials.token_hash(body.token), datetime.now(UTC)
        )
        if invitation is None:
            raise ApiError(404, "INVITATION_INVALID", "this invitation is unknown, used or expired")
        user = await accounts.user_by_email(conn, invitation["email"])
        if user is None:
            problem = credentials.password_problem(body.password or "")
            if problem:
                raise ApiError(
                    422, "VALIDATION_FAILED", "choose a password for your new account",
                    {"fields": [{"field": "password", "message": problem}]},
                )  # fmt: skip
            password_hash = await asyncio.to_thread(credentials.hash_password, body.password or "")
            user_id = await accounts.create_user(conn, invitation["email"], password_hash)
        else:
            user_id = user.id
        try:
            await accounts.add_member(conn, invitation["org_id"], user_id, invitation["role"])
        except asyncpg.ForeignKeyViolationError:
            raise ApiError(404, "INVITATION_INVALID", "the organization is gone") from None
        await accounts.record_audit(
            conn, org_id=invitation["org_id"], actor_type="user", actor_id=user_id,
            action="team.join", resource_type="invitation", resource_id=str(invitation["id"]),
            request_id=request.get(REQUEST_ID), client_addr=request.remote,
            after={"role": invitation["role"]},
        )  # fmt: skip
    return web.json_response(
        plain(
            {
                "org_id": invitation["org_id"],
                "email": invitation["email"],
                "role": invitation["role"],
            }
        )  # fmt: skip
    )


@doc("Change a member's role", body=RoleBody, errors=(404, 409))
@requires(Action.TEAM_MANAGE)
async def change_role(request: web.Request) -> web.Response:
    body = await parse_body(request, RoleBody)
    user_id = path_uuid(request, "user_id", "member")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        _only_owners_touch_owners(request, await _role_of(conn, org_id, user_id), body.role)
        result = await team.change_role(conn, org_id, user_id, body.role)
        if result == "not_found":
            raise ApiError(404, "NOT_FOUND", "no such member")
        if result == "last_owner":
            raise ApiError(409, "LAST_OWNER", "an organization keeps at least one owner")
        old, new = result
        await audit.record(
            conn, request, "team.role_change", resource_type="user", resource_id=str(user_id),
            before={"role": old}, after={"role": new},
        )  # fmt: skip
    return web.json_response({"user_id": str(user_id), "role": new})


@doc("Remove a member (their sessions end)", status=204, errors=(404, 409))
@requires(Action.TEAM_MANAGE)
async def remove_member(request: web.Request) -> web.Response:
    user_id = path_uuid(request, "user_id", "member")
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        _only_owners_touch_owners(request, await _role_of(conn, org_id, user_id))
        result = await team.remove_member(conn, org_id, user_id)
        if result == "not_found":
            raise ApiError(404, "NOT_FOUND", "no such member")
        if result == "last_owner":
            raise ApiError(409, "LAST_OWNER", "an organization keeps at least one owner")
        await audit.record(
            conn, request, "team.remove", resource_type="user", resource_id=str(user_id),
            before={"role": result},
        )  # fmt: skip
    return web.Response(status=204)
