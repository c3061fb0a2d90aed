"""Organizations with members and API keys, made directly in the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from control import credentials
from control.permissions import ROLES, Role
from storage import accounts, calls
from storage.db import Pool
from tests.support.numbers import new_number

PASSWORD = "correct horse battery staple"
_PASSWORD_HASH = credentials.hash_password(PASSWORD)


@dataclass(frozen=True, slots=True)
class Org:
    id: uuid.UUID
    number: str
    emails: dict[Role, str]
    keys: dict[Role, str]

    def bearer(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def make_org(pool: Pool, name: str = "Org") -> Org:
    """An org with a number, one user per role (password PASSWORD) and one API key per role."""
    org_id = await calls.create_org(pool, name)
    number = new_number()
    await calls.add_phone_number(pool, org_id, number)
    emails: dict[Role, str] = {}
    keys: dict[Role, str] = {}
    for role in ROLES:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
        user_id = await accounts.create_user(pool, email, _PASSWORD_HASH)
        await accounts.add_member(pool, org_id, user_id, role)
        emails[role] = email
        key = credentials.new_api_key()
        await accounts.create_api_key(
            pool, org_id=org_id, name=f"{role} key", prefix=key.prefix,
            key_hash=key.key_hash, role=role, created_by=user_id,
        )  # fmt: skip
        keys[role] = key.key
    return Org(org_id, number, emails, keys)
