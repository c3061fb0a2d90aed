"""Secret shopper: a call's transcript scored against a script (sans-I/O), and through the API
on a real Postgres, with the trend per line tested."""

from __future__ import annotations

import uuid
from typing import Any

from control.shopper import score_call
from media.events import TranscriptSegment
from server.app import RunningServer
from storage.db import Pool
from storage.event_writer import write_events
from tests.control.test_api_access import new_call
from tests.control.test_targets_api import call_api
from tests.support.accounts import Org, make_org

SCRIPT: list[dict[str, Any]] = [
    {"name": "greeting", "phrases": ["thank you for calling Acme"]},
    {"name": "warranty", "phrases": ["extended warranty", "protection plan"]},
    {"name": "booking", "phrases": ["shall I book", "can I book you in"], "weight": 2},
    {"name": "refund promise", "kind": "forbidden", "phrases": ["we will refund you"]},
]
GOOD_CALL = [
    ("agent", 0, "Thanks for calling Acme, this is Sam, how can I help?"),
    ("caller", 4000, "My dishwasher stopped working."),
    ("agent", 9000, "Sorry to hear that. It's out of warranty, but our protection plan covers it."),
    ("agent", 15000, "Can I book you in for Thursday morning?"),
]


def segments(turns: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    return [{"speaker": s, "start_ms": at, "text": text} for s, at, text in turns]


def test_a_call_that_meets_every_moment_in_its_own_words_scores_100() -> None:
    score, moments = score_call(SCRIPT, segments(GOOD_CALL))
    assert score == 100.0
    by_name = {m.name: m for m in moments}
    assert by_name["greeting"].at_ms == 0
    assert by_name["warranty"].evidence == GOOD_CALL[2][2]
    assert by_name["booking"].at_ms == 15000
    assert not by_name["refund promise"].found


def test_missed_moments_and_a_forbidden_one_cost_their_weight() -> None:
    turns = [("agent", 0, "Hello?"), ("caller", 2000, "Can I book you in?"),
             ("agent", 5000, "Don't worry, we will refund you the lot.")]  # fmt: skip
    score, moments = score_call(SCRIPT, segments(turns))
    # Weights 1 + 1 + 2 + 1 = 5; nothing expected met (the caller's words are not the
    # agent's), and the forbidden moment said: 0 of 5 right.
    assert score == 0.0
    assert [m.found for m in moments] == [False, False, False, True]
    assert moments[3].evidence == turns[2][2]


async def a_shopper_call(pool: Pool, org: Org, to_number: str, turns: list[tuple[str, int, str]],
                         status: str = "completed") -> uuid.UUID:  # fmt: skip
    call_id = await new_call(pool, org)
    await pool.execute(
        "UPDATE calls SET direction = 'outbound-api', to_number = $2, status = $3 WHERE id = $1",
        call_id, to_number, status,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await write_events(conn, [
            TranscriptSegment(
                org_id=org.id, call_id=call_id, stream_sid="s", start_ms=at, end_ms=at + 1000,
                track="outbound" if speaker == "agent" else "inbound", text=text,
                confidence=0.9, is_final=True, engine="test",
            ) for speaker, at, text in turns
        ])  # fmt: skip
    return call_id


async def test_calls_are_scored_through_the_api_with_a_trend_per_line(
    srv: RunningServer, pool: Pool
) -> None:
    org = await make_org(pool, "Shopper org")
    status, script = await call_api(srv, org, "POST", "/api/shopper-scripts", role="analyst",
                                    body={"name": "Repairs line", "moments": SCRIPT})  # fmt: skip
    assert status == 201, script
    path = f"/api/shopper-scripts/{script['id']}"
    line = "+17065550160"
    # The shopper's words are the caller's (inbound track); the agent answers on the outbound
    # track of a call we placed, so its segments carry speaker "agent".
    good = await a_shopper_call(pool, org, line, GOOD_CALL)
    status, scored = await call_api(srv, org, "POST", f"{path}/score", role="analyst",
                                    body={"call_id": str(good)})  # fmt: skip
    assert status == 200, scored
    assert (scored["score"], scored["agent_number"]) == (100.0, line)
    assert [m["name"] for m in scored["moments"] if m["found"]] == [
        "greeting", "warranty", "booking",
    ]  # fmt: skip
    poor = await a_shopper_call(pool, org, line, [("agent", 0, "Yeah?")])
    status, scored = await call_api(srv, org, "POST", f"{path}/score", role="analyst",
                                    body={"call_id": str(poor)})  # fmt: skip
    assert scored["score"] == 20.0  # only the forbidden moment avoided: 1 of 5
    live = await a_shopper_call(pool, org, line, GOOD_CALL, status="in-progress")
    status, body = await call_api(srv, org, "POST", f"{path}/score", role="analyst",
                                  body={"call_id": str(live)})  # fmt: skip
    assert (status, body["error"]["code"]) == (409, "CALL_NOT_ENDED")
    status, listed = await call_api(srv, org, "GET", f"{path}/scores?agent_number={line}")
    assert sorted(s["score"] for s in listed["scores"]) == [20.0, 100.0]
    status, trend = await call_api(srv, org, "GET", f"{path}/trend", role="operator")
    [week] = trend["trend"]
    assert (week["agent_number"], week["calls"], week["mean_score"]) == (line, 2, 60.0)
    assert (await call_api(srv, org, "POST", f"{path}/score", role="operator",
                           body={"call_id": str(good)}))[0] == 403  # fmt: skip
    assert (await call_api(srv, org, "GET", path, role="viewer"))[0] == 403
    other = await make_org(pool, "Other shoppers")
    assert (await call_api(srv, other, "GET", path))[0] == 404
