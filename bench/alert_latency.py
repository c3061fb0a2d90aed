"""Alert latency, trigger → supervisor's feed: `python -m bench.alert_latency`.

The issue's benchmark: from the end of a trigger to its escalation event arriving on a
supervisor's WebSocket (`/api/feed`), p50 and p95, at 1, 5 and 10 concurrent calls. Targets:
a phrase (it waits for the transcript) p95 <= 1.0 s at 5 calls with the offline engine; keypad
and acoustic triggers do not wait for transcription, p95 <= 300 ms.

The server runs in its own process (bench/server_proc.py)
with its default engine (faster-whisper, bundled tiny.en, one worker per CPU) and default
escalation rules, against an embedded Postgres in a temporary folder (or `--dsn`), everything
on 127.0.0.1; it is stopped, and the folder removed, at the end. One org (consent default
one-party, so transcripts are stored and can be shown), one number, one viewer API key. One
supervisor WebSocket is connected to the feed, and has its `hello`, before any call starts.

Every call (SignalWireSimulator: the signed voice webhook, then both tracks in real time over
the media websocket) carries all three triggers, so keypad and acoustic alerts are timed while
the server transcribes, which is what "does not wait for transcription" has to survive:

    agent     "Thank you. How can I help you today?"
    caller    two neutral sentences at a normal level (-10 dB: the speaker's baseline)
    caller    an escalation phrase, normal level     → supervisor-request ("manager")
    keypad    "0", 1 s after the phrase ends           → operator-key
    caller    a neutral sentence 12 dB louder         → raised-voice (+8 dB for 1.5 s)

Clips come from the eval set (tests/fixtures/eval/clips, cut to the speech at -60 dB, so a
clip's last sample is the end of its speech), chosen by text; the phrase clips are the
"manager"/"supervisor" escalation clips that whisper, run here first on each clip as the calls
play it, hears with a supervisor-request phrase in them (tiny.en mishears the "supervisor"
ones); the calls rotate through them. The run prints what the server's whisper heard.

The reference moment of each trigger is the monotonic time at which the simulator had sent a
frame, hooked from the frame iterator it consumes (`TimedAudio`, read just after the send, so
up to a millisecond late): the frame holding the phrase's last sample; the frame the DTMF went
out with (just after it); for raised voice the frame ending at the escalation's `end_ms`, when
the rule's condition was met. Latency = the escalation's arrival on the feed (matched by call
id and rule name) − its reference, both read in this process; no alert within 10 s is a miss.
It is split at the server's `occurred_at` (same machine, so wall clocks agree): "raised" is
trigger → detection (for a phrase: the endpointer's 0.5 s hangover, queueing and decoding),
"deliver" is the rest (event writer, Postgres commit, NOTIFY, the feed's WebSocket).

Beside the alerts, each caller turn that opens an utterance (the first lead-in, the phrase, the
raised sentence) times its first partial text: from the frame holding the turn's first sample
to the first `transcript_partial` on the feed for the utterance starting there (target: p95
<= 1.0 s at 5 calls; a turn with none, as when partials are shed under load, is a miss).

Per level N the calls run in rounds: `--rounds` staggered rounds (call i starts i·2/N s after
the first, spreading the N calls evenly over 2 s), then `--lockstep` rounds with all N calls
started together (every phrase ends at the same moment: the worst case for the transcriber).
At N = 1 the two are the same, so all its rounds count as staggered. Defaults: 2 + 1 rounds at
1, 5 and 10 calls of about 17 s, some 3.5 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import aiohttp
import numpy as np

from bench import promtext
from bench.alert_script import (
    AGENT_TEXT,
    LEAD_IN_TEXTS,
    NORMAL_GAIN_DB,
    PHRASE_RULE,
    RAISED_GAIN_DB,
    RAISED_TEXT,
    WHISPER_MODEL,
    Clips,
    Script,
    TimedAudio,
    build_script,
    find_clip,
    pick_phrase_clips,
)
from bench.server_proc import BenchError, run_bench, server_process
from control import credentials
from server.simulator.audio import AudioFileError
from server.simulator.client import SignalWireSimulator
from storage import accounts, calls
from storage.db import Pool, create_pool
from storage.embedded import start_embedded

AlertKind = Literal["phrase", "keypad", "acoustic"]
Kind = AlertKind | Literal["partial"]
Mode = Literal["staggered", "lockstep"]
ALERT_KINDS: Final[tuple[AlertKind, ...]] = ("phrase", "keypad", "acoustic")
KINDS: Final[tuple[Kind, ...]] = (*ALERT_KINDS, "partial")
RULE_OF: Final[dict[AlertKind, str]] = {
    "phrase": PHRASE_RULE,
    "keypad": "operator-key",
    "acoustic": "raised-voice",
}
TARGET_S: Final[dict[Kind, float]] = {
    "phrase": 1.0,
    "keypad": 0.3,
    "acoustic": 0.3,
    "partial": 1.0,
}
PARTIAL_BEFORE_MS: Final = 500
"""A partial's `start_ms` is its utterance's, which the endpointer's pre-roll puts up to this
much before the first sample of speech."""
TARGET_LEVEL: Final = 5
"""The issue states its targets at this many concurrent calls."""
MISS_AFTER_S: Final = 10.0

T = TypeVar("T")


# ---------------------------------------------------------------- the supervisor


@dataclass(frozen=True, slots=True)
class Alert:
    arrived: float
    """`time.monotonic()` when this process read the message."""
    raised: float
    """The server's `occurred_at` (when its session raised the escalation), on this process's
    monotonic clock (same machine: wall clocks agree)."""
    data: dict[str, Any]


class FeedWatcher:
    """One supervisor WebSocket on `/api/feed`: notes when each escalation arrives, and when
    the caller's partial text does."""

    def __init__(self) -> None:
        self.alerts: dict[tuple[str, str], Alert] = {}
        """(call id, rule name) → the first escalation of that rule on that call."""
        self.partials: dict[str, list[tuple[float, int]]] = {}
        """Call id → (arrival, utterance start_ms) of each partial of the caller's words."""
        self.other: Counter[str] = Counter()
        """Escalations of other rules, by rule name."""
        self.changed = asyncio.Event()
        self.hello = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, ws_url: str, api_key: str) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with http.ws_connect(ws_url, headers=headers, heartbeat=None) as ws:
            async for msg in ws:
                arrived = time.monotonic()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                message = json.loads(msg.data)
                kind = message.get("type")
                if kind == "hello":
                    self.hello.set()
                elif kind == "transcript_partial" and message["data"]["track"] == "inbound":
                    start_ms = int(message["data"]["start_ms"])
                    self.partials.setdefault(str(message["call_id"]), []).append(
                        (arrived, start_ms)
                    )
                elif kind == "resync":
                    raise BenchError(f"the feed asked for a resync: {message}")
                elif kind == "escalation":
                    data = message["data"]
                    key = (str(message["call_id"]), str(data["rule_name"]))
                    if key[1] not in RULE_OF.values():
                        self.other[key[1]] += 1
                    wall = datetime.fromisoformat(data["occurred_at"]).timestamp()
                    raised = wall - (time.time() - time.monotonic())
                    self.alerts.setdefault(key, Alert(arrived, raised, data))
                    self.changed.set()
        raise BenchError(f"the feed closed (code {ws.close_code})")


