"""The detector evaluation through the real server: every dialogue as a live call.

    python -m bench.live_eval --part dev|test [--playing neural|flite|espeak] [--concurrency 5]
        [--speed 1.0] [--calls PREFIX] [--rendered-only] [--misses]

`bench.detector_eval` plays each rendered call through an in-process `CallSession`; this plays
the same rendered calls (`bench.dialogue_audio.render`, from its cache) into the server itself:
its own process (bench/server_proc.py) with the offline whisper engine and the default rules,
on an embedded Postgres in a temporary folder (or `--dsn`, default `$DATABASE_URL`), all on
127.0.0.1. So the figures include what the detection path alone does not have: the signed
webhook and the consent prompt the org plays, the media websocket in real time, transcription
on the server's worker pool (its queue, its deadline at stream end), rules loaded from
Postgres, and what the event writer stores.

Three orgs (consent default one_party, so transcripts are stored; calls come from a +1 555
number, whose jurisdiction is unknown, so the default applies), one number each, one per
consent mode: a call whose `consent_request` is played_question goes to the `ask` org (a
`<Gather input="dtmf speech">`), played_keypad to the `keypad` org (`<Gather input="dtmf">`),
every other to the `speech` org (a `<Say>` notice, which implies nothing: no org here takes a
notice as consent). The stream's detector learns what was played from that evidence. The
played prompt of a played_* call stays on the outbound track where the renderer put it: it is
what a `<Start><Stream track="both_tracks">` before the `<Gather>` carries.

Each call is played by the simulator (both tracks, its key presses as DTMF events), at most
`--concurrency` at once, successive starts `--stagger` s apart; then, once its streams are
done in Postgres, its result is read: the stored consent verdict (only one a detector gave),
the escalation rules raised, the transcript (for `--misses`; a refused call's words are never
stored). The report is `bench.detector_eval`'s, plus the wall time, the server's transcription
latency (end of speech -> text) and the work it skipped to keep up
(`voxsouth_dropped_work_total`: an utterance still untranscribed 10 s after its stream ended
is given up, and its words are missing from the call), and the utterances skipped by what they
were for (`voxsouth_transcription_skipped_total`: a turn that may decide consent must never be
among them).
Every call has a time budget (its length / speed + `--call-margin`); a call that fails or runs
out of it is listed and left out of the figures, and the run exits 1, as it does when the
server fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import aiohttp
import asyncpg
from websockets.exceptions import WebSocketException

from bench import promtext
from bench.detector_eval import CallResult, misses, report
from bench.dialogue_audio import CACHE_DIR, PLAYINGS, Playing, RenderedCall, render
from bench.dialogues import Dialogue, ManifestError, load_part
from bench.server_proc import BenchError, run_bench, server_process
from media.codecs import ulaw_encode
from server.simulator.audio import CallAudio
from server.simulator.client import SignalWireSimulator, SimulationError
from server.simulator.report import wait_for_streams_done
from storage import calls as call_rows
from storage.db import Executor, create_pool
from storage.embedded import start_embedded

ConsentMode = Literal["speech", "ask", "keypad"]
CONSENT_MODES: Final[tuple[ConsentMode, ...]] = ("speech", "ask", "keypad")
MODE_OF_REQUEST: Final[Mapping[str, ConsentMode]] = {
    "played_question": "ask", "played_keypad": "keypad",
}  # fmt: skip
"""The org a dialogue's call goes to, by its `consent_request`; any other goes to `speech`."""
FROM_NUMBER: Final = "+15550199999"
"""555: no US state, so the org's consent default (one_party) applies."""
CALL_MARGIN_S: Final = 120.0
HEALTH_PERIOD_S: Final = 2.0
HEALTH_FAILURES: Final = 3
"""The server is taken for dead after this many failed liveness checks in a row."""

T = TypeVar("T")


class LiveCallError(Exception):
    """One call could not be played or read back; the message names the call and why."""


@dataclass(frozen=True, slots=True)
class LiveServer:
    """What a running server is reached by: its HTTP base URL (webhooks, /metrics), the signing
    key its webhooks check, and its Postgres."""

    http_url: str
    signing_key: str
    dsn: str


