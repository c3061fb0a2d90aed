"""Concurrent media streams against the real server: `python -m bench.streams`.

The server runs in its own process (bench/server_proc.py), so only its own CPU is counted as
the server's; Postgres is an embedded cluster in a temporary folder, removed at the end. For
each number of concurrent calls N the bench answers N calls through the signed voice webhook
(one org, one number), then streams both tracks of `two_party.wav` for every call in real time
from worker processes (bench/loadgen.py: SignalWire's message shapes, the webhook's token), and
reports, over the streaming window:

- frames per second the server received, its CPU seconds per wall second (one event loop: 1.00
  is a full core, its ceiling), and CPU per call (ms of server CPU per second of two-track
  audio); the generator's and Postgres' CPU beside it, since they share the machine;
- whether it kept real time. Generator side: send lag against the 20 ms schedule (the
  generator's own health: a late generator invalidates the point), sends that found the socket
  still holding earlier data, websocket ping round trips (answered by the server's loop as it
  reads: its latency plus any backlog ahead of the ping), `stop` → the server's close frame.
  Server side: `media_streams` rows, every frame received and none lost, and `stop` →
  `stopped_at` ("drain": the backlog left at the end plus the closing handshake);
- per-frame processing from the server's `voxsouth_media_frame_processing_seconds` histogram
  (quantiles interpolated within its buckets, so coarse).

With transcription (faster-whisper, the server's default engine and workers) each call plays
the fixture once; the calls start spread over `--spread` seconds (0: all in lockstep, the worst
case, every call's end of speech at the same moment). End of speech → final text is measured
twice: the server's `voxsouth_transcription_latency_seconds` histogram, and independently from
Postgres as `transcript_segments.created_at` ("stored"; `spoken_at`, "ready", is when the
server had the text) minus the wall time the generator sent the frame holding the segment's
`end_ms`. Both include the 500 ms endpointing hangover.

With `--cloud deepgram|assemblyai` the transcription sweep hears through that service instead:
a fake of it (bench/fake_service.py) in its own process, with placeholder words (the server's
work does not depend on them, and no offline engine could hear that many calls here), so its
CPU is not the server's. Besides end of speech → stored, the fake reports its own share per
final (its endpointing silence and queues); the server's share is the difference of the p95s.

Targets (issue): at least 500 concurrent streams without transcription in real time; with
transcription, how many calls keep p95 end of speech → final text within 1.5 s; with a cloud
engine, at least 200 calls with every utterance transcribed and the server's share of p95
end of speech → stored within 1.0 s.
Everything listens and connects on 127.0.0.1 only. The default run (both sweeps) takes about
4 minutes; `--quick` under one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import math
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench import promtext, pyspy
from bench.fake_service import FakeService, fake_service_process, free_port
from bench.loadgen import SLOTS, StreamPlan, StreamResult, WorkerPlan, WorkerResult, run_worker
from bench.report import (
    PLAIN_HEADER,
    REAL_TIME_RULE,
    TARGET_CLOUD_P95_S,
    TARGET_P95_S,
    TARGET_STREAMS,
    WHISPER_HEADER,
    Point,
    cloud_row,
    percentiles,
    plain_row,
    print_details,
    whisper_row,
    word_recall,
)
from bench.server_proc import BenchError, ServerInfo, run_bench, server_process
from server.simulator.client import SignalWireSimulator, parse_stream
from server.simulator.fake_stt.assemblyai import FakeAssemblyAI
from server.simulator.fake_stt.deepgram import FakeDeepgram
from storage import calls
from storage.db import Pool, create_pool
from storage.embedded import start_embedded

# psutil ships no type information (and types-psutil is not a dev dependency): used as Any.
psutil: Any = importlib.import_module("psutil")

ROOT: Final = Path(__file__).resolve().parent.parent
FIXTURE: Final = ROOT / "tests/fixtures/speech/two_party.wav"
TEXTS: Final = ROOT / "tests/fixtures/speech/texts.json"
FRAME_S: Final = 0.02
FAKE_PATHS: Final = {"assemblyai": FakeAssemblyAI.path, "deepgram": FakeDeepgram.path}
CLOUD_KEY: Final = "bench-cloud-key-0123456789"

PLAIN_STREAMS: Final = (100, 250, 500, 750)
PLAIN_SECONDS: Final = 20.0
WHISPER_STREAMS: Final = (1, 2, 4, 6, 8)
QUICK_PLAIN_STREAMS: Final = (50, 150)
QUICK_PLAIN_SECONDS: Final = 6.0
QUICK_WHISPER_STREAMS: Final = (1, 2)
QUICK_WHISPER_SECONDS: Final = 10.0


def cpu_seconds(pids: Sequence[int], *, with_children: bool = False) -> float:
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)] if with_children else [proc]
            for p in procs:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- one point


@dataclass(slots=True)
class Bench:
    args: argparse.Namespace
    server: ServerInfo
    pool: Pool
    http: aiohttp.ClientSession
    simulator: SignalWireSimulator
    to_number: str
    pgdata: Path
    fixture_s: float
    service_port: int | None = None
    """Where the fake cloud service listens, with `--cloud` (one process per point)."""
    tmp: Path | None = None

    async def scrape(self) -> promtext.Snapshot:
        async with self.http.get(f"{self.server.http_url}/metrics") as response:
            return promtext.parse(await response.text())

    async def answer(self, n: int, stagger_s: float) -> list[StreamPlan]:
        """N calls through the signed voice webhook; their `<Stream>` parameters (token)."""
        limit = asyncio.Semaphore(16)
        media_url = self.server.media_url

        async def one(i: int) -> StreamPlan:
            call_sid = str(uuid.uuid4())
            async with limit:
                status, laml = await self.simulator.post_signed(
                    f"{self.server.http_url}/laml/voice",
                    {
                        "AccountSid": self.simulator.account_sid,
                        "ApiVersion": "2010-04-01",
                        "CallSid": call_sid,
                        "CallStatus": "ringing",
                        "Direction": "inbound",
                        "From": "+15550199999",
                        "To": self.to_number,
                    },
                )
            instruction = parse_stream(laml) if status == 200 else None
            if instruction is None:
                raise BenchError(f"voice webhook answered {status}: {laml[:200]}")
            if not instruction.url.startswith(media_url + "/"):
                raise BenchError(f"LaML streams to {instruction.url}, not under {media_url}")
            return StreamPlan(
                url=instruction.url,
                call_sid=call_sid,
                stream_sid=str(uuid.uuid4()),
                account_sid=self.simulator.account_sid,
                parameters=instruction.parameters,
                # Spread over the 20 ms period in SLOTS phases, and calls `stagger_s` apart.
                start_offset_s=i * stagger_s + (i % SLOTS) * FRAME_S / SLOTS,
            )

        return list(await asyncio.gather(*(one(i) for i in range(n))))

    async def run_point(self, n: int, frames: int, mode: str) -> Point:
        if self.service_port is None:
            return await self._run_point(n, frames, mode, None)
        assert self.tmp is not None
        report = self.tmp / f"service-{n}.json"
        with fake_service_process(self.args.cloud, CLOUD_KEY, self.service_port, report) as fake:
            point = await self._run_point(n, frames, mode, fake)
        point.service_latency = percentiles(fake.final_latencies_s, (50, 95))
        return point

    async def _run_point(self, n: int, frames: int, mode: str, fake: FakeService | None) -> Point:
        transcription = mode == "whisper"
        workers = self.args.workers or min(4, max(1, math.ceil(n / 250)))
        spread = self.args.spread if transcription else 0.0
        point = Point(n=n, workers=min(workers, n), seconds=frames * FRAME_S, spread_s=spread)
        plans = await self.answer(n, spread / n)
        point.last_start_s = max(plan.start_offset_s for plan in plans)
        ctx = multiprocessing.get_context("spawn")
        procs: list[tuple[BaseProcess, Connection]] = []
        try:
            for w in range(point.workers):
                plan = WorkerPlan(
                    worker=w,
                    wav=str(self.args.wav),
                    frames=frames,
                    streams=tuple(plans[w :: point.workers]),
                    record_send_times=transcription,
                )
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=run_worker, args=(plan, child), daemon=True)
                proc.start()
                child.close()
                procs.append((proc, parent))
            results, before = await self._drive(point, procs, frames, mode, fake)
        except BaseException:
            for started, _conn in procs:  # interrupted or failed: no point in waiting
                if started.is_alive():
                    started.terminate()
            raise
        finally:
            for started, conn in procs:
                conn.close()
                started.join(timeout=5)
                if started.is_alive():
                    started.terminate()
                    started.join(timeout=5)
        await self._collect(point, results, before, transcription)
        return point

    async def _drive(
        self,
        point: Point,
        procs: list[tuple[BaseProcess, Connection]],
        frames: int,
        mode: str,
        fake: FakeService | None,
    ) -> tuple[list[WorkerResult], promtext.Snapshot]:
        early: dict[int, WorkerResult] = {}
        deadline = time.monotonic() + 60 + point.n / 10
        for i, (_proc, conn) in enumerate(procs):
            kind, value = await receive(conn, deadline)
            if kind == "result":  # the worker failed before streaming
                early[i] = value
            else:
                point.connected += int(value)
        before = await self.scrape()
        t0 = time.time() + 1.0
        for i, (_proc, conn) in enumerate(procs):
            if i not in early:
                conn.send(("go", t0))
        worker_pids = [p.pid for p, _ in procs if p.pid is not None]
        pg_pid = postmaster_pid(self.pgdata)
        pg_pids = [pg_pid] if pg_pid else []
        service_pids = [fake.pid] if fake is not None else []
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu0 = (
            cpu_seconds([self.server.pid]),
            cpu_seconds(worker_pids),
            cpu_seconds(pg_pids, with_children=True),
            cpu_seconds(service_pids),
        )
        wall0 = time.monotonic()
        label = f"server-{mode}-{point.n}"
        profiler = self._start_profile(label, frames * FRAME_S)
        try:
            await asyncio.sleep(point.last_start_s + frames * FRAME_S)
            point.window_s = wall = time.monotonic() - wall0
            cpu1 = (
                cpu_seconds([self.server.pid]),
                cpu_seconds(worker_pids),
                cpu_seconds(pg_pids, with_children=True),
                cpu_seconds(service_pids),
            )
            point.server_cpu = (cpu1[0] - cpu0[0]) / wall
            point.generator_cpu = (cpu1[1] - cpu0[1]) / wall
            point.postgres_cpu = (cpu1[2] - cpu0[2]) / wall
            point.service_cpu = (cpu1[3] - cpu0[3]) / wall
            try:
                point.server_rss_mb = psutil.Process(self.server.pid).memory_info().rss / 2**20
            except psutil.Error:
                pass
            results = []
            deadline = time.monotonic() + 90
            for i, (_proc, conn) in enumerate(procs):
                if i in early:
                    results.append(early[i])
                else:
                    _kind, value = await receive(conn, deadline)
                    results.append(value)
        finally:
            if profiler is not None:
                try:
                    profiler.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                profile = Path(self.args.profile) / f"{label}.txt"
                point.profile = [f"py-spy of the server, {profile}:", *pyspy.summarize(profile)]
        return results, before

    def _start_profile(self, label: str, seconds: float) -> subprocess.Popen[bytes] | None:
        """py-spy on the server for the streaming window (`--profile DIR`)."""
        if not self.args.profile:
            return None
        proc = pyspy.record(self.server.pid, seconds, Path(self.args.profile) / f"{label}.txt")
        if proc is None:
            print("  (py-spy not found: no profile)")
        return proc

    async def _wait_streams_done(
        self, stream_sids: list[str], timeout_s: float
    ) -> list[dict[str, Any]]:
        """media_streams rows of these streams, once each has its StreamStopped (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            rows = await self.pool.fetch(
                """SELECT stream_sid, frames_received_inbound, frames_received_outbound,
                          frames_lost_inbound, frames_lost_outbound, messages_lost,
                          end_reason, stopped_at, utterances_skipped,
                          transcription_error_inbound, transcription_error_outbound
                   FROM media_streams WHERE stream_sid = ANY($1::text[])""",
                stream_sids,
            )
            done = [dict(r) for r in rows if r["end_reason"] is not None]
            if len(done) >= len(stream_sids) or time.monotonic() > deadline:
                return done
            await asyncio.sleep(0.25)

    async def _collect(
        self,
        point: Point,
        results: list[WorkerResult],
        before: promtext.Snapshot,
        transcription: bool,
    ) -> None:
        streams: list[StreamResult] = []
        lags: list[float] = []
        pings: list[float] = []
        for r in results:
            if r.error:
                point.errors.append(f"worker {r.worker}: {r.error}")
            streams.extend(r.streams)
            lags.extend(r.lags_ms)
            pings.extend(r.ping_rtts_ms)
        for s in streams:
            if s.error:
                point.errors.append(f"{s.call_sid}: {s.error}")
            if s.connected and s.close_code != 1000:
                key = f"close {s.close_code}"
                point.bad_endings[key] = point.bad_endings.get(key, 0) + 1
        point.frames_sent = 2 * sum(s.frames_sent for s in streams)
        point.lag_ms = percentiles(lags, (50, 99, 100))
        point.ping_ms = percentiles(pings, (50, 99))
        point.backlogged_sends = sum(s.backlogged_sends for s in streams)
        point.max_write_buffer = max((s.max_write_buffer for s in streams), default=0)

        connected = [s for s in streams if s.connected]
        rows = await self._wait_streams_done(
            [s.stream_sid for s in connected], 45.0 if transcription else 30.0
        )
        point.streams_done = len(rows)
        stop_sent = {s.stream_sid: s.stop_sent_at for s in connected}
        drains = []
        for row in rows:
            point.frames_received += (
                row["frames_received_inbound"] + row["frames_received_outbound"]
            )
            point.frames_lost += row["frames_lost_inbound"] + row["frames_lost_outbound"]
            point.messages_lost += row["messages_lost"]
            point.utterances_skipped += row["utterances_skipped"]
            for track in ("inbound", "outbound"):
                if error := row[f"transcription_error_{track}"]:
                    point.service_errors[error] = point.service_errors.get(error, 0) + 1
            if row["end_reason"] != "stop":
                key = f"ended {row['end_reason']}"
                point.bad_endings[key] = point.bad_endings.get(key, 0) + 1
            sent_at = stop_sent.get(row["stream_sid"])
            if sent_at is not None and row["stopped_at"] is not None:
                drains.append((row["stopped_at"].timestamp() - sent_at) * 1000.0)
        point.drain_ms = percentiles(drains, (50, 99))
        point.close_ms = percentiles(
            [
                (s.close_received_at - s.stop_sent_at) * 1000.0
                for s in connected
                if s.close_received_at is not None and s.stop_sent_at is not None
            ],
            (50, 99),
        )

        after = await self.scrape()
        frame = promtext.histogram(after, "voxsouth_media_frame_processing_seconds", before)
        point.frame_us = "/".join(
            promtext.format_quantile(frame.quantile(q), 1e6, 1) for q in (0.5, 0.99)
        )
        lag = promtext.histogram(after, "voxsouth_event_loop_lag_seconds", before)
        point.loop_lag_ms = "/".join(
            promtext.format_quantile(lag.quantile(q), 1e3, 0) for q in (0.5, 0.99)
        )
        if transcription:
            await self._transcripts(point, connected, before, after)

    async def _transcripts(
        self,
        point: Point,
        streams: list[StreamResult],
        before: promtext.Snapshot,
        after: promtext.Snapshot,
    ) -> None:
        latency = promtext.histogram(after, "voxsouth_transcription_latency_seconds", before)
        point.latency_metric = "/".join(
            promtext.format_quantile(latency.quantile(q), 1.0, 2) for q in (0.5, 0.95)
        )
        writes = promtext.histogram(after, "voxsouth_db_write_seconds", before)
        point.db_write_s = "/".join(
            promtext.format_quantile(writes.quantile(q), 1.0, 3) for q in (0.5, 0.95)
        )
        decode = promtext.histogram(after, "voxsouth_transcription_decode_seconds", before)
        point.decode_s = "/".join(
            promtext.format_quantile(decode.quantile(q), 1.0, 2) for q in (0.5, 0.95)
        )
        was = promtext.by_label(before, "voxsouth_dropped_work_total", "kind")
        for kind, value in promtext.by_label(after, "voxsouth_dropped_work_total", "kind").items():
            if value - was.get(kind, 0.0) > 0:
                point.dropped[kind] = value - was.get(kind, 0.0)

        by_call = {s.call_sid: s for s in streams}
        rows = await self.pool.fetch(
            """SELECT c.call_sid, t.track, t.end_ms, t.text, t.created_at, t.spoken_at
               FROM transcript_segments t JOIN calls c ON c.id = t.call_id
               WHERE c.call_sid = ANY($1::text[]) ORDER BY c.call_sid, t.end_ms""",
            list(by_call),
        )
        point.segments = len(rows)
        if rows:
            first = rows[0]["call_sid"]
            point.sample_text = [f"transcript of call {first}:"] + [
                f"  {r['track']:>8} {r['end_ms'] / 1000:6.2f}s {r['text']}"
                for r in rows
                if r["call_sid"] == first
            ]
        stored, ready = [], []
        heard: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            heard.setdefault((row["call_sid"], row["track"]), []).append(row["text"])
            times = by_call[row["call_sid"]].send_times
            if not times:
                continue
            # Frame k holds samples [20k, 20k + 20) ms: end_ms is one past the last voiced one.
            k = min(max(0, row["end_ms"] // 20 - 1), len(times) - 1)
            stored.append(row["created_at"].timestamp() - times[k])
            ready.append(row["spoken_at"].timestamp() - times[k])
        point.latency_db = percentiles(stored, (50, 95, 100))
        point.latency_ready = percentiles(ready, (50, 95))
        if point.seconds >= self.fixture_s and self.service_port is None:
            point.recall = word_recall(heard, by_call, TEXTS, FIXTURE.name)  # not placeholders


async def receive(conn: Connection, deadline: float) -> tuple[str, Any]:
    while not conn.poll():
        if time.monotonic() > deadline:
            raise BenchError("a load generator worker did not answer in time")
        await asyncio.sleep(0.02)
    try:
        kind, value = conn.recv()
    except EOFError:
        raise BenchError("a load generator worker died") from None
    return str(kind), value


# ---------------------------------------------------------------- main


async def run_mode(
    args: argparse.Namespace, mode: str, dsn: str, tmp: Path, fixture_frames: int
) -> list[Point]:
    whisper = mode == "whisper"
    if whisper:
        counts = args.streams or (QUICK_WHISPER_STREAMS if args.quick else WHISPER_STREAMS)
        seconds = args.seconds or (QUICK_WHISPER_SECONDS if args.quick else None)
        frames = round(seconds / FRAME_S) if seconds else fixture_frames
    else:
        counts = args.streams or (QUICK_PLAIN_STREAMS if args.quick else PLAIN_STREAMS)
        seconds = args.seconds or (QUICK_PLAIN_SECONDS if args.quick else PLAIN_SECONDS)
        frames = round(seconds / FRAME_S)
    signing_key = secrets.token_urlsafe(24)
    title = "with transcription (faster-whisper)" if whisper else "without transcription"
    engine = mode if whisper else "none"
    settings: dict[str, str] = {}
    service_port = None
    if whisper and args.cloud:
        service_port = free_port()
        engine, prefix = args.cloud, f"VOXSOUTH_{args.cloud.upper()}"
        settings = {
            f"{prefix}_API_KEY": CLOUD_KEY,
            f"{prefix}_URL": f"ws://127.0.0.1:{service_port}{FAKE_PATHS[args.cloud]}",
            # A failed session shows as skipped utterances and an error, not as whisper's work.
            "VOXSOUTH_TRANSCRIPTION_FALLBACK": "none",
        }
        title = f"with transcription ({args.cloud}: a fake in its own process, placeholder words)"
    print(f"\n== {title}: N = {', '.join(map(str, counts))}, {frames * FRAME_S:.1f} s each ==")
    started = time.monotonic()
    points: list[Point] = []
    with server_process(dsn, tmp / f"server-{mode}", engine, signing_key, settings) as server:
        print(
            f"server pid {server.pid}: {server.http_url}, {server.media_url} "
            f"(ready in {time.monotonic() - started:.1f} s)"
        )
        pool = await create_pool(dsn, max_size=4)
        try:
            # One-party: an all-party call's transcript is held until someone consents, and the
            # fixture's speakers never answer a disclosure.
            org_id = await calls.create_org(pool, f"Bench {mode}", consent_default="one_party")
            number = f"+1555{secrets.randbelow(10**7):07d}"
            await calls.add_phone_number(pool, org_id, number)
            async with aiohttp.ClientSession() as http:
                bench = Bench(
                    args=args,
                    server=server,
                    pool=pool,
                    http=http,
                    simulator=SignalWireSimulator(
                        http, base_url=server.http_url, signing_key=signing_key
                    ),
                    to_number=number,
                    pgdata=tmp / "postgres",
                    fixture_s=fixture_frames * FRAME_S,
                    service_port=service_port,
                    tmp=tmp,
                )
                print(WHISPER_HEADER if whisper else PLAIN_HEADER, flush=True)
                for n in counts:
                    point = await bench.run_point(n, frames, mode)
                    points.append(point)
                    print(whisper_row(point) if whisper else plain_row(point), flush=True)
        finally:
            await pool.close()
    print_details(points)
    if whisper and args.cloud:
        for p in points:
            print(cloud_row(p))
        good = [p.n for p in points if p.meets_cloud_target]
        print(
            f"largest N with every utterance transcribed and p95 end of speech → stored, less "
            f"the service's own p95, <= {TARGET_CLOUD_P95_S} s: {max(good) if good else 'none'}"
        )
    elif whisper:
        good = [p.n for p in points if p.meets_latency]
        print(
            f"largest N with p95 end of speech → stored final text <= {TARGET_P95_S} s: "
            f"{max(good) if good else 'none'}"
        )
    else:
        good = [p.n for p in points if p.real_time]
        best = max(good) if good else None
        if best is not None and best >= TARGET_STREAMS:
            verdict = "met"
        elif max(counts) < TARGET_STREAMS and len(good) == len(points):
            verdict = "not reached by this sweep"
        else:
            verdict = "NOT met"
        print(
            f"largest N kept in real time: {best if best is not None else 'none'} "
            f"(target >= {TARGET_STREAMS}: {verdict})"
        )
    return points


async def amain(args: argparse.Namespace, tmp: Path) -> int:
    from server.simulator.audio import read_call_audio

    fixture_frames = len(list(read_call_audio(args.wav).frames()))
    modes = ["plain", "whisper"]
    if args.transcription:
        modes = ["whisper"]
    elif args.no_transcription:
        modes = ["plain"]
    load = os.getloadavg()
    print(
        f"bench.streams: {os.cpu_count()} CPUs, load average {load[0]:.2f}, "
        f"Python {sys.version.split()[0]}, fixture {args.wav.name} "
        f"({fixture_frames * FRAME_S:.1f} s), temp {tmp}"
    )
    print(REAL_TIME_RULE)
    dsn = await start_embedded(tmp / "postgres")
    for mode in modes:
        await run_mode(args, mode, dsn, tmp, fixture_frames)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--streams", type=int, nargs="+", help="concurrent calls to try")
    parser.add_argument("--seconds", type=float, help="streaming time per point")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--transcription", action="store_true", help="only the whisper sweep")
    which.add_argument("--no-transcription", action="store_true", help="only the plain sweep")
    parser.add_argument("--quick", action="store_true", help="a small sweep, under a minute")
    parser.add_argument("--workers", type=int, help="generator processes (default: N/250)")
    parser.add_argument(
        "--spread",
        type=float,
        default=5.0,
        help="transcription: calls start evenly spread over this many seconds, so their ends "
        "of speech do not all coincide (default 5; 0 = all at once, the worst case)",
    )
    parser.add_argument(
        "--cloud",
        choices=tuple(FAKE_PATHS),
        help="transcription by this cloud service (a fake of it in its own process, placeholder "
        "words) instead of faster-whisper",
    )
    parser.add_argument("--wav", type=Path, default=FIXTURE)
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the server per point: stacks in DIR, summary"
    )
    args = parser.parse_args(argv)
    if args.streams and min(args.streams) < 1:
        parser.error("--streams must be positive")
    if args.seconds is not None and args.seconds < 1:
        parser.error("--seconds must be at least 1")
    return run_bench("streams", lambda tmp: amain(args, tmp))


if __name__ == "__main__":
    sys.exit(main())
