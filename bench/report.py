"""Results of bench/streams.py: one point per N, the verdicts, and how they are printed."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.loadgen import StreamResult

TARGET_STREAMS: Final = 500
TARGET_P95_S: Final = 1.5
TARGET_CLOUD_P95_S: Final = 1.0
"""With a cloud engine: end of speech → final stored, the service's own share taken out."""
# "Kept real time": the backlog in front of the server stays within a few 20 ms frames.
MAX_PING_P99_MS: Final = 100.0
MAX_DRAIN_P99_MS: Final = 250.0
MAX_SEND_LAG_P99_MS: Final = 20.0
REAL_TIME_RULE: Final = (
    "kept real time = every stream accepted and ended by `stop`, every frame received, none "
    f"lost, ping p99 <= {MAX_PING_P99_MS:.0f} ms, drain p99 <= {MAX_DRAIN_P99_MS:.0f} ms; "
    f"the generator must send within {MAX_SEND_LAG_P99_MS:.0f} ms (p99) of schedule"
)


@dataclass(slots=True)
class Point:
    n: int
    workers: int
    seconds: float
    """Audio per call."""
    spread_s: float = 0.0
    """Calls' starts spread over this long."""
    last_start_s: float = 0.0
    """When the last call's first frame was due, after the common start."""
    window_s: float = math.nan
    """Wall time of the streaming window the CPU figures cover."""
    connected: int = 0
    frames_sent: int = 0
    """Messages (frames of either track) sent."""
    frames_received: int = 0
    frames_lost: int = 0
    messages_lost: int = 0
    streams_done: int = 0
    bad_endings: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0.0
    generator_cpu: float = 0.0
    postgres_cpu: float = 0.0
    server_rss_mb: float = 0.0
    lag_ms: tuple[float, ...] = (math.nan, math.nan, math.nan)
    backlogged_sends: int = 0
    max_write_buffer: int = 0
    ping_ms: tuple[float, ...] = (math.nan, math.nan)
    drain_ms: tuple[float, ...] = (math.nan, math.nan)
    close_ms: tuple[float, ...] = (math.nan, math.nan)
    sample_text: list[str] = field(default_factory=list)
    frame_us: str = "-"
    loop_lag_ms: str = "-"
    """The server's event loop lateness, p50/p99 (voxsouth_event_loop_lag_seconds): what every
    frame waits on top of its own processing."""
    errors: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    # transcription
    segments: int = 0
    latency_metric: str = "-"
    latency_db: tuple[float, ...] = (math.nan, math.nan, math.nan)
    latency_ready: tuple[float, ...] = (math.nan, math.nan)
    decode_s: str = "-"
    dropped: dict[str, float] = field(default_factory=dict)
    recall: float = math.nan
    utterances_skipped: int = 0
    # a cloud engine (a fake of the service in its own process)
    service_cpu: float = 0.0
    service_latency: tuple[float, ...] = (math.nan, math.nan)
    """The fake's own share per final: from the audio where speech ended reaching it to the
    result leaving it (its endpointing silence and its queues)."""
    service_errors: dict[str, int] = field(default_factory=dict)
    db_write_s: str = "-"
    """p50/p95 of one batch's transaction (the event writer's)."""

    @property
    def all_frames_arrived(self) -> bool:
        return (
            self.connected == self.n
            and self.streams_done == self.n
            and self.frames_received == self.frames_sent
            and self.frames_lost == 0
            and self.messages_lost == 0
            and not self.bad_endings
        )

    @property
    def server_ms_per_call_s(self) -> float:
        """Server CPU milliseconds per second of (two-track) call audio."""
        return self.server_cpu * self.window_s * 1000 / (self.n * self.seconds)

    @property
    def meets_latency(self) -> bool:
        return self.latency_db[1] <= TARGET_P95_S and self.all_frames_arrived

    @property
    def server_share_p95_s(self) -> float:
        """End of speech → stored, p95, less the service's own p95."""
        return self.latency_db[1] - self.service_latency[1]

    @property
    def meets_cloud_target(self) -> bool:
        return (
            self.server_share_p95_s <= TARGET_CLOUD_P95_S
            and self.all_frames_arrived
            and self.utterances_skipped == 0
            and not self.service_errors
            and not self.dropped
        )

    @property
    def generator_ok(self) -> bool:
        return self.lag_ms[1] <= MAX_SEND_LAG_P99_MS

    @property
    def real_time(self) -> bool:
        return (
            self.all_frames_arrived
            and self.ping_ms[1] <= MAX_PING_P99_MS
            and self.drain_ms[1] <= MAX_DRAIN_P99_MS
        )


