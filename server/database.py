"""The server's database: `DATABASE_URL`, or the embedded Postgres, migrated.

Its own module, light to import, so that `voxsouth admin …` and `migrate` start without loading
the whole server (server.app: the media plane, the transcription engine's libraries).
"""

from __future__ import annotations

import logging

from server.settings import Settings
from storage.db import Pool, create_pool
from storage.embedded import start_embedded
from storage.migrate import migrate

log = logging.getLogger(__name__)


async def database_dsn(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return await start_embedded(settings.data_dir / "postgres")


async def open_database(settings: Settings, *, migrated: bool = False) -> tuple[str, Pool]:
    """The DSN and a pool on the migrated database (`migrated`: already done by a parent)."""
    dsn = await database_dsn(settings)
    pool = await create_pool(dsn, max_size=settings.db_pool_size)
    if not migrated:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        for m in applied:
            log.info("applied migration %04d_%s", m.version, m.name)
    return dsn, pool
