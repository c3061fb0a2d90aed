"""Streams that resume a call, over real sockets against the real server and Postgres: a
connection that takes over from one cut without notice, and a stream resuming a call whose
earlier streams another process served (placed on the call's clock by what Postgres holds).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from server.app import RunningServer
from storage.db import Pool
from tests.conftest import timeout
from tests.media.test_media_server import closed_with, media, start
from tests.support.calls import AnsweredCall, answer_call
from tests.support.changes import watching


@pytest.fixture
async def call(srv: RunningServer, org_number: tuple[uuid.UUID, str]) -> AnsweredCall:
    async with aiohttp.ClientSession() as http:
        return await answer_call(http, srv, srv.settings, org_number[1])


ENDED = """SELECT s.stream_sid, s.connection, s.offset_ms, s.end_reason,
                  s.frames_received_inbound, s.frames_lost_inbound, s.audio_lost_ms
           FROM media_streams s JOIN calls c ON c.id = s.call_id
           WHERE c.call_sid = $1 AND s.owner_id = $2 AND s.end_reason IS NOT NULL
           ORDER BY s.created_at, s.connection"""


async def rows(srv: RunningServer, pool: Pool, call: AnsweredCall) -> list[dict[str, Any]]:
    """The call's two stream rows this server wrote, once both have ended."""
    async with watching(pool, srv.dsn) as changes:
        await changes.until(
            f"SELECT count(*) = 2 FROM ({ENDED}) AS ended", call.call_sid, srv.process_id
        )
    return [dict(r) for r in await pool.fetch(ENDED, call.call_sid, srv.process_id)]


ALERTED = """SELECT count(*) > 0 FROM escalations e JOIN calls c ON c.id = e.call_id
             WHERE c.call_sid = $1"""


async def test_a_connection_cut_without_notice_is_taken_over_by_the_next(
    srv: RunningServer, pool: Pool, call: AnsweredCall
) -> None:
    stream_sid = str(uuid.uuid4())
    async with connect(srv.media_url) as first:
        await first.send(start(call, streamSid=stream_sid))
        for chunk in range(1, 51):
            await first.send(media(chunk + 1, chunk))
        # The operator key last: its alert in Postgres says the server has read all of it.
        await first.send(json.dumps({"event": "dtmf", "dtmf": {"digit": "0"}}))
        async with watching(pool, srv.dsn) as changes:
            await changes.until(ALERTED, call.call_sid)
        # The first socket stays open, silent (its peer gone without a word): the same stream
        # reconnects with its chunks going on, a second of them never delivered.
        async with connect(srv.media_url) as second:
            await second.send(start(call, streamSid=stream_sid))
            assert await closed_with(first) == (1000, "superseded by a new connection")
            for chunk in range(101, 151):
                await second.send(media(chunk, chunk))
            await second.send(json.dumps({"event": "stop"}))
            await closed_with(second)

    taken, resumed = await rows(srv, pool, call)
    assert (taken["stream_sid"], taken["connection"], taken["end_reason"]) == (
        stream_sid, 1, "superseded",
    )  # fmt: skip
    assert (taken["frames_received_inbound"], taken["audio_lost_ms"]) == (50, 0)
    assert (resumed["stream_sid"], resumed["connection"], resumed["end_reason"]) == (
        stream_sid, 2, "stop",
    )  # fmt: skip
    assert (resumed["frames_received_inbound"], resumed["frames_lost_inbound"]) == (50, 50)
    assert resumed["audio_lost_ms"] == 1_000


async def test_a_stream_resuming_a_call_begun_elsewhere_is_placed_on_its_clock(
    srv: RunningServer, pool: Pool, call: AnsweredCall
) -> None:
    # Another process served the call's stream from 8 s ago, until it dropped.
    earlier = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO media_streams (org_id, call_id, stream_sid, status, started_at, owner_id,
                                      end_reason)
           SELECT org_id, id, $2, 'stopped', $3, $4, 'disconnected'
           FROM calls WHERE call_sid = $1""",
        call.call_sid,
        earlier,
        datetime.now(UTC) - timedelta(seconds=8),
        uuid.uuid4(),
    )
    for stream_sid in (earlier, str(uuid.uuid4())):  # the same stream, then a new one
        async with connect(srv.media_url) as ws:
            await ws.send(start(call, streamSid=stream_sid))
            await ws.send(json.dumps({"event": "dtmf", "dtmf": {"digit": "0"}}))
            await ws.send(json.dumps({"event": "stop"}))
            await closed_with(ws)

    same, new = await rows(srv, pool, call)
    assert (same["stream_sid"], same["connection"]) == (earlier, 2)  # its own row, not the 1st
    assert new["connection"] == 1
    for row in (same, new):
        assert 8_000 <= row["offset_ms"] < 8_000 + timeout(2) * 1000
    # The operator key pressed on each: one alert, at its place on the call's clock (the
    # second stream resumed the session the first left here, so the rule's cooldown held).
    alerts = await pool.fetch(
        """SELECT e.rule_name, e.start_ms FROM escalations e JOIN calls c ON c.id = e.call_id
           WHERE c.call_sid = $1""",
        call.call_sid,
    )
    assert [(a["rule_name"], a["start_ms"] >= 8_000) for a in alerts] == [("operator-key", True)]
