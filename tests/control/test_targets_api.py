"""Voice targets and the do-not-call list through the API, on a real Postgres: what an
operator adds, imports and changes, what the list stops, and who may do what."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp

from server.app import RunningServer
from storage.db import Pool
from tests.support.accounts import Org, make_org
from tests.support.fake_signalwire import FakeSignalWire


async def call_api(
    srv: RunningServer, org: Org, method: str, path: str, role: str = "operator",
    body: dict[str, Any] | None = None, csv: str | None = None,
) -> tuple[int, Any]:  # fmt: skip
    headers = dict(org.bearer(role))  # type: ignore[arg-type]
    data = None
    if csv is not None:
        headers["Content-Type"] = "text/csv"
        data = io.BytesIO(csv.encode())
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, srv.http_url + path, json=body, data=data, headers=headers) as resp,
    ):
        return resp.status, (await resp.json() if resp.status != 204 else None)


async def every_page(
    srv: RunningServer, org: Org, path: str, key: str, *, limit: int, most: int
) -> list[Any]:
    """The `key` items of a paged list, `limit` a page, following `next_cursor` (for at most
    `most` pages)."""
    items: list[Any] = []
    cursor = ""
    for _ in range(most):
        status, page = await call_api(srv, org, "GET", f"{path}?limit={limit}{cursor}")
        assert status == 200, page
        items += page[key]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    return items


async def test_a_target_is_added_read_changed_and_removed_with_its_time_zone(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Targets org")
    status, ann = await call_api(srv, org, "POST", "/api/voice-targets", body={
        "number": "(706) 555-0100", "name": "Ann Lee", "tags": ["vip"], "fields": {"plan": "gold"},
    })  # fmt: skip
    assert status == 201, ann
    assert (ann["number"], ann["time_zone"], ann["time_zone_set"]) == (
        "+17065550100", "America/New_York", False,
    )  # fmt: skip
    status, body = await call_api(srv, org, "POST", "/api/voice-targets",
                                  body={"number": "+1 706 555 0100"})  # fmt: skip
    assert (status, body["error"]["code"]) == (409, "DUPLICATE")
    status, body = await call_api(srv, org, "POST", "/api/voice-targets",
                                  body={"number": "+61412345678"})  # fmt: skip
    assert (status, body["error"]["details"]["fields"][0]["field"]) == (422, "time_zone")

    path = f"/api/voice-targets/{ann['id']}"
    status, changed = await call_api(srv, org, "PATCH", path,
                                     body={"time_zone": "America/Denver", "tags": []})  # fmt: skip
    assert status == 200
    assert (changed["time_zone"], changed["time_zone_set"], changed["tags"]) == (
        "America/Denver", True, [],
    )  # fmt: skip
    assert changed["fields"] == {"plan": "gold"} and changed["name"] == "Ann Lee"
    status, read = await call_api(srv, org, "GET", path, role="analyst")
    assert (status, read["time_zone"]) == (200, "America/Denver")
    assert (await call_api(srv, org, "PATCH", path, role="analyst", body={"name": "x"}))[0] == 403
    assert (await call_api(srv, org, "GET", path, role="viewer"))[0] == 403
    other = await make_org(pool, "Not theirs")
    assert (await call_api(srv, other, "GET", path))[0] == 404
    assert (await call_api(srv, org, "DELETE", path))[0] == 204
    assert (await call_api(srv, org, "GET", path))[0] == 404
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE org_id = $1 AND resource_type = 'voice_target' "
        "ORDER BY id",
        org.id,
    )
    assert [a["action"] for a in actions] == [
        "voice_target.create", "voice_target.update", "voice_target.delete",
    ]  # fmt: skip


async def test_a_csv_import_adds_updates_or_keeps_and_reports_every_rejected_row(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Import org")
    first = "number,name,tags,plan\n(706) 555-0100,Ann,vip,gold\n+13125550100,Bo,,\nnope,Cy,,\n"
    status, report = await call_api(srv, org, "POST", "/api/voice-targets/import", csv=first)
    assert status == 200, report
    assert (report["added"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert report["rejected"] == [
        {"line": 4, "field": "number", "message": "'nope' is not a phone number"}
    ]
    again = "number,name\n706-555-0100,Ann Lee\n+14045550100,Di\n"
    status, report = await call_api(
        srv, org, "POST", "/api/voice-targets/import?on_duplicate=skip", csv=again
    )
    assert (report["added"], report["unchanged"]) == (1, 1)
    status, report = await call_api(srv, org, "POST", "/api/voice-targets/import", csv=again)
    assert (report["added"], report["updated"]) == (0, 2)
    status, page = await call_api(srv, org, "GET", "/api/voice-targets?tag=vip")
    assert status == 200 and page["targets"] == []  # the update replaced Ann's row whole
    status, page = await call_api(srv, org, "GET", "/api/voice-targets?limit=2", role="analyst")
    assert len(page["targets"]) == 2 and page["next_cursor"]
    status, rest = await call_api(
        srv, org, "GET", f"/api/voice-targets?limit=2&cursor={page['next_cursor']}"
    )
    numbers = {t["number"] for t in page["targets"] + rest["targets"]}
    assert numbers == {"+17065550100", "+13125550100", "+14045550100"}
    audited = await pool.fetch(
        "SELECT after FROM audit_log WHERE org_id = $1 AND action = 'voice_target.import' "
        "ORDER BY id",
        org.id,
    )
    assert [json.loads(a["after"]) for a in audited][0] == {
        "added": 2, "updated": 0, "unchanged": 0, "rejected": 1,
    }  # fmt: skip


async def test_an_import_that_is_not_a_csv_file_is_refused_with_a_clear_error(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Bad files")
    status, body = await call_api(srv, org, "POST", "/api/voice-targets/import",
                                  body={"number": "+17065550100"})  # fmt: skip
    assert (status, body["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    status, body = await call_api(srv, org, "POST", "/api/voice-targets/import",
                                  csv="phone\n+17065550100\n")  # fmt: skip
    assert (status, body["error"]["details"]["fields"][0]["field"]) == (422, "file")
    huge = "number,notes\n" + ("+17065550100," + "x" * 1000 + "\n") * 6000
    status, body = await call_api(srv, org, "POST", "/api/voice-targets/import", csv=huge)
    assert (status, body["error"]["code"]) == (413, "BODY_TOO_LARGE")
    status, body = await call_api(srv, org, "POST", "/api/voice-targets/import?on_duplicate=x",
                                  csv="number\n")  # fmt: skip
    assert (status, body["error"]["code"]) == (400, "INVALID_QUERY")


async def test_a_number_on_the_do_not_call_list_is_never_called_until_an_admin_removes_it(
    wired: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Careful caller")
    await pool.execute("UPDATE organizations SET plan = 'pro' WHERE id = $1", org.id)
    asked = {"number": "(706) 555-0177", "reason": "asked on a call"}
    status, body = await call_api(wired, org, "POST", "/api/do-not-call", body=asked)
    assert (status, body) == (201, {"number": "+17065550177", "outcome": "added"})
    again = await call_api(wired, org, "POST", "/api/do-not-call", body={"number": "+17065550177"})
    assert again[1]["outcome"] == "already listed"
    status, listed = await call_api(wired, org, "GET", "/api/do-not-call", role="analyst")
    assert [n["number"] for n in listed["numbers"]] == ["+17065550177"]
    assert listed["numbers"][0]["reason"] == "asked on a call"

    call = {"to": "+17065550177", "from": org.number}
    status, body = await call_api(wired, org, "POST", "/api/calls", body=call)
    assert (status, body["error"]["code"]) == (409, "DO_NOT_CALL")
    assert fake.requests_for("create") == []  # SignalWire never heard of it

    assert (await call_api(wired, org, "DELETE", "/api/do-not-call/+17065550177"))[0] == 403
    assert (await call_api(wired, org, "DELETE", "/api/do-not-call/+17065550177",
                           role="admin"))[0] == 204  # fmt: skip
    status, body = await call_api(wired, org, "POST", "/api/calls", body=call)
    assert status == 201, body
    assert len(fake.requests_for("create")) == 1
    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE org_id = $1 AND resource_type = 'do_not_call' "
        "ORDER BY id",
        org.id,
    )
    assert [a["action"] for a in actions] == ["do_not_call.add", "do_not_call.remove"]


async def test_a_long_do_not_call_list_is_read_a_page_at_a_time_and_one_number_looked_up(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Long list")
    other = await make_org(pool, "Other list")
    for owner in (org, other):
        # Five numbers added at one instant (ties broken by number), the rest a minute apart.
        await pool.execute(
            """INSERT INTO do_not_call (org_id, number, added_by, created_at)
               SELECT $1, '+1706555' || lpad(n::text, 4, '0'), 'user:import',
                      '2026-12-01T12:00Z'::timestamptz - greatest(n - 5, 0) * interval '1 minute'
               FROM generate_series(1, 12) AS n""",
            owner.id,
        )
    # Pages of 3: the first ends inside the five added at one instant.
    pages = await every_page(srv, org, "/api/do-not-call", "numbers", limit=3, most=5)
    seen = [n["number"] for n in pages]
    # Newest first, every number once, none of the other org's; ties in the order of the number.
    assert seen == [f"+1706555{n:04d}" for n in (1, 2, 3, 4, 5, *range(6, 13))]

    status, found = await call_api(srv, org, "GET", "/api/do-not-call?number=(706)%20555-0007")
    assert (status, [n["number"] for n in found["numbers"]]) == (200, ["+17065550007"])
    status, found = await call_api(srv, org, "GET", "/api/do-not-call?number=%2B17065559999")
    assert (status, found) == (200, {"numbers": [], "next_cursor": None})
    for bad in ("number=call-me", "cursor=not-a-cursor", "limit=0"):
        status, body = await call_api(srv, org, "GET", f"/api/do-not-call?{bad}")
        assert (status, body["error"]["code"]) == (400, "INVALID_QUERY"), bad