class LoopLag:
    """How late this process's own loop wakes (it reads the feed and paces the calls)."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []

    async def run(self) -> None:
        period = 0.005
        while True:
            due = time.monotonic() + period
            await asyncio.sleep(period)
            self.lags_ms.append((time.monotonic() - due) * 1000)


# ---------------------------------------------------------------- rounds


@dataclass(slots=True)
class CallRun:
    script: Script
    audio: TimedAudio
    start_offset_s: float
    call_sid: str = ""
    call_id: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Sample:
    kind: Kind
    level: int
    mode: Mode
    latency_s: float | None
    """None: missed (no alert within MISS_AFTER_S of the reference)."""
    call_id: str
    raise_s: float = math.nan
    """Reference → the server raised it (detection: endpointing and transcription for a
    phrase); the rest of `latency_s` is delivery (event writer, Postgres, NOTIFY, feed)."""


@dataclass(slots=True)
class Bench:
    args: argparse.Namespace
    http_url: str
    pool: Pool
    http: aiohttp.ClientSession
    simulator: SignalWireSimulator
    watcher: FeedWatcher
    to_number: str
    scripts: list[Script]
    runs: list[CallRun] = field(default_factory=list)

    async def scrape(self) -> promtext.Snapshot:
        async with self.http.get(f"{self.http_url}/metrics") as response:
            return promtext.parse(await response.text())

    async def round(self, level: int, mode: Mode) -> list[Sample]:
        spread = self.args.spread if mode == "staggered" else 0.0
        scripts = [self.scripts[i % len(self.scripts)] for i in range(level)]
        runs = [CallRun(sc, sc.audio(), i * spread / level) for i, sc in enumerate(scripts)]
        t0 = time.monotonic() + 0.2
        await asyncio.gather(*(self._call(run, t0) for run in runs))
        self.runs += runs
        rows = await self.pool.fetch(
            "SELECT call_sid, id FROM calls WHERE call_sid = ANY($1::text[])",
            [r.call_sid for r in runs if r.call_sid],
        )
        ids = {row["call_sid"]: str(row["id"]) for row in rows}
        for run in runs:
            run.call_id = ids.get(run.call_sid, "")
        await self._await_alerts(runs)
        return [s for run in runs for s in self._samples(run, level, mode)]

    async def _call(self, run: CallRun, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + run.start_offset_s - time.monotonic()))
        try:
            result = await self.simulator.call(
                run.audio,
                to_number=self.to_number,
                from_number="+15550199999",
                dtmf=[(run.script.dtmf_at_s, "0")],
            )
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            run.errors.append(f"{type(exc).__name__}: {exc}")
            return
        run.call_sid = result.call_sid
        run.errors += result.errors

    def _references(self, run: CallRun) -> dict[AlertKind, float | None]:
        """Monotonic reference moment of each trigger; None if its frame was never sent. The
        raised-voice alert's `end_ms` places its frame; before it arrives, the earliest frame
        it could fire on stands in (for the miss deadline)."""
        sent = run.audio.sent_at

        def frame(k: int) -> float | None:
            return sent[k] if 0 <= k < len(sent) else None

        acoustic = None
        alert = self.watcher.alerts.get((run.call_id, RULE_OF["acoustic"]))
        if alert is not None:
            acoustic = frame(int(alert.data["end_ms"]) // 20 - 1)
        else:  # not (yet) raised: where the rule would fire at the earliest
            acoustic = frame((run.script.raised_ms[0] + 1500) // 20)
        return {
            "phrase": frame(run.script.phrase_last_frame),
            "keypad": frame(run.script.dtmf_frame),
            "acoustic": acoustic,
        }

    async def _await_alerts(self, runs: Sequence[CallRun]) -> None:
        """Until every trigger of these calls has its alert or is MISS_AFTER_S old."""
        while True:
            self.watcher.changed.clear()
            waiting = []
            for run in runs:
                refs = self._references(run)
                for kind in ALERT_KINDS:
                    ref = refs[kind]
                    if ref is not None and (run.call_id, RULE_OF[kind]) not in self.watcher.alerts:
                        waiting.append(ref + MISS_AFTER_S)
            if not waiting or time.monotonic() >= max(waiting):
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(asyncio.get_running_loop().time() + 0.25):
                    await self.watcher.changed.wait()

    def misplaced(self, run: CallRun) -> list[str]:
        """Alerts of this call raised elsewhere on its audio than the trigger we timed."""
        wrong = []
        for kind in ALERT_KINDS:
            alert = self.watcher.alerts.get((run.call_id, RULE_OF[kind]))
            if alert is None:
                continue
            start, end = int(alert.data["start_ms"]), int(alert.data["end_ms"])
            if kind == "phrase":
                ok = start < run.script.phrase_ms[1] and end > run.script.phrase_ms[0]
            elif kind == "keypad":
                ok = end == (run.script.dtmf_frame + 1) * 20
            else:
                ok = run.script.raised_ms[0] <= start < run.script.raised_ms[1]
            if not ok:
                wrong.append(f"{run.call_id} {kind} at {start}-{end} ms")
        return wrong

    def _samples(self, run: CallRun, level: int, mode: Mode) -> Iterator[Sample]:
        yield from self._partial_samples(run, level, mode)
        refs = self._references(run)
        for kind in ALERT_KINDS:
            ref = refs[kind]
            alert = self.watcher.alerts.get((run.call_id, RULE_OF[kind]))
            if ref is not None and alert is not None and alert.arrived - ref <= MISS_AFTER_S:
                yield Sample(
                    kind, level, mode, alert.arrived - ref, run.call_id, alert.raised - ref
                )
            else:
                yield Sample(kind, level, mode, None, run.call_id)

    def _partial_samples(self, run: CallRun, level: int, mode: Mode) -> Iterator[Sample]:
        """First partial of each caller turn: from the frame holding its first sample to the
        first partial on the feed whose utterance starts there (a turn spoken without any, as
        when partials are shed under load, is a miss)."""
        partials = self.watcher.partials.get(run.call_id, [])
        sent = run.audio.sent_at
        for frame in run.script.turn_starts:
            if frame >= len(sent):
                continue
            start_ms = frame * 20
            arrivals = [
                arrived
                for arrived, at_ms in partials
                if start_ms - PARTIAL_BEFORE_MS <= at_ms <= start_ms + 20
            ]
            latency = min(arrivals) - sent[frame] if arrivals else None
            yield Sample("partial", level, mode, latency, run.call_id)


# ---------------------------------------------------------------- report


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else math.nan


def _ms_text(value: float) -> str:
    return "-" if math.isnan(value) else str(round(value * 1000))  # round: no "-0"


HEADER: Final = (
    f"{'trigger':<9} {'calls':>5} {'start':<9} {'n':>3} {'p50 ms':>7} {'p95 ms':>7} "
    f"{'max ms':>7} {'missed':>6} {'raised p50/p95':>14} {'deliver p50/p95':>15}  target"
)


def table_row(kind: Kind, level: int, mode: Mode, samples: Sequence[Sample]) -> str:
    got = [s.latency_s for s in samples if s.latency_s is not None]
    raised = [s.raise_s for s in samples if s.latency_s is not None]
    deliver = [s.latency_s - s.raise_s for s in samples if s.latency_s is not None]
    missed = len(samples) - len(got)
    p95 = _pct(got, 95)
    target = TARGET_S[kind]
    ok = not missed and p95 <= target
    verdict = f"p95 <= {target * 1000:.0f} ms: {'met' if ok else 'NOT met'}"
    split = [f"{_ms_text(_pct(v, 50))}/{_ms_text(_pct(v, 95))}" for v in (raised, deliver)]
    return (
        f"{kind:<9} {level:>5} {mode:<9} {len(samples):>3} {_ms_text(_pct(got, 50)):>7} "
        f"{_ms_text(p95):>7} {_ms_text(max(got, default=math.nan)):>7} {missed:>6} "
        f"{split[0]:>14} {split[1]:>15}  {verdict}"
    )


def headline(samples: Sequence[Sample]) -> list[str]:
    lines = []
    for kind in KINDS:
        at = [s for s in samples if s.kind == kind and s.level == TARGET_LEVEL]
        at = [s for s in at if s.mode == "staggered"] or at
        if not at:
            lines.append(f"{kind}: no calls at {TARGET_LEVEL} concurrent: target not measured")
            continue
        got = [s.latency_s for s in at if s.latency_s is not None]
        p95 = _pct(got, 95)
        missed = len(at) - len(got)
        ok = not missed and p95 <= TARGET_S[kind]
        lines.append(
            f"{kind}: p95 {_ms_text(p95)} ms at {TARGET_LEVEL} calls ({at[0].mode}, n={len(at)}"
            f", missed {missed}); target <= {TARGET_S[kind] * 1000:.0f} ms: "
            f"{'met' if ok else 'NOT met'}"
        )
    return lines


async def heard(bench: Bench) -> list[str]:
    """What whisper made of the phrase clips: the caller's segments overlapping the phrase."""
    by_id = {run.call_id: run for run in bench.runs if run.call_id}
    rows = await bench.pool.fetch(
        """SELECT call_id::text AS call_id, start_ms, end_ms, text FROM transcript_segments
           WHERE call_id = ANY($1::uuid[]) AND track = 'inbound' ORDER BY start_ms""",
        list(by_id),
    )
    texts: dict[str, Counter[str]] = {}
    got: set[str] = set()
    for row in rows:
        script = by_id[row["call_id"]].script
        start, end = script.phrase_ms
        if row["start_ms"] < end and row["end_ms"] > start:
            texts.setdefault(script.phrase_clip, Counter())[row["text"]] += 1
            got.add(row["call_id"])
    lines = []
    for clip, counter in sorted(texts.items()):
        for text, count in counter.most_common():
            lines.append(f"  {clip}: {count} x {text!r}")
    if len(got) < len(by_id):
        lines.append(f"  {len(by_id) - len(got)} calls have no stored segment over the phrase")
    return lines


