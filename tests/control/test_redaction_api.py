"""An org's choice of what is redacted from its calls' words, through the REST API: everything
by default, admins choose, audited, and the choice reaches the media plane's policy."""

from __future__ import annotations

import aiohttp

from media.events import REDACTION_KINDS
from server.app import RunningServer
from server.call_policy import policy_of
from storage import calls
from storage.db import Pool
from tests.control.test_api_access import new_call
from tests.control.test_escalations_api import api
from tests.support.accounts import make_org

PATH = "/api/org/redaction"


async def test_everything_is_redacted_until_an_admin_chooses_otherwise(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Redaction choice")
    call_id = await new_call(pool, org)
    status, body = await api(http, srv, org, "viewer", "GET", PATH)
    assert status == 200
    assert body == {"kinds": sorted(REDACTION_KINDS), "available": list(REDACTION_KINDS)}

    for role in ("operator", "analyst", "viewer"):
        status, _ = await api(http, srv, org, role, "PUT", PATH, {"kinds": []})
        assert status == 403, role
    status, body = await api(
        http, srv, org, "admin", "PUT", PATH, {"kinds": ["phone", "card", "card"]}
    )
    assert status == 200 and body["kinds"] == ["card", "phone"]
    [audit] = await pool.fetch(
        "SELECT before, after FROM audit_log WHERE org_id = $1 AND action = 'org.redaction.set'",
        org.id,
    )
    assert '"card"' in audit["after"] and '"email"' in audit["before"]

    # What the media plane will apply to the org's next stream.
    row = await calls.call_admission(pool, call_id, org.id)
    assert row is not None
    assert policy_of(row, []).redact == {"card", "phone"}


async def test_a_kind_that_does_not_exist_is_refused_with_the_one_error_shape(
    srv: RunningServer, pool: Pool, http: aiohttp.ClientSession
) -> None:
    org = await make_org(pool, "Redaction refused")
    for bad in ({"kinds": ["passport"]}, {"kinds": "card"}, {}, {"kinds": [], "extra": 1}):
        status, body = await api(http, srv, org, "owner", "PUT", PATH, bad)
        assert status == 422, bad
        assert body["error"]["code"] and body["error"]["request_id"], bad
    status, body = await api(http, srv, org, "owner", "GET", PATH)
    assert body["kinds"] == sorted(REDACTION_KINDS)  # unchanged