def percentiles(values: Any, qs: Sequence[float]) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return tuple(math.nan for _ in qs)
    return tuple(float(v) for v in np.percentile(arr, qs))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_recall(
    heard: dict[tuple[str, str], list[str]], calls_: dict[str, StreamResult], texts: Path, wav: str
) -> float:
    """Share of the fixture's reference words (texts.json) found in each call's transcript."""
    reference: dict[str, list[str]] = {}
    for item in json.loads(texts.read_text())[wav]:
        reference.setdefault(item["track"], []).extend(_words(item["text"]))
    found = expected = 0
    for call_sid in calls_:
        for track, words in reference.items():
            pool = _words(" ".join(heard.get((call_sid, track), [])))
            for w in words:
                expected += 1
                if w in pool:
                    pool.remove(w)
                    found += 1
    return found / expected if expected else math.nan


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _pair(values: tuple[float, ...], digits: int = 1) -> str:
    return "/".join(_f(v, digits) for v in values)


PLAIN_HEADER: Final = (
    f"{'N':>4} {'wk':>2} {'frames/s':>8} {'srv CPU':>7} {'ms/call-s':>9} {'gen CPU':>7} "
    f"{'pg CPU':>6} {'RSS MB':>6} {'lag p50/p99/max ms':>18} {'backlog':>7} "
    f"{'ping p50/p99 ms':>15} {'close p50/p99':>13} {'drain p50/p99':>13} {'rx/sent':>7} "
    f"{'lost':>4} {'frame µs p50/p99':>16}  real time"
)


def plain_row(p: Point) -> str:
    rx = "all" if p.frames_received == p.frames_sent else f"{p.frames_received}/{p.frames_sent}"
    verdict = "yes" if p.real_time else "NO"
    if not p.generator_ok:
        verdict += " (generator late)"
    return (
        f"{p.n:>4} {p.workers:>2} {p.frames_received / p.window_s:>8,.0f} {p.server_cpu:>7.2f} "
        f"{p.server_ms_per_call_s:>9.2f} {p.generator_cpu:>7.2f} {p.postgres_cpu:>6.2f} "
        f"{p.server_rss_mb:>6.0f} {_pair(p.lag_ms):>18} {p.backlogged_sends:>7} "
        f"{_pair(p.ping_ms):>15} {_pair(p.close_ms):>13} {_pair(p.drain_ms):>13} {rx:>7} "
        f"{p.frames_lost + p.messages_lost:>4} {p.frame_us:>16}  {verdict}"
    )


WHISPER_HEADER: Final = (
    f"{'N':>3} {'srv CPU':>7} {'gen CPU':>7} {'rx/sent':>7} {'segs':>4} {'recall':>6} "
    f"{'metric p50/p95 s':>16} {'stored p50/p95/max s':>20} {'ready p50/p95 s':>15} "
    f"{'decode p50/p95 s':>16} {'loop lag p50/p99 ms':>19} {'dropped':>7}  "
    f"p95 <= {TARGET_P95_S} s"
)


def whisper_row(p: Point) -> str:
    rx = "all" if p.all_frames_arrived else f"{p.frames_received}/{p.frames_sent}"
    dropped = int(sum(p.dropped.values()))
    recall = "-" if math.isnan(p.recall) else f"{p.recall:.0%}"
    return (
        f"{p.n:>3} {p.server_cpu:>7.2f} {p.generator_cpu:>7.2f} {rx:>7} {p.segments:>4} "
        f"{recall:>6} {p.latency_metric:>16} {_pair(p.latency_db, 2):>20} "
        f"{_pair(p.latency_ready, 2):>15} {p.decode_s:>16} {p.loop_lag_ms:>19} {dropped:>7}  "
        f"{'yes' if p.meets_latency else 'NO'}"
    )


def cloud_row(p: Point) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in p.service_errors.items()) or "none"
    return (
        f"N={p.n}: server {p.server_cpu:.2f} CPU ({p.server_ms_per_call_s:.1f} ms per call-second),"
        f" service (fake) {p.service_cpu:.2f}, Postgres {p.postgres_cpu:.2f}, generator "
        f"{p.generator_cpu:.2f} CPU; event batches written in {p.db_write_s} s (p50/p95); "
        f"stored p95 {p.latency_db[1]:.2f} s, the "
        f"service's own p50/p95 {_pair(p.service_latency, 2)} s, so the server's share "
        f"{p.server_share_p95_s:.2f} s; utterances skipped {p.utterances_skipped}, session "
        f"errors {errors}: {'yes' if p.meets_cloud_target else 'NO'}"
    )


def print_details(points: Sequence[Point]) -> None:
    """One transcript (the calls all play the same audio), profiles, anything that went wrong."""
    for line in points[0].sample_text if points else ():
        print(f"  N={points[0].n} {line}")
    for p in points:
        for line in p.profile:
            print(f"  N={p.n} {line}")
        if p.errors or p.bad_endings or p.dropped:
            shown = "; ".join(p.errors[:3]) + (
                f" (+{len(p.errors) - 3} more)" if len(p.errors) > 3 else ""
            )
            print(
                f"  N={p.n}: endings {p.bad_endings or 'ok'}, dropped {p.dropped or 'none'}"
                f"{', errors: ' + shown if shown else ''}"
            )
