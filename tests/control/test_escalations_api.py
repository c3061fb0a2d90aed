"""Escalations and escalation rules through the REST API, against the real server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from media.events import EscalationRaised
from server.app import RunningServer
from storage import calls
from storage.db import Pool
from tests.conftest import timeout
from tests.support.accounts import Org, make_org


async def raise_escalation(srv: RunningServer, pool: Pool, org: Org, **fields: Any) -> uuid.UUID:
    call = await calls.open_call(
        pool, org_id=org.id, call_sid=str(uuid.uuid4()), account_sid=None, direction="inbound",
        from_number="+15550100001", to_number=org.number, status="in-progress",
    )  # fmt: skip
    values: dict[str, Any] = {
        "org_id": org.id, "call_id": call.id, "stream_sid": "s", "rule_id": None,
        "rule_name": "manager", "kind": "phrase", "severity": "high", "track": "inbound",
        "start_ms": 4_000, "end_ms": 5_200, "evidence": "manager",
    }  # fmt: skip
    event = EscalationRaised(**(values | fields))
    srv.writer.submit(event)
    async with asyncio.timeout(timeout(10)):
        await srv.writer.wait_until(lambda: srv.writer.idle)
    return event.event_id


async def api(
    http: aiohttp.ClientSession,
    srv: RunningServer,
    org: Org,
    role: str,
    method: str,
    path: str,
    body: Any = None,
) -> tuple[int, Any]:
    headers = org.bearer(role)  # type: ignore[arg-type]  # roles are spelled right here
    async with http.request(method, srv.http_url + path, json=body, headers=headers) as response:
        payload = await response.json() if response.status != 204 else None
        return response.status, payload


async def test_escalation_sets_the_call_flags_and_is_listed(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Esc list")
    esc_id = await raise_escalation(srv, pool, org)
    row = await pool.fetchrow(
        "SELECT c.escalated, c.escalation_time, e.raised_at FROM escalations e "
        "JOIN calls c ON c.id = e.call_id WHERE e.id = $1",
        esc_id,
    )
    assert row is not None
    assert row["escalated"] is True and row["escalation_time"] == row["raised_at"]
    status, listed = await api(http, srv, org, "viewer", "GET", "/api/escalations?status=open")
    assert status == 200
    assert [e["id"] for e in listed["escalations"]] == [str(esc_id)]
    assert listed["escalations"][0]["severity"] == "high"
    other = await make_org(pool, "Esc other")
    status, theirs = await api(http, srv, other, "owner", "GET", f"/api/escalations/{esc_id}")
    assert status == 404


async def test_acknowledge_then_resolve_is_audited_and_resolved_is_final(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Esc flow")
    esc_id = await raise_escalation(srv, pool, org)
    base = f"/api/escalations/{esc_id}"
    status, body = await api(http, srv, org, "viewer", "POST", f"{base}/acknowledge", {})
    assert status == 403
    status, acked = await api(http, srv, org, "operator", "POST", f"{base}/acknowledge", {})
    assert status == 200 and acked["status"] == "acknowledged"
    assert acked["acknowledged_by"].startswith("api_key:")
    status, again = await api(http, srv, org, "operator", "POST", f"{base}/acknowledge", {})
    assert status == 200 and again["acknowledged_at"] == acked["acknowledged_at"]
    status, resolved = await api(
        http, srv, org, "operator", "POST", f"{base}/resolve", {"notes": "called back"}
    )
    assert status == 200
    assert (resolved["status"], resolved["resolution_notes"]) == ("resolved", "called back")
    status, late = await api(http, srv, org, "operator", "POST", f"{base}/acknowledge", {})
    assert (status, late["error"]["code"]) == (409, "ESCALATION_RESOLVED")
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE resource_id = $1 ORDER BY id", str(esc_id)
    )
    assert [a["action"] for a in actions] == ["escalation.acknowledge", "escalation.resolve"]


async def test_assign_only_to_members_of_the_org(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org, other = await make_org(pool, "Esc assign"), await make_org(pool, "Esc stranger")
    esc_id = await raise_escalation(srv, pool, org)
    member = await pool.fetchval("SELECT id FROM users WHERE email = $1", org.emails["operator"])
    stranger = await pool.fetchval("SELECT id FROM users WHERE email = $1", other.emails["admin"])
    path = f"/api/escalations/{esc_id}/assign"
    status, body = await api(http, srv, org, "admin", "POST", path, {"user_id": str(stranger)})
    assert status == 422
    status, body = await api(http, srv, org, "admin", "POST", path, {"user_id": str(member)})
    assert status == 200 and body["assigned_to"] == str(member)
    status, mine = await api(
        http, srv, org, "viewer", "GET", f"/api/escalations?assigned_to={member}"
    )
    assert [e["id"] for e in mine["escalations"]] == [str(esc_id)]


async def test_a_new_org_gets_default_rules_and_admins_edit_them(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Rules")
    status, listed = await api(http, srv, org, "viewer", "GET", "/api/escalation-rules")
    assert status == 200
    kinds = {r["kind"] for r in listed["rules"]}
    assert {"phrase", "keypad", "raised_voice", "dead_air", "talk_over", "sentiment"} <= kinds
    rule = {
        "name": "refund-threat",
        "kind": "phrase",
        "severity": "medium",
        "cooldown_s": 60,
        "params": {"phrases": ["chargeback", "refund"]},
    }
    status, body = await api(http, srv, org, "operator", "POST", "/api/escalation-rules", rule)
    assert status == 403
    status, created = await api(http, srv, org, "admin", "POST", "/api/escalation-rules", rule)
    assert status == 201
    assert created["params"]["tracks"]  # defaults filled in
    status, dup = await api(http, srv, org, "admin", "POST", "/api/escalation-rules", rule)
    assert (status, dup["error"]["code"]) == (409, "RULE_EXISTS")
    bad = rule | {"name": "bad", "params": {"phrases": []}}
    status, invalid = await api(http, srv, org, "admin", "POST", "/api/escalation-rules", bad)
    assert status == 422 and invalid["error"]["details"]["fields"][0]["field"] == "params"
    composite = {
        "name": "double-trouble",
        "kind": "composite",
        "severity": "critical",
        "params": {"rules": ["refund-threat", "no-such-rule"]},
    }
    status, _ = await api(http, srv, org, "admin", "POST", "/api/escalation-rules", composite)
    assert status == 422
    path = f"/api/escalation-rules/{created['id']}"
    status, _ = await api(http, srv, org, "admin", "PUT", path, rule | {"severity": "low"})
    assert status == 200
    status, _ = await api(http, srv, org, "admin", "DELETE", path)
    assert status == 204
    audited = await pool.fetch(
        "SELECT action FROM audit_log WHERE resource_id = $1 ORDER BY id", created["id"]
    )
    assert [a["action"] for a in audited] == [
        "escalation_rule.create",
        "escalation_rule.update",
        "escalation_rule.delete",
    ]