def consent_mode(call: Dialogue) -> ConsentMode:
    return MODE_OF_REQUEST.get(call.consent_request, "speech")


def random_number() -> str:
    return f"+1555{secrets.randbelow(10**7):07d}"


async def setup_orgs(
    conn: Executor, new_number: Callable[[], str] = random_number
) -> dict[ConsentMode, str]:
    """One org per consent mode (one-party default, notices imply nothing), each with its own
    number: mode -> number."""
    tag = uuid.uuid4().hex[:8]
    numbers: dict[ConsentMode, str] = {}
    for mode in CONSENT_MODES:
        org_id = await call_rows.create_org(
            conn, f"Live eval {mode} {tag}", "one_party", consent_mode=mode
        )
        numbers[mode] = new_number()
        await call_rows.add_phone_number(conn, org_id, numbers[mode])
    return numbers


def call_audio(rendered: RenderedCall) -> tuple[CallAudio, list[tuple[float, str]]]:
    """The simulator's input: both tracks as mu-law, the caller's presses as (seconds, digit)."""
    audio = CallAudio(caller=ulaw_encode(rendered.inbound), agent=ulaw_encode(rendered.outbound))
    dtmf = [(p.offset_ms / 1000, p.digit) for p in rendered.presses if p.track == "inbound"]
    return audio, dtmf


def result_of(call: Dialogue, stored: Mapping[str, Any]) -> CallResult:
    """A call's result from `storage.calls.call_report`: its verdict only if a detector gave
    it, every escalation's rule, every stored segment's words."""
    row = stored["call"]
    consent: bool | None = row["recording_consent"]
    by: str = row["consent_verified_by"] or ""
    verdict = None
    if consent is not None and by.startswith("detector:"):
        verdict = "granted" if consent else "refused"
    return CallResult(
        call,
        consent=verdict,
        escalations=[str(e["rule_name"]) for e in stored["escalations"]],
        heard=[(str(s["speaker"]), str(s["text"])) for s in stored["transcript"]],
    )


async def play_call(
    http: aiohttp.ClientSession,
    server: LiveServer,
    numbers: Mapping[ConsentMode, str],
    call: Dialogue,
    rendered: RenderedCall,
    *,
    speed: float = 1.0,
    margin_s: float = CALL_MARGIN_S,
) -> CallResult:
    """Plays one call into the server (to the number of its consent mode) and reads back what
    it stored. Its budget, the call's length / `speed` + `margin_s`, covers playing it and
    waiting for its streams to be done; raises `LiveCallError` when it is spent, when the call
    cannot be played, or when its stream ends abnormally."""
    audio, dtmf = call_audio(rendered)
    simulator = SignalWireSimulator(http, base_url=server.http_url, signing_key=server.signing_key)
    loop = asyncio.get_running_loop()
    budget_s = rendered.duration_ms / 1000 / speed + margin_s
    deadline = loop.time() + budget_s
    step = "playing"
    try:
        async with asyncio.timeout_at(deadline):
            played = await simulator.call(
                audio, to_number=numbers[consent_mode(call)], from_number=FROM_NUMBER,
                speed=speed, dtmf=dtmf,
            )  # fmt: skip
            if played.errors or played.close_code != 1000:
                problems = "; ".join(played.errors) or f"close code {played.close_code}"
                raise LiveCallError(f"{call.id}: {problems} {played.close_reason}".rstrip())
            step = "waiting for its streams"
            # The deadline above bounds this; its own timeout only has to be no shorter.
            stored = await wait_for_streams_done(server.dsn, played.call_sid, budget_s)
    except TimeoutError:
        raise LiveCallError(f"{call.id}: {budget_s:.0f} s budget spent {step}") from None
    except (
        aiohttp.ClientError, OSError, WebSocketException, SimulationError, asyncpg.PostgresError,
    ) as exc:  # fmt: skip
        raise LiveCallError(f"{call.id}: {step}: {type(exc).__name__}: {exc}") from None
    return result_of(call, stored)


