"""`voxsouth serve --workers N` as an operator sees it: one port answered by every worker, one set
of figures, a killed worker replaced, a clean stop that takes the embedded Postgres with it.

Which worker takes an HTTP connection is the kernel's choice. To ask one worker in particular,
the test stops the others (SIGSTOP) meanwhile: only the one left can accept, on the one port.
Media connections are the parent's to give: every stream of a call to the worker holding it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from server.simulator.client import SignalWireSimulator, parse_stream
from server.workers import (
    METRICS_PREFIX,
    journal_folders,
    remove_orphaned_metrics,
    restart_delay,
)
from storage.db import Pool
from storage.journal import Journal
from tests.conftest import timeout
from tests.e2e.test_process_crash import SILENCE, start_call
from tests.support.changes import watching
from tests.support.process import Serving, cli_env, serving

LIVE_REQUESTS = ("voxsouth_http_requests_total", {"route": "/health/live", "status": "200"})


@contextmanager
def only(pid: int, workers: set[int]) -> Iterator[None]:
    """Only worker `pid` takes connections meanwhile: the others are stopped."""
    paused = workers - {pid}
    for other in paused:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in paused:
            os.kill(other, signal.SIGCONT)


async def worker_pid(served: Serving, slot: int, nth: int = 1) -> int:
    """The pid of the `nth` worker that listened in `slot`, as the parent logs it."""
    return int((await served.logged(rf"worker {slot} listening \(pid (\d+)\)", nth))[1])


async def answer_live(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(f"{url}/health/live") as resp:
        assert resp.status == 200


async def live_requests_counted(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    name, labels = LIVE_REQUESTS
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_text().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


async def exited(pid: int) -> None:
    """Returns once process `pid` has exited (its pidfd turns readable then), any parent's."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(pidfd, done.set)
    try:
        async with asyncio.timeout(timeout(10)):
            await done.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def left_behind(*paths: Path) -> list[Path]:
    return [path for path in paths if path.exists()]


async def leases_held(pgdata: Path) -> set[int]:
    """The pids of the processes holding a lease in the embedded Postgres in `pgdata`."""
    # postmaster.pid: pid, data folder, start time, port, socket folder, ...
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    conn = await asyncpg.connect(
        host=lines[4], port=int(lines[3]), user="postgres", database="voxsouth"
    )
    try:
        return {row["pid"] for row in await conn.fetch("SELECT pid FROM server_processes")}
    finally:
        await conn.close()


async def test_two_workers_share_one_port_and_one_set_of_figures_survive_a_kill_and_stop_cleanly(
    tmp_path: Path, pg_dsn: str
) -> None:
    env = cli_env(tmp_path, pg_dsn)
    del env["VOXSOUTH_DATABASE_URL"]  # the embedded default: the parent starts and stops it
    env.pop("DATABASE_URL", None)
    pgdata = tmp_path / "data" / "postgres"
    # A new connection for every request, so each goes to whichever worker accepts it.
    fresh = aiohttp.TCPConnector(force_close=True)
    async with (
        serving(env, tmp_path, "--workers", "2") as served,
        aiohttp.ClientSession(connector=fresh) as http,
    ):
        url = served.http_url
        first, second = await worker_pid(served, 1), await worker_pid(served, 2)
        workers = {first, second}
        assert served.process.pid not in workers
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        metrics_dir = Path(environment(second)["PROMETHEUS_MULTIPROC_DIR"])
        # Each worker holds its own lease, in the Postgres its parent started.
        assert await leases_held(pgdata) == workers

        # Both answer on the one port, each counts what it answered, and either reports the sum.
        with only(first, workers):
            for _ in range(3):
                await answer_live(http, url)
        with only(second, workers):
            for _ in range(2):
                await answer_live(http, url)
        for pid in workers:
            with only(pid, workers):
                assert await live_requests_counted(http, url) == 5

        # A worker killed: the other answers meanwhile, and the parent starts one in its place.
        os.kill(first, signal.SIGKILL)
        await answer_live(http, url)
        await served.logged(rf"worker 1 \(pid {first}\) was killed by SIGKILL")
        third = await worker_pid(served, 1, nth=2)
        workers = {second, third}
        with only(third, workers):
            await answer_live(http, url)
            assert await live_requests_counted(http, url) == 7  # the killed one's count stays

    # SIGTERM to the parent: every worker drains and exits, then Postgres stops.
    assert served.returncode == 0, served.stderr[-2000:]
    for pid in (second, third, postmaster):
        await exited(pid)
    assert not left_behind(pgdata / "postmaster.pid", metrics_dir)


SIGNING_KEY = "PSK_workers_test_signing_key"


async def open_stream(url: str, call_sid: str, stream_sid: str, token: str) -> ClientConnection:
    ws = await connect(url)
    start = {"streamSid": stream_sid, "accountSid": str(uuid.uuid4()), "callSid": call_sid,
             "tracks": ["inbound"], "customParameters": {"token": token},
             "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                             "channels": 1}}  # fmt: skip
    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start}))
    return ws


