"""bench.feed_writers at its smallest, on each design, with real writer processes: every row
committed is delivered once, in order. Figures are not checked: the machine is shared."""

from __future__ import annotations

import asyncpg
import pytest

from bench.feed_writers import designs, prepare, run_point
from tests.conftest import timeout


@pytest.mark.timeout(timeout(90))
async def test_every_design_delivers_every_row_once_in_order(pg_dsn: str) -> None:
    targets = [await prepare(pg_dsn, design) for design in designs()]
    try:
        points = [await run_point(t, 2, 0.3, 1, postmaster=None) for t in targets]
    finally:
        admin = await asyncpg.connect(pg_dsn)
        try:
            for t in targets:
                await admin.execute(f"DROP DATABASE {t.database} WITH (FORCE)")
        finally:
            await admin.close()
    for point in points:
        assert point.faults == [], point.design.key
        assert point.committed_per_s > 0 and point.delivered_per_s > 0
