"""What 1,000, 10,000 and 100,000 concurrent calls need, from figures measured here:
`python -m bench.scale_model [--calls 4]`.

Measured in this run: a few two-party calls (tests/fixtures/speech/two_party.wav, both tracks,
transcribed offline) played in real time through a real server process on an embedded Postgres,
and what they left per call-minute: rows and bytes by table, `NOTIFY`s by channel (feed rows and
interim transcripts, counted by a listener), and WAL bytes. Taken from the README's benchmarks
(flags, to re-run with other figures): the media plane's CPU per call-second and the real-time
streams per core (`bench.streams --no-transcription`), and the server's CPU per call-second with
a cloud engine (`bench.streams --transcription --cloud deepgram`). At scale a cloud engine hears
the calls: one offline decode per utterance does not fit a thousand calls on any machine here.

The model: cores = calls × CPU per call-second (at most `--loop-busy` of a core each, the rest is
headroom the loop needs to keep real time), nodes of `--cores-per-node`; Postgres rows, WAL and
`NOTIFY`s per second = calls × the per-call-minute figures / 60; storage per day = calls × bytes
per call-minute × 1,440 × `--busy-share` (the share of a day a line is on a call). Which part
saturates first is whichever passes its limit at the lowest number of calls; the limits are
flags, set from published figures (see docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from bench.node_loss import until
from bench.server_proc import run_bench, server_process
from server.simulator.audio import read_call_audio
from server.simulator.client import SignalWireSimulator
from storage import calls
from storage.db import create_pool
from storage.embedded import start_embedded

AUDIO = Path(__file__).parents[1] / "tests" / "fixtures" / "speech" / "two_party.wav"
NUMBER = "+17065550100"
TABLES = ("calls", "media_streams", "transcript_segments", "dtmf_events", "consent_events",
          "escalations", "feed_events", "recordings")  # fmt: skip
CHANNELS = ("voxsouth_events", "voxsouth_partials")
ALL_STOPPED = """SELECT count(*) = 0 FROM media_streams s JOIN calls c ON c.id = s.call_id
                 WHERE c.org_id = $1 AND s.status <> 'stopped'"""


@dataclass(frozen=True, slots=True)
class Footprint:
    call_minutes: float
    rows: dict[str, float]
    """Per call-minute, by table."""
    bytes_: dict[str, float]
    notifies: dict[str, float]
    wal_bytes: float


async def measure(args: argparse.Namespace, tmp: Path) -> Footprint:
    dsn = await start_embedded(tmp / "postgres")
    key = secrets.token_urlsafe(32)
    with server_process(dsn, tmp / "server", "whisper", key) as server:
        pool = await create_pool(dsn)
        listener = await asyncpg.connect(dsn)
        heard = dict.fromkeys(CHANNELS, 0)
        try:
            org_id = await calls.create_org(pool, "Scale model", consent_default="one_party")
            await calls.add_phone_number(pool, org_id, NUMBER)
            for channel in CHANNELS:
                await listener.add_listener(channel, lambda *a, c=channel: _count(heard, c))
            wal_before = await pool.fetchval("SELECT pg_current_wal_lsn()")
            audio = read_call_audio(AUDIO)
            async with aiohttp.ClientSession() as http:
                sim = SignalWireSimulator(http, base_url=server.http_url, signing_key=key)
                await asyncio.gather(*(
                    sim.call(audio, to_number=NUMBER, from_number=f"+1404555{i:04d}")
                    for i in range(args.calls)
                ))  # fmt: skip
            # Until every call's rows are written: the streams' ends are the last.
            await until(pool, 30, ALL_STOPPED, org_id)
            wal = await pool.fetchval(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal_before
            )
            minutes = args.calls * audio.duration_ms / 60_000
            rows, sizes = {}, {}
            for table in TABLES:
                column = "id" if table in ("calls",) else "call_id"
                found = await pool.fetchrow(
                    f"SELECT count(*) AS n, COALESCE(sum(pg_column_size(t.*)), 0) AS b "
                    f"FROM {table} t WHERE {column} IN (SELECT id FROM calls WHERE org_id = $1)",
                    org_id,
                )
                assert found is not None
                rows[table], sizes[table] = found["n"] / minutes, found["b"] / minutes
        finally:
            await listener.close()
            await pool.close()
    return Footprint(minutes, rows, sizes, {c: n / minutes for c, n in heard.items()},
                     float(wal) / minutes)  # fmt: skip


def _count(heard: dict[str, int], channel: str) -> None:
    heard[channel] += 1


def model(args: argparse.Namespace, footprint: Footprint) -> None:
    per_minute_rows = sum(footprint.rows.values())
    per_minute_bytes = sum(footprint.bytes_.values())
    per_minute_notifies = sum(footprint.notifies.values())
    print(f"\nmeasured over {footprint.call_minutes:.1f} call-minutes ({args.calls} calls):")
    for table in TABLES:
        if footprint.rows[table]:
            print(f"  {table:<22}{footprint.rows[table]:>8.1f} rows/min"
                  f"{footprint.bytes_[table]:>10.0f} bytes/min")  # fmt: skip
    print(f"  {'NOTIFY':<22}" + ", ".join(f"{c} {n:.1f}/min" for c, n in
                                          footprint.notifies.items()))  # fmt: skip
    print(f"  {'WAL':<22}{footprint.wal_bytes / 1024:>8.0f} KiB/min")
    print(
        "\n| concurrent calls | cores (media only) | cores (cloud STT) | nodes (cloud) "
        "| rows/s | NOTIFY/s | WAL MB/s | transcripts GB/day |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in (1_000, 10_000, 100_000):
        media = n * args.media_ms / 1000 / args.loop_busy
        cloud = n * args.cloud_ms / 1000 / args.loop_busy
        nodes = -(-cloud // args.cores_per_node)
        rows = n * per_minute_rows / 60
        notifies = n * per_minute_notifies / 60
        wal = n * footprint.wal_bytes / 60 / 1e6
        day = n * per_minute_bytes * 1440 * args.busy_share / 1e9
        print(f"| {n:,} | {media:,.0f} | {cloud:,.0f} | {nodes:,.0f} | {rows:,.0f} "
              f"| {notifies:,.0f} | {wal:,.1f} | {day:,.1f} |")  # fmt: skip
    limits = sorted(
        (limit / per_call, name) for name, per_call, limit in (
            ("NOTIFY", per_minute_notifies / 60, args.notify_limit),
            ("row writes", per_minute_rows / 60, args.write_limit),
            ("WAL", footprint.wal_bytes / 60, args.wal_limit * 1e6),
        )
    )  # fmt: skip
    print(
        "\ncalls at which one Postgres reaches each limit: "
        + "; ".join(f"{name} {calls_at:,.0f}" for calls_at, name in limits)
    )


async def amain(args: argparse.Namespace, tmp: Path) -> int:
    footprint = await measure(args, tmp)
    model(args, footprint)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=4, help="two-party calls played at once")
    parser.add_argument(
        "--media-ms",
        type=float,
        default=2.3,
        help="server CPU ms per call-second, media only (bench.streams)",
    )
    parser.add_argument(
        "--cloud-ms",
        type=float,
        default=10.1,
        help="server CPU ms per call-second with a cloud engine (bench.streams)",
    )
    parser.add_argument(
        "--loop-busy",
        type=float,
        default=0.6,
        help="the share of a core one event loop may use and keep real time",
    )
    parser.add_argument("--cores-per-node", type=int, default=8)
    parser.add_argument(
        "--busy-share",
        type=float,
        default=0.33,
        help="share of a day a line is on a call (8 of 24 hours)",
    )
    parser.add_argument(
        "--notify-limit",
        type=float,
        default=10_000,
        help="NOTIFYs/s one Postgres delivers to every listener",
    )
    parser.add_argument(
        "--write-limit",
        type=float,
        default=50_000,
        help="small row inserts/s one Postgres primary commits, batched",
    )
    parser.add_argument(
        "--wal-limit",
        type=float,
        default=100,
        help="WAL MB/s one primary (and its replicas) sustains",
    )
    args = parser.parse_args()
    return run_bench("scale_model", lambda tmp: amain(args, tmp))


if __name__ == "__main__":
    raise SystemExit(main())
