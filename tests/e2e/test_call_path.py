"""A simulated SignalWire call through the real server, checked in Postgres."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from media import metrics
from server.app import RunningServer
from server.simulator.audio import read_call_audio
from server.simulator.report import wait_for_streams_done
from storage.db import Pool
from tests.conftest import SPEECH, timeout
from tests.support.accounts import make_org
from tests.support.calls import simulator
from tests.support.feed import watch_feed

DIGITS = "zero one two three four five six seven eight nine".split()


def words(text: str) -> set[str]:
    """Lower-case words, digits spelled out ("4-5-6" says "four five six")."""
    spelled = re.sub(r"\d", lambda m: f" {DIGITS[int(m.group())]} ", text.lower())
    return set(re.findall(r"[a-z]+", spelled))


def recall(expected: list[str], heard: list[str]) -> float:
    want = set().union(*(words(t) for t in expected))
    got = set().union(*(words(t) for t in heard)) if heard else set()
    return len(want & got) / len(want)


async def test_two_party_call_is_transcribed_per_speaker_into_postgres(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    pool: Pool,
) -> None:
    org = await make_org(pool, "Transcribed org")
    org_id, number = org.id, org.number
    # Persisting a call's words needs consent where all parties must give it (tests/e2e/
    # test_consent_path.py); this call is between one-party jurisdictions.
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org_id
    )
    audio = read_call_audio(SPEECH / "two_party.wav")
    script = json.loads((SPEECH / "texts.json").read_text())["two_party.wav"]
    early_used = metrics.EARLY_DECODES.labels("used")
    early_before = early_used._value.get()
    seen: list[dict[str, Any]] = []
    async with start_server(transcription_engine="whisper") as srv:
        watching = asyncio.create_task(watch_feed(srv, org.keys["viewer"], seen))
        async with aiohttp.ClientSession() as http:
            call = await simulator(http, srv, srv.settings).call(
                audio, to_number=number, from_number="+15550123456", speed=2.0, dtmf=[(3.0, "5")]
            )
        assert call.errors == [] and call.close_code == 1000
        report = await wait_for_streams_done(srv.dsn, call.call_sid, timeout(60))
        await asyncio.wait_for(watching, timeout(10))

    row = report["call"]
    assert row["org_id"] == org_id
    assert row["status"] == "completed"
    assert row["to_number"] == number and row["from_number"] == "+15550123456"
    assert row["answered_at"] is not None and row["ended_at"] is not None
    assert row["audio_lost_ms"] == 0
    dtmf = await pool.fetch(
        "SELECT digit, track, offset_ms FROM dtmf_events WHERE call_id = $1", row["id"]
    )
    assert [(d["digit"], d["track"]) for d in dtmf] == [("5", "inbound")]
    assert 2900 <= dtmf[0]["offset_ms"] <= 3100

    [stream] = report["streams"]
    frames = len(list(audio.frames()))
    assert stream["frames_received_inbound"] == frames
    assert stream["frames_received_outbound"] == frames
    assert stream["frames_lost_inbound"] == stream["frames_lost_outbound"] == 0
    assert stream["codec"] == "audio/x-mulaw" and stream["end_reason"] == "stop"

    segments = report["transcript"]
    by_speaker = {
        speaker: [s["text"] for s in segments if s["speaker"] == speaker]
        for speaker in ("caller", "agent")
    }
    expected = {
        "caller": [t["text"] for t in script if t["track"] == "inbound"],
        "agent": [t["text"] for t in script if t["track"] == "outbound"],
    }
    # tiny.en on synthetic phone-band speech gets most, not all, words right.
    assert recall(expected["agent"], by_speaker["agent"]) >= 0.7, by_speaker
    assert recall(expected["caller"], by_speaker["caller"]) >= 0.5, by_speaker
    assert all(s["engine"] == "faster-whisper:tiny.en" for s in segments)
    # Offsets are call-audio time: the agent speaks first, turns alternate.
    starts = [(s["start_ms"], s["speaker"]) for s in segments]
    assert [sp for _, sp in sorted(starts)][:2] == ["agent", "caller"]
    assert all(0 <= s["start_ms"] < s["end_ms"] <= audio.duration_ms for s in segments)
    # Each utterance stored once, though most were decoded early, during the endpointing
    # hangover, and their decodes taken by the final utterance.
    assert len({(s["speaker"], s["start_ms"]) for s in segments}) == len(segments)
    assert early_used._value.get() > early_before
    # Supervisors saw words while they were spoken (partials are never stored): each partial
    # before its utterance's final segment, none after it.
    feed = [(m["type"], m["data"]["track"], m["data"]["start_ms"]) for m in seen
            if m["type"] in ("transcript", "transcript_partial")]  # fmt: skip
    partials = [(track, start) for kind, track, start in feed if kind == "transcript_partial"]
    assert partials, feed
    for track, start in partials:
        final = feed.index(("transcript", track, start))
        assert ("transcript_partial", track, start) not in feed[final:]


async def test_utterances_transcription_cannot_keep_up_with_are_counted_on_the_record(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    org_number: tuple[uuid.UUID, str],
    pool: Pool,
) -> None:
    org_id, number = org_number
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org_id
    )
    audio = read_call_audio(SPEECH / "two_party.wav")
    utterances = [metrics.UTTERANCES.labels(t) for t in ("inbound", "outbound")]
    before = sum(u._value.get() for u in utterances)
    # One worker and room for one waiting utterance, the whole call sent within a second, and
    # Whisper's full 30 s window, so that each decode takes longer than the whole call's sending
    # even when another test shares the machine.
    settings = dict(transcription_workers=1, transcription_queue=1, endpoint_early_decode_ms=0,
                    whisper_window_s=30)  # fmt: skip
    async with start_server(transcription_engine="whisper", **settings) as srv:
        async with aiohttp.ClientSession() as http:
            call = await simulator(http, srv, srv.settings).call(
                audio, to_number=number, from_number="+15550123456", speed=50.0
            )
        assert call.errors == [] and call.close_code == 1000
        report = await wait_for_streams_done(srv.dsn, call.call_sid, timeout(60))
    ended = sum(u._value.get() for u in utterances) - before
    [stream] = report["streams"]
    skipped = stream["utterances_skipped"]
    assert skipped >= 1  # the queue could not hold them all
    assert report["call"]["utterances_skipped"] == skipped
    # Every utterance is either in the transcript or counted as skipped (none heard as noise
    # here: each is a sentence).
    assert len(report["transcript"]) + skipped == ended
