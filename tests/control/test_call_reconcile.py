"""Asking SignalWire about calls a lost process left open: the client's GET against the fake
SignalWire on loopback, and the sweep against a real Postgres.

The sweep is global, so an autouse fixture puts every call other tests left behind out of its
reach (asked, as far as it can tell, far in the future); time is moved by back-dating rows,
never by waiting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from prometheus_client import REGISTRY

from control.call_reconcile import ReconcileConfig, reconcile_lost_calls
from control.process_lease import LeaseConfig, ProcessLease
from control.signalwire import SignalWireClient, SignalWireConfig, SignalWireRejected
from media.events import StreamStarted
from storage import calls, processes
from storage.db import Pool
from storage.event_writer import write_events
from tests.conftest import timeout
from tests.support.fake_signalwire import Fail, FakeSignalWire, Hang, running_fake_signalwire

PROJECT = str(uuid.uuid4())
TOKEN = "PT" + uuid.uuid4().hex
ASK_ALL = ReconcileConfig(batch=10, every_s=3600, budget_s=timeout(5))


@pytest.fixture(autouse=True)
async def only_this_tests_calls(pool: Pool) -> None:
    await pool.execute("UPDATE calls SET remote_checked_at = now() + interval '1 day'")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    async with running_fake_signalwire(PROJECT, TOKEN) as fake:
        yield fake


@pytest.fixture
async def client(fake: FakeSignalWire) -> AsyncIterator[SignalWireClient]:
    async with aiohttp.ClientSession() as http:
        yield SignalWireClient(
            http,
            SignalWireConfig(
                fake.url, PROJECT, TOKEN, request_timeout_s=timeout(2), total_timeout_s=timeout(4),
                max_attempts=2, backoff_initial_s=0.001, backoff_max_s=0.002,
            ),
        )  # fmt: skip


async def lost_call(pool: Pool, org_number: tuple[uuid.UUID, str], lost_ago_s: float = 0) -> str:
    """An in-progress call whose one stream was closed as lost with its process `lost_ago_s`
    ago; returns its CallSid."""
    org_id, number = org_number
    call = await calls.open_call(
        pool, org_id=org_id, call_sid=str(uuid.uuid4()), account_sid=PROJECT,
        direction="inbound", from_number="+15550199999", to_number=number, status="in-progress",
    )  # fmt: skip
    dead = uuid.uuid4()
    await processes.renew(pool, dead, host="test", pid=1, lease_s=60)
    await pool.execute(
        "UPDATE server_processes SET expires_at = now() - interval '1 second', "
        "heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1",
        dead,
        lost_ago_s,
    )
    started = StreamStarted(
        org_id=call.org_id, call_id=call.id, stream_sid=str(uuid.uuid4()), call_sid="x",
        stream_name=None, tracks=("inbound",), encoding="audio/x-mulaw", sample_rate=8000,
        server_id=dead,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [started])
        await conn.execute(
            "UPDATE media_streams SET started_at = started_at - make_interval(secs => $2) "
            "WHERE stream_sid = $1",
            started.stream_sid,
            lost_ago_s + 1,
        )
    await processes.close_lost_streams(pool)
    sid: str = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call.id)
    return sid


async def call_row(pool: Pool, call_sid: str) -> dict[str, object]:
    row = await pool.fetchrow(
        "SELECT status, ended_at, duration_seconds, remote_live_at FROM calls WHERE call_sid = $1",
        call_sid,
    )
    assert row is not None
    return dict(row)


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxsouth_call_reconciles_total", {"outcome": outcome}) or 0


async def test_get_call_reads_the_call_resource(
    client: SignalWireClient, fake: FakeSignalWire
) -> None:
    sid = str(uuid.uuid4())
    fake.add_call(sid)
    live = await client.get_call(sid)
    fake.end_call(sid, duration=42)
    ended = await client.get_call(sid)

    assert (live.sid, live.status, live.end_time, live.duration_seconds) == (
        sid, "in-progress", None, None,
    )  # fmt: skip
    assert (ended.status, ended.duration_seconds) == ("completed", 42)
    assert ended.end_time is not None and ended.end_time.tzinfo is not None
    request = fake.requests_for("fetch")[0]
    assert request.method == "GET"
    assert request.path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{sid}.json"
    assert "Content-Type" not in request.headers
    with pytest.raises(SignalWireRejected) as raised:
        await client.get_call(str(uuid.uuid4()))
    assert raised.value.status == 404


async def test_a_call_that_ended_at_signalwire_gets_its_real_end(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient, fake: FakeSignalWire
) -> None:
    sid = await lost_call(pool, org_number)
    fake.add_call(sid)
    fake.end_call(sid, duration=42)
    before = counted("applied")

    assert await reconcile_lost_calls(pool, client, ASK_ALL) == {"applied": 1}

    row = await call_row(pool, sid)
    assert (row["status"], row["duration_seconds"]) == ("completed", 42)
    end_time = datetime.strptime(fake.calls[sid]["end_time"], "%a, %d %b %Y %H:%M:%S %z")
    assert row["ended_at"] == end_time.astimezone(UTC)
    assert counted("applied") == before + 1
    fed = await pool.fetchval(
        "SELECT count(*) FROM feed_events f JOIN calls c ON c.id = f.call_id "
        "WHERE c.call_sid = $1 AND f.type = 'call_status' AND f.payload->>'status' = 'completed'",
        sid,
    )
    assert fed == 1
    assert await reconcile_lost_calls(pool, client, ASK_ALL) == {}  # ended: never asked again


async def test_a_call_live_at_signalwire_is_left_open_and_asked_again(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient, fake: FakeSignalWire
) -> None:
    live = await lost_call(pool, org_number, lost_ago_s=3600)
    fake.add_call(live)
    gone = await lost_call(pool, org_number, lost_ago_s=3600)  # SignalWire: 404

    assert await reconcile_lost_calls(pool, client, ASK_ALL) == {"live": 1, "not_found": 1}
    assert await reconcile_lost_calls(pool, client, ASK_ALL) == {}  # both asked within every_s

    # Lost an hour ago, so past a 60 s timeout: the 404 is left to it, the live call is not.
    assert set(await processes.close_abandoned_calls(pool, after_s=60)) >= {
        await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", gone)
    }
    live_row, gone_row = await call_row(pool, live), await call_row(pool, gone)
    assert live_row["status"] == "in-progress" and live_row["remote_live_at"] is not None
    assert gone_row["status"] == "unknown" and gone_row["remote_live_at"] is None

    # A later sweep (every_s on) asks again, and SignalWire has seen the call end by then.
    await pool.execute(
        "UPDATE calls SET remote_checked_at = now() - interval '2 hours' WHERE call_sid = $1", live
    )
    fake.end_call(live, duration=3700)
    assert await reconcile_lost_calls(pool, client, ASK_ALL) == {"applied": 1}
    assert (await call_row(pool, live))["status"] == "completed"
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests_for("fetch")].count(
        f"{live}.json"
    ) == 2


async def test_a_call_live_long_ago_falls_to_the_timeout_again(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    sid = await lost_call(pool, org_number, lost_ago_s=7200)
    assert await processes.mark_live(pool, sid)
    assert sid not in await _closed_sids(pool, after_s=60)
    await pool.execute(
        "UPDATE calls SET remote_live_at = now() - interval '1 hour' WHERE call_sid = $1", sid
    )
    assert sid in await _closed_sids(pool, after_s=60)


async def _closed_sids(pool: Pool, after_s: float) -> set[str]:
    ids = await processes.close_abandoned_calls(pool, after_s=after_s)
    rows = await pool.fetch("SELECT call_sid FROM calls WHERE id = ANY($1::uuid[])", ids)
    return {r["call_sid"] for r in rows}


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_signalwire_failing_leaves_the_timeout_rule_in_charge(
    pool: Pool,
    org_number: tuple[uuid.UUID, str],
    client: SignalWireClient,
    fake: FakeSignalWire,
    status: int,
) -> None:
    sid = await lost_call(pool, org_number, lost_ago_s=3600)
    fake.add_call(sid)
    fake.script("fetch", [Fail(status, retry_after=0)] * 2)  # both attempts the client makes
    before = counted("unavailable")

    assert await reconcile_lost_calls(pool, client, ASK_ALL) == {"unavailable": 1}

    assert counted("unavailable") == before + 1
    assert (await call_row(pool, sid))["status"] == "in-progress"
    assert sid in await _closed_sids(pool, after_s=60)
    assert (await call_row(pool, sid))["status"] == "unknown"


async def test_a_hanging_signalwire_costs_the_sweep_its_budget_and_no_more(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient, fake: FakeSignalWire
) -> None:
    sid = await lost_call(pool, org_number)
    fake.add_call(sid)
    hang = Hang()
    fake.script("fetch", [hang])
    loop = asyncio.get_running_loop()
    started = loop.time()

    outcomes = await reconcile_lost_calls(
        pool, client, ReconcileConfig(batch=10, every_s=3600, budget_s=0.2)
    )

    assert outcomes == {"out_of_time": 1}
    assert loop.time() - started < timeout(2)  # the client alone would wait 4 s
    assert (await call_row(pool, sid))["status"] == "in-progress"
    hang.release.set()


async def test_at_most_a_batch_of_calls_is_asked_per_sweep(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient, fake: FakeSignalWire
) -> None:
    sids = [await lost_call(pool, org_number) for _ in range(5)]
    for sid in sids:
        fake.add_call(sid)
    small = ReconcileConfig(batch=2, every_s=3600, budget_s=timeout(5))

    sweeps = [await reconcile_lost_calls(pool, client, small) for _ in range(4)]

    assert sweeps == [{"live": 2}, {"live": 2}, {"live": 1}, {}]
    assert sorted(r.path for r in fake.requests_for("fetch")) == sorted(
        f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{sid}.json" for sid in sids
    )


async def test_the_lease_tick_asks_signalwire_before_the_timeout_rule(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient, fake: FakeSignalWire
) -> None:
    ended = await lost_call(pool, org_number, lost_ago_s=3600)
    live = await lost_call(pool, org_number, lost_ago_s=3600)
    fake.add_call(ended)
    fake.end_call(ended, "no-answer")
    fake.add_call(live)
    lease = ProcessLease(pool, LeaseConfig(every_s=60, lease_s=60, call_unknown_after_s=60), client)

    await lease.tick()
    await processes.deregister(pool, lease.id)

    assert (await call_row(pool, ended))["status"] == "no-answer"
    # Lost an hour ago, past the timeout, but SignalWire said this tick that it is live.
    row = await call_row(pool, live)
    assert row["status"] == "in-progress"
    live_at = row["remote_live_at"]
    assert isinstance(live_at, datetime) and live_at > datetime.now(UTC) - timedelta(minutes=5)
