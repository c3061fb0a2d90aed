"""Retention and erasure on a real Postgres, recordings deleted at the fake SignalWire: what an
org keeps for a limited time goes once it is older than that, in batches, by one process at a
time; an erasure takes a call's or a number's words, digits, feed rows and recordings; other
orgs, newer rows and the audit trail of it stay."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import REGISTRY

from control.api.outbound import SIGNALWIRE
from control.retention import SWEEP_LOCK, RetentionConfig, RetentionSweeper
from media.events import (
    ConsentEvidence,
    DtmfReceived,
    EscalationRaised,
    MediaEvent,
    TranscriptSegment,
)
from server.app import RunningServer
from storage import recordings, retention
from storage.db import Pool
from storage.event_writer import write_events
from tests.control.test_api_access import new_call
from tests.support.accounts import Org, make_org
from tests.support.fake_signalwire import Fail, FakeSignalWire

CALLER = "+15550142424"
OLD = timedelta(days=40)
"""Older than the 30 days the tests' policies keep most kinds."""


def call_events(org: Org, call_id: uuid.UUID, words: str) -> list[MediaEvent]:
    """What the media plane writes of a call: a segment, a key, consent evidence, an alert."""
    common: dict[str, Any] = {"org_id": org.id, "call_id": call_id, "stream_sid": "s1"}
    return [
        TranscriptSegment(
            **common, track="inbound", start_ms=0, end_ms=900, text=words, confidence=0.9,
            is_final=True, engine="test",
        ),
        DtmfReceived(**common, track="inbound", digit="7", offset_ms=950),
        ConsentEvidence(
            **common, kind="answer", detector="caller_speech", verdict="granted",
            track="inbound", offset_ms=0, evidence=words,
        ),
        EscalationRaised(
            **common, rule_id=None, rule_name="Manager", kind="phrase", severity="high",
            track="inbound", start_ms=0, end_ms=900, evidence=words,
        ),
    ]  # fmt: skip


async def a_call(
    pool: Pool, org: Org, fake: FakeSignalWire, words: str, *, age: timedelta = timedelta(0)
) -> tuple[uuid.UUID, str]:
    """An ended call from CALLER with its words, key, evidence, alert, feed rows and a
    recording at SignalWire, all `age` old; returns it and its recording's SID."""
    call_id = await new_call(pool, org)
    call_sid = await pool.fetchval(
        "UPDATE calls SET status = 'completed', from_number = $2 WHERE id = $1 RETURNING call_sid",
        call_id, CALLER,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, call_events(org, call_id, words))
    sid = f"RE{uuid.uuid4().hex}"
    fake.recording_media[sid] = b"RIFF...."
    await recordings.apply_status(
        pool, call_sid=call_sid, recording_sid=sid, status="completed",
        url=fake.recording_url(sid), duration_s=3, channels=1,
    )  # fmt: skip
    then = datetime.now(UTC) - age
    for table, column in (("transcript_segments", "created_at"), ("dtmf_events", "received_at"),
                          ("escalations", "raised_at"), ("feed_events", "created_at"),
                          ("recordings", "created_at")):  # fmt: skip
        await pool.execute(f"UPDATE {table} SET {column} = $2 WHERE call_id = $1", call_id, then)
    return call_id, sid


async def left(pool: Pool, call_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in ("transcript_segments", "dtmf_events", "escalations", "feed_events",
                  "recordings"):  # fmt: skip
        counts[table] = await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE call_id = $1", call_id
        )
    return counts


KEPT = {"transcript_segments": 1, "dtmf_events": 1, "escalations": 1, "feed_events": 4,
        "recordings": 1}  # fmt: skip
GONE = dict.fromkeys(KEPT, 0)


def deleted_total(kind: str) -> float:
    return REGISTRY.get_sample_value("voxsouth_retention_deleted_total", {"kind": kind}) or 0.0


async def put_json(
    srv: RunningServer, org: Org, path: str, body: dict[str, Any], role: str = "admin",
    method: str = "PUT",
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            srv.http_url + path,
            json=body,
            headers=org.bearer(role),  # type: ignore[arg-type]
        ) as resp,
    ):
        return resp.status, await resp.json()


# --- the policy --------------------------------------------------------------------------


