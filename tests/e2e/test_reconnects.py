"""A call whose media stream is cut and resumed, through the real server, real transcription
and Postgres: the same call played whole and cut either way a stream can come back (a new
stream for the call, or the same stream reconnecting with its chunks going on), all three at
once, in real time (the server places a new stream by when its `start` arrives).

What is stored must be the same call: the same words at the same places outside the gap, the
same consent verdict, the same escalation; each connection has its own row, and the gap is
counted once per track.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from server.app import RunningServer
from server.simulator.audio import CallAudio
from server.simulator.report import wait_for_streams_done
from storage.db import Pool
from tests.conftest import timeout
from tests.e2e.test_consent_path import call_audio
from tests.media.test_session_resume import Drop, outside
from tests.support.accounts import make_org
from tests.support.calls import AnsweredCall, answer_call

FRAME_S = 0.02
CALL_S = 14.2
"""The call played: escalation-01 without its middle (the complaint and the agent's answer,
11.0–19.0 s) and its last turn, so that it takes 14 s: the disclosure asks (0.5–5.3 s), "Yes."
(6.3 s), the agent offers help (7.5–10.2 s), "I want to speak to a manager." (11.7–13.5 s)."""


def played_call() -> CallAudio:
    audio = call_audio("escalation-01")
    assert audio.agent is not None

    def cut(track: bytes) -> bytes:  # μ-law, 8,000 bytes a second
        return track[: 11 * 8000] + track[19 * 8000 : 22 * 8000 + 1600]

    return CallAudio(caller=cut(audio.caller), agent=cut(audio.agent))


DROPS = {
    # In the silence before "Yes.": the answer comes on the stream that resumes the call.
    "new_stream": Drop("new_stream", 5.6, 0.4),
    # In the silence before the demand for a manager.
    "same_stream": Drop("same_stream", 10.6, 0.6),
}


async def play(call: AnsweredCall, audio: CallAudio, drop: Drop | None) -> None:
    """SignalWire's side of the stream, paced in real time; at `drop` the socket is reset
    without a stop, and after the gap the call's audio comes back on a new connection."""
    frames = list(audio.frames())
    loop = asyncio.get_running_loop()
    began = loop.time()
    stream_sid = str(uuid.uuid4())
    index, first_chunk_index = 0, 0
    while index < len(frames):
        async with connect(call.stream.url, compression=None) as ws:
            start = call.start_message(streamSid=stream_sid)
            await ws.send(json.dumps(start))
            stop_at = round(drop.at_s / FRAME_S) if drop and index == 0 else len(frames)
            while index < stop_at:
                await asyncio.sleep(max(0.0, began + index * FRAME_S - loop.time()))
                await send_frame(ws, frames[index], index - first_chunk_index + 1)
                index += 1
            if index < len(frames):
                ws.transport.abort()  # a TCP reset: no stop, no close frame
                assert drop is not None
                index += round(drop.gap_s / FRAME_S)
                await asyncio.sleep(max(0.0, began + index * FRAME_S - loop.time()))
                if drop.kind == "new_stream":
                    stream_sid, first_chunk_index = str(uuid.uuid4()), index
                continue
            await ws.send(json.dumps({"event": "stop", "sequenceNumber": "1"}))
            await ws.wait_closed()


async def send_frame(ws: ClientConnection, frame: tuple[bytes, bytes | None], chunk: int) -> None:
    for track, payload in zip(("inbound", "outbound"), frame, strict=True):
        assert payload is not None
        media = {
            "track": track,
            "chunk": str(chunk),
            "timestamp": str((chunk - 1) * 20),
            "payload": base64.b64encode(payload).decode(),
        }
        await ws.send(json.dumps({"event": "media", "media": media}))


