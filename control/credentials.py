"""Passwords, session tokens and API keys: making them and checking them. No I/O.

Passwords are argon2id (OWASP's 19 MiB, t=2, p=1 profile: strong, and about 20 ms so a login
does not monopolise a worker thread). Session tokens and API keys are 256-bit random secrets,
so a plain SHA-256 of them is what is stored: nothing to brute-force.

API keys look like `vxs_<prefix>_<secret>`: the prefix identifies the key (shown in lists,
looked up by index), the whole key is what is hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
_API_KEY = re.compile(r"vxs_([a-z0-9]{10})_([A-Za-z0-9_-]{43})")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Constant-time by construction; False for a wrong password or a corrupt hash."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: str
    """Shown once, to whoever created it; never stored."""
    prefix: str
    key_hash: bytes


def new_api_key() -> NewApiKey:
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))
    key = f"vxs_{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key, prefix, token_hash(key))


def api_key_prefix(key: str) -> str | None:
    """The prefix of something shaped like an API key, else None."""
    m = _API_KEY.fullmatch(key)
    return m[1] if m else None


def api_key_matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(token_hash(key), stored_hash)