async def test_the_policy_is_kept_as_an_admin_sets_it_and_the_audit_log_outlives_the_rest(
    wired: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Policy org")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{wired.http_url}/api/org/retention", headers=org.bearer("viewer")
        ) as resp:
            assert await resp.json() == {f"{k}_days": None for k in retention.KINDS}
    policy = {"transcripts_days": 30, "recordings_days": 90, "audit_days": 365}
    status, body = await put_json(wired, org, "/api/org/retention", policy)
    assert status == 200 and body == {**{f"{k}_days": None for k in retention.KINDS}, **policy}
    status, body = await put_json(
        wired, org, "/api/org/retention", {"transcripts_days": 400, "audit_days": 365}
    )
    assert (status, body["error"]["code"]) == (422, "VALIDATION_FAILED")
    status, body = await put_json(wired, org, "/api/org/retention", {"feed_days": 0})
    assert status == 422
    audits = await pool.fetch(
        "SELECT after FROM audit_log WHERE org_id = $1 AND action = 'org.retention.set'", org.id
    )
    assert [json.loads(a["after"])["recordings_days"] for a in audits] == [90]


# --- the sweeper -------------------------------------------------------------------------


async def test_the_sweeper_deletes_what_is_past_retention_in_batches_and_nothing_else(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org, other = await make_org(pool, "Keeps 30 days"), await make_org(pool, "Keeps all")
    async with pool.acquire() as conn:
        await retention.put_policy(conn, org.id, {
            "transcripts": 30, "recordings": 30, "dtmf": 30, "escalations": 30, "feed": 30,
            "audit": 400,
        })  # fmt: skip
    old = [await a_call(pool, org, fake, f"old call {i}", age=OLD) for i in range(3)]
    new, _ = await a_call(pool, org, fake, "new call")
    theirs, _ = await a_call(pool, other, fake, "their old call", age=OLD)
    await pool.execute(
        """INSERT INTO audit_log (org_id, actor_type, action, at)
           VALUES ($1, 'system', 'ancient', now() - interval '500 days'),
                  ($1, 'system', 'recent', now() - interval '300 days')""",
        org.id,
    )
    before = {k: deleted_total(k) for k in retention.KINDS}
    sweeper = RetentionSweeper(pool, wired.app[SIGNALWIRE], RetentionConfig(batch=2))
    swept = await sweeper.sweep()

    assert swept == {"transcripts": 3, "dtmf": 3, "escalations": 3, "feed": 12,
                     "recordings": 3, "audit": 1}  # fmt: skip
    for call_id, _sid in old:
        assert await left(pool, call_id) == GONE
    assert await left(pool, new) == KEPT
    assert await left(pool, theirs) == KEPT  # an org with no policy keeps everything
    deleted_at_signalwire = {
        r.path.rsplit("/", 1)[-1] for r in fake.requests_for("delete_recording")
    }
    assert deleted_at_signalwire == {f"{sid}.json" for _call, sid in old}
    actions = await pool.fetch(
        "SELECT action, after FROM audit_log WHERE org_id = $1 AND action IN "
        "('ancient', 'recent', 'retention.sweep') ORDER BY id",
        org.id,
    )
    assert [a["action"] for a in actions] == ["recent", "retention.sweep"]
    assert json.loads(actions[-1]["after"]) == swept  # counts, never content
    assert {k: deleted_total(k) - before[k] for k in retention.KINDS} == swept
    # Consent evidence is not a kind retention deletes: what decided the recording stays.
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM consent_events WHERE call_id = ANY($1::uuid[])",
            [c for c, _ in old],
        )
        == 3
    )
    assert await sweeper.sweep() == {}  # nothing left to delete


async def test_one_process_sweeps_at_a_time(wired: RunningServer, pool: Pool) -> None:
    sweeper = RetentionSweeper(pool, wired.app[SIGNALWIRE], RetentionConfig())
    async with pool.acquire() as other_process:
        assert await other_process.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", SWEEP_LOCK)
        try:
            assert await sweeper.sweep() is None
        finally:
            await other_process.execute("SELECT pg_advisory_unlock(hashtext($1))", SWEEP_LOCK)
    assert await sweeper.sweep() is not None


async def test_a_recording_signalwire_will_not_delete_stays_listed_for_the_next_sweep(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "SignalWire refuses")
    async with pool.acquire() as conn:
        await retention.put_policy(
            conn, org.id, {**dict.fromkeys(retention.KINDS), "recordings": 30}
        )
    call_id, sid = await a_call(pool, org, fake, "old", age=OLD)
    fake.script("delete_recording", [Fail(400)])
    failures = (
        REGISTRY.get_sample_value("voxsouth_retention_failures_total", {"kind": "recordings"})
        or 0.0
    )
    sweeper = RetentionSweeper(pool, wired.app[SIGNALWIRE], RetentionConfig())
    assert await sweeper.sweep() == {}
    assert (await left(pool, call_id))["recordings"] == 1
    assert (
        REGISTRY.get_sample_value("voxsouth_retention_failures_total", {"kind": "recordings"})
        == failures + 1
    )
    assert await sweeper.sweep() == {"recordings": 1}  # SignalWire answers again