# ---------------------------------------------------------------- main


async def setup_org(pool: Pool) -> tuple[str, str]:
    """An org (one-party consent), a number and a viewer API key: (number, key)."""
    name = f"Bench alerts {uuid.uuid4().hex[:8]}"
    org_id = await calls.create_org(pool, name, consent_default="one_party")
    number = f"+1555{secrets.randbelow(10**7):07d}"
    await calls.add_phone_number(pool, org_id, number)
    key = credentials.new_api_key()
    await accounts.create_api_key(
        pool, org_id=org_id, name="bench-supervisor", prefix=key.prefix,
        key_hash=key.key_hash, role="viewer", created_by=None,
    )  # fmt: skip
    return number, key.key


async def run(args: argparse.Namespace, tmp: Path) -> int:
    began = time.monotonic()
    clips = Clips(
        agent=find_clip(AGENT_TEXT),
        lead_ins=tuple(find_clip(t) for t in LEAD_IN_TEXTS),
        raised=find_clip(RAISED_TEXT),
    )
    phrases, notes = await asyncio.to_thread(pick_phrase_clips, tmp / "whisper")
    if not phrases:
        raise BenchError("whisper hears no escalation clip's phrase: " + "; ".join(notes))
    scripts = [build_script(clips, clip) for clip in phrases]
    load = os.getloadavg()
    print(
        f"bench.alert_latency: {os.cpu_count()} CPUs, load average {load[0]:.2f}, "
        f"Python {sys.version.split()[0]}, levels {','.join(map(str, args.levels))}, "
        f"{args.rounds} staggered (over {args.spread:g} s) + {args.lockstep} lockstep rounds "
        f"per level, calls of {min(sc.seconds for sc in scripts):.1f}-"
        f"{max(sc.seconds for sc in scripts):.1f} s, temp {tmp}"
    )
    print(
        f"clips: agent {clips.agent}; caller {', '.join(clips.lead_ins)} at "
        f"{NORMAL_GAIN_DB:+g} dB, the phrase at {NORMAL_GAIN_DB:+g} dB, {clips.raised} at "
        f"{RAISED_GAIN_DB:+g} dB"
    )
    print(f"phrase clips (whisper {WHISPER_MODEL}, + used):")
    for line in notes:
        print(f"  {line}")
    started = time.monotonic()
    dsn = args.dsn or await start_embedded(tmp / "postgres")
    signing_key = secrets.token_urlsafe(24)
    samples: list[Sample] = []
    metric_lines: list[str] = []
    with server_process(dsn, tmp / "server", "whisper", signing_key) as server:
        print(
            f"server pid {server.pid} (whisper, default model and rules): {server.http_url} "
            f"(ready in {time.monotonic() - started:.1f} s)",
            flush=True,
        )
        pool = await create_pool(dsn, max_size=4)
        try:
            number, api_key = await setup_org(pool)
            async with aiohttp.ClientSession() as http:
                watcher = FeedWatcher()
                lag = LoopLag()
                ws_url = server.http_url.replace("http", "ws", 1) + "/api/feed"
                bench = Bench(
                    args=args,
                    http_url=server.http_url,
                    pool=pool,
                    http=http,
                    simulator=SignalWireSimulator(
                        http, base_url=server.http_url, signing_key=signing_key
                    ),
                    watcher=watcher,
                    to_number=number,
                    scripts=scripts,
                )
                feed = asyncio.create_task(watcher.run(http, ws_url, api_key))
                lagger = asyncio.create_task(lag.run())
                try:
                    await _until(feed, watcher.hello.wait(), 15.0)
                    for level in args.levels:
                        before = await bench.scrape()
                        modes: list[Mode] = ["staggered"] * args.rounds
                        modes += ["lockstep" if level > 1 else "staggered"] * args.lockstep
                        lag.lags_ms.clear()
                        for mode in modes:
                            samples += await _until(feed, bench.round(level, mode), 300.0)
                        after = await bench.scrape()
                        metric_lines.append(level_metrics(level, before, after, lag.lags_ms))
                        print(f"  {level} calls: {len(modes)} rounds done", flush=True)
                finally:
                    for task in (feed, lagger):
                        task.cancel()
                    await asyncio.gather(feed, lagger, return_exceptions=True)
                errors = [f"{r.call_sid or '?'}: {e}" for r in bench.runs for e in r.errors]
                misplaced = [m for r in bench.runs for m in bench.misplaced(r)]
                heard_lines = await heard(bench)
        finally:
            await pool.close()
    print()
    print(HEADER)
    for level in args.levels:
        for mode in ("staggered", "lockstep"):
            for kind in KINDS:
                group = [s for s in samples if (s.kind, s.level, s.mode) == (kind, level, mode)]
                if group:
                    print(table_row(kind, level, mode, group))
    print()
    for line in headline(samples):
        print(line)
    print("\nserver's voxsouth_transcription_latency_seconds (end of speech → final text, "
          "from its buckets) and this process's loop lag:")  # fmt: skip
    for line in metric_lines:
        print(line)
    print("whisper heard over the phrase:")
    for line in heard_lines:
        print(line)
    if watcher.other:
        print(f"other alerts on the feed: {dict(watcher.other)}")
    for line in errors[:5]:
        print(f"call error: {line}")
    for line in misplaced[:5]:
        print(f"alert away from its trigger (its latency is not meaningful): {line}")
    print(f"wall time {time.monotonic() - began:.0f} s")
    return 0


