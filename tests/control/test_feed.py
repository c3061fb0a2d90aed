"""The supervisors' live feed: WebSocket and SSE against the real server and Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from control.feed import Subscription
from media.events import EscalationRaised, MediaEvent, TranscriptPartial, TranscriptSegment
from server.app import RunningServer
from storage import calls
from storage.db import Pool
from tests.conftest import timeout
from tests.support.accounts import Org, make_org

Server = RunningServer


async def open_call(pool: Pool, org: Org) -> uuid.UUID:
    call = await calls.open_call(
        pool, org_id=org.id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550100001", to_number=org.number, status="in-progress",
        consent_rule="one_party",
    )  # fmt: skip
    return call.id


def escalation(org: Org, call_id: uuid.UUID, name: str = "manager") -> EscalationRaised:
    return EscalationRaised(
        org_id=org.id, call_id=call_id, stream_sid="s-1", rule_id=None, rule_name=name,
        kind="phrase", severity="high", track="inbound", start_ms=1_000, end_ms=2_000,
        evidence=name,
    )  # fmt: skip


def segment(org: Org, call_id: uuid.UUID, text: str) -> TranscriptSegment:
    return TranscriptSegment(
        org_id=org.id, call_id=call_id, stream_sid="s-1", track="inbound", start_ms=0,
        end_ms=900, text=text, confidence=None, is_final=True, engine="test",
    )  # fmt: skip


class Feed:
    """One WebSocket feed client: messages as they come, waited for with a timeout."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(timeout(10)):
            msg = await self.ws.receive()
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while not predicate(message := await self.next()):
            pass
        return message


@asynccontextmanager
async def feed(
    http: aiohttp.ClientSession, srv: Server, key: str, **query: str
) -> AsyncIterator[Feed]:
    url = srv.http_url.replace("http", "ws", 1) + "/api/feed"
    async with http.ws_connect(url, params=query, headers={"Authorization": f"Bearer {key}"}) as ws:
        yield Feed(ws)


async def submitted(srv: Server, *events: MediaEvent) -> None:
    srv.writer.submit(*events)
    async with asyncio.timeout(timeout(10)):
        await srv.writer.wait_until(lambda: srv.writer.idle)


