"""Two real `voxsouth serve` processes dial one campaign; one is killed with SIGKILL in the
middle of it, with every call it placed still live. The survivor finishes the campaign: every
target called, none twice.

SignalWire is the fake, its calls ending by themselves and posting their signed status callbacks
(as SignalWire does) to the public URL, which, as behind a load balancer, is the survivor's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import time
from pathlib import Path

from bench.fake_service import free_port
from storage import calls, campaigns, targets
from storage.db import Pool
from tests.conftest import timeout
from tests.support.changes import watching
from tests.support.fake_signalwire import Lifecycle, running_fake_signalwire
from tests.support.process import cli_env, serving

PROJECT, TOKEN, KEY = str(uuid.uuid4()), "PT-crash-token", "crash-signing-key"
FROM = "+17065550190"
TARGETS = [f"+1404555{i:04d}" for i in range(40)]
MAX_CONCURRENT = 8


async def a_running_campaign(pool: Pool) -> uuid.UUID:
    org_id = await calls.create_org(pool, "Crash campaign")
    await calls.add_phone_number(pool, org_id, FROM)
    await targets.save_targets(pool, org_id, [{
        "number": n, "name": None, "time_zone": "America/New_York", "time_zone_set": True,
        "tags": [], "fields": {},
    } for n in TARGETS], replace=False)  # fmt: skip
    made = await campaigns.create(pool, org_id, {
        "name": "crash", "flow": {"say": "hello"}, "from_number": FROM,
        "max_concurrent": MAX_CONCURRENT,
        "window_start": time(0), "window_end": time(23, 59, 59), "created_by": "test",
    })  # fmt: skip
    await campaigns.enroll(pool, org_id, made["id"], tag=None, target_ids=None)
    await campaigns.move(pool, org_id, made["id"], "start")
    return uuid.UUID(str(made["id"]))


async def test_a_server_killed_mid_campaign_loses_no_target_and_calls_none_twice(
    tmp_path: Path, pg_dsn: str, pool: Pool
) -> None:
    doomed_port, survivor_port = free_port(), free_port()
    public = f"http://127.0.0.1:{survivor_port}"  # the balancer: the survivor answers
    calls_may_end = asyncio.Event()
    lifecycle = Lifecycle(signing_key=KEY, lifetime_s=0.5, held=calls_may_end)
    async with running_fake_signalwire(PROJECT, TOKEN, lifecycle) as fake:

        def env(name: str, port: int) -> dict[str, str]:
            (tmp_path / name).mkdir()
            return cli_env(
                tmp_path / name, pg_dsn, VOXSOUTH_HTTP_PORT=str(port), VOXSOUTH_PUBLIC_URL=public,
                VOXSOUTH_SIGNALWIRE_SIGNING_KEY=KEY, VOXSOUTH_SIGNALWIRE_SPACE_URL=fake.url,
                VOXSOUTH_SIGNALWIRE_PROJECT_ID=PROJECT, VOXSOUTH_SIGNALWIRE_API_TOKEN=TOKEN,
                VOXSOUTH_SIGNALWIRE_CALLS_PER_SECOND="20", VOXSOUTH_DIALLER_EVERY_S="0.2",
            )  # fmt: skip

        async with (
            serving(env("doomed", doomed_port), tmp_path / "doomed") as doomed,
            watching(pool, pg_dsn) as changes,
        ):
            campaign_id = await a_running_campaign(pool)
            # Alone, the doomed process claims as many targets as the campaign's cap allows and
            # places their calls, which SignalWire holds live: it dies with all of them in flight.
            await asyncio.wait_for(fake.wait_for_requests(MAX_CONCURRENT), timeout(30))
            async with serving(env("survivor", survivor_port), tmp_path / "survivor"):
                doomed.kill()
                calls_may_end.set()  # their final statuses reach the survivor
                await changes.until(
                    "SELECT status = 'completed' FROM campaigns WHERE id = $1", campaign_id
                )
    called = Counter(dict(r.form)["To"] for r in fake.requests_for("create"))
    assert sorted(called) == TARGETS  # every target called
    assert max(called.values()) == 1  # none twice
    outcomes = await pool.fetch(
        "SELECT state, outcome, claimed_by FROM campaign_targets WHERE campaign_id = $1",
        campaign_id,
    )
    assert {(r["state"], r["outcome"]) for r in outcomes} == {("done", "completed")}
    assert len({r["claimed_by"] for r in outcomes}) == 2  # both processes dialled
