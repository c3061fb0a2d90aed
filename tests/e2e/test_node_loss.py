"""A node lost mid-call, or stopped with calls it could not finish (issue 18): its calls are
streamed again, through SignalWire's Streams REST API, to a surviving node, and each call's
record goes on.

Node A is a real `voxsouth serve` carrying live calls that the fake SignalWire streams to it,
as SignalWire runs the `<Start><Stream>` of their LaML; it is killed with SIGKILL. Node B runs
in the test on the same Postgres, with the fake as its SignalWire: it notices the loss (short
leases here), asks the fake to stream each call still live there again, and the fake connects
to B's media URL (its own, where a balancer would pick a node). One call ends at SignalWire
while no node hears it, its final status callback lost: it must not be streamed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp

from server.app import RunningServer
from server.simulator.client import SignalWireSimulator, parse_stream
from storage import calls
from storage.db import Pool
from tests.conftest import SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN, timeout
from tests.e2e.test_process_crash import start_call
from tests.storage.test_restreams import put_out_of_reach
from tests.support.changes import watching
from tests.support.fake_signalwire import FakeSignalWire, running_fake_signalwire
from tests.support.numbers import new_number
from tests.support.process import cli_env, serving

SIGNING_KEY = "PSK_node_loss_signing_key"
LIVE = 3
"""Calls still live at SignalWire when A dies; one more ends meanwhile."""

_STREAMS = """SELECT s.* FROM media_streams s JOIN calls c ON c.id = s.call_id
              WHERE c.call_sid = $1 AND s.owner_id IS NOT NULL ORDER BY s.started_at"""


async def live_calls(
    http: aiohttp.ClientSession, fake: FakeSignalWire, node_url: str, number: str, count: int
) -> list[str]:
    """`count` calls answered by the node at `node_url`, each streamed to it by the fake as
    SignalWire runs the LaML's `<Start><Stream>`; returns their call sids."""
    sim = SignalWireSimulator(http, base_url=node_url, signing_key=SIGNING_KEY,
                              account_sid=SIGNALWIRE_PROJECT)  # fmt: skip
    sids = []
    for _ in range(count):
        call_sid, laml = await start_call(sim, node_url, number)
        stream = parse_stream(laml)
        assert stream is not None, laml
        fake.add_call(call_sid, to=number, from_="+15550199999")
        fake.open_stream(call_sid, stream.url, parameters=stream.parameters,
                         name=stream.name, track=stream.track)  # fmt: skip
        sids.append(call_sid)
    return sids


