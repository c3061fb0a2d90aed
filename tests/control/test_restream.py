"""Starting a call's stream again through SignalWire's Streams REST API: the client against the
fake SignalWire (which then really streams, as SignalWire does), and the restreamer's rounds
against a real Postgres, over loopback sockets.

The restreamer's claim is global, so an autouse fixture puts every call other tests left
behind out of its reach; time is moved by back-dating rows, never by waiting.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from control.process_lease import LeaseConfig, ProcessLease
from control.restream import Restreamer, StreamTarget
from control.restreaming import RestreamPolicy
from control.signalwire import SignalWireClient, SignalWireConfig, SignalWireRejected
from media.stream_token import StreamGrant, issue_token, verify_token
from server.simulator.audio import CallAudio
from storage import calls, processes
from storage.db import Pool
from tests.conftest import timeout
from tests.storage.test_processes import expire, open_call, register
from tests.storage.test_restreams import lose, put_out_of_reach, start
from tests.support.fake_signalwire import (
    Fail,
    FakeSignalWire,
    error_body,
    running_fake_signalwire,
)

PROJECT = str(uuid.uuid4())
TOKEN = "PT" + uuid.uuid4().hex
SECRET = b"restream-test-secret"
STATUS_URL = "https://voice.example.com/laml/stream-status"


class StreamCatcher:
    """A media server that only listens: every message of every stream, by URL path."""

    def __init__(self) -> None:
        self.url = ""
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path = ws.request.path
        try:
            async for raw in ws:
                async with self._arrived:
                    self.messages[path].append(json.loads(raw))
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass

    async def until(self, path: str, event: str, count: int = 1) -> list[dict[str, Any]]:
        """The stream's messages once `count` of `event` have come (wrap it in a timeout)."""
        async with self._arrived:
            await self._arrived.wait_for(
                lambda: sum(m["event"] == event for m in self.messages[path]) >= count
            )
            return list(self.messages[path])


