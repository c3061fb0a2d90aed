"""Campaigns through the API and the dialler, on a real Postgres, against the fake SignalWire:
the caps, calling hours, retries, the do-not-call list, two processes sharing a campaign, and
a process that dies mid-call. SignalWire's side of each call (its voice webhook and final status
callback, to the URLs the dialler gave it) is posted signed, as SignalWire posts them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp

from control.app_keys import DIALLER
from control.dialler import Dialler, DiallerConfig
from server.app import RunningServer
from storage import campaigns, targets
from storage.db import Pool
from tests.conftest import SIGNALWIRE_PROJECT, timeout
from tests.control.test_targets_api import call_api
from tests.support.accounts import Org, make_org
from tests.support.calls import simulator
from tests.support.fake_signalwire import Fail, FakeSignalWire


def dialler(srv: RunningServer, **config: Any) -> Dialler:
    """Another process's dialler: its own id, the same database and SignalWire."""
    return Dialler(
        srv.pool, srv.app[DIALLER]._client,
        DiallerConfig(srv.public_url, calls_per_second=100, **config), uuid.uuid4(),
    )  # fmt: skip


def open_everywhere() -> dict[str, Any]:
    return {"start": "00:00:00", "end": "23:59:59", "days": list(range(7))}


async def campaign_of(
    srv: RunningServer, pool: Pool, org: Org, numbers: list[str], **settings: Any
) -> str:
    """A started campaign of the org calling `numbers` (as voice targets tagged `list`)."""
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    await targets.save_targets(pool, org.id, [{
        "number": n, "name": None, "time_zone": "America/New_York", "time_zone_set": True,
        "tags": ["list"], "fields": {},
    } for n in numbers], replace=True)  # fmt: skip
    body = {"name": "Renewals", "flow": {"say": "Your policy renews soon."}, "from": org.number,
            "window": open_everywhere(), **settings}  # fmt: skip
    status, made = await call_api(srv, org, "POST", "/api/campaigns", body=body)
    assert status == 201, made
    status, enrolled = await call_api(srv, org, "POST", f"/api/campaigns/{made['id']}/targets",
                                      body={"tag": "list"})  # fmt: skip
    assert enrolled == {"added": len(numbers)}
    status, started = await call_api(srv, org, "POST", f"/api/campaigns/{made['id']}/start")
    assert (status, started["status"]) == (200, "running"), started
    return str(made["id"])


def numbers(n: int) -> list[str]:
    return [f"+1706555{1000 + i:04d}" for i in range(n)]


async def placed_calls(fake: FakeSignalWire) -> list[dict[str, str]]:
    return [dict(r.form) for r in fake.requests_for("create")]


async def signalwire_says(
    srv: RunningServer, url: str, call_sid: str, org: Org, to: str, **fields: str
) -> tuple[int, str]:
    """A signed webhook to one of the URLs the dialler gave SignalWire."""
    async with aiohttp.ClientSession() as http:
        return await simulator(http, srv, srv.settings).post_signed(url, {
            "CallSid": call_sid, "AccountSid": SIGNALWIRE_PROJECT, "From": org.number,
            "To": to, "Direction": "outbound-api", **fields,
        })  # fmt: skip


async def end_calls(srv: RunningServer, fake: FakeSignalWire, org: Org, status: str,
                    skip: int = 0) -> None:  # fmt: skip
    """SignalWire ends every call placed so far (after the first `skip`) with `status`."""
    placed = [r for r in fake.requests_for("create")][skip:]
    for request in placed:
        form = dict(request.form)
        call_sid = next(sid for sid, c in fake.calls.items() if c["to"] == form["To"]
                        and c.get("_ended") is None)  # fmt: skip
        fake.calls[call_sid]["_ended"] = True
        code, _ = await signalwire_says(srv, form["StatusCallback"], call_sid, org, form["To"],
                                        CallStatus=status)  # fmt: skip
        assert code == 204
    await asyncio.wait_for(srv.app[DIALLER].wait_idle(), timeout(10))


