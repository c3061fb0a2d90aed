"""A caller reading out a card number, through the real server: what is stored, what the live
feed carries and what the API answers say `[card]`, never the number.

The words come from a fake Deepgram (a service on the internet, speaking its real protocol)
whose ears hear the card number in every utterance: the real offline engine would hear the
two-party fixture, which holds no card number.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp

from media.transcription.engine import Transcription
from server.app import RunningServer
from server.simulator.audio import read_call_audio
from server.simulator.fake_stt import running_fake_deepgram
from server.simulator.fake_stt.deepgram import FakeDeepgram
from server.simulator.report import wait_for_streams_done
from storage.db import Pool
from tests.conftest import SPEECH, timeout
from tests.e2e.test_cloud_transcription import KEY, play
from tests.support.accounts import Org, make_org
from tests.support.calls import simulator
from tests.support.feed import watch_feed

CARD = "4111 1111 1111 1111"


class HearsACardNumber:
    """Ears that hear a caller reading out a card number in every utterance."""

    name = "card-reader"

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        return Transcription(f"yes my card number is {CARD} thanks", 0.9)


@asynccontextmanager
async def payments_line(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool, name: str
) -> AsyncIterator[tuple[Org, RunningServer, FakeDeepgram]]:
    """A one-party org, and a server whose Deepgram is a fake that hears a card in every turn."""
    org = await make_org(pool, name)
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org.id
    )
    async with running_fake_deepgram(HearsACardNumber(), api_key=KEY) as fake:
        settings = dict(
            transcription_engine="deepgram", deepgram_api_key=KEY, deepgram_url=fake.url
        )
        async with start_server(**settings) as srv:
            yield org, srv, fake


async def test_a_card_number_read_out_is_stored_shown_and_answered_as_card(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    seen: list[dict[str, Any]] = []
    async with payments_line(start_server, pool, "Payments line") as (org, srv, _fake):
        watching = asyncio.create_task(watch_feed(srv, org.keys["analyst"], seen))
        report = await play(srv, org.number, speed=4.0)
        await asyncio.wait_for(watching, timeout(10))
        call_id = report["call"]["id"]
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{srv.http_url}/api/calls/{call_id}", headers=org.bearer("analyst")
            ) as resp:
                assert resp.status == 200
                answered = await resp.json()

    digits = CARD.replace(" ", "")
    rows = await pool.fetch(
        "SELECT text, words, redacted FROM transcript_segments WHERE call_id = $1", call_id
    )
    assert rows, "the call was transcribed"
    for row in rows:
        assert row["text"] == "yes my card number is [card] thanks"
        assert (row["words"], row["redacted"]) == (None, ["card"])  # no word carries it
    call_feed = [m for m in seen if m.get("call_id") == str(call_id)]
    feed = json.dumps(call_feed)
    assert '"transcript"' in feed and "[card]" in feed
    assert CARD not in feed and digits not in feed
    assert words_without(call_feed, "1111")
    assert answered["redactions"] == {"card": len(rows)}
    assert "[card]" in json.dumps(answered)
    assert words_without(answered, "1111")


def words_without(value: object, digits: str) -> bool:
    """`value` carried words (`texts`), and none of them holds `digits`."""
    said = texts(value)
    return bool(said) and not any(digits in text for text in said)


def texts(value: object) -> list[str]:
    """Every text a JSON answer or feed carried (transcripts, evidence), ids and times aside:
    a card's "1111" would also match a timestamp's microseconds or an id."""
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    if not isinstance(value, dict):
        return []
    found: list[str] = []
    for key, item in value.items():
        if key in ("text", "evidence") and isinstance(item, str):
            found.append(item)
        else:
            found += texts(item)
    return found


async def test_in_secure_mode_the_caller_is_not_heard_and_keys_are_stored_without_digits(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    """Secure mode turned on through the API as soon as the call's stream starts (the agent
    speaks first): the caller's card never reaches the speech service, storage or the feed,
    and the digits keyed in are stored as presses."""
    seen: list[dict[str, Any]] = []
    async with payments_line(start_server, pool, "Secure payments line") as (org, srv, fake):
        async with aiohttp.ClientSession() as http:

            async def supervise() -> None:
                """Watches the feed; turns secure mode on when the call's stream starts."""
                url = srv.http_url.replace("http", "ws", 1) + "/api/feed"
                async with http.ws_connect(url, headers=org.bearer("analyst")) as ws:
                    async for msg in ws:
                        seen.append(json.loads(msg.data))
                        if seen[-1]["type"] == "stream_started":
                            call = seen[-1]["call_id"]
                            async with http.put(
                                f"{srv.http_url}/api/calls/{call}/secure-mode",
                                json={"on": True}, headers=org.bearer("operator"),
                            ) as resp:  # fmt: skip
                                assert resp.status == 200, await resp.text()
                        if seen[-1]["type"] == "stream_stopped":
                            return

            watching = asyncio.create_task(supervise())
            audio = read_call_audio(SPEECH / "two_party.wav")
            call = await simulator(http, srv, srv.settings).call(
                audio, to_number=org.number, from_number="+15550123456", speed=2.0,
                dtmf=[(6.0, "4"), (6.5, "1")],
            )  # fmt: skip
            assert call.errors == [] and call.close_code == 1000
            report = await wait_for_streams_done(srv.dsn, call.call_sid, timeout(60))
            await asyncio.wait_for(watching, timeout(10))
            call_id = report["call"]["id"]

    rows = await pool.fetch(
        "SELECT track, text FROM transcript_segments WHERE call_id = $1", call_id
    )
    assert {r["track"] for r in rows} == {"outbound"}, "the agent is heard, the caller is not"
    digits = await pool.fetch("SELECT digit FROM dtmf_events WHERE call_id = $1", call_id)
    assert [d["digit"] for d in digits] == [None, None]
    call_feed = [m for m in seen if m.get("call_id") == str(call_id)]
    feed = json.dumps(call_feed)
    assert '"secure_mode"' in feed and '"digit": "4"' not in feed
    assert words_without(call_feed, "1111")
    # The service was sent the caller's track as silence: nothing in it to transcribe.
    heard = [
        [r for r in s.results if r["channel"]["alternatives"][0]["transcript"]]
        for s in fake.sessions
    ]
    assert sorted(len(h) > 0 for h in heard) == [False, True]