@asynccontextmanager
async def catching() -> AsyncIterator[StreamCatcher]:
    catcher = StreamCatcher()
    async with serve(catcher.handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        catcher.url = f"ws://127.0.0.1:{port}/media"
        yield catcher


@pytest.fixture(autouse=True)
async def only_this_tests_calls(pool: Pool) -> None:
    await put_out_of_reach(pool)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    async with running_fake_signalwire(PROJECT, TOKEN, allow_insecure_media=True) as fake:
        yield fake


@pytest.fixture
async def client(fake: FakeSignalWire) -> AsyncIterator[SignalWireClient]:
    async with aiohttp.ClientSession() as http:
        yield SignalWireClient(
            http,
            SignalWireConfig(
                fake.url, PROJECT, TOKEN, request_timeout_s=timeout(2), total_timeout_s=timeout(4),
                max_attempts=2, backoff_initial_s=0.001, backoff_max_s=0.002,
            ),
        )  # fmt: skip


@pytest.fixture
async def catcher() -> AsyncIterator[StreamCatcher]:
    async with catching() as catcher:
        yield catcher


def issue(org_id: uuid.UUID, call_id: uuid.UUID, call_sid: str) -> str:
    return issue_token(SECRET, StreamGrant(org_id, call_id, call_sid, 2_000_000_000))


def restreamer(pool: Pool, client: SignalWireClient, media_url: str, **policy: Any) -> Restreamer:
    settings = {"landing_s": 60.0, "retry_s": 0.001, "budget_s": timeout(5)} | policy
    return Restreamer(
        pool, client, StreamTarget(media_url, STATUS_URL, allow_insecure=True), issue,
        RestreamPolicy(**settings),
    )  # fmt: skip


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxsouth_restreams_total", {"outcome": outcome}) or 0


def frame(byte: int) -> bytes:
    return bytes([byte]) * 160


# --- the client and the fake ---------------------------------------------------------------


async def test_start_stream_asks_signalwire_with_its_documented_form(
    client: SignalWireClient, fake: FakeSignalWire, catcher: StreamCatcher
) -> None:
    sid = str(uuid.uuid4())
    fake.add_call(sid)
    created = await client.start_stream(
        sid, url=catcher.url + "/one", name="voxsouth-x", status_callback=STATUS_URL,
        parameters={"token": "t0k", "restarted_after": "process_lost"},
    )  # fmt: skip

    [request] = fake.requests_for("create_stream")
    assert request.path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{sid}/Streams.json"
    assert request.form == [
        ("Url", catcher.url + "/one"), ("Name", "voxsouth-x"), ("Track", "both_tracks"),
        ("StatusCallback", STATUS_URL), ("StatusCallbackMethod", "POST"),
        ("Parameter1.Name", "token"), ("Parameter1.Value", "t0k"),
        ("Parameter2.Name", "restarted_after"), ("Parameter2.Value", "process_lost"),
    ]  # fmt: skip
    assert created.sid.startswith("MZ") and len(created.sid) == 34
    assert (created.status, created.name) == ("in-progress", "voxsouth-x")
    assert set(created.raw) == {
        "sid", "account_sid", "call_sid", "name", "status", "date_updated", "uri",
    }  # fmt: skip
    assert created.raw["uri"].endswith(f"/Calls/{sid}/Streams/{created.sid}.json")
    await asyncio.wait_for(catcher.until("/media/one", "media"), timeout(5))


async def test_the_fake_refuses_what_signalwire_refuses(
    client: SignalWireClient, fake: FakeSignalWire, catcher: StreamCatcher
) -> None:
    def ask(sid: str, url: str) -> Any:
        return client.start_stream(
            sid, url=url, name="n", status_callback=STATUS_URL, parameters={}
        )

    with pytest.raises(SignalWireRejected) as unknown:
        await ask(str(uuid.uuid4()), catcher.url)
    assert (unknown.value.status, unknown.value.code) == (404, "20404")

    ended = str(uuid.uuid4())
    fake.add_call(ended)
    fake.end_call(ended)
    with pytest.raises(SignalWireRejected) as not_live:
        await ask(ended, catcher.url)
    assert (not_live.value.status, not_live.value.code) == (400, "21220")

    live = str(uuid.uuid4())
    fake.add_call(live)
    for url, code in (("", "21205"), ("https://example.com/media", "21402"),
                      (catcher.url + "?token=x", "21402")):  # fmt: skip
        with pytest.raises(SignalWireRejected) as bad:
            await ask(live, url)
        assert (bad.value.status, bad.value.code) == (400, code)
    strict = FakeSignalWire(PROJECT, TOKEN)  # SignalWire itself: wss only
    await strict.start()
    try:
        strict.add_call(live)
        async with aiohttp.ClientSession() as http:
            config = SignalWireConfig(strict.url, PROJECT, TOKEN, max_attempts=1)
            with pytest.raises(SignalWireRejected) as insecure:
                await SignalWireClient(http, config).start_stream(
                    live, url=catcher.url, name="n", status_callback=STATUS_URL, parameters={}
                )
        assert insecure.value.code == "21402"
    finally:
        await strict.close()
    assert fake.streams(live) == []  # nothing refused was streamed


async def test_the_fakes_stream_plays_the_call_on_its_timeline_until_it_ends(
    client: SignalWireClient, fake: FakeSignalWire, catcher: StreamCatcher
) -> None:
    sid = str(uuid.uuid4())
    # The call's audio: 2 s of caller frames numbered by their byte, the agent silent.
    caller = b"".join(frame(n) for n in range(100))
    fake.add_call(sid, audio=CallAudio(caller=caller, agent=bytes([0xFF]) * len(caller)))
    await asyncio.sleep(0.5)  # the call goes on a while before its stream starts: its clock
    created = await client.start_stream(
        sid, url=catcher.url + "/t", name="n", status_callback=STATUS_URL,
        parameters={"token": "abc"},
    )  # fmt: skip
    messages = await asyncio.wait_for(catcher.until("/media/t", "media", 20), timeout(5))
    fake.timelines[sid].press("1")
    await asyncio.wait_for(catcher.until("/media/t", "dtmf"), timeout(5))
    fake.end_call(sid)
    messages = await asyncio.wait_for(catcher.until("/media/t", "stop"), timeout(5))
    [stream] = fake.streams(sid)
    await asyncio.wait_for(stream.done.wait(), timeout(5))

    connected, start = messages[0], messages[1]
    assert connected == {"event": "connected", "protocol": "Call", "version": "0.2.0"}
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    assert start["start"] == {
        "streamSid": created.sid, "accountSid": PROJECT, "callSid": sid,
        "tracks": ["inbound", "outbound"], "customParameters": {"token": "abc"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }  # fmt: skip
    media = [m["media"] for m in messages if m["event"] == "media"]
    inbound = [m for m in media if m["track"] == "inbound"]
    assert [m["chunk"] for m in inbound[:3]] == ["1", "2", "3"]
    assert [m["timestamp"] for m in inbound[:3]] == ["0", "20", "40"]
    payloads = [base64.b64decode(m["payload"]) for m in inbound]
    assert all(len(p) == 160 for p in payloads)
    # It came in 0.5 s into the call: its first frame is the call's 25th or so, not the 1st.
    first = payloads[0][0]
    assert 20 <= first <= 40 and first == stream.started_at_frame
    assert [p[0] for p in payloads[:5]] == list(range(first, first + 5))
    sequence = [int(m["sequenceNumber"]) for m in messages[1:]]
    assert sequence == list(range(1, len(sequence) + 1))
    assert messages[-1]["event"] == "stop" and stream.ended == "stop"


# --- the restreamer ---------------------------------------------------------------------------


async def unheard_call(
    pool: Pool, org_number: tuple[uuid.UUID, str], fake: FakeSignalWire, *, live: bool = True
) -> calls.CallRef:
    """A call whose stream died with its process; SignalWire knows it (live or over)."""
    org_id, number = org_number
    call = await calls.open_call(
        pool, org_id=org_id, call_sid=str(uuid.uuid4()), account_sid=PROJECT,
        direction="inbound", from_number="+15550199999", to_number=number, status="in-progress",
    )  # fmt: skip
    await lose(pool, call)
    sid: str = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call.id)
    fake.add_call(sid)
    if not live:
        fake.end_call(sid)
    return call


async def call_sid_of(pool: Pool, call: calls.CallRef) -> str:
    sid: str = await pool.fetchval("SELECT call_sid FROM calls WHERE id = $1", call.id)
    return sid


async def test_a_lost_call_gets_a_new_stream_with_a_fresh_token_and_a_call_that_ended_none(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient,
    fake: FakeSignalWire, catcher: StreamCatcher,
) -> None:  # fmt: skip
    live = await unheard_call(pool, org_number, fake)
    over = await unheard_call(pool, org_number, fake, live=False)
    before = {o: counted(o) for o in ("started", "ended", "gave_up")}

    assert await restreamer(pool, client, catcher.url).round() == 2

    path = f"/media/{live.id}"
    messages = await asyncio.wait_for(catcher.until(path, "media"), timeout(5))
    start = messages[1]["start"]
    live_sid = await call_sid_of(pool, live)
    assert start["callSid"] == live_sid
    parameters = start["customParameters"]
    assert parameters["restarted_after"] == "process_lost"
    grant = verify_token(SECRET, parameters["token"], call_sid=live_sid, now=1_900_000_000)
    assert (grant.org_id, grant.call_id) == (live.org_id, live.id)
    [request] = [r for r in fake.requests_for("create_stream") if live_sid in r.path]
    form = dict(request.form)
    assert form["Url"] == f"{catcher.url}/{live.id}"
    assert form["StatusCallback"] == STATUS_URL and form["Track"] == "both_tracks"
    assert form["Name"].startswith(f"voxsouth-{live.id}-restart-")
    assert fake.streams(await call_sid_of(pool, over)) == []  # refused (21220): not streamed
    assert counted("started") == before["started"] + 1
    assert counted("ended") == before["ended"] + 1
    assert counted("gave_up") == before["gave_up"]
    # Neither is asked for again: one is held while its stream lands, the other is over.
    assert await restreamer(pool, client, catcher.url).round() == 0
    assert len(fake.requests_for("create_stream")) == 2


async def test_survivors_restreaming_at_once_ask_for_each_call_once(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient,
    fake: FakeSignalWire, catcher: StreamCatcher,
) -> None:  # fmt: skip
    lost = [await unheard_call(pool, org_number, fake) for _ in range(9)]
    survivors = [restreamer(pool, client, catcher.url, batch=3) for _ in range(3)]

    claimed = await asyncio.gather(*(s.round() for s in survivors))
    claimed += await asyncio.gather(*(s.round() for s in survivors))

    assert sum(claimed) == 9
    asked = [r.path.split("/Calls/")[1].split("/")[0] for r in fake.requests_for("create_stream")]
    assert sorted(asked) == sorted([await call_sid_of(pool, c) for c in lost])


async def test_a_call_signalwire_keeps_refusing_is_given_up_after_the_last_attempt(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient,
    fake: FakeSignalWire, catcher: StreamCatcher,
) -> None:  # fmt: skip
    call = await unheard_call(pool, org_number, fake)
    refusal = Fail(400, body=error_body(400, 21402, "Invalid Url"))
    fake.script("create_stream", [refusal] * 5)
    restarts = restreamer(pool, client, catcher.url, max_attempts=3, retry_s=0.001)
    before = counted("rejected"), counted("gave_up")

    rounds = []
    for _ in range(5):
        # Each failed attempt's retry is a millisecond away: due again by the next round.
        await pool.execute(
            "UPDATE calls SET restream_next_at = now() "
            "WHERE id = $1 AND restream_next_at <> 'infinity'",
            call.id,
        )
        rounds.append(await restarts.round())

    assert rounds == [1, 1, 1, 0, 0]
    assert len(fake.requests_for("create_stream")) == 3
    assert (counted("rejected"), counted("gave_up")) == (before[0] + 3, before[1] + 1)
    row = await pool.fetchrow(
        "SELECT restream_attempts, restream_next_at = 'infinity' AS given_up FROM calls "
        "WHERE id = $1",
        call.id,
    )
    assert row is not None and (row["restream_attempts"], row["given_up"]) == (3, True)


async def test_a_started_stream_that_never_lands_is_asked_for_again_then_given_up(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient,
    fake: FakeSignalWire,
) -> None:  # fmt: skip
    await unheard_call(pool, org_number, fake)
    # Nothing listens there: SignalWire accepts each request, and no stream ever arrives.
    restarts = restreamer(pool, client, "ws://127.0.0.1:9/media", max_attempts=2)
    before = counted("started"), counted("gave_up")

    rounds = []
    for _ in range(4):
        rounds.append(await restarts.round())
        await pool.execute("UPDATE calls SET restream_next_at = now() "
                           "WHERE restream_next_at <> 'infinity'")  # fmt: skip

    assert rounds == [1, 1, 0, 0]
    assert (counted("started"), counted("gave_up")) == (before[0] + 2, before[1] + 1)


async def test_nothing_is_restarted_when_attempts_are_off(
    pool: Pool, org_number: tuple[uuid.UUID, str], client: SignalWireClient,
    fake: FakeSignalWire, catcher: StreamCatcher,
) -> None:  # fmt: skip
    await unheard_call(pool, org_number, fake)
    off = restreamer(pool, client, catcher.url, max_attempts=0)
    off.start()  # a task only when restarting is on
    off.wake()
    await off.aclose()
    assert fake.requests_for("create_stream") == []


async def test_a_media_url_signalwire_would_refuse_fails_at_the_start(
    pool: Pool, client: SignalWireClient
) -> None:
    with pytest.raises(ValueError):
        Restreamer(
            pool, client, StreamTarget("ws://voice.example.com/media", STATUS_URL), issue,
            RestreamPolicy(),
        )  # fmt: skip


async def test_the_lease_wakes_the_restreamer_when_its_sweep_closes_lost_streams(
    pool: Pool, org_number: tuple[uuid.UUID, str]
) -> None:
    woken: list[str] = []
    lease = ProcessLease(pool, LeaseConfig(every_s=3600, lease_s=60, call_unknown_after_s=3600))
    lease.when_streams_lost(lambda: woken.append("lost"))
    call = await open_call(pool, org_number)
    dead = await register(pool, alive=True)
    await start(pool, call, dead)
    await expire(pool, dead)

    await lease.tick()  # closes the dead process's stream
    await lease.tick()  # nothing more to close

    assert woken == ["lost"]
    await processes.deregister(pool, lease.id)
