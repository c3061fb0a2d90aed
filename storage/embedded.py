"""Embedded Postgres for the default start: no DATABASE_URL, nothing installed by hand.

Uses the Postgres binaries bundled in the `pgserver` wheel. The cluster lives in the data folder
and is kept across restarts; it listens only on a unix socket inside that folder. Several
processes (the server, `voxsouth migrate`, the simulator) share one cluster: pgserver counts
them and the last one out stops it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)
# pgserver logs every command it runs at INFO, stdout included; keep its warnings only.
logging.getLogger("pgserver").setLevel(logging.WARNING)

DATABASE = "voxsouth"


class EmbeddedPostgresError(RuntimeError):
    pass


def _start(pgdata: Path) -> str:
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (containers,
        # CI); pgserver then keeps its lock file under /tmp, which is what we want anyway.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server  # only for the embedded default

    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = get_server(pgdata, cleanup_mode="stop")
        if DATABASE not in server.psql("SELECT datname FROM pg_database;"):
            server.psql(f"CREATE DATABASE {DATABASE};")
    except Exception as exc:  # pgserver raises bare subprocess/assertion errors
        log_file = pgdata / "log"
        hint = f"; see {log_file}" if log_file.exists() else ""
        raise EmbeddedPostgresError(f"embedded Postgres did not start in {pgdata}{hint}") from exc
    return str(server.get_uri(DATABASE))


async def start_embedded(pgdata: Path) -> str:
    """Starts (or joins) the cluster in `pgdata`; returns its DSN. Blocking work off the loop."""
    dsn = await asyncio.to_thread(_start, pgdata)
    log.info("embedded Postgres ready in %s", pgdata)
    return dsn


def stop_embedded(pgdata: Path) -> None:
    """Leaves the cluster in `pgdata` this process started or joined (`start_embedded`),
    stopping it when no other process still uses it (pgserver counts them), as the process's
    exit would, but at a moment of the caller's choosing. Blocks until Postgres has stopped."""
    if not (pgdata / "postmaster.pid").exists():
        return  # not running: nothing to stop
    from pgserver.postgres_server import get_server

    get_server(pgdata).cleanup()