async def test_live_calls_of_a_killed_node_are_streamed_again_to_a_survivor(
    pg_dsn: str,
    pool: Pool,
    tmp_path: Path,
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
) -> None:
    await put_out_of_reach(pool)  # only this test's calls are restarted
    # Keypad consent, asked by the platform; one party's consent is enough (so nothing of the
    # calls' content is held back: what comes after the restart is stored as it comes).
    org_id = await calls.create_org(pool, "Node loss", "one_party", consent_mode="keypad")
    number = new_number()
    await calls.add_phone_number(pool, org_id, number)
    env = cli_env(
        tmp_path, pg_dsn, VOXSOUTH_SIGNALWIRE_SIGNING_KEY=SIGNING_KEY,
        VOXSOUTH_PROCESS_HEARTBEAT_S="0.2", VOXSOUTH_PROCESS_LEASE_S="1",
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    async with (
        running_fake_signalwire(
            SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN, allow_insecure_media=True
        ) as fake,
        watching(pool, pg_dsn) as changes,
        aiohttp.ClientSession() as http,
        start_server(
            signalwire_space_url=fake.url, signalwire_project_id=SIGNALWIRE_PROJECT,
            signalwire_api_token=SIGNALWIRE_TOKEN, signalwire_signing_key=SIGNING_KEY,
            process_heartbeat_s=0.1, process_lease_s=0.5, restream_max_attempts=3,
        ) as survivor,
    ):  # fmt: skip
        async with serving(env, tmp_path) as doomed:
            sids = await live_calls(http, fake, doomed.http_url, number, LIVE + 1)
            consented, ended = sids[0], sids[-1]
            for sid in sids:
                await changes.until(
                    f"SELECT count(*) = 1 FROM ({_STREAMS}) s WHERE s.status = 'streaming'", sid
                )
            # Before the loss: the caller answers the keypad request, then asks for an operator.
            fake.timelines[consented].press("1")
            await changes.until(
                "SELECT recording_consent FROM calls WHERE call_sid = $1", consented
            )
            fake.timelines[consented].press("0")
            await changes.until("SELECT escalated FROM calls WHERE call_sid = $1", consented)
            doomed.kill()
            await doomed.process.wait()
            killed_at = loop.time()
        # While no node hears it (A dead, its lease not yet run out), one call ends at
        # SignalWire; its final status callback went to the dead node.
        fake.end_call(ended)

        # Within a few seconds, every call still live gets a new stream that lands on B.
        for sid in sids[:LIVE]:
            await changes.until(
                f"SELECT count(*) = 1 FROM ({_STREAMS}) s WHERE s.status = 'streaming' "
                "AND s.owner_id = $2 AND s.restarted_after = 'process_lost'",
                sid, survivor.process_id,
            )  # fmt: skip
        unheard_for = loop.time() - killed_at
        assert unheard_for < timeout(10), unheard_for
        # What each call hears after the restart is stored for it: a key pressed now.
        for sid in sids[:LIVE]:
            fake.timelines[sid].press("5")
        # On the consented call, a 2 (which would refuse, were the opening request asked
        # again) and a 0 within the operator-key's cooldown.
        fake.timelines[consented].press("2")
        fake.timelines[consented].press("0")
        for sid in sids[:LIVE]:
            await changes.until(
                """SELECT count(*) >= 1 FROM dtmf_events d JOIN calls c ON c.id = d.call_id
                   WHERE c.call_sid = $1 AND d.digit = '5'""",
                sid,
            )
        await changes.until(
            """SELECT count(*) = 2 FROM dtmf_events d JOIN calls c ON c.id = d.call_id
               WHERE c.call_sid = $1 AND d.digit IN ('2', '0') AND d.offset_ms > 0
                 AND d.received_at > (SELECT max(started_at) FROM media_streams
                                      WHERE call_id = c.id)""",
            consented,
        )
        # The call that ended meanwhile: asked about at SignalWire, ended, never streamed.
        await changes.until("SELECT status = 'completed' FROM calls WHERE call_sid = $1", ended)
        for sid in sids[:LIVE]:
            fake.end_call(sid)  # SignalWire sends stop on each stream
        for sid in sids[:LIVE]:
            await changes.until(f"SELECT bool_and(s.status = 'stopped') FROM ({_STREAMS}) s", sid)

    assert len(fake.streams(ended)) == 1
    assert [len(fake.streams(sid)) for sid in sids[:LIVE]] == [2] * LIVE
    for sid in sids[:LIVE]:
        call = await pool.fetchrow("SELECT * FROM calls WHERE call_sid = $1", sid)
        assert call is not None
        lost, restarted = [dict(r) for r in await pool.fetch(_STREAMS, sid)]
        # One call, one record: the lost stream, then the restarted one on its clock.
        assert lost["call_id"] == restarted["call_id"] == call["id"]
        assert (lost["end_reason"], lost["restarted_after"]) == ("process_lost", None)
        assert (restarted["end_reason"], restarted["restarted_after"]) == ("stop", "process_lost")
        assert restarted["owner_id"] == survivor.process_id != lost["owner_id"]
        assert restarted["frames_received_inbound"] > 0
        # The gap (the lost stream's last heartbeat to the restart) is lost audio, per track.
        heard_ms = (lost["stopped_at"] - lost["started_at"]).total_seconds() * 1000
        gap_ms = restarted["offset_ms"] - heard_ms
        assert gap_ms > 0
        assert abs(restarted["audio_lost_ms"] - 2 * gap_ms) <= 4, (restarted, heard_ms)
        assert call["audio_lost_ms"] == restarted["audio_lost_ms"]
        # The fake's stream came in where the call's timeline had got to.
        [_, replay] = fake.streams(sid)
        assert abs(replay.started_at_frame * 20 - restarted["offset_ms"]) < 1000
        assert call["status"] == "in-progress"  # its end is for its status callback to say
    consent = await pool.fetchrow(
        "SELECT recording_consent, consent_verified_by FROM calls WHERE call_sid = $1",
        consented,
    )
    assert consent is not None and tuple(consent) == (True, "detector:keypad")
    verdicts = await pool.fetch(
        """SELECT e.verdict FROM consent_events e JOIN calls c ON c.id = e.call_id
           WHERE c.call_sid = $1 AND e.kind = 'answer'""",
        consented,
    )
    assert [v["verdict"] for v in verdicts] == ["granted"]
    alerts = await pool.fetchval(
        """SELECT count(*) FROM escalations e JOIN calls c ON c.id = e.call_id
           WHERE c.call_sid = $1 AND e.rule_name = 'operator-key'""",
        consented,
    )
    assert alerts == 1


async def test_calls_a_stopping_node_could_not_finish_are_handed_to_another(
    pg_dsn: str,
    pool: Pool,
    tmp_path: Path,
    start_server: Callable[..., AbstractAsyncContextManager[RunningServer]],
) -> None:
    """A deploy: node A gets SIGTERM with live calls and no drain time (VOXSOUTH_DRAIN_TIMEOUT_S
    0), so its streams close `server_shutdown`; B streams each call again and hears it."""
    await put_out_of_reach(pool)
    org_id = await calls.create_org(pool, "Node stop", "one_party")
    number = new_number()
    await calls.add_phone_number(pool, org_id, number)
    env = cli_env(tmp_path, pg_dsn, VOXSOUTH_SIGNALWIRE_SIGNING_KEY=SIGNING_KEY)
    async with (
        running_fake_signalwire(
            SIGNALWIRE_PROJECT, SIGNALWIRE_TOKEN, allow_insecure_media=True
        ) as fake,
        watching(pool, pg_dsn) as changes,
        aiohttp.ClientSession() as http,
        start_server(
            signalwire_space_url=fake.url, signalwire_project_id=SIGNALWIRE_PROJECT,
            signalwire_api_token=SIGNALWIRE_TOKEN, signalwire_signing_key=SIGNING_KEY,
            process_heartbeat_s=0.1, restream_max_attempts=3,
        ) as survivor,
    ):  # fmt: skip
        async with serving(env, tmp_path) as stopping:
            sids = await live_calls(http, fake, stopping.http_url, number, 2)
            for sid in sids:
                await changes.until(
                    f"SELECT count(*) = 1 FROM ({_STREAMS}) s WHERE s.status = 'streaming'", sid
                )
        assert stopping.returncode == 0  # left by SIGTERM: a clean stop, not a loss
        for sid in sids:
            await changes.until(
                f"SELECT count(*) = 1 FROM ({_STREAMS}) s WHERE s.status = 'streaming' "
                "AND s.owner_id = $2 AND s.restarted_after = 'server_shutdown'",
                sid, survivor.process_id,
            )  # fmt: skip
            fake.timelines[sid].press("5")
        for sid in sids:
            await changes.until(
                """SELECT count(*) >= 1 FROM dtmf_events d JOIN calls c ON c.id = d.call_id
                   WHERE c.call_sid = $1 AND d.digit = '5'""",
                sid,
            )
            fake.end_call(sid)
        for sid in sids:
            await changes.until(f"SELECT bool_and(s.status = 'stopped') FROM ({_STREAMS}) s", sid)
    for sid in sids:
        first, restarted = [dict(r) for r in await pool.fetch(_STREAMS, sid)]
        assert first["end_reason"] == "server_shutdown"
        assert (restarted["end_reason"], restarted["restarted_after"]) == (
            "stop",
            "server_shutdown",
        )
        assert restarted["audio_lost_ms"] > 0  # the handover's gap, counted
