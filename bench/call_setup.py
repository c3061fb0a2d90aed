"""Call set-up under media load: `python -m bench.call_setup` (issue 18).

The server runs in its own process (bench/server_proc.py; transcription off, one worker unless
`--workers`) on an embedded Postgres in a temporary folder. The bench answers `--base` calls
through the signed voice webhook and streams both tracks of each in real time from loadgen
worker processes (bench/loadgen.py). After `--warmup` seconds it starts `--rate` new calls a
second for `--seconds`: each is a signed voice webhook (timed from the request to the whole
answer), then, when that answers with a `<Stream>`, its `in-progress` status callback (timed)
while its stream opens in a ramp worker process (bench/ramp_streams.py), and its `completed`
status callback when its stream stops.

A ramp stream runs `--stream-seconds` (3), not the rest of the window: what is under test is
setting calls up beside a full media load, and streams that stayed would pile 600 onto the 300
(twice the worker's admission limit, past what one core carries in real time: bench.streams),
measuring media overload instead. With 3 s, about `rate × 3` = 90 ramp streams run at once. The
server's admission limit (`VOXSOUTH_MEDIA_MAX_STREAMS`) is set to the base plus twice that
(`--max-streams` to choose, e.g. 300, the default, to see refusals at capacity), so that a
refusal is the server running behind, not the limit doing its job; every refusal is counted by
its close code and reason.

Reported, over the ramp window (its first call to the last ramp stream's stop):
- voice webhook latency p50/p95/p99/max; answers that held the caller because the database did
  not open the call within `VOXSOUTH_VOICE_WEBHOOK_TIMEOUT_S` (LaML `<Redirect>`: SignalWire
  would ask again; the bench does not), other failures, and no answer within 15 s;
- status callbacks (latency, failures);
- ramp streams by how they ended (close code and reason), base streams closed early;
- the base streams' frame delay: there is no per-frame timestamp in the real server, so the
  measure is the websocket ping round trip of the base streams (each pings every 2 s, sent
  between its frames; the server's websockets answers as it reads the socket: loop latency and
  any read backlog, not the handler's own queue), ping sent in the window only; beside it the
  server's event-loop lag histogram (a 100 ms timer's lateness: what every frame waits on top
  of its work) and frame work (histogram), and the generators' send lag (their own health);
- the event writer's batch write time (`voxsouth_db_write_seconds`), events written and
  journaled; CPU of the server, Postgres and the generators;
- Postgres sampled every 100 ms (pg_stat_activity of the server's connections): how many wait
  on the feed's commit-order lock (an advisory lock, migration 0009), on other locks, or sit
  idle in a transaction (waiting on the server's loop).

Everything listens and connects on 127.0.0.1; the run stops by itself (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg

from bench import promtext, pyspy
from bench.loadgen import SLOTS, StreamPlan, StreamResult, WorkerPlan, WorkerResult, run_worker
from bench.ramp_streams import RampPlan, run_ramp_worker
from bench.report import percentiles
from bench.server_proc import BenchError, ServerInfo, run_bench, server_process
from bench.streams import FIXTURE, cpu_seconds, postmaster_pid, receive
from server.simulator.client import SignalWireSimulator, parse_stream
from storage import calls
from storage.embedded import start_embedded

FRAME_S: Final = 0.02
WEBHOOK_CLIENT_TIMEOUT_S: Final = 15.0
"""SignalWire gives a webhook about this long before it gives up on the call."""
SAMPLE_EVERY_S: Final = 0.1


@dataclass(slots=True)
class Timings:
    voice_ms: list[tuple[float, float]] = field(default_factory=list)
    """(seconds into the ramp, latency ms) of every voice webhook that answered."""
    voice_outcomes: Counter[str] = field(default_factory=Counter)
    status_ms: list[float] = field(default_factory=list)
    status_outcomes: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class PgSamples:
    samples: int = 0
    active: list[int] = field(default_factory=list)
    feed_lock: list[int] = field(default_factory=list)
    other_locks: Counter[str] = field(default_factory=Counter)
    idle_in_transaction: list[int] = field(default_factory=list)
    waiting_queries: Counter[str] = field(default_factory=Counter)
    active_waits: Counter[str] = field(default_factory=Counter)
    """What active backends waited on, by wait event (none: running on a CPU)."""


@dataclass(slots=True)
class Run:
    args: argparse.Namespace
    server: ServerInfo
    pool: asyncpg.Pool
    http: aiohttp.ClientSession
    simulator: SignalWireSimulator
    to_number: str
    timings: Timings = field(default_factory=Timings)
    pg: PgSamples = field(default_factory=PgSamples)

    async def scrape(self) -> promtext.Snapshot:
        async with self.http.get(f"{self.server.http_url}/metrics") as response:
            return promtext.parse(await response.text())

    def _voice_form(self, call_sid: str) -> dict[str, str]:
        return {
            "AccountSid": self.simulator.account_sid, "ApiVersion": "2010-04-01",
            "CallSid": call_sid, "CallStatus": "ringing", "Direction": "inbound",
            "From": "+15550199999", "To": self.to_number,
        }  # fmt: skip

    def _plan(self, call_sid: str, laml: str, offset_s: float) -> StreamPlan | None:
        instruction = parse_stream(laml)
        if instruction is None:
            return None
        return StreamPlan(
            url=instruction.url, call_sid=call_sid, stream_sid=str(uuid.uuid4()),
            account_sid=self.simulator.account_sid, parameters=instruction.parameters,
            start_offset_s=offset_s,
        )  # fmt: skip

    async def answer_base(self, n: int) -> list[StreamPlan]:
        limit = asyncio.Semaphore(16)

        async def one(i: int) -> StreamPlan:
            call_sid = str(uuid.uuid4())
            async with limit:
                status, laml = await self.simulator.post_signed(
                    f"{self.server.http_url}/laml/voice", self._voice_form(call_sid)
                )
            # Spread over the 20 ms period in SLOTS phases, as independent calls would be.
            plan = (
                self._plan(call_sid, laml, (i % SLOTS) * FRAME_S / SLOTS) if status == 200 else None
            )
            if plan is None:
                raise BenchError(f"base call: voice webhook answered {status}: {laml[:200]}")
            return plan

        return list(await asyncio.gather(*(one(i) for i in range(n))))

    async def _status(self, call_sid: str, status: str, sequence: int) -> None:
        form = {
            "AccountSid": self.simulator.account_sid, "CallSid": call_sid, "CallStatus": status,
            "SequenceNumber": str(sequence), "Direction": "inbound", "From": "+15550199999",
            "To": self.to_number,
        }  # fmt: skip
        started = time.monotonic()
        try:
            async with asyncio.timeout(WEBHOOK_CLIENT_TIMEOUT_S):
                code, _body = await self.simulator.post_signed(
                    f"{self.server.http_url}/laml/status", form
                )
        except TimeoutError:
            self.timings.status_outcomes["no answer in 15 s"] += 1
            return
        except aiohttp.ClientError as exc:
            self.timings.status_outcomes[f"client error {type(exc).__name__}"] += 1
            return
        self.timings.status_ms.append((time.monotonic() - started) * 1000.0)
        self.timings.status_outcomes["204" if code == 204 else f"HTTP {code}"] += 1

    async def ramp_call(self, ramp_t0: float, ramp: Connection) -> None:
        call_sid = str(uuid.uuid4())
        started = time.monotonic()
        try:
            async with asyncio.timeout(WEBHOOK_CLIENT_TIMEOUT_S):
                code, laml = await self.simulator.post_signed(
                    f"{self.server.http_url}/laml/voice", self._voice_form(call_sid)
                )
        except TimeoutError:
            self.timings.voice_outcomes["no answer in 15 s"] += 1
            return
        except aiohttp.ClientError as exc:
            self.timings.voice_outcomes[f"client error {type(exc).__name__}"] += 1
            return
        took = (time.monotonic() - started) * 1000.0
        self.timings.voice_ms.append((started - ramp_t0, took))
        plan = self._plan(call_sid, laml, 0.0) if code == 200 else None
        if plan is None:
            held = code == 200 and "<Redirect" in laml
            outcome = "held: database late (Redirect)" if held else f"HTTP {code}, no stream"
            self.timings.voice_outcomes[outcome] += 1
            return
        self.timings.voice_outcomes["answered with a stream"] += 1
        answered = time.monotonic()
        ramp.send(("open", plan))
        await self._status(call_sid, "in-progress", 1)
        # The caller hangs up as its stream stops (a little after: the stream's admission).
        ends = answered + self.args.stream_seconds + 0.5
        await asyncio.sleep(max(0.0, ends - time.monotonic()))
        await self._status(call_sid, "completed", 2)

    async def sample_postgres(self, stop: asyncio.Event) -> None:
        """pg_stat_activity of the server's connections (application_name voxsouth)."""
        pg = self.pg
        while not stop.is_set():
            rows = await self.pool.fetch(
                """SELECT state, wait_event_type, wait_event, left(query, 70) AS query
                   FROM pg_stat_activity WHERE application_name = 'voxsouth'"""
            )
            pg.samples += 1
            pg.active.append(sum(r["state"] == "active" for r in rows))
            pg.idle_in_transaction.append(sum(r["state"] == "idle in transaction" for r in rows))
            feed_lock = 0
            for r in rows:
                if r["state"] == "active":
                    waited = f"{r['wait_event_type']}:{r['wait_event']}"
                    pg.active_waits[waited if r["wait_event_type"] else "none"] += 1
                if r["state"] != "active" or r["wait_event_type"] != "Lock":
                    continue
                if r["wait_event"] == "advisory":
                    feed_lock += 1
                else:
                    pg.other_locks[r["wait_event"]] += 1
                pg.waiting_queries[" ".join(r["query"].split())] += 1
            pg.feed_lock.append(feed_lock)
            with_timeout = asyncio.ensure_future(stop.wait())
            await asyncio.wait({with_timeout}, timeout=SAMPLE_EVERY_S)
            with_timeout.cancel()