# --- erasure -----------------------------------------------------------------------------


async def erase(srv: RunningServer, org: Org, body: dict[str, Any], role: str = "admin"
                ) -> tuple[int, dict[str, Any]]:  # fmt: skip
    return await put_json(srv, org, "/api/erasures", body, role, method="POST")


async def test_erasing_a_call_takes_its_words_digits_feed_alerts_and_recording(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Erase a call")
    call_id, sid = await a_call(pool, org, fake, "my date of birth is the fourth of july")
    kept, _ = await a_call(pool, org, fake, "another call")
    status, body = await erase(wired, org, {"call_id": str(call_id)})
    assert status == 200, body
    assert body == {"calls": 1, "erased": {
        "transcript_segments": 1, "dtmf_events": 1, "feed_events": 4, "escalations": 1,
        "recordings": 1, "webhook_deliveries": 0, "consent_evidence": 1,
    }}  # fmt: skip
    assert await left(pool, call_id) == GONE
    assert await left(pool, kept) == KEPT
    assert sid not in fake.recordings or fake.recordings[sid].get("status") == "deleted"
    assert [r.path for r in fake.requests_for("delete_recording")][-1].endswith(f"/{sid}.json")
    evidence = await pool.fetchval(
        "SELECT evidence FROM consent_events WHERE call_id = $1", call_id
    )
    assert evidence == retention.ERASED
    [audited] = await pool.fetch(
        "SELECT resource_type, resource_id, after FROM audit_log WHERE org_id = $1 "
        "AND action = 'erasure'",
        org.id,
    )
    assert (audited["resource_type"], audited["resource_id"]) == ("call", str(call_id))
    assert "july" not in audited["after"]


async def test_erasing_a_phone_number_takes_every_call_with_it_and_the_number(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Erase a number")
    first, _ = await a_call(pool, org, fake, "first")
    second, _ = await a_call(pool, org, fake, "second")
    someone_else, _ = await a_call(pool, org, fake, "someone else")
    await pool.execute("UPDATE calls SET from_number = '+15550177777' WHERE id = $1", someone_else)
    status, body = await erase(wired, org, {"phone_number": CALLER})
    assert (status, body["calls"]) == (200, 2)
    for call_id in (first, second):
        assert await left(pool, call_id) == GONE
        number = await pool.fetchval("SELECT from_number FROM calls WHERE id = $1", call_id)
        assert number == retention.ERASED
    assert await left(pool, someone_else) == KEPT
    audited = await pool.fetchrow(
        "SELECT resource_type, resource_id, after::text FROM audit_log WHERE org_id = $1 "
        "AND action = 'erasure'",
        org.id,
    )
    assert audited is not None
    assert (audited["resource_type"], audited["resource_id"]) == ("phone_number", None)
    assert CALLER not in audited["after"]  # the request itself is personal data


async def test_erasure_refuses_live_calls_own_numbers_other_orgs_and_unclear_requests(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org, other = await make_org(pool, "Careful"), await make_org(pool, "Other")
    call_id, _ = await a_call(pool, org, fake, "words")
    await pool.execute("UPDATE calls SET status = 'in-progress' WHERE id = $1", call_id)
    status, body = await erase(wired, org, {"call_id": str(call_id)})
    assert (status, body["error"]["code"]) == (409, "CALL_IN_PROGRESS")
    assert body["error"]["details"] == {"call_ids": [str(call_id)]}
    assert (await erase(wired, other, {"call_id": str(call_id)}))[0] == 404
    status, body = await erase(wired, org, {"phone_number": org.number})
    assert (status, body["error"]["code"]) == (422, "OWN_NUMBER")
    for unclear in ({}, {"call_id": str(call_id), "phone_number": CALLER},
                    {"phone_number": "555-0142"}):  # fmt: skip
        assert (await erase(wired, org, unclear))[0] == 422
    assert (await erase(wired, org, {"call_id": str(call_id)}, role="operator"))[0] == 403
    assert await left(pool, call_id) == KEPT


async def test_when_signalwire_will_not_delete_the_recording_nothing_is_erased(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Not yet")
    call_id, _ = await a_call(pool, org, fake, "words")
    fake.script("delete_recording", [Fail(400)])
    status, body = await erase(wired, org, {"call_id": str(call_id)})
    assert (status, body["error"]["code"]) == (502, "RECORDING_NOT_DELETED")
    assert await left(pool, call_id) == KEPT