async def states(pool: Pool, campaign_id: str) -> dict[str, tuple[str, int, str | None]]:
    rows = await pool.fetch(
        "SELECT number, state, attempts, outcome FROM campaign_targets WHERE campaign_id = $1",
        uuid.UUID(campaign_id),
    )
    return {r["number"]: (r["state"], r["attempts"], r["outcome"]) for r in rows}


# --- the API -------------------------------------------------------------------------------


async def test_a_campaign_is_made_checked_and_moved_through_its_states(
    dialling: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Campaign API")
    body = {"name": "x", "flow": {"say": "hi"}, "from": org.number}
    status, refused = await call_api(dialling, org, "POST", "/api/campaigns", body=body)
    assert (status, refused["error"]["code"]) == (403, "PLAN_REQUIRED")
    await pool.execute("UPDATE organizations SET plan = 'enterprise' WHERE id = $1", org.id)
    for bad in ({**body, "flow": {"say": "hi", "connect": "+17065550100"}},
                {**body, "flow": {"play": "http://example.com/a.wav"}},
                {**body, "window": {"start": "21:00", "end": "08:00"}},
                {**body, "from": "+17065550199"}):  # fmt: skip
        status, _ = await call_api(dialling, org, "POST", "/api/campaigns", body=bad)
        assert status == 422, bad
    status, made = await call_api(dialling, org, "POST", "/api/campaigns", body=body)
    assert status == 201 and made["status"] == "draft"
    assert made["window"] == {"start": "08:00:00", "end": "21:00:00", "days": list(range(7))}
    path = f"/api/campaigns/{made['id']}"
    assert (await call_api(dialling, org, "POST", f"{path}/pause"))[0] == 409
    for action, status_after in (("start", "running"), ("pause", "paused"),
                                 ("resume", "running"), ("cancel", "cancelled")):  # fmt: skip
        status, moved = await call_api(dialling, org, "POST", f"{path}/{action}")
        assert (status, moved["status"]) == (200, status_after)
    status, body_ = await call_api(dialling, org, "POST", f"{path}/targets", body={})
    assert (status, body_["error"]["code"]) == (409, "CAMPAIGN_OVER")
    assert (await call_api(dialling, org, "GET", path, role="analyst"))[0] == 200
    assert (await call_api(dialling, org, "POST", f"{path}/start", role="analyst"))[0] == 403
    assert (await call_api(dialling, org, "GET", path, role="viewer"))[0] == 403
    other = await make_org(pool, "Other")
    assert (await call_api(dialling, other, "GET", path))[0] == 404


# --- the dialler ---------------------------------------------------------------------------


async def test_two_processes_call_every_target_once_within_the_concurrency_cap(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Two diallers")
    campaign_id = await campaign_of(dialling, pool, org, numbers(12), max_concurrent=5)
    a, b = dialler(dialling), dialler(dialling)
    most_at_once = 0
    for _round in range(10):
        await asyncio.gather(a.tick(), b.tick())
        await asyncio.wait_for(asyncio.gather(a.wait_idle(), b.wait_idle()), timeout(10))
        in_flight = [s for s in (await states(pool, campaign_id)).values()
                     if s[0] in ("dialing", "in_call")]  # fmt: skip
        most_at_once = max(most_at_once, len(in_flight))
        assert len(in_flight) <= 5
        placed = len(await placed_calls(fake))
        await end_calls(dialling, fake, org, "completed", skip=placed - len(in_flight))
        if not in_flight:
            break
    called = [c["To"] for c in await placed_calls(fake)]
    assert sorted(called) == numbers(12)  # each once
    assert most_at_once == 5
    final = await states(pool, campaign_id)
    assert set(final.values()) == {("done", 1, "completed")}
    # The last attempt's end completed the campaign.
    status, campaign = await call_api(dialling, org, "GET", f"/api/campaigns/{campaign_id}")
    assert campaign["status"] == "completed"
    assert campaign["progress"]["done"] == 12
    assert campaign["progress"]["outcomes"] == {"completed": 12}
    # Each call asked SignalWire to tell machines from people, and named its attempt.
    form = (await placed_calls(fake))[0]
    assert form["MachineDetection"] == "Enable"
    assert parse_qs(urlsplit(form["Url"]).query)["campaign_attempt"]


async def test_busy_is_tried_again_later_and_the_do_not_call_list_is_never_called(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Retries")
    busy, barred = numbers(2)
    campaign_id = await campaign_of(dialling, pool, org, [busy, barred],
                                    retries={"max_attempts": 2, "busy_s": 300})  # fmt: skip
    await targets.add_do_not_call(pool, org.id, barred, "asked", "test")
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert [c["To"] for c in await placed_calls(fake)] == [busy]
    await end_calls(dialling, fake, org, "busy")
    now = datetime.now(UTC)
    row = await pool.fetchrow(
        "SELECT state, attempts, outcome, next_at FROM campaign_targets "
        "WHERE campaign_id = $1 AND number = $2",
        uuid.UUID(campaign_id), busy,
    )  # fmt: skip
    assert row is not None
    assert (row["state"], row["attempts"], row["outcome"]) == ("pending", 1, "busy")
    assert timedelta(seconds=290) < row["next_at"] - now <= timedelta(seconds=300)
    assert (await states(pool, campaign_id))[barred] == ("skipped", 0, "do_not_call")
    await d.tick()  # not due yet: nothing more is placed
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert len(await placed_calls(fake)) == 1
    # Due: the second and last attempt is busy too, and the target is done.
    await pool.execute(
        "UPDATE campaign_targets SET next_at = now() WHERE campaign_id = $1 AND number = $2",
        uuid.UUID(campaign_id), busy,
    )  # fmt: skip
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    await end_calls(dialling, fake, org, "busy", skip=1)
    assert (await states(pool, campaign_id))[busy] == ("done", 2, "busy")


def zone_outside_hours(now: datetime) -> str:
    for zone in ("Pacific/Kiritimati", "Asia/Tokyo", "Europe/London", "America/New_York",
                 "Pacific/Honolulu", "Asia/Kolkata", "Australia/Sydney"):  # fmt: skip
        if not time(8) <= now.astimezone(ZoneInfo(zone)).time() < time(21):
            return zone
    raise AssertionError("some zone is always outside 8:00-21:00")


async def test_a_target_outside_its_calling_hours_waits_for_them(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Calling hours")
    [number] = numbers(1)
    campaign_id = await campaign_of(dialling, pool, org, [number],
                                    window={"start": "08:00", "end": "21:00"})  # fmt: skip
    zone = zone_outside_hours(datetime.now(UTC))
    await pool.execute(
        "UPDATE campaign_targets SET time_zone = $2 WHERE campaign_id = $1",
        uuid.UUID(campaign_id), zone,
    )  # fmt: skip
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert await placed_calls(fake) == []
    next_at = await pool.fetchval(
        "SELECT next_at FROM campaign_targets WHERE campaign_id = $1", uuid.UUID(campaign_id)
    )
    assert next_at.astimezone(ZoneInfo(zone)).time() == time(8)
    assert (await states(pool, campaign_id))[number] == ("pending", 0, None)


async def test_a_process_that_dies_before_placing_its_call_loses_nothing_and_calls_once(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Lost process")
    [number] = numbers(1)
    campaign_id = await campaign_of(dialling, pool, org, [number])
    # A process claims the target and dies before asking SignalWire.
    async with pool.acquire() as conn, conn.transaction():
        await campaigns.lock_room(conn, uuid.UUID(campaign_id))
        [claimed] = await campaigns.claim(conn, uuid.UUID(campaign_id), uuid.uuid4(), 1)
    survivor = dialler(dialling, stale_after_s=3600)
    await survivor.tick()
    assert await placed_calls(fake) == []  # still the dead process's, for all anyone knows
    await pool.execute(
        "UPDATE campaign_targets SET claimed_at = now() - interval '2 hours' "
        "WHERE campaign_id = $1",
        uuid.UUID(campaign_id),
    )
    await survivor.tick()
    await asyncio.wait_for(survivor.wait_idle(), timeout(10))
    assert [c["To"] for c in await placed_calls(fake)] == [number]
    assert (await states(pool, campaign_id))[number] == ("in_call", 1, None)
    # The dead process's attempt, should its call appear after all, is no longer in flight.
    status, laml = await signalwire_says(
        dialling, f"{dialling.public_url}/laml/status?campaign_attempt={claimed.attempt_id}",
        str(uuid.uuid4()), org, number, CallStatus="completed",
    )  # fmt: skip
    assert status == 204
    await asyncio.wait_for(dialling.app[DIALLER].wait_idle(), timeout(10))
    assert (await states(pool, campaign_id))[number] == ("in_call", 1, None)


async def test_a_machine_is_hung_up_on_and_called_again_a_person_hears_the_flow(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Machines")
    machine, person = numbers(2)
    campaign_id = await campaign_of(dialling, pool, org, [machine, person])
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    answers = {}
    for request in fake.requests_for("create"):
        form = dict(request.form)
        call_sid = next(s for s, c in fake.calls.items() if c["to"] == form["To"])
        answered_by = "machine_start" if form["To"] == machine else "human"
        status, laml = await signalwire_says(
            dialling, form["Url"], call_sid, org, form["To"], CallStatus="in-progress",
            AnsweredBy=answered_by,
        )  # fmt: skip
        assert status == 200
        answers[form["To"]] = laml
    assert "<Hangup />" in answers[machine] and "Stream" not in answers[machine]
    assert "Your policy renews soon." in answers[person] and "<Stream" in answers[person]
    await end_calls(dialling, fake, org, "completed")
    final = await states(pool, campaign_id)
    assert final[person] == ("done", 1, "completed")
    assert final[machine] == ("pending", 1, "machine")
    # The call the person answered is a call like any other: opened, linked to its attempt.
    linked = await pool.fetchval(
        "SELECT count(*) FROM campaign_targets t JOIN calls c ON c.id = t.call_id "
        "WHERE t.campaign_id = $1", uuid.UUID(campaign_id),
    )  # fmt: skip
    assert linked == 2


async def test_a_call_signalwire_refuses_counts_as_failed_and_is_retried(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Refused")
    [number] = numbers(1)
    campaign_id = await campaign_of(dialling, pool, org, [number])
    fake.script("create", [Fail(400)])
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert (await states(pool, campaign_id))[number] == ("pending", 1, "failed")


async def test_a_call_whose_final_status_never_came_is_looked_up_at_signalwire(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Lost callback")
    [number] = numbers(1)
    campaign_id = await campaign_of(dialling, pool, org, [number])
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    [call_sid] = list(fake.calls)
    fake.end_call(call_sid, "no-answer")  # ...and its status callback is lost on the way
    await d.sweep()
    assert (await states(pool, campaign_id))[number] == ("in_call", 1, None)  # not long enough
    await pool.execute(
        "UPDATE campaign_targets SET claimed_at = now() - interval '2 hours' "
        "WHERE campaign_id = $1", uuid.UUID(campaign_id),
    )  # fmt: skip
    await d.sweep()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert (await states(pool, campaign_id))[number] == ("pending", 1, "no-answer")
    assert fake.requests_for("fetch")[-1].path.endswith(f"/Calls/{call_sid}.json")


async def test_an_admin_sets_the_orgs_cap_over_all_its_campaigns(
    dialling: RunningServer, pool: Pool, fake: FakeSignalWire
) -> None:
    org = await make_org(pool, "Capped org")
    path = "/api/org/campaign-limits"
    assert (await call_api(dialling, org, "GET", path, role="analyst"))[1] == {"max_concurrent": 20}
    assert (await call_api(dialling, org, "PUT", path, body={"max_concurrent": 3}))[0] == 403
    status, limits = await call_api(dialling, org, "PUT", path, role="admin",
                                    body={"max_concurrent": 3})  # fmt: skip
    assert (status, limits) == (200, {"max_concurrent": 3})
    first = await campaign_of(dialling, pool, org, numbers(4), max_concurrent=5)
    d = dialler(dialling)
    await d.tick()
    await asyncio.wait_for(d.wait_idle(), timeout(10))
    assert len(await placed_calls(fake)) == 3  # the org's cap, under the campaign's 5
    assert sum(s[0] == "in_call" for s in (await states(pool, first)).values()) == 3
