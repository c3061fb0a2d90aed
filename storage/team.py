"""Members of an organization and invitations to join it.

Role changes and removals lock the org's owners first, so two concurrent requests cannot
both take away the last owner.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from storage.db import QUERY_TIMEOUT_S, Connection


async def members(conn: Connection, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT m.user_id, u.email, m.role, m.created_at AS member_since
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.org_id = $1 ORDER BY u.email""",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return [dict(r) for r in rows]


async def role_of(conn: Connection, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    role = await conn.fetchval(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
        org_id,
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return str(role) if role is not None else None


async def _lock_owners(conn: Connection, org_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return [r["user_id"] for r in rows]


async def change_role(
    conn: Connection, org_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> tuple[str, str] | Literal["not_found", "last_owner"]:
    """(old role, new role); inside the caller's transaction."""
    owners = await _lock_owners(conn, org_id)
    old = await conn.fetchval(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE",
        org_id,
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )
    if old is None:
        return "not_found"
    if old == "owner" and role != "owner" and owners == [user_id]:
        return "last_owner"
    await conn.execute(
        "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2",
        org_id,
        user_id,
        role,
        timeout=QUERY_TIMEOUT_S,
    )
    return old, role


async def remove_member(
    conn: Connection, org_id: uuid.UUID, user_id: uuid.UUID
) -> str | Literal["not_found", "last_owner"]:
    """The removed member's role; their sessions in this org end with it."""
    owners = await _lock_owners(conn, org_id)
    role = await conn.fetchval(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
        org_id,
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )
    if role is None:
        return "not_found"
    if owners == [user_id]:
        return "last_owner"
    await conn.execute(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
        org_id,
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() "
        "WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        org_id,
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return str(role)


async def create_invitation(
    conn: Connection,
    *,
    org_id: uuid.UUID,
    email: str,
    role: str,
    token_hash: bytes,
    created_by: uuid.UUID | None,
    expires_at: datetime,
) -> uuid.UUID:
    invitation_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO invitations (org_id, email, role, token_hash, created_by, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        org_id,
        email.strip().lower(),
        role,
        token_hash,
        created_by,
        expires_at,
        timeout=QUERY_TIMEOUT_S,
    )
    return invitation_id


async def claim_invitation(
    conn: Connection, token_hash: bytes, now: datetime
) -> dict[str, Any] | None:
    """Marks a live invitation accepted (once: a second claim finds nothing) and returns it."""
    row = await conn.fetchrow(
        """UPDATE invitations SET accepted_at = $2
           WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > $2
           RETURNING id, org_id, email, role""",
        token_hash,
        now,
        timeout=QUERY_TIMEOUT_S,
    )
    return dict(row) if row else None