async def _until(feed: asyncio.Task[None], work: Awaitable[T], timeout_s: float) -> T:
    """`work`, unless the feed fails first (its error is raised) or `timeout_s` passes."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait((task, feed), timeout=timeout_s, return_when="FIRST_COMPLETED")
        if task in done:
            return task.result()
        if feed in done:
            feed.result()  # raises what ended it
            raise BenchError("the feed ended")
        raise BenchError(f"no result within {timeout_s:g} s")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def level_metrics(
    level: int, before: promtext.Snapshot, after: promtext.Snapshot, lags_ms: Sequence[float]
) -> str:
    latency = promtext.histogram(after, "voxsouth_transcription_latency_seconds", before)
    quantiles = "/".join(promtext.format_quantile(latency.quantile(q), 1.0, 2) for q in (0.5, 0.95))

    def grown(name: str, **labels: str) -> float:
        return promtext.total(after, name, **labels) - promtext.total(before, name, **labels)

    dropped = grown("voxsouth_dropped_work_total")
    used = grown("voxsouth_early_decodes_total", outcome="used")
    void = grown("voxsouth_early_decodes_total", outcome="void")
    partials = "/".join(
        f"{grown('voxsouth_offline_partials_total', outcome=o):.0f}"
        for o in ("shown", "stale", "shed")
    )
    return (
        f"  {level:>2} calls: {latency.count:.0f} segments, p50/p95 {quantiles} s, "
        f"early decodes used/void {used:.0f}/{void:.0f}, partials shown/stale/shed {partials}, "
        f"dropped work {dropped:.0f}; bench loop lag p99/max "
        f"{_pct(lags_ms, 99):.1f}/{max(lags_ms, default=math.nan):.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alert_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--levels",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 5, 10],
        help="concurrent calls, comma-separated (default 1,5,10)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="staggered rounds per level")
    parser.add_argument(
        "--lockstep", type=int, default=1, help="lockstep rounds per level (default 1)"
    )
    parser.add_argument(
        "--spread", type=float, default=2.0, help="staggered calls start over this many s"
    )
    parser.add_argument("--dsn", help="an existing Postgres (default: embedded, temporary)")
    args = parser.parse_args(argv)
    if not args.levels or min(args.levels) < 1:
        parser.error("--levels must be positive")
    if args.rounds < 0 or args.lockstep < 0 or args.rounds + args.lockstep < 1:
        parser.error("--rounds and --lockstep: at least one round")
    return run_bench("alert_latency", lambda tmp: run(args, tmp), (BenchError, AudioFileError))


if __name__ == "__main__":
    sys.exit(main())
