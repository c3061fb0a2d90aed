"""Outbound webhooks against a real receiver on loopback: signed deliveries of a call's events
in order, retries with backoff, the log and its replay, and endpoints SSRF would abuse refused."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from control.api.transcription import SEALER
from control.webhook_delivery import DeliveryConfig, WebhookSender, check_endpoint, public_address
from server.app import RunningServer
from storage.db import Pool
from tests.control.test_targets_api import call_api
from tests.support.accounts import Org, make_org
from tests.support.calls import simulator
from tests.support.loopback import serving_app


@dataclass
class Receiver:
    """An org's webhook endpoint: records what arrives, answers `answers` in turn (then 200)."""

    url: str = ""
    arrived: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived.append((dict(request.headers), await request.read()))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    async with serving_app(app) as base:
        found.url = f"{base}/hook"
        yield found


@pytest.fixture
async def hooked(
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
) -> AsyncIterator[RunningServer]:
    """A server that may send webhooks to loopback, its own sender idle (tests tick theirs)."""
    async with start_server(webhooks_allow_private=True, webhook_every_s=3600) as server:
        yield server


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does with the documented scheme."""
    parts = dict(p.split("=", 1) for p in headers["Voxsouth-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(parts["v1"], expected.hexdigest())


async def an_inbound_call(srv: RunningServer, org: Org, **status: str) -> str:
    call_sid = str(uuid.uuid4())
    form = {"CallSid": call_sid, "AccountSid": str(uuid.uuid4()), "From": "+17065550142",
            "To": org.number, "Direction": "inbound", "CallStatus": "ringing"}  # fmt: skip
    async with aiohttp.ClientSession() as http:
        sim = simulator(http, srv, srv.settings)
        code, _ = await sim.post_signed(f"{srv.public_url}/laml/voice", form)
        assert code == 200
        if status:
            code, _ = await sim.post_signed(f"{srv.public_url}/laml/status", {**form, **status})
            assert code == 204
    return call_sid


async def deliver(srv: RunningServer, rounds: int = 1, **config: Any) -> None:
    async with WebhookSender(
        srv.pool, srv.app[SEALER], DeliveryConfig(allow_private=True, **config)
    ) as sending:
        for _ in range(rounds):
            await asyncio.wait_for(sending.tick(), 10)


async def test_a_calls_events_arrive_signed_and_in_order(
    hooked: RunningServer, pool: Pool, receiver: Receiver
) -> None:
    org = await make_org(pool, "Hooked org")
    status, endpoint = await call_api(hooked, org, "POST", "/api/webhooks", role="admin", body={
        "url": receiver.url, "events": ["call.started", "call.ended"],
    })  # fmt: skip
    assert status == 201, endpoint
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    status, listed = await call_api(hooked, org, "GET", "/api/webhooks", role="admin")
    assert "secret" not in json.dumps(listed) and secret not in json.dumps(listed)
    call_sid = await an_inbound_call(hooked, org, CallStatus="completed", CallDuration="12")
    await deliver(hooked, rounds=3)  # a call's second event waits for its first
    assert [json.loads(body)["type"] for _h, body in receiver.arrived] == [
        "call.started", "call.ended",
    ]  # fmt: skip
    for headers, body in receiver.arrived:
        assert verify(secret, headers, body)
        assert headers["Voxsouth-Event"] == json.loads(body)["type"]
    ended = json.loads(receiver.arrived[1][1])
    assert ended["data"]["status"] == "completed"
    log = await call_api(hooked, org, "GET", f"/api/webhooks/{endpoint['id']}/deliveries",
                         role="admin")  # fmt: skip
    assert [(d["event"], d["status"], d["attempts"]) for d in log[1]["deliveries"]] == [
        ("call.ended", "delivered", 1), ("call.started", "delivered", 1),
    ]  # fmt: skip
    call_id = await pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", call_sid)
    assert ended["call_id"] == str(call_id)
    assert (await call_api(hooked, org, "GET", "/api/webhooks", role="operator"))[0] == 403


async def test_a_failing_endpoint_is_tried_again_later_and_a_failed_delivery_replayed(
    hooked: RunningServer, pool: Pool, receiver: Receiver
) -> None:
    org = await make_org(pool, "Flaky receiver")
    wanted = {"url": receiver.url, "events": ["call.started"]}
    status, endpoint = await call_api(
        hooked, org, "POST", "/api/webhooks", role="admin", body=wanted
    )
    receiver.answers = [500, 503]
    await an_inbound_call(hooked, org)
    await deliver(hooked, first_retry_s=0.0)  # the first try: 500
    [delivery] = await pool.fetch(
        "SELECT id, status, attempts, last_status, next_at - now() AS wait "
        "FROM webhook_deliveries WHERE org_id = $1", org.id,
    )  # fmt: skip
    assert (delivery["status"], delivery["attempts"], delivery["last_status"]) == (
        "pending", 1, 500,
    )  # fmt: skip
    await deliver(hooked, rounds=2, first_retry_s=0.0)  # 503, then 200
    assert len(receiver.arrived) == 3
    assert len({h["Voxsouth-Delivery"] for h, _b in receiver.arrived}) == 1  # the same delivery
    row = await pool.fetchrow(
        "SELECT status, attempts FROM webhook_deliveries WHERE id = $1", delivery["id"]
    )
    assert row is not None and (row["status"], row["attempts"]) == ("delivered", 3)
    # A delivery a day old fails for good at its next failure; an admin can replay it.
    receiver.answers = [500]
    await pool.execute(
        "UPDATE webhook_deliveries SET status = 'pending', created_at = now() - interval "
        "'1 day' WHERE id = $1", delivery["id"],
    )  # fmt: skip
    await deliver(hooked)
    failed = await pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1",
                                 delivery["id"])  # fmt: skip
    assert failed == "failed"
    status, replayed = await call_api(
        hooked, org, "POST", f"/api/webhooks/deliveries/{delivery['id']}/replay", role="admin"
    )
    assert (status, replayed["status"]) == (202, "pending")
    await deliver(hooked)
    assert len(receiver.arrived) == 5
    assert (
        await pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", delivery["id"])
        == "delivered"
    )


async def test_endpoints_inside_the_network_are_refused(srv: RunningServer, pool: Pool) -> None:
    for address, public in (("127.0.0.1", False), ("10.1.2.3", False), ("169.254.169.254", False),
                            ("192.168.0.10", False), ("::1", False), ("::ffff:10.0.0.1", False),
                            ("8.8.8.8", True), ("2001:4860:4860::8888", True)):  # fmt: skip
        assert public_address(address) is public, address
    assert await check_endpoint("http://example.com/hook", allow_private=False) is not None
    assert await check_endpoint("https://127.0.0.1/hook", allow_private=False) is not None
    assert await check_endpoint("https://localhost/hook", allow_private=False) is not None
    org = await make_org(pool, "SSRF")
    for url in ("https://127.0.0.1:8080/hook", "https://169.254.169.254/latest/meta-data",
                "http://example.com/hook"):  # fmt: skip
        status, body = await call_api(srv, org, "POST", "/api/webhooks", role="admin",
                                      body={"url": url, "events": ["call.ended"]})  # fmt: skip
        assert (status, body["error"]["details"]["fields"][0]["field"]) == (422, "url"), url