async def stored(srv: RunningServer, pool: Pool, call_sid: str) -> dict[str, Any]:
    report = await wait_for_streams_done(srv.dsn, call_sid, timeout(60))
    call_id = report["call"]["id"]
    rows = await pool.fetch(
        """SELECT stream_sid, connection, offset_ms, end_reason, frames_received_inbound,
                  frames_lost_inbound, audio_lost_ms
           FROM media_streams WHERE call_id = $1 ORDER BY started_at, connection""",
        call_id,
    )
    verdicts = await pool.fetch(
        "SELECT verdict, detector FROM consent_events WHERE call_id = $1 AND verdict IS NOT NULL",
        call_id,
    )
    escalations = await pool.fetch(
        "SELECT rule_name, start_ms FROM escalations WHERE call_id = $1", call_id
    )
    return {
        "call": report["call"],
        "streams": [dict(r) for r in rows],
        "segments": [
            (s["track"], s["start_ms"], s["end_ms"], s["text"]) for s in report["transcript"]
        ],
        "verdicts": [(v["verdict"], v["detector"]) for v in verdicts],
        "escalations": [(e["rule_name"], e["start_ms"]) for e in escalations],
    }


def close(a: list[tuple[str, int, int, str]], b: list[tuple[str, int, int, str]]) -> bool:
    """Same words on the same tracks, each within 100 ms of the same place (a new stream is
    placed by when its start arrived, which the event loop may delay a little)."""
    return len(a) == len(b) and all(
        (x[0], x[3]) == (y[0], y[3]) and abs(x[1] - y[1]) <= 100 and abs(x[2] - y[2]) <= 100
        for x, y in zip(a, b, strict=True)
    )


async def test_a_call_cut_and_resumed_is_recorded_as_the_same_call(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    org = await make_org(pool, "Reconnects")
    audio = played_call()
    # Partials off: the three calls' finals keep both workers, so nothing is skipped.
    async with (
        start_server(transcription_engine="whisper", partial_every_ms=0) as srv,
        aiohttp.ClientSession() as http,
    ):
        calls = {
            name: await answer_call(http, srv, srv.settings, org.number)
            for name in ("whole", *DROPS)
        }
        async with asyncio.timeout(timeout(CALL_S + 15)):
            await asyncio.gather(
                *(play(call, audio, DROPS.get(name)) for name, call in calls.items())
            )
        whole, *cut = [await stored(srv, pool, call.call_sid) for call in calls.values()]

    assert whole["verdicts"] == [("granted", "caller_speech")]
    assert [e[0] for e in whole["escalations"]] == ["supervisor-request"]
    assert [s["end_reason"] for s in whole["streams"]] == ["stop"]
    for (name, drop), record in zip(DROPS.items(), cut, strict=True):
        # An utterance open at the cut ends there: within the hangover (500 ms) before it.
        cut_words = outside(record["segments"], drop, open_s=0.5)
        assert close(cut_words, outside(whole["segments"], drop, open_s=0.5)), (
            name, record["segments"], whole["segments"],
        )  # fmt: skip
        assert record["verdicts"] == whole["verdicts"], name
        [(rule, at_ms)] = record["escalations"]
        assert rule == "supervisor-request" and abs(at_ms - whole["escalations"][0][1]) <= 100
        first, second = record["streams"]
        assert (first["end_reason"], second["end_reason"]) == ("disconnected", "stop"), name
        gap_frames = round(drop.gap_s / FRAME_S)
        assert first["frames_received_inbound"] == round(drop.at_s / FRAME_S)
        assert first["frames_received_inbound"] + gap_frames + second[
            "frames_received_inbound"
        ] == round(CALL_S / FRAME_S)
        # Lost once per track (two tracks), on the stream that came back, and on the call.
        lost_ms = 2 * drop.gap_s * 1000
        assert first["audio_lost_ms"] == 0
        assert abs(second["audio_lost_ms"] - lost_ms) <= 2 * 100, (name, second)
        assert record["call"]["audio_lost_ms"] == second["audio_lost_ms"]
        if drop.kind == "same_stream":
            assert second["stream_sid"] == first["stream_sid"]
            assert (first["connection"], second["connection"]) == (1, 2)
            assert second["frames_lost_inbound"] == gap_frames
            assert second["audio_lost_ms"] == lost_ms  # exact: the chunks say what was lost
        else:
            assert second["stream_sid"] != first["stream_sid"]
            assert second["connection"] == 1 and second["frames_lost_inbound"] == 0
            assert abs(second["offset_ms"] - (drop.at_s + drop.gap_s) * 1000) <= 100