async def test_escalation_reaches_the_orgs_supervisors_and_no_one_else(
    srv: Server, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org, other = await make_org(pool, "Feed A"), await make_org(pool, "Feed B")
    call_a, call_b = await open_call(pool, org), await open_call(pool, other)
    async with feed(http, srv, org.keys["viewer"]) as a, feed(http, srv, other.keys["viewer"]) as b:
        assert (await a.next())["type"] == "hello"
        assert (await b.next())["type"] == "hello"
        await submitted(srv, escalation(org, call_a), escalation(other, call_b, "lawyer"))
        got_a = await a.until(lambda m: m["type"] == "escalation")
        got_b = await b.until(lambda m: m["type"] == "escalation")
    assert (got_a["call_id"], got_a["data"]["rule_name"]) == (str(call_a), "manager")
    assert (got_b["call_id"], got_b["data"]["rule_name"]) == (str(call_b), "lawyer")
    assert "org_id" not in got_a["data"]


async def test_a_client_that_reconnects_with_its_last_id_gets_what_it_missed_in_order(
    srv: Server, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Feed resume")
    call_id = await open_call(pool, org)
    async with feed(http, srv, org.keys["analyst"]) as client:
        await client.next()
        await submitted(srv, segment(org, call_id, "first"))
        last = await client.until(lambda m: m["type"] == "transcript")
    missed = [segment(org, call_id, f"missed {i}") for i in range(3)]
    await submitted(srv, *missed)
    async with feed(http, srv, org.keys["analyst"], last_event_id=str(last["id"])) as client:
        assert (await client.next())["type"] == "hello"
        texts = [(await client.next())["data"]["text"] for _ in missed]
        await submitted(srv, segment(org, call_id, "live"))
        live = await client.next()
    assert texts == ["missed 0", "missed 1", "missed 2"]
    assert live["data"]["text"] == "live"  # no duplicate of the backlog before it


async def test_transcript_text_is_withheld_from_roles_that_may_not_read_transcripts(
    srv: Server, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Feed redaction")
    call_id = await open_call(pool, org)
    async with feed(http, srv, org.keys["viewer"]) as viewer:
        async with feed(http, srv, org.keys["operator"]) as operator:
            await viewer.next()
            await operator.next()
            await submitted(srv, segment(org, call_id, "my card number is"))
            seen_by_viewer = await viewer.until(lambda m: m["type"] == "transcript")
            seen_by_operator = await operator.until(lambda m: m["type"] == "transcript")
    assert seen_by_viewer["data"]["text"] is None
    assert seen_by_operator["data"]["text"] == "my card number is"


def partial(org: Org, call_id: uuid.UUID, text: str) -> TranscriptPartial:
    return TranscriptPartial(
        org_id=org.id, call_id=call_id, stream_sid="s-1", track="inbound", start_ms=0, text=text
    )


async def test_partial_words_go_out_live_to_the_org_are_not_stored_and_the_final_follows(
    srv: Server, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org, other = await make_org(pool, "Feed partials"), await make_org(pool, "Feed partials B")
    call_id = await open_call(pool, org)
    async with (
        feed(http, srv, org.keys["operator"]) as operator,
        feed(http, srv, org.keys["viewer"]) as viewer,
        feed(http, srv, other.keys["operator"]) as outsider,
    ):
        for client in (operator, viewer, outsider):
            await client.next()
        await submitted(srv, partial(org, call_id, "I want"))
        await submitted(srv, partial(org, call_id, "I want to"))
        # Written together (a busy writer's batch), the final makes the partial before it moot.
        await submitted(
            srv,
            partial(org, call_id, "I want to speak to"),
            segment(org, call_id, "I want to speak to a manager."),
        )
        seen = [await operator.next() for _ in range(3)]
        hidden = await viewer.until(lambda m: m["type"] == "transcript_partial")
        await submitted(srv, escalation(other, await open_call(pool, other)))
        first_for_outsider = await outsider.next()
    assert [(m["type"], m["data"]["text"]) for m in seen] == [
        ("transcript_partial", "I want"),
        ("transcript_partial", "I want to"),
        ("transcript", "I want to speak to a manager."),
    ]
    assert "id" not in seen[0] and seen[0]["call_id"] == str(call_id)
    assert seen[0]["data"]["track"] == "inbound" and "org_id" not in seen[0]["data"]
    assert hidden["data"]["text"] is None  # a viewer may not read transcripts
    assert first_for_outsider["type"] == "escalation"  # another org's partials never reach it
    # Only the final is stored, in the transcript and in the feed's history.
    texts = await pool.fetch("SELECT text FROM transcript_segments WHERE call_id = $1", call_id)
    assert [t["text"] for t in texts] == ["I want to speak to a manager."]
    types = await pool.fetch("SELECT type FROM feed_events WHERE call_id = $1", call_id)
    assert [t["type"] for t in types] == ["transcript"]


async def test_sse_serves_the_backlog_after_last_event_id(
    srv: Server, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Feed SSE")
    call_id = await open_call(pool, org)
    # A feed event's id is its position, given once committed (migration 0038), not the row id:
    # a client learns it from the feed.
    async with feed(http, srv, org.keys["viewer"]) as client:
        await client.next()
        await submitted(srv, segment(org, call_id, "before"))
        first_id = (await client.until(lambda m: m["type"] == "transcript"))["id"]
    await submitted(srv, escalation(org, call_id))
    async with http.get(
        srv.http_url + "/api/feed/sse",
        headers={"Authorization": f"Bearer {org.keys['viewer']}", "Last-Event-ID": str(first_id)},
    ) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines: list[str] = []
        async with asyncio.timeout(timeout(10)):
            while not any(line.startswith("data:") and "escalation" in line for line in lines):
                lines.append((await response.content.readline()).decode().strip())
    ids = [int(line[3:]) for line in lines if line.startswith("id:")]
    assert ids and ids[0] > first_id
    assert json.loads(lines[0][5:])["type"] == "hello"


async def test_feed_refuses_the_unauthenticated_and_other_sites(
    srv: Server, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Feed refusals")
    url = srv.http_url.replace("http", "ws", 1) + "/api/feed"
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await http.ws_connect(url)
    assert anonymous.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as cross_site:
        await http.ws_connect(
            url,
            headers={
                "Authorization": f"Bearer {org.keys['viewer']}",
                "Origin": "https://evil.example",
            },
        )
    assert cross_site.value.status == 403
    async with http.get(
        srv.http_url + "/api/feed?last_event_id=abc",
        headers={"Authorization": f"Bearer {org.keys['viewer']}"},
    ) as bad:
        assert bad.status == 400
        assert (await bad.json())["error"]["code"] == "INVALID_QUERY"


async def test_a_page_on_a_trusted_site_may_open_the_feed(
    start_server: Callable[..., AbstractAsyncContextManager[Server]],
    pool: Pool,
    http: aiohttp.ClientSession,
) -> None:
    org = await make_org(pool, "Feed trusted origin")
    trusted = "https://dashboard.example.com"
    async with start_server(cors_origins=trusted) as node:
        url = node.http_url.replace("http", "ws", 1) + "/api/feed"
        auth = {"Authorization": f"Bearer {org.keys['viewer']}"}
        async with http.ws_connect(url, headers={**auth, "Origin": trusted}) as ws:
            hello = await ws.receive_json(timeout=timeout(5))
            assert hello["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError) as other:
            await http.ws_connect(url, headers={**auth, "Origin": "https://evil.example"})
        assert other.value.status == 403


async def test_another_process_on_the_same_database_sees_the_same_events(
    start_server: Callable[..., AbstractAsyncContextManager[Server]],
    pool: Pool,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    org = await make_org(pool, "Feed fan-out")
    call_id = await open_call(pool, org)
    async with start_server() as node_a, start_server(data_dir=tmp_path / "node-b") as node_b:
        async with feed(http, node_b, org.keys["viewer"]) as on_b:
            await on_b.next()
            await submitted(node_a, escalation(org, call_id, "complaint"))
            got = await on_b.until(lambda m: m["type"] == "escalation")
    assert got["data"]["rule_name"] == "complaint"


async def test_a_subscriber_that_falls_behind_is_told_to_resync() -> None:
    sub = Subscription(uuid.uuid4(), asyncio.Queue(2))
    for i in range(3):
        sub.offer({"id": i})
    assert await sub.next() is None
    assert sub.reason == "fell_behind"


async def test_shutdown_ends_feeds_at_once_with_going_away(
    start_server: Callable[..., AbstractAsyncContextManager[Server]],
    pool: Pool,
    http: aiohttp.ClientSession,
) -> None:
    org = await make_org(pool, "Feed shutdown")
    loop = asyncio.get_running_loop()
    server = start_server()
    node = await server.__aenter__()
    async with feed(http, node, org.keys["viewer"]) as client:
        await client.next()

        async def read_to_the_end() -> list[aiohttp.WSMessage]:
            return [msg async for msg in client.ws]

        reader = asyncio.create_task(read_to_the_end())
        stopping_at = loop.time()
        await server.__aexit__(None, None, None)
        stopped_in = loop.time() - stopping_at
        messages = await reader
    # The feed ended with the shutdown instead of holding it up until a timeout.
    assert stopped_in < 3
    assert json.loads(messages[-1].data)["reason"] == "server_shutdown"
    assert client.ws.close_code == 1001