async def send_chunks(ws: ClientConnection, chunks: range) -> None:
    for n in chunks:
        media = {"track": "inbound", "chunk": str(n), "timestamp": str(n * 20 - 20),
                 "payload": SILENCE}  # fmt: skip
        await ws.send(json.dumps({"event": "media", "media": media}))


async def test_every_stream_of_a_call_reaches_the_worker_that_holds_it(
    tmp_path: Path, pg_dsn: str, pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    _, number = org_number
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_SIGNALWIRE_SIGNING_KEY=SIGNING_KEY)
    async with (
        watching(pool, pg_dsn) as changes,
        serving(env, tmp_path, "--workers", "2") as served,
        aiohttp.ClientSession() as http,
    ):
        sim = SignalWireSimulator(http, base_url=served.http_url, signing_key=SIGNING_KEY)
        call_sid, laml = await start_call(sim, served.http_url, number)
        stream = parse_stream(laml)
        assert stream is not None, laml
        assert stream.url.startswith(served.media_url + "/")  # the call's own URL
        token = stream.parameters["token"]
        # The same stream cut three times (closed without its `stop`, as by a proxy restarting),
        # each time 10 chunks (200 ms) lost before it resumes.
        stream_sid = str(uuid.uuid4())
        for connection in range(1, 5):
            first = (connection - 1) * 35 + 1
            ws = await open_stream(stream.url, call_sid, stream_sid, token)
            await send_chunks(ws, range(first, first + 25))
            if connection == 4:
                await ws.send(json.dumps({"event": "stop", "stop": {"callSid": call_sid}}))
            await ws.close()
        await changes.until(
            "SELECT count(*) = 4 AND bool_and(status = 'stopped') FROM media_streams "
            "WHERE stream_sid = $1",
            stream_sid,
        )
        rows = await pool.fetch(
            "SELECT end_reason, owner_id, frames_received_inbound, audio_lost_ms "
            "FROM media_streams WHERE stream_sid = $1 ORDER BY connection",
            stream_sid,
        )
        # One worker held the call throughout, so each resume counted its own gap, and only it.
        assert len({row["owner_id"] for row in rows}) == 1
        assert [row["frames_received_inbound"] for row in rows] == [25] * 4
        assert [row["audio_lost_ms"] for row in rows] == [0, 200, 200, 200]
        assert [row["end_reason"] for row in rows] == ["disconnected"] * 3 + ["stop"]

        # Streams whose URL names no call are given to the workers in turn.
        bare_streams = []
        for _ in range(2):
            other_sid, other_laml = await start_call(sim, served.http_url, number)
            other = parse_stream(other_laml)
            assert other is not None, other_laml
            bare_streams.append(str(uuid.uuid4()))
            bare = await open_stream(
                served.media_url, other_sid, bare_streams[-1], other.parameters["token"]
            )
            await send_chunks(bare, range(1, 2))
            await bare.close()
        await changes.until(
            "SELECT count(DISTINCT owner_id) = 2 FROM media_streams WHERE stream_sid = ANY($1)",
            bare_streams,
        )


async def test_a_worker_that_hangs_is_killed_and_replaced(tmp_path: Path, pg_dsn: str) -> None:
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_WORKER_HANG_S="3")
    async with serving(env, tmp_path, "--workers", "2") as served:
        hung = await worker_pid(served, 1)
        os.kill(hung, signal.SIGSTOP)  # its event loop answers nothing, as if stuck
        await served.logged(rf"worker 1 \(pid {hung}\) has not answered for 3 s: killing it")
        await served.logged(rf"worker 1 \(pid {hung}\) was killed by SIGKILL")
        replacement = await worker_pid(served, 1, nth=2)
        assert replacement != hung
        second = await worker_pid(served, 2)
    assert served.returncode == 0, served.stderr[-2000:]
    # A live worker is left alone: the other one was never killed.
    assert f"pid {second}) has not answered" not in served.stderr


def test_a_worker_that_keeps_dying_waits_longer_each_time() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [0, 0.5, 1, 2, 4, 8, 16, 30]


def test_events_journaled_under_another_number_of_workers_move_to_the_first_slot(
    tmp_path: Path,
) -> None:
    root = tmp_path / "journal"
    for folder, events in ((root, 2), (root / "worker-3", 1)):
        folder.mkdir(parents=True)
        (folder / "events.jsonl").write_text('{"event": "waiting"}\n' * events)

    slots = journal_folders(tmp_path, 2)
    assert slots == [root / "worker-1", root / "worker-2"]
    assert Journal(slots[0]).pending == 3
    assert Journal(root).pending == Journal(root / "worker-3").pending == 0

    assert journal_folders(tmp_path, 1) == [root]  # and back, to one process
    assert Journal(root).pending == 3 and Journal(slots[0]).pending == 0


def test_metrics_folders_of_parents_that_are_gone_are_removed(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f"{METRICS_PREFIX}{gone.stdout.strip()}-abc"
    alive = tmp_path / f"{METRICS_PREFIX}{os.getpid()}-def"
    unrelated = tmp_path / f"{METRICS_PREFIX}old-style"
    for folder in (dead, alive, unrelated):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"\0" * 16)

    assert remove_orphaned_metrics(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and unrelated.exists()