def cpu_pressure_s() -> float:
    """Seconds some runnable task on the machine waited for a CPU, so far (0 if unknown): the
    machine is shared, and a run where others took the cores says so."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def _ms(values: Sequence[float], qs: Sequence[float] = (50, 95, 99, 100)) -> str:
    if not values:
        return "-"
    return " / ".join(f"{v:.0f}" for v in percentiles(values, qs)) + " ms"


def _hist(after: promtext.Snapshot, before: promtext.Snapshot, name: str, scale: float,
          digits: int) -> str:  # fmt: skip
    h = promtext.histogram(after, name, before)
    qs = "/".join(promtext.format_quantile(h.quantile(q), scale, digits) for q in (0.5, 0.99))
    mean = f"mean {h.sum / h.count * scale:.{digits}f}, " if h.count else ""
    return f"{mean}p50/p99 {qs} (n {h.count:.0f})"


def _endings(streams: Sequence[StreamResult]) -> str:
    how: Counter[str] = Counter()
    for s in streams:
        if not s.connected:
            how[f"not connected ({s.error[:60]})"] += 1
        elif s.close_code is None:
            how["no close frame"] += 1
        else:
            how[f"{s.close_code} {s.close_reason!r}"] += 1
    return "; ".join(f"{n}× {k}" for k, n in how.most_common()) or "-"


def _start(target: Any, plan: Any) -> tuple[BaseProcess, Connection]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(plan, child), daemon=True)
    proc.start()
    child.close()
    return proc, parent


async def drive(run: Run, tmp: Path) -> None:
    args = run.args
    started = time.monotonic()
    plans = await run.answer_base(args.base)
    print(f"base: {args.base} calls answered in {time.monotonic() - started:.1f} s", flush=True)
    ramp_s = args.seconds + args.stream_seconds
    frames = round((args.warmup + ramp_s + 2.0) / FRAME_S)
    n_gen = max(1, math.ceil(args.base / 250))
    procs = [
        _start(run_worker, WorkerPlan(worker=w, wav=str(args.wav), frames=frames,
                                      streams=tuple(plans[w::n_gen]), record_send_times=False))
        for w in range(n_gen)
    ]  # fmt: skip
    ramp_proc = _start(
        run_ramp_worker, RampPlan(str(args.wav), round(args.stream_seconds / FRAME_S))
    )
    all_procs = [*procs, ramp_proc]
    try:
        connected = 0
        deadline = time.monotonic() + 60 + args.base / 10
        for _proc, conn in procs:
            kind, value = await receive(conn, deadline)
            if kind == "result":
                raise BenchError(f"base generator failed before streaming: {value.error}")
            connected += int(value)
        print(f"base: {connected} streams open; ramp in {args.warmup:.0f} s", flush=True)
        t0 = time.time() + 1.0
        for _proc, conn in procs:
            conn.send(("go", t0))
        await asyncio.sleep(t0 - time.time() + args.warmup)
        await ramp(run, tmp, all_procs, ramp_proc[1], ramp_s)
    finally:
        for proc, conn in all_procs:
            conn.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


async def ramp(
    run: Run,
    tmp: Path,
    procs: list[tuple[BaseProcess, Connection]],
    ramp_conn: Connection,
    window_s: float,
) -> None:
    args = run.args
    pg_pid = postmaster_pid(tmp / "postgres")
    gen_pids = [p.pid for p, _ in procs if p.pid is not None]

    def cpu() -> tuple[float, float, float, float, float]:
        return (
            cpu_seconds([run.server.pid], with_children=True),
            cpu_seconds([pg_pid] if pg_pid else [], with_children=True),
            cpu_seconds(gen_pids),
            cpu_seconds([os.getpid()]),
            cpu_pressure_s(),
        )

    before = await run.scrape()
    cpu0, wall0 = cpu(), time.monotonic()
    profiler = None
    if args.profile:
        profile = Path(args.profile) / "server-call-setup.txt"
        profiler = pyspy.record(run.server.pid, window_s, profile)
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(run.sample_postgres(stop_sampling))
    tasks: list[asyncio.Task[None]] = []
    total = round(args.rate * args.seconds)
    for i in range(total):
        await asyncio.sleep(max(0.0, wall0 + i / args.rate - time.monotonic()))
        tasks.append(asyncio.create_task(run.ramp_call(wall0, ramp_conn)))
    await asyncio.gather(*tasks)
    await asyncio.sleep(max(0.0, wall0 + window_s - time.monotonic()))
    wall = time.monotonic() - wall0
    cpu1 = cpu()
    after = await run.scrape()
    stop_sampling.set()
    await sampler
    ramp_conn.send(("done", None))
    ends_at = wall0 + wall

    results: list[WorkerResult] = []
    deadline = time.monotonic() + 90
    for _proc, conn in procs:
        _kind, value = await receive(conn, deadline)
        results.append(value)
    if profiler is not None:
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()
    shares = [(b - a) / wall for a, b in zip(cpu0, cpu1, strict=True)]
    await report(run, results, before, after, shares, (wall0, ends_at))


async def report(
    run: Run,
    results: list[WorkerResult],
    before: promtext.Snapshot,
    after: promtext.Snapshot,
    cpu: list[float],
    window: tuple[float, float],
) -> None:
    args, t = run.args, run.timings
    base, ramp_ = results[:-1], results[-1]
    for r in results:
        if r.error:
            print(f"  generator {r.worker}: {r.error}")
    voice = [ms for _at, ms in t.voice_ms]
    print(f"voice webhook ({sum(t.voice_outcomes.values())} calls)  p50/p95/p99/max {_ms(voice)}")
    print("  outcomes: " + "; ".join(f"{n}× {k}" for k, n in t.voice_outcomes.most_common()))
    by_second: dict[int, list[float]] = {}
    for at, ms in t.voice_ms:
        by_second.setdefault(int(at // 2) * 2, []).append(ms)
    print(
        "  by 2 s of the ramp (p50/max ms): "
        + ", ".join(
            f"{s}s {percentiles(v, (50,))[0]:.0f}/{max(v):.0f}"
            for s, v in sorted(by_second.items())
        )
    )
    print(
        f"status callbacks ({sum(t.status_outcomes.values())})  p50/p95/p99/max "
        f"{_ms(t.status_ms)}; " + "; ".join(f"{n}× {k}" for k, n in t.status_outcomes.items())
    )
    print(f"ramp streams ({len(ramp_.streams)}): {_endings(ramp_.streams)}")
    connects = [s.connect_s * 1000 for s in ramp_.streams if s.connect_s is not None]
    print(f"  connecting (TCP, accept, upgrade) p50/p95/p99/max {_ms(connects)}")
    refused = [
        (s.close_received_at - s.start_sent_at) * 1000
        for s in ramp_.streams
        if s.close_code in (1008, 1013) and s.close_received_at and s.start_sent_at
    ]
    if refused:
        print(f"  refused ones, start → close p50/p95/p99/max {_ms(refused)}")
    base_streams = [s for r in base for s in r.streams]
    print(f"base streams ({len(base_streams)}), at their end: {_endings(base_streams)}")
    lo, hi = window
    rtts = [rtt for r in base for rtt, sent in zip(r.ping_rtts_ms, r.ping_sent_s, strict=True)
            if lo <= sent <= hi]  # fmt: skip
    lags = [lag for r in base for lag in r.lags_ms]
    print(
        f"base streams' frame delay in the window: ping RTT p50/p95/p99/max {_ms(rtts)} "
        f"(n {len(rtts)}); over 20 ms: {sum(x > 20 for x in rtts)}"
    )
    print(
        "  server loop lag (ms) " + _hist(after, before, "voxsouth_event_loop_lag_seconds", 1e3, 1)
    )
    print(
        "  frame work (µs)      "
        + _hist(after, before, "voxsouth_media_frame_processing_seconds", 1e6, 1)
    )
    print(f"  generators' send lag p50/p99/max {_ms(lags, (50, 99, 100))} (whole run)")
    print("event writer batches (ms) " + _hist(after, before, "voxsouth_db_write_seconds", 1e3, 1))
    written = promtext.total(after, "voxsouth_events_written_total") - promtext.total(
        before, "voxsouth_events_written_total"
    )
    journaled = promtext.total(after, "voxsouth_events_journaled_total") - promtext.total(
        before, "voxsouth_events_journaled_total"
    )
    print(f"  events written {written:.0f}, journaled {journaled:.0f}")
    print(
        f"CPU (cores) over the {window[1] - window[0]:.1f} s window: server {cpu[0]:.2f}, "
        f"Postgres {cpu[1]:.2f}, generators {cpu[2]:.2f}, this bench {cpu[3]:.2f}"
    )
    pg = run.pg
    if pg.samples:
        waiting = sum(x > 0 for x in pg.feed_lock)
        print(
            f"Postgres, {pg.samples} samples of the server's connections: active mean "
            f"{sum(pg.active) / pg.samples:.1f} (max {max(pg.active)}); waiting on the feed's "
            f"commit-order lock mean {sum(pg.feed_lock) / pg.samples:.2f} (max "
            f"{max(pg.feed_lock)}, in {100 * waiting / pg.samples:.0f}% of samples); idle in "
            f"a transaction mean {sum(pg.idle_in_transaction) / pg.samples:.2f}; other lock "
            f"waits {dict(pg.other_locks) or 0}"
        )
        print(
            "  active backends' wait events (samples): "
            + ", ".join(f"{k} {n}" for k, n in pg.active_waits.most_common(6))
        )
        for query, n in pg.waiting_queries.most_common(3):
            print(f"  waiting on a lock, {n}×: {query}")
    if args.profile:
        profile = Path(args.profile) / "server-call-setup.txt"
        print("\n".join([f"py-spy of the server, {profile}:", *pyspy.summarize(profile)]))


async def amain(args: argparse.Namespace, tmp: Path) -> int:
    max_streams = args.max_streams or args.base + 2 * math.ceil(args.rate * args.stream_seconds)
    load = os.getloadavg()
    print(
        f"bench.call_setup: {os.cpu_count()} CPUs, load average {load[0]:.2f}, Python "
        f"{sys.version.split()[0]}; {args.base} base streams, then {args.rate:g} calls/s for "
        f"{args.seconds:g} s, each streaming {args.stream_seconds:g} s; server: "
        f"{args.workers} worker(s), transcription off, max streams {max_streams}"
        + "".join(f", {k}={v}" for k, v in sorted(os.environ.items())
                  if k.startswith("VOXSOUTH_")),
        flush=True,
    )  # fmt: skip
    dsn = await start_embedded(tmp / "postgres")
    signing_key = secrets.token_urlsafe(24)
    settings = {"VOXSOUTH_MEDIA_MAX_STREAMS": str(max_streams)}
    with server_process(dsn, tmp / "server", "none", signing_key, settings,
                        workers=args.workers) as server:  # fmt: skip
        # Not "voxsouth": the sampler counts only the server's connections.
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=3, server_settings={"application_name": "voxsouth-bench"}
        )
        try:
            org_id = await calls.create_org(pool, "Bench call setup", consent_default="one_party")
            number = f"+1555{secrets.randbelow(10**7):07d}"
            await calls.add_phone_number(pool, org_id, number)
            # No limit on connections: webhooks that take long must not queue in the client.
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                simulator = SignalWireSimulator(http, base_url=server.http_url,
                                                signing_key=signing_key)  # fmt: skip
                run = Run(args, server, pool, http, simulator, number)
                await drive(run, tmp)
        finally:
            await pool.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.call_setup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", type=int, default=300, help="streams live before the ramp")
    parser.add_argument("--rate", type=float, default=30.0, help="new calls a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long calls arrive")
    parser.add_argument("--stream-seconds", type=float, default=3.0,
                        help="how long each new call streams (default 3)")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="base streams alone before the ramp (default 3 s)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--max-streams", type=int,
                        help="VOXSOUTH_MEDIA_MAX_STREAMS (default: base + 2 × rate × "
                        "stream-seconds, so the limit refuses none)")  # fmt: skip
    parser.add_argument("--wav", type=Path, default=FIXTURE)
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server over the ramp")
    args = parser.parse_args(argv)
    if args.base < 1 or args.rate <= 0 or args.seconds <= 0 or args.stream_seconds < 0.1:
        parser.error("--base, --rate, --seconds and --stream-seconds must be positive")
    return run_bench("call_setup", lambda tmp: amain(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
