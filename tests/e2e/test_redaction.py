"""A caller reading out a card number, through the real server: what is stored, what the live
feed carries and what the API answers say `[card]`, never the number.

The words come from a fake Deepgram (a service on the internet, speaking its real protocol)
whose ears hear the card number in every utterance: the real offline engine would hear the
two-party fixture, which holds no card number.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from media.transcription.engine import Transcription
from server.app import RunningServer
from server.simulator.fake_stt import running_fake_deepgram
from storage.db import Pool
from tests.conftest import timeout
from tests.e2e.test_cloud_transcription import KEY, play
from tests.support.accounts import make_org
from tests.support.feed import watch_feed

CARD = "4111 1111 1111 1111"


class HearsACardNumber:
    """Ears that hear a caller reading out a card number in every utterance."""

    name = "card-reader"

    def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        return Transcription(f"yes my card number is {CARD} thanks", 0.9)


async def test_a_card_number_read_out_is_stored_shown_and_answered_as_card(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]], pool: Pool
) -> None:
    org = await make_org(pool, "Payments line")
    await pool.execute(
        "UPDATE organizations SET consent_default = 'one_party' WHERE id = $1", org.id
    )
    seen: list[dict[str, Any]] = []
    async with running_fake_deepgram(HearsACardNumber(), api_key=KEY) as fake:
        settings = dict(
            transcription_engine="deepgram", deepgram_api_key=KEY, deepgram_url=fake.url
        )
        async with start_server(**settings) as srv:
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
    feed = json.dumps([m for m in seen if m.get("call_id") == str(call_id)])
    assert '"transcript"' in feed and "[card]" in feed
    assert CARD not in feed and digits not in feed and "1111" not in feed
    body = json.dumps(answered)
    assert answered["redactions"] == {"card": len(rows)}
    assert "1111" not in body and "[card]" in body