async def run_calls(
    http: aiohttp.ClientSession,
    server: LiveServer,
    numbers: Mapping[ConsentMode, str],
    calls: Sequence[tuple[Dialogue, RenderedCall]],
    *,
    concurrency: int,
    speed: float = 1.0,
    stagger_s: float = 1.0,
    margin_s: float = CALL_MARGIN_S,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[CallResult], list[str]]:
    """Every call through `play_call`, `concurrency` at a time in the given order, successive
    starts at least `stagger_s` apart: (results in call order, one line per failed call)."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)
    starting = asyncio.Lock()
    next_start = loop.time()
    results: dict[str, CallResult] = {}
    failures: list[str] = []

    async def one(call: Dialogue, rendered: RenderedCall) -> None:
        nonlocal next_start
        async with slots:
            async with starting:
                # Pacing, not waiting for an event: starts are spread so prompts don't align.
                await asyncio.sleep(max(0.0, next_start - loop.time()))
                next_start = loop.time() + stagger_s
            began = loop.time()
            try:
                result = await play_call(
                    http, server, numbers, call, rendered, speed=speed, margin_s=margin_s
                )
            except LiveCallError as exc:
                failures.append(str(exc))
                if progress is not None:
                    progress(f"FAILED {exc}")
                return
            results[call.id] = result
            if progress is not None:
                done = len(results) + len(failures)
                progress(
                    f"[{done}/{len(calls)}] {call.id} ({consent_mode(call)}, "
                    f"{rendered.duration_ms / 1000:.0f} s audio, {loop.time() - began:.0f} s): "
                    f"consent {result.consent}, escalations {sorted(set(result.escalations))}"
                )

    async with asyncio.TaskGroup() as group:
        for call, rendered in calls:
            group.create_task(one(call, rendered))
    return [results[c.id] for c, _ in calls if c.id in results], failures


# ---------------------------------------------------------------- the command


async def watch_health(http: aiohttp.ClientSession, http_url: str) -> None:
    """Returns only by raising `BenchError`, once the server fails its liveness check
    `HEALTH_FAILURES` times in a row."""
    failed = 0
    while failed < HEALTH_FAILURES:
        await asyncio.sleep(HEALTH_PERIOD_S)
        try:
            async with asyncio.timeout(HEALTH_PERIOD_S):
                async with http.get(f"{http_url}/health/live") as response:
                    ok = response.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            ok = False
        failed = 0 if ok else failed + 1
    raise BenchError(f"the server stopped answering {http_url}/health/live")


async def unless_server_fails(watchdog: asyncio.Task[None], work: Awaitable[T]) -> T:
    """`work`, unless the watchdog ends first (its `BenchError` is raised, the work cancelled)."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait((task, watchdog), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        watchdog.result()
        raise BenchError("the server watchdog ended")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def select_calls(args: argparse.Namespace) -> list[tuple[Dialogue, RenderedCall]]:
    """The part's calls (`--calls`, `--rendered-only`), each rendered (from the cache when it
    is there); raises `BenchError` naming a call that cannot be rendered."""
    playing: Playing = args.playing
    chosen = [c for c in load_part(args.part) if not args.calls or c.id.startswith(args.calls)]
    if args.rendered_only:
        chosen = [c for c in chosen if (CACHE_DIR / playing / f"{c.id}.wav").exists()]
    out = []
    for call in chosen:
        try:
            out.append((call, render(call, playing)))
        except (ManifestError, RuntimeError) as exc:
            raise BenchError(f"{call.id} cannot be rendered: {exc}") from None
    return out


async def scrape(http: aiohttp.ClientSession, http_url: str) -> promtext.Snapshot:
    async with http.get(f"{http_url}/metrics") as response:
        return promtext.parse(await response.text())


