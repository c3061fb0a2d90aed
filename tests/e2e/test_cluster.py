"""Three server nodes behind a real HAProxy: calls spread over them, supervisors on each see all.

Each node is its own `voxsouth serve` process (own ports and data folder) on the one Postgres;
HAProxy (tests/support/haproxy.py) balances round-robin over their HTTP ports on one frontend
and their media ports on another. The test talks to HAProxy only, and the nodes' public URLs
name it, so the stream URLs in their LaML go through it too: which node takes a webhook, a
media stream or a feed connection is the balancer's choice, as in production.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from bench.fake_service import free_port
from server.simulator.audio import CallAudio
from server.simulator.client import SignalWireSimulator
from storage.db import Pool
from tests.conftest import timeout
from tests.support.accounts import Org, make_org
from tests.support.changes import watching
from tests.support.haproxy import (
    NODE_HEADER,
    Node,
    balancer_config,
    haproxy_binary,
    running_haproxy,
)
from tests.support.process import Serving, cli_env, serving

CALLS = 15
SIGNING_KEY = "PSK_cluster_test_signing_key"
# Shared by every node: one node signs a call's stream token, the balancer may send the stream
# to another, which must verify it.
STREAM_TOKEN_SECRET = "cluster-test-stream-token-secret-0123456789"
CALL_AUDIO = CallAudio(caller=b"\xff" * 8000 * 3, agent=None)  # 3 s of mu-law silence
# Keypad consent ("1") and then the operator key ("0", an escalation): each call feeds its
# digits, a consent verdict and an alert besides its status and stream rows.
DTMF = ((0.4, "1"), (1.2, "0"))
RESUME_AFTER = 20
"""Events one supervisor sees before it drops and resumes by its last id."""


@dataclass(eq=False)
class Supervisor:
    """What one feed connection received, and from which node (HAProxy's answer header)."""

    node: str
    arrived: asyncio.Event
    hello: int | None = None
    ids: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    resyncs: list[dict[str, Any]] = field(default_factory=list)

    def take(self, message: dict[str, Any]) -> None:
        if "id" in message:
            self.ids.append(message["id"])
            self.events.append(message)
        elif message["type"] == "hello":
            self.hello = message["last_event_id"]
        elif message["type"] == "resync":
            self.resyncs.append(message)
        self.arrived.set()


async def pump_websocket(ws: ClientConnection, sup: Supervisor) -> None:
    async for data in ws:
        sup.take(json.loads(data))


async def pump_sse(response: aiohttp.ClientResponse, sup: Supervisor) -> None:
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif not line and data:
            sup.take(json.loads("\n".join(data)))
            data = []


@asynccontextmanager
async def nodes_running(
    envs: Sequence[tuple[dict[str, str], Path]],
) -> AsyncIterator[list[Serving]]:
    """Every node started at once; all stopped (SIGTERM, each drains) on the way out."""
    async with AsyncExitStack() as stack:
        started = await asyncio.gather(
            *(stack.enter_async_context(serving(env, cwd)) for env, cwd in envs),
            return_exceptions=True,
        )
        for result in started:
            if isinstance(result, BaseException):
                raise result
        yield [s for s in started if isinstance(s, Serving)]


async def wait_until(arrived: asyncio.Event, done: Any) -> None:
    """Until `done()` holds, re-checked each time a supervisor receives something."""
    async with asyncio.timeout(timeout(20)):
        while True:
            arrived.clear()
            if done():
                return
            await arrived.wait()


async def feed_ids(pool: Pool, org: Org) -> list[int]:
    rows = await pool.fetch("SELECT seq FROM feed_events WHERE org_id = $1 ORDER BY seq", org.id)
    return [r["seq"] for r in rows]


async def caught_up(
    pool: Pool, org: Org, arrived: asyncio.Event, live: list[Supervisor]
) -> list[int]:
    """Waits until every live supervisor's last id is the org's last feed row, re-read each
    time one receives something (a row may be committed after the calls' ends were seen);
    returns the org's feed ids then."""
    expected: list[int] = []
    try:
        async with asyncio.timeout(timeout(20)):
            while True:
                arrived.clear()
                expected = await feed_ids(pool, org)
                if all(w.ids[-1:] == expected[-1:] for w in live):
                    return expected
                await arrived.wait()
    except TimeoutError:
        seen = {f"{w.node}: {w.ids[-3:]} {w.resyncs}" for w in live}
        raise AssertionError(f"table ends {expected[-3:]}; supervisors {seen}") from None


async def test_calls_spread_over_nodes_reach_every_supervisor_in_commit_order(
    pg_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    binary = haproxy_binary()  # before anything starts: a skip starts nothing
    org = await make_org(pool, "Cluster org")
    await pool.execute("UPDATE organizations SET consent_mode = 'keypad' WHERE id = $1", org.id)
    http_port, media_port = free_port(), free_port()
    nodes = [Node(f"node{k}", free_port(), free_port()) for k in (1, 2, 3)]
    public_url = f"http://127.0.0.1:{http_port}"
    envs = []
    for node in nodes:
        folder = tmp_path / node.name
        folder.mkdir()
        env = cli_env(
            folder, pg_dsn,
            VOXSOUTH_HTTP_PORT=str(node.http_port), VOXSOUTH_MEDIA_PORT=str(node.media_port),
            VOXSOUTH_PUBLIC_URL=public_url,
            VOXSOUTH_MEDIA_PUBLIC_URL=f"ws://127.0.0.1:{media_port}/media",
            VOXSOUTH_SIGNALWIRE_SIGNING_KEY=SIGNING_KEY,
            VOXSOUTH_STREAM_TOKEN_SECRET=STREAM_TOKEN_SECRET,
        )  # fmt: skip
        envs.append((env, folder))
    config = tmp_path / "haproxy.cfg"
    config.write_text(balancer_config(http_port, media_port, nodes))
    feed_ws = f"ws://127.0.0.1:{http_port}/api/feed"
    headers = org.bearer("viewer")
    arrived = asyncio.Event()

    async with (
        nodes_running(envs) as served,
        running_haproxy(binary, config),
        aiohttp.ClientSession() as http,
        # Left after the tasks: a failing test cancels its pumps before closing their feeds.
        AsyncExitStack() as feeds,
        asyncio.TaskGroup() as tasks,
    ):
        # Supervisors first, one after another, before any call: round robin puts the three
        # WebSocket ones on three nodes; the fourth watches over SSE.
        watchers: list[Supervisor] = []
        sockets: list[ClientConnection] = []
        pumped: list[asyncio.Task[None]] = []
        for _ in range(3):
            ws = await feeds.enter_async_context(connect(feed_ws, additional_headers=headers))
            assert ws.response is not None
            watchers.append(Supervisor(ws.response.headers[NODE_HEADER], arrived))
            sockets.append(ws)
            pumped.append(tasks.create_task(pump_websocket(ws, watchers[-1])))
        sse = await feeds.enter_async_context(
            http.get(f"{public_url}/api/feed/sse", headers=headers,
                     timeout=aiohttp.ClientTimeout(total=None))
        )  # fmt: skip
        assert sse.status == 200
        watchers.append(Supervisor(sse.headers[NODE_HEADER], arrived))
        sse_pump = tasks.create_task(pump_sse(sse, watchers[-1]))
        assert {w.node for w in watchers} == {n.name for n in nodes}
        await wait_until(arrived, lambda: all(w.hello is not None for w in watchers))
        assert all(w.hello == 0 for w in watchers)  # a fresh org: nothing fed yet

        sim = SignalWireSimulator(http, base_url=public_url, signing_key=SIGNING_KEY)
        calls = [
            tasks.create_task(
                sim.call(CALL_AUDIO, to_number=org.number, from_number="+15550199999", dtmf=DTMF)
            )
            for _ in range(CALLS)
        ]

        # Mid-calls, the first supervisor drops, and comes back after its last id through the
        # balancer until it lands on another node (webhooks take turns in the round too).
        dropped = watchers[0]
        await wait_until(arrived, lambda: len(dropped.ids) >= RESUME_AFTER)
        await sockets[0].close()
        await pumped[0]  # what arrived before the close is taken: its last id is final
        resumed: Supervisor | None = None
        for _attempt in range(6):
            url = f"{feed_ws}?last_event_id={dropped.ids[-1]}"
            ws = await feeds.enter_async_context(connect(url, additional_headers=headers))
            assert ws.response is not None
            if (landed := ws.response.headers[NODE_HEADER]) != dropped.node:
                resumed = Supervisor(landed, arrived)
                tasks.create_task(pump_websocket(ws, resumed))
                break
            await ws.close()
        assert resumed is not None, "the balancer kept sending the supervisor to one node"

        results = [await call for call in calls]
        assert [(r.errors, r.close_code) for r in results] == [([], 1000)] * CALLS
        async with watching(pool, pg_dsn) as changes:
            await changes.until(
                """SELECT count(*) = $2 AND bool_and(s.end_reason = 'stop')
                          AND bool_and(c.status = 'completed')
                   FROM media_streams s JOIN calls c ON c.id = s.call_id WHERE c.org_id = $1""",
                org.id, CALLS,
            )  # fmt: skip
        # Which node held each stream: registrations go with a clean shutdown, so read now.
        owners = await pool.fetch(
            """SELECT p.pid, s.owner_id IS NULL AS unowned, count(*) AS streams
               FROM media_streams s JOIN calls c ON c.id = s.call_id
               LEFT JOIN server_processes p ON p.id = s.owner_id
               WHERE c.org_id = $1 GROUP BY 1, 2""",
            org.id,
        )

        live = [*watchers[1:], resumed]
        expected = await caught_up(pool, org, arrived, live)
        sse_pump.cancel()  # (a response closed under its reader is a read error)
        await feeds.aclose()  # the supervisors leave; their pumps end

    node_of = {s.process.pid: n.name for s, n in zip(served, nodes, strict=True)}
    # (Named in a failure: streams with no owner, or with one no node registered.)
    held = {
        "no owner" if r["unowned"] else node_of.get(r["pid"], "unregistered owner"): r["streams"]
        for r in owners
    }
    assert set(held) <= set(node_of.values()) and len(held) > 1, held

    assert expected == sorted(set(expected))
    fed = await pool.fetch(
        "SELECT DISTINCT call_id, type FROM feed_events WHERE org_id = $1", org.id
    )
    call_sids = await pool.fetch("SELECT id FROM calls WHERE org_id = $1", org.id)
    assert {r["call_id"] for r in fed if r["call_id"]} == {r["id"] for r in call_sids}
    assert {"dtmf", "consent", "escalation", "stream_stopped"} <= {r["type"] for r in fed}
    for watcher in live:
        assert watcher.resyncs == [], watcher.node
    for watcher in watchers[1:]:
        assert watcher.ids == expected, watcher.node
    # The one that dropped: what it saw, then exactly the rest from another node.
    assert dropped.ids + resumed.ids == expected, (dropped.node, resumed.node)
