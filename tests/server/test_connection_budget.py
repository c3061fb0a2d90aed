"""Workers' pools fitted to Postgres's max_connections (server/connection_budget.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.connection_budget import (
    ConnectionBudgetError,
    PostgresLimits,
    pool_size_per_worker,
    postgres_limits,
)
from storage.db import Pool
from tests.support.process import cli_env, run_cli, serving

STOCK = PostgresLimits(max_connections=100, reserved=3)  # Postgres's defaults


@pytest.mark.parametrize(
    ("workers", "asked", "given"),
    [
        (1, 10, 10),
        (2, 10, 10),  # this machine's default: untouched
        (6, 10, 10),  # 6 × (10 + 3) = 78 of the 87 left
        (8, 10, 7),  # 87 // 8 = 10 each, 3 of them the worker's own
        (16, 10, 2),  # a 16-core machine on a stock Postgres
        (17, 10, 2),
    ],
)
def test_pools_shrink_only_as_far_as_the_workers_need(workers: int, asked: int, given: int) -> None:
    assert pool_size_per_worker(workers, asked, STOCK) == given


def test_when_not_even_a_small_pool_each_fits_the_start_is_refused_with_what_to_change() -> None:
    with pytest.raises(ConnectionBudgetError) as refused:
        pool_size_per_worker(18, 10, STOCK)  # 87 // 18 = 4 each: one pooled connection
    assert "18 workers need at least 103 Postgres connections" in str(refused.value)
    assert "VOXSOUTH_WORKERS" in str(refused.value) and "max_connections" in str(refused.value)


async def test_the_limits_are_read_from_postgres(pool: Pool) -> None:
    limits = await postgres_limits(pool)
    assert limits.max_connections == int(await pool.fetchval("SHOW max_connections"))
    assert limits.reserved >= int(await pool.fetchval("SHOW superuser_reserved_connections"))


async def test_serve_fits_its_workers_pools_or_refuses_to_start(
    tmp_path: Path, pg_dsn: str, pool: Pool
) -> None:
    limits = await postgres_limits(pool)
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_DB_POOL_SIZE="200")
    async with serving(env, tmp_path, "--workers", "2") as served:
        said = await served.logged(r"each worker's pool holds (\d+) connections")
    assert int(said[1]) == pool_size_per_worker(2, 200, limits) < 200

    too_many = str(limits.max_connections)  # five connections each cannot fit
    code, _out, err = await run_cli(
        "serve", "--workers", too_many, env=cli_env(tmp_path, pg_dsn), cwd=tmp_path
    )
    assert code == 1
    assert f"{too_many} workers need at least" in err
