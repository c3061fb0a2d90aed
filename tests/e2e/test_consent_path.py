"""Calls where all parties must consent, through the real server with real transcription.

A consenting caller's words are written once they say yes; a refusing caller's words never
reach Postgres; an escalation phrase is raised either way, and supervisors see it live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from bench.eval_set import load
from bench.eval_set import render_call as render
from media.codecs import ulaw_encode
from server.app import RunningServer
from server.simulator.audio import CallAudio
from server.simulator.report import wait_for_streams_done
from storage.db import Pool
from tests.conftest import timeout
from tests.support.accounts import make_org
from tests.support.calls import simulator

CALLS = {c.id: c for c in load()}
UNKNOWN_JURISDICTION = "+15550123456"  # 555: no US state, so the org default (all-party)


def call_audio(call_id: str) -> CallAudio:
    inbound, outbound = render(CALLS[call_id])
    return CallAudio(caller=ulaw_encode(inbound), agent=ulaw_encode(outbound))


class FeedWatcher:
    """Everything a supervisor's feed socket receives, and a way to wait for a message."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, srv: RunningServer, key: str) -> None:
        url = srv.http_url.replace("http", "ws", 1) + "/api/feed"
        async with http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws:
            async for msg in ws:
                self.seen.append(json.loads(msg.data))
                self._changed.set()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        async with asyncio.timeout(timeout(15)):
            while not any(predicate(m) for m in self.seen):
                self._changed.clear()
                await self._changed.wait()


async def run_call(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    pool: Pool,
    call_id: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Plays the eval call into a fresh org; returns the stored report and the feed seen."""
    org = await make_org(pool, f"Consent {call_id}")
    feed = FeedWatcher()
    async with start_server(transcription_engine="whisper") as srv:
        async with aiohttp.ClientSession() as http:
            watcher = asyncio.create_task(feed.run(http, srv, org.keys["viewer"]))
            # The hello: the feed is listening before the call starts.
            await feed.wait_for(lambda m: m["type"] == "hello")
            call = await simulator(http, srv, srv.settings).call(
                call_audio(call_id), to_number=org.number, from_number=UNKNOWN_JURISDICTION,
                speed=2.0,
            )  # fmt: skip
            assert call.errors == []
            report = await wait_for_streams_done(srv.dsn, call.call_sid, timeout(90))
            call_id = str(report["call"]["id"])
            await feed.wait_for(lambda m: m["type"] == "stream_stopped" and m["call_id"] == call_id)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return report, feed.seen


async def consent_rows(pool: Pool, call_id: uuid.UUID) -> list[tuple[str, str, str | None]]:
    rows = await pool.fetch(
        "SELECT kind, detector, verdict FROM consent_events WHERE call_id = $1 ORDER BY created_at",
        call_id,
    )
    return [(r["kind"], r["detector"], r["verdict"]) for r in rows]


async def test_a_caller_who_consents_is_transcribed_and_escalates(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    report, seen = await run_call(start_server, pool, "escalation-01")  # "Yes." … "manager"
    call = report["call"]
    assert call["consent_rule"] == "all_party"
    assert (call["recording_consent"], call["consent_verified_by"]) == (
        True,
        "detector:caller_speech",
    )
    evidence = await consent_rows(pool, call["id"])
    assert ("disclosure", "laml_say", None) in evidence
    assert ("answer", "caller_speech", "granted") in evidence
    caller_words = " ".join(s["text"] for s in report["transcript"] if s["speaker"] == "caller")
    assert "manager" in caller_words.lower()
    [escalation] = await pool.fetch(
        "SELECT rule_name, severity, evidence FROM escalations WHERE call_id = $1", call["id"]
    )
    assert escalation["rule_name"] == "supervisor-request"
    assert "manager" in escalation["evidence"]  # the words that matched, e.g. "i want + manager"
    assert call["escalated"] is True
    live = [m for m in seen if m.get("call_id") == str(call["id"])]
    assert any(m["type"] == "escalation" for m in live)
    assert any(m["type"] == "consent" and m["data"]["verdict"] == "granted" for m in live)


async def test_a_caller_who_refuses_leaves_no_words_behind_but_still_escalates(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    report, seen = await run_call(start_server, pool, "escalation-16")  # "No thank you." …
    call = report["call"]
    assert (call["recording_consent"], call["consent_verified_by"]) == (
        False,
        "detector:caller_speech",
    )
    assert report["transcript"] == []
    assert not any(m["type"] == "transcript" for m in seen if m.get("call_id") == str(call["id"]))
    rules = await pool.fetch("SELECT rule_name FROM escalations WHERE call_id = $1", call["id"])
    assert [r["rule_name"] for r in rules] == ["supervisor-request"]
