"""Numbered plain-SQL migrations (storage/migrations/NNNN_name.sql).

Applied in order, each in its own transaction, under a Postgres advisory lock so that two
processes starting at once apply each migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from storage.db import Connection

_LOCK_KEY = 0x766F78736F757468  # "voxsouth"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        if m := _NAME.match(entry.name):
            found.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001 upwards without gaps: {versions}")
    return found


async def applied_versions(conn: Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def is_current(conn: Connection) -> bool:
    return await applied_versions(conn) >= {m.version for m in available()}


async def migrate(
    conn: Connection, *, lock_timeout_s: float = 60.0, up_to: int | None = None
) -> list[Migration]:
    """Applies what is missing (up to version `up_to` only, when given: the benches compare a
    design with the one before it); returns what it applied."""
    applied: list[Migration] = []
    await conn.execute(f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY, timeout=lock_timeout_s)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = await applied_versions(conn)
        for migration in available():
            if migration.version in done:
                continue
            if up_to is not None and migration.version > up_to:
                break
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.execute("RESET lock_timeout")
    return applied
