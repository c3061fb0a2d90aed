"""Row-level security: the second wall between organizations, tested without the first.

Every query here deliberately leaves out its org filter; Postgres alone must keep org A's
rows away from org B's tenant.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from media.events import (
    ConsentEvidence,
    DtmfReceived,
    EscalationRaised,
    MediaEvent,
    StreamStarted,
    TranscriptSegment,
)
from storage import (
    accounts,
    audio,
    calls,
    campaigns,
    email_outbox,
    escalations,
    idempotency,
    org_transcription,
    outbound_webhooks,
    retention,
    shopper,
    surveys,
    targets,
    team,
    translations,
)
from storage.db import Pool
from storage.event_writer import write_events
from storage.org_transcription import TranscriptionChoice
from storage.tenancy import tenant
from tests.support.accounts import Org, make_org

ORG_TABLES = (
    "phone_numbers", "calls", "media_streams", "transcript_segments", "dtmf_events",
    "memberships", "sessions", "api_keys", "audit_log", "invitations", "idempotency_keys",
    "caller_ids", "consent_events", "escalation_rules", "escalations", "recordings",
    "feed_events", "org_transcription", "retention_policies", "voice_targets", "do_not_call",
    "campaigns", "campaign_targets", "surveys", "survey_answers", "shopper_scripts",
    "shopper_scores", "webhook_endpoints", "webhook_deliveries",
    "email_outbox", "segment_translations", "audio_clips",
)  # fmt: skip


async def populate(pool: Pool, org: Org) -> uuid.UUID:
    """A row in every org table for `org`; returns its call id."""
    call_sid = str(uuid.uuid4())
    ref = await calls.open_call(
        pool, org_id=org.id, call_sid=call_sid, account_sid=None, direction="inbound",
        from_number="+15550199999", to_number=org.number, status="in-progress",
    )  # fmt: skip
    sid = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        ids: dict[str, Any] = {"org_id": org.id, "call_id": ref.id, "stream_sid": sid}
        events: list[MediaEvent] = [
            StreamStarted(
                **ids, call_sid="x", stream_name=None, tracks=("inbound",),
                encoding="audio/x-mulaw", sample_rate=8000,
            ),
            TranscriptSegment(
                **ids, track="inbound", start_ms=0, end_ms=10, text="hi", confidence=None,
                is_final=True, engine="t",
            ),
            DtmfReceived(**ids, track="inbound", digit="1", offset_ms=5),
            ConsentEvidence(
                **ids, kind="answer", detector="caller_speech", verdict="granted",
                track="inbound", offset_ms=0, evidence="yes",
            ),
            EscalationRaised(
                **ids, rule_id=None, rule_name="manager", kind="phrase", severity="high",
                track="inbound", start_ms=0, end_ms=10, evidence="manager",
            ),
        ]  # fmt: skip
        await write_events(conn, events)
    user_id = await pool.fetchval("SELECT user_id FROM memberships WHERE org_id = $1", org.id)
    await accounts.create_session(
        pool, token_hash=uuid.uuid4().bytes, csrf_token="c", user_id=user_id, org_id=org.id,
        expires_at=await pool.fetchval("SELECT now() + interval '1 hour'"),
    )  # fmt: skip
    await accounts.record_audit(pool, org_id=org.id, actor_type="system", actor_id=None,
                                action="test")  # fmt: skip
    await pool.execute(
        "INSERT INTO caller_ids (org_id, number, signalwire_id) VALUES ($1, $2, 'sw-1')",
        org.id,
        org.number,
    )
    await idempotency.claim(pool, org.id, "key", b"hash", await pool.fetchval("SELECT now()"))
    await escalations.create_rule(
        pool, org.id, name="r", kind="keypad", severity="low", cooldown_s=0, params={}
    )
    await pool.execute(
        "INSERT INTO recordings (org_id, call_id, recording_sid, status) VALUES ($1, $2, $3, 'x')",
        org.id, ref.id, str(uuid.uuid4()),
    )  # fmt: skip
    await org_transcription.put(pool, org.id, TranscriptionChoice("assemblyai", b"sealed", "abcd"))
    await retention.put_policy(pool, org.id, {**dict.fromkeys(retention.KINDS), "feed": 30})
    await targets.save_targets(pool, org.id, [{
        "number": "+17065550100", "name": None, "time_zone": "America/New_York",
        "time_zone_set": False, "tags": [], "fields": {},
    }], replace=False)  # fmt: skip
    await targets.add_do_not_call(pool, org.id, "+17065550177", None, "test")
    campaign = await campaigns.create(pool, org.id, {
        "name": "c", "flow": {"say": "hello"}, "from_number": org.number, "created_by": "test",
    })  # fmt: skip
    await campaigns.enroll(pool, org.id, campaign["id"], tag=None, target_ids=None)
    survey = await surveys.create(
        pool, org.id, "s", [{"kind": "yes_no", "prompt": "?"}], "bye", "t"
    )
    await outbound_webhooks.create_endpoint(
        pool, org.id, "https://example.com/hook", ["call.ended"], b"sealed", "t"
    )
    await calls.apply_call_status(  # call.ended queues a delivery to the endpoint
        pool, call_sid=call_sid, status="completed", sequence=None, at=datetime.now(UTC),
        duration_seconds=None,
    )  # fmt: skip
    await email_outbox.queue(pool, org.id, "test", "someone@example.com", "s", "b")
    segment = await pool.fetchval(
        "SELECT id FROM transcript_segments WHERE call_id = $1 LIMIT 1", ref.id
    )
    await translations.store(pool, org.id, ref.id, "es", "test", [(segment, "hola")])
    await audio.add(pool, org.id, audio.NewClip(name="a", wav=b"RIFF", duration_ms=0,
                                                created_by="t", uploaded_type="wav"))  # fmt: skip
    script = await shopper.create_script(pool, org.id, "s", [], "t")
    call = {"id": ref.id, "started_at": datetime.now(UTC)}
    await shopper.save_score(pool, org.id, script["id"], call, "+17065550100", 50.0, [])
    await surveys.record_answer(pool, org.id, survey["id"], ref.id, 0, value="yes", digits="1",
                                speech=None, confidence=None)  # fmt: skip
    async with pool.acquire() as conn:
        await team.create_invitation(
            conn, org_id=org.id, email="invitee@example.com", role="viewer",
            token_hash=uuid.uuid4().bytes, created_by=None,
            expires_at=await conn.fetchval("SELECT now() + interval '1 day'"),
        )  # fmt: skip
    return ref.id


@pytest.fixture
async def two_orgs(pool: Pool) -> tuple[Org, Org, uuid.UUID]:
    a, b = await make_org(pool, "RLS A"), await make_org(pool, "RLS B")
    call_a = await populate(pool, a)
    await populate(pool, b)
    return a, b, call_a


async def test_every_org_table_has_row_level_security(pool: Pool) -> None:
    rows = await pool.fetch(
        """SELECT c.table_name, t.relrowsecurity,
                  (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.table_name) AS policies
           FROM information_schema.columns c JOIN pg_class t ON t.relname = c.table_name
           WHERE c.table_schema = 'public' AND c.column_name = 'org_id'"""
    )
    found = {r["table_name"]: (r["relrowsecurity"], r["policies"]) for r in rows}
    assert set(found) == set(ORG_TABLES), "a new org table must get RLS and be listed here"
    assert all(enabled and policies >= 1 for enabled, policies in found.values()), found


async def test_a_query_without_its_org_filter_sees_only_its_own_org(
    pool: Pool, two_orgs: tuple[Org, Org, uuid.UUID]
) -> None:
    a, b, _ = two_orgs
    async with tenant(pool, b.id) as conn:
        for table in ORG_TABLES:
            orgs = {r["org_id"] for r in await conn.fetch(f"SELECT org_id FROM {table}")}
            assert orgs == {b.id}, table
        assert [r["id"] for r in await conn.fetch("SELECT id FROM organizations")] == [b.id]


async def test_another_orgs_rows_cannot_be_changed_or_forged(
    pool: Pool, two_orgs: tuple[Org, Org, uuid.UUID]
) -> None:
    a, b, call_a = two_orgs
    async with tenant(pool, b.id) as conn:
        assert await conn.execute("UPDATE calls SET disposition = 'x' WHERE id = $1", call_a) == (
            "UPDATE 0"
        )
        assert await conn.execute("DELETE FROM transcript_segments") != "DELETE 0"  # its own
    async with tenant(pool, b.id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute(
                "INSERT INTO phone_numbers (org_id, number) VALUES ($1, '+15550001111')", a.id
            )
    assert (
        await pool.fetchval("SELECT count(*) FROM transcript_segments WHERE org_id = $1", a.id) == 1
    )


async def test_no_org_set_means_no_rows(pool: Pool, two_orgs: tuple[Org, Org, uuid.UUID]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE voxsouth_app")
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0


async def test_the_tenant_role_cannot_rewrite_the_audit_trail(
    pool: Pool, two_orgs: tuple[Org, Org, uuid.UUID]
) -> None:
    _, b, _ = two_orgs
    async with tenant(pool, b.id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")


async def test_the_tenant_role_ends_with_the_transaction(pool: Pool, two_orgs: object) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SELECT set_config('role', 'voxsouth_app', true)")
            assert await conn.fetchval("SELECT current_user") == "voxsouth_app"
        assert await conn.fetchval("SELECT current_user") != "voxsouth_app"
