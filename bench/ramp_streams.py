"""Streams that arrive one by one: a load generator process for calls started during a run.

`bench.loadgen` opens every stream before its "go" and sends them all on one schedule; calls
that arrive at a rate (bench.call_setup) get their token only when their voice webhook answers.
This worker takes them as they come over its pipe (`("open", StreamPlan)`), connects each at
once with loadgen's client, and sends both tracks of the fixture on a 20 ms tick of its own for
`frames` frames, then `stop`. On `("done", None)` it waits (bounded) for every stream's closing
handshake and answers `("result", WorkerResult)`, the close code and reason of each included:
how a refused stream learns why.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop

from bench.loadgen import (
    FRAME_S,
    MEDIA_TEMPLATE,
    StreamPlan,
    StreamResult,
    StreamState,
    WorkerPlan,
    WorkerResult,
    open_stream,
    record_closes,
)
from bench.server_proc import raise_open_files_limit
from server.simulator.audio import read_call_audio


@dataclass(frozen=True, slots=True)
class RampPlan:
    wav: str
    frames: int
    """Frames per track each stream sends before its `stop`."""
    close_timeout_s: float = 15.0


@dataclass(slots=True)
class _Running:
    state: StreamState
    next_frame: int = 0


async def _run(plan: RampPlan, conn: Connection) -> WorkerResult:
    pairs = list(read_call_audio(Path(plan.wav)).frames())
    caller = [binascii.b2a_base64(c, newline=False).decode() for c, _ in pairs]
    agent = [
        binascii.b2a_base64(a if a is not None else bytes(len(c)), newline=False).decode()
        for c, a in pairs
    ]
    result = WorkerResult(worker=-1)
    # Only for open_stream's timeouts; the streams are this module's to schedule.
    connect = WorkerPlan(worker=-1, wav=plan.wav, frames=plan.frames, streams=(),
                         record_send_times=False)  # fmt: skip
    every: list[StreamState] = []
    running: list[_Running] = []
    opening: set[asyncio.Task[None]] = set()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def start(stream_plan: StreamPlan) -> None:
        stream_result = StreamResult(stream_plan.call_sid, stream_plan.stream_sid)
        state = StreamState(stream_plan, stream_result, ping_offset=0)
        result.streams.append(state.result)
        every.append(state)
        await open_stream(state, connect, result.ping_rtts_ms, result.ping_sent_s)
        if state.client is not None:
            running.append(_Running(state))

    def on_message() -> None:
        while conn.poll():
            kind, value = conn.recv()
            if kind == "open":
                task = asyncio.create_task(start(value))
                opening.add(task)
                task.add_done_callback(opening.discard)
            else:
                done.set()

    loop.add_reader(conn.fileno(), on_message)
    due = time.monotonic()
    last = plan.frames - 1
    while not (done.is_set() and not opening and not running):
        due += FRAME_S
        delay = due - time.monotonic()
        await asyncio.sleep(delay if delay > 0 else 0)
        now = time.monotonic()
        for r in list(running):
            client, k = r.state.client, r.next_frame
            if client is None or not client.alive:
                running.remove(r)
                continue
            result.lags_ms.append((now - due) * 1000.0)
            i = k % len(pairs)
            s = r.state
            for track, payload in (("inbound", caller[i]), ("outbound", agent[i])):
                text = MEDIA_TEMPLATE % (s.next_sequence(), track, k + 1, k * 20, payload)
                client.send_text(text)
            s.result.frames_sent += 1
            r.next_frame += 1
            if k == last:
                stop = {"event": "stop", "sequenceNumber": str(s.next_sequence())}
                client.send_text(json.dumps(stop))
                s.result.stop_sent_at = time.time()
                running.remove(r)
    loop.remove_reader(conn.fileno())
    # The loop made the pipe non-blocking; the result is sent after the loop, in one write.
    os.set_blocking(conn.fileno(), True)
    await record_closes(every, plan.close_timeout_s, time.time() - time.monotonic())
    return result


def run_ramp_worker(plan: RampPlan, conn: Connection) -> None:
    """Process entry point: streams what arrives until ("done", None), then sends ("result",
    WorkerResult). Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_open_files_limit()
    try:
        result = uvloop.run(_run(plan, conn))
    except Exception as exc:  # reported to the parent, which prints it
        result = WorkerResult(-1, error=f"{type(exc).__name__}: {exc}")
    conn.send(("result", result))
