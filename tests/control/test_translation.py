"""Transcripts translated after each call, through a fake of an OpenAI-compatible
chat-completions endpoint on loopback, on a real Postgres."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from control.translation import CallTranslator, ChatTranslator, TranslationConfig
from media.events import TranscriptSegment
from server.app import RunningServer
from storage.db import Pool
from storage.event_writer import write_events
from tests.control.test_api_access import new_call
from tests.control.test_targets_api import call_api
from tests.support.accounts import Org, make_org
from tests.support.loopback import serving_app

KEY = "sk-test"


@dataclass
class FakeChat:
    """`POST /chat/completions`: checks the key, "translates" each string of the user's JSON
    array by prefixing the language's tag, or answers what `answers` scripts."""

    url: str = ""
    asked: list[dict[str, Any]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    async def complete(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        body = await request.json()
        self.asked.append(body)
        if self.answers:
            content = self.answers.pop(0)
        else:
            texts = json.loads(body["messages"][-1]["content"])
            tag = body["messages"][0]["content"].split("'")[1]
            content = json.dumps([f"[{tag}] {t}" for t in texts])
        return web.json_response({"id": "chatcmpl-1", "object": "chat.completion",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant",
                                                           "content": content}}]})  # fmt: skip


@pytest.fixture
async def chat() -> AsyncIterator[FakeChat]:
    fake = FakeChat()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.complete)
    async with serving_app(app) as base:
        fake.url = f"{base}/v1"
        yield fake


async def a_call(pool: Pool, org: Org, status: str, *texts: str) -> uuid.UUID:
    call_id = await new_call(pool, org)
    await pool.execute("UPDATE calls SET status = $2 WHERE id = $1", call_id, status)
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [
            TranscriptSegment(org_id=org.id, call_id=call_id, stream_sid="s", track="inbound",
                              start_ms=i * 1000, end_ms=i * 1000 + 900, text=text,
                              confidence=0.9, is_final=True, engine="test")
            for i, text in enumerate(texts)
        ])  # fmt: skip
    return call_id


async def test_an_ended_calls_words_are_translated_into_the_orgs_language(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
    pool: Pool, chat: FakeChat,
) -> None:  # fmt: skip
    org = await make_org(pool, "Translated org")
    async with start_server(translation_url=chat.url, translation_api_key=KEY) as srv:
        status, chosen = await call_api(srv, org, "PUT", "/api/org/translation", role="admin",
                                        body={"language": "es"})  # fmt: skip
        assert (status, chosen) == (200, {"language": "es", "available": True})
        ended = await a_call(pool, org, "completed", "my card is [card]", "thank you")
        live = await a_call(pool, org, "in-progress", "still talking")
        config = TranslationConfig(base_url=chat.url, api_key=KEY)
        async with aiohttp.ClientSession() as http:
            translator = CallTranslator(pool, ChatTranslator(http, config), config)
            chat.answers = ["not a JSON array"]
            assert await translator.tick() == 0  # refused: nothing stored, tried again later
            await pool.execute(
                "UPDATE calls SET translation_claimed_at = NULL WHERE id = $1", ended
            )
            assert await translator.tick() == 1
        status, body = await call_api(srv, org, "GET", f"/api/calls/{ended}/translation",
                                      role="analyst")  # fmt: skip
        assert status == 200
        assert [(t["original"], t["text"], t["language"]) for t in body["translations"]] == [
            ("my card is [card]", "[es] my card is [card]", "es"),
            ("thank you", "[es] thank you", "es"),
        ]  # fmt: skip
        assert body["translations"][0]["engine"] == "gpt-4o-mini@127.0.0.1"
        # Only stored (redacted) words went out, and nothing of the live call.
        sent = [json.loads(a["messages"][-1]["content"]) for a in chat.asked]
        assert sent[-1] == ["my card is [card]", "thank you"]
        assert all("still talking" not in s for s in sent)
        status, body = await call_api(srv, org, "GET", f"/api/calls/{live}/translation")
        assert body["translations"] == []
        assert (await call_api(srv, org, "GET", f"/api/calls/{ended}/translation",
                               role="viewer"))[0] == 403  # fmt: skip


async def test_a_language_is_refused_where_the_server_translates_nothing(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Untranslated org")
    status, answer = await call_api(srv, org, "PUT", "/api/org/translation", role="admin",
                                    body={"language": "es"})  # fmt: skip
    assert (status, answer["error"]["details"]["fields"][0]["field"]) == (422, "language")
    status, answer = await call_api(srv, org, "GET", "/api/org/translation", role="viewer")
    assert answer == {"language": None, "available": False}
