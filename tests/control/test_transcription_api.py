"""An org's choice of what transcribes its calls, through the REST API: admins choose, the key
goes in sealed and never comes out."""

from __future__ import annotations

import aiohttp

from server.app import RunningServer
from storage.db import Pool
from tests.control.test_escalations_api import api
from tests.support.accounts import make_org

PATH = "/api/org/transcription"
ORG_KEY = "aai-org-key-7c1e9b3f5d"


async def test_by_default_the_deployments_engine_hears_the_orgs_calls(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Speech default")
    status, body = await api(http, srv, org, "analyst", "GET", PATH)
    assert status == 200
    assert body["engine"] == "deployment" and body["in_effect"] == "none"
    assert body["api_key_set"] is False and body["api_key_hint"] is None
    # The test server runs no offline engine: choosing it is not offered.
    assert body["available"] == ["deployment", "assemblyai", "deepgram"]


async def test_an_admin_sets_the_orgs_own_key_which_is_stored_sealed_and_never_returned(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Speech own key")
    choice = {"engine": "assemblyai", "api_key": ORG_KEY}
    for role in ("operator", "analyst", "viewer"):
        status, body = await api(http, srv, org, role, "PUT", PATH, choice)
        assert status == 403, role
    status, body = await api(http, srv, org, "admin", "PUT", PATH, choice)
    assert status == 200
    assert body == {
        "engine": "assemblyai", "in_effect": "assemblyai", "api_key_set": True,
        "api_key_hint": "…" + ORG_KEY[-4:],
        "available": ["deployment", "assemblyai", "deepgram"],
    }  # fmt: skip
    status, read = await api(http, srv, org, "analyst", "GET", PATH)
    assert status == 200 and ORG_KEY not in str(read) and read["api_key_hint"] == "…" + ORG_KEY[-4:]
    status, _ = await api(http, srv, org, "viewer", "GET", PATH)  # viewers read no transcripts
    assert status == 403

    stored = await pool.fetchrow(
        "SELECT engine, api_key_sealed FROM org_transcription WHERE org_id = $1", org.id
    )
    assert stored is not None and stored["engine"] == "assemblyai"
    assert ORG_KEY.encode() not in stored["api_key_sealed"]
    audits = await pool.fetch(
        "SELECT before, after FROM audit_log WHERE org_id = $1 AND action = $2",
        org.id,
        "org.transcription.set",
    )
    assert len(audits) == 1 and ORG_KEY not in str(dict(audits[0]))

    # The same service again without a key keeps the key; another service does not take it.
    status, body = await api(http, srv, org, "admin", "PUT", PATH, {"engine": "assemblyai"})
    assert status == 200 and body["api_key_set"] is True
    status, body = await api(http, srv, org, "owner", "PUT", PATH, {"engine": "deepgram"})
    assert status == 422 and body["error"]["code"] == "KEY_REQUIRED"
    status, body = await api(http, srv, org, "owner", "PUT", PATH, {"engine": "deployment"})
    assert status == 200 and body["api_key_set"] is False
    gone = await pool.fetchval(
        "SELECT api_key_sealed FROM org_transcription WHERE org_id = $1", org.id
    )
    assert gone is None


async def test_choices_that_would_hear_nothing_are_refused_with_a_reason(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Speech refused")
    cases = [
        ({"engine": "whisper"}, 422, "ENGINE_UNAVAILABLE"),  # no offline engine here
        ({"engine": "deepgram"}, 422, "KEY_REQUIRED"),  # no deployment key either
        ({"engine": "deployment", "api_key": ORG_KEY}, 422, "KEY_NOT_USED"),
        ({"engine": "assemblyai", "api_key": "short"}, 422, "VALIDATION_FAILED"),
        ({"engine": "assemblyai", "api_key": ORG_KEY + "\r\nX-Evil: 1"}, 422, "INVALID_KEY"),
        ({"engine": "google"}, 422, "VALIDATION_FAILED"),
    ]
    for choice, want_status, code in cases:
        status, body = await api(http, srv, org, "admin", "PUT", PATH, choice)
        assert (status, body["error"]["code"]) == (want_status, code), choice
        assert "request_id" in body["error"] and ORG_KEY not in str(body)
    status, body = await api(http, srv, org, "analyst", "GET", PATH)
    assert body["engine"] == "deployment"
