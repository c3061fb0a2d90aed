"""Users, memberships, sessions and API keys.

Stores only what it is given: hashing and token making live in control/credentials.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor

LOCKOUT_AFTER_FAILURES = 5
LOCKOUT_FOR = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class Membership:
    org_id: uuid.UUID
    org_name: str
    plan: str
    role: str


@dataclass(frozen=True, slots=True)
class SessionPrincipal:
    session_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    org_id: uuid.UUID
    plan: str
    role: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    key_id: uuid.UUID
    org_id: uuid.UUID
    plan: str
    role: str
    key_hash: bytes
    last_used_at: datetime | None


async def create_user(conn: Executor, email: str, password_hash: str) -> uuid.UUID:
    """Raises asyncpg.UniqueViolationError when the email is taken."""
    user_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id",
        email.strip().lower(),
        password_hash,
        timeout=QUERY_TIMEOUT_S,
    )
    return user_id


async def user_by_email(conn: Executor, email: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, email, password_hash, locked_until FROM users WHERE email = $1",
        email.strip().lower(),
        timeout=QUERY_TIMEOUT_S,
    )
    return User(**dict(row)) if row else None


async def add_member(conn: Executor, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    await conn.execute(
        """INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)
           ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role""",
        org_id,
        user_id,
        role,
        timeout=QUERY_TIMEOUT_S,
    )


async def memberships(conn: Executor, user_id: uuid.UUID) -> list[Membership]:
    rows = await conn.fetch(
        """SELECT m.org_id, o.name AS org_name, o.plan, m.role
           FROM memberships m JOIN organizations o ON o.id = m.org_id
           WHERE m.user_id = $1 ORDER BY o.name, m.org_id""",
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return [Membership(**dict(r)) for r in rows]


async def record_login_failure(conn: Executor, user_id: uuid.UUID, now: datetime) -> None:
    """Counts a failure; the LOCKOUT_AFTER_FAILURES-th in a row locks the account a while."""
    await conn.execute(
        """UPDATE users SET
               failed_logins = failed_logins + 1,
               locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until END
           WHERE id = $1""",
        user_id,
        LOCKOUT_AFTER_FAILURES,
        now + LOCKOUT_FOR,
        timeout=QUERY_TIMEOUT_S,
    )


async def record_login_success(conn: Executor, user_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1",
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )


async def set_password(conn: Executor, user_id: uuid.UUID, password_hash: str) -> None:
    """Changes the password and ends every session of the user."""
    await conn.execute(
        "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1",
        user_id,
        password_hash,
        timeout=QUERY_TIMEOUT_S,
    )
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        timeout=QUERY_TIMEOUT_S,
    )


async def create_password_reset(
    conn: Executor, user_id: uuid.UUID, token_hash: bytes, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        token_hash, user_id, expires_at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def use_password_reset(conn: Executor, token_hash: bytes) -> uuid.UUID | None:
    """The user whose unexpired, unused reset code this is (marked used now), or None."""
    user_id: uuid.UUID | None = await conn.fetchval(
        """UPDATE password_resets SET used_at = now()
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
           RETURNING user_id""",
        token_hash, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return user_id


async def create_session(
    conn: Executor,
    *,
    token_hash: bytes,
    csrf_token: str,
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    expires_at: datetime,
) -> uuid.UUID:
    session_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO sessions (token_hash, csrf_token, user_id, org_id, expires_at)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        token_hash,
        csrf_token,
        user_id,
        org_id,
        expires_at,
        timeout=QUERY_TIMEOUT_S,
    )
    return session_id


async def session_principal(
    conn: Executor, token_hash: bytes, now: datetime
) -> SessionPrincipal | None:
    """The live session with that token, with the user's current role in the session's org
    (a removed member's session stops working at once)."""
    row = await conn.fetchrow(
        """SELECT s.id AS session_id, s.user_id, u.email, s.org_id, o.plan, m.role, s.csrf_token
           FROM sessions s
           JOIN users u ON u.id = s.user_id
           JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
           JOIN organizations o ON o.id = s.org_id
           WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2""",
        token_hash,
        now,
        timeout=QUERY_TIMEOUT_S,
    )
    return SessionPrincipal(**dict(row)) if row else None


async def revoke_session(conn: Executor, session_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        session_id,
        timeout=QUERY_TIMEOUT_S,
    )


async def create_api_key(
    conn: Executor,
    *,
    org_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    role: str,
    created_by: uuid.UUID | None,
) -> uuid.UUID:
    key_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO api_keys (org_id, name, prefix, key_hash, role, created_by)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        org_id,
        name,
        prefix,
        key_hash,
        role,
        created_by,
        timeout=QUERY_TIMEOUT_S,
    )
    return key_id


async def api_key_principal(conn: Executor, prefix: str) -> ApiKeyPrincipal | None:
    """The live key with that prefix; the caller checks the whole key against `key_hash`."""
    row = await conn.fetchrow(
        """SELECT k.id AS key_id, k.org_id, o.plan, k.role, k.key_hash, k.last_used_at
           FROM api_keys k JOIN organizations o ON o.id = k.org_id
           WHERE k.prefix = $1 AND k.revoked_at IS NULL""",
        prefix,
        timeout=QUERY_TIMEOUT_S,
    )
    return ApiKeyPrincipal(**dict(row)) if row else None


TOUCH_EVERY = timedelta(minutes=1)


async def touch_api_key(conn: Executor, key_id: uuid.UUID, now: datetime) -> None:
    """Records use, at most once a minute per key (a write per request would be wasteful)."""
    await conn.execute(
        """UPDATE api_keys SET last_used_at = $2
           WHERE id = $1
             AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 minute')""",
        key_id,
        now,
        timeout=QUERY_TIMEOUT_S,
    )


async def revoke_api_key(conn: Executor, org_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    result = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND org_id = $2 "
        "AND revoked_at IS NULL",
        key_id,
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return not result.endswith(" 0")


async def record_audit(
    conn: Executor,
    *,
    org_id: uuid.UUID | None,
    actor_type: str,
    actor_id: uuid.UUID | None,
    action: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
    request_id: str | None = None,
    client_addr: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (org_id, actor_type, actor_id, action, resource_type,
                                  resource_id, request_id, client_addr, before, after)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)""",
        org_id,
        actor_type,
        actor_id,
        action,
        resource_type,
        resource_id,
        request_id,
        client_addr,
        json.dumps(before, default=str) if before is not None else None,
        json.dumps(after, default=str) if after is not None else None,
        timeout=QUERY_TIMEOUT_S,
    )


async def list_audit(
    conn: Executor,
    org_id: uuid.UUID,
    *,
    action: str | None,
    actor_id: uuid.UUID | None,
    before_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """An org's audit records, newest first; `before_id` pages back from a record."""
    rows = await conn.fetch(
        """SELECT id, actor_type, actor_id, action, resource_type, resource_id, request_id,
                  client_addr, before, after, at
           FROM audit_log
           WHERE org_id = $1
             AND ($2::text IS NULL OR action = $2)
             AND ($3::uuid IS NULL OR actor_id = $3)
             AND ($4::bigint IS NULL OR id < $4)
           ORDER BY id DESC LIMIT $5""",
        org_id,
        action,
        actor_id,
        before_id,
        limit,
        timeout=QUERY_TIMEOUT_S,
    )
    return [{**dict(r), "before": _json(r["before"]), "after": _json(r["after"])} for r in rows]


def _json(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


async def list_api_keys(conn: Executor, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, name, prefix, role, created_by, created_at, last_used_at, revoked_at
           FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC, id""",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return [dict(r) for r in rows]