async def run(args: argparse.Namespace, tmp: Path) -> int:
    began = time.monotonic()
    chosen = await asyncio.to_thread(select_calls, args)
    if not chosen:
        raise BenchError("no call to play (is the part rendered? make eval-audio)")
    audio_s = sum(r.duration_ms for _, r in chosen) / 1000
    by_mode = {m: sum(consent_mode(c) == m for c, _ in chosen) for m in CONSENT_MODES}
    print(
        f"bench.live_eval: {args.part} part, {len(chosen)} calls ({audio_s / 60:.1f} min of "
        f"audio; orgs {', '.join(f'{m} {n}' for m, n in by_mode.items())}), {args.playing} "
        f"playing, {args.concurrency} at a time at speed {args.speed:g}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; temp {tmp}",
        flush=True,
    )
    dsn = args.dsn or await start_embedded(tmp / "postgres")
    signing_key = secrets.token_urlsafe(24)
    started = time.monotonic()
    with server_process(dsn, tmp / "server", "whisper", signing_key) as info:
        print(f"server pid {info.pid} (whisper, default model and rules) ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        pool = await create_pool(dsn, max_size=2)
        try:
            numbers = await setup_orgs(pool)
        finally:
            await pool.close()
        server = LiveServer(info.http_url, signing_key, dsn)
        async with aiohttp.ClientSession() as http:
            watchdog = asyncio.create_task(watch_health(http, info.http_url))
            try:
                before = await scrape(http, info.http_url)
                played_at = time.monotonic()
                results, failures = await unless_server_fails(
                    watchdog,
                    run_calls(
                        http, server, numbers, chosen, concurrency=args.concurrency,
                        speed=args.speed, stagger_s=args.stagger, margin_s=args.call_margin,
                        progress=lambda line: print(line, flush=True),
                    ),
                )  # fmt: skip
                played_s = time.monotonic() - played_at
                after = await scrape(http, info.http_url)
            finally:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)

    def grown(name: str, label: str) -> dict[str, float]:
        was = promtext.by_label(before, name, label)
        return {k: n - was.get(k, 0.0) for k, n in promtext.by_label(after, name, label).items()}

    dropped = grown("voxsouth_dropped_work_total", "kind")
    skipped = grown("voxsouth_transcription_skipped_total", "rank")
    latency = promtext.histogram(after, "voxsouth_transcription_latency_seconds", before)
    quantiles = "/".join(promtext.format_quantile(latency.quantile(q), 1.0, 2) for q in (0.5, 0.95))
    print(
        f"\n{args.part} part live: {len(results)} of {len(chosen)} calls scored, "
        f"{args.playing} playing, server whisper; calls played in {played_s:.0f} s, "
        f"wall time {time.monotonic() - began:.0f} s, load average {os.getloadavg()[0]:.2f}"
    )
    print("\n".join(report(results)))
    print(f"server transcription: {latency.count:.0f} segments, end of speech -> text "
          f"p50/p95 {quantiles} s")  # fmt: skip
    if dropped := {kind: n for kind, n in dropped.items() if n}:
        print("server dropped work: " + ", ".join(f"{k} {n:.0f}" for k, n in dropped.items()))
    print(
        "utterances skipped, by what they were for: "
        + ", ".join(
            f"{rank} {skipped.get(rank, 0.0):.0f}"
            for rank in ("consent", "conversation", "agent_after")
        )
    )
    if args.misses and (wrong := misses(results)):
        print("\nmisses:\n" + "\n".join(wrong))
    if failures:
        print(f"\n{len(failures)} calls failed (not scored):", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live_eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--part", choices=("dev", "test"), required=True)
    parser.add_argument("--playing", choices=PLAYINGS, default="neural")
    parser.add_argument("--concurrency", type=int, default=5, help="calls at once (default 5)")
    parser.add_argument("--speed", type=float, default=1.0, help="1.0 is real time")
    parser.add_argument("--stagger", type=float, default=1.0, help="s between call starts")
    parser.add_argument(
        "--call-margin", type=float, default=CALL_MARGIN_S,
        help=f"s a call may take beyond its length / speed (default {CALL_MARGIN_S:g})",
    )  # fmt: skip
    parser.add_argument("--calls", help="only calls whose id starts with this")
    parser.add_argument("--misses", action="store_true", help="list every call scored wrong")
    parser.add_argument(
        "--rendered-only", action="store_true", help="skip calls whose audio is not rendered yet"
    )
    parser.add_argument("--dsn", help="an existing Postgres (default $DATABASE_URL, else embedded)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.speed <= 0 or args.stagger < 0 or args.call_margin <= 0:
        parser.error("--concurrency, --speed and --call-margin must be positive")
    args.dsn = args.dsn or os.environ.get("DATABASE_URL")
    return run_bench("live_eval", lambda tmp: run(args, tmp), (BenchError,))


if __name__ == "__main__":
    sys.exit(main())
