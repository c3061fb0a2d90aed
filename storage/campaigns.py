"""Outbound campaigns and the state of each target they call.

A target moves through claims, so that of all the processes dialling, exactly one calls it:

    pending ─claim→ dialing ─placed→ in_call ─finished→ pending (a retry, at next_at) | done
    dialing ─defer→ pending (outside its calling hours: not an attempt)
    dialing ─skip→ skipped (on the do-not-call list)
    dialing ─release_stale→ pending (its process died before SignalWire had the call)
    pending ─cancel→ skipped

A claim locks the campaign's org while it counts the calls in flight, so the campaign's and the
org's concurrency caps hold exactly however many processes claim at once. The functions for the
dialler run as the pool's owner role (it serves every org); those for the API take the tenant's
connection.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Literal

from storage import feed
from storage.db import QUERY_TIMEOUT_S, Executor, with_json

Action = Literal["start", "pause", "resume", "cancel"]
_MOVES: dict[Action, tuple[tuple[str, ...], str]] = {
    "start": (("draft",), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "cancel": (("draft", "running", "paused"), "cancelled"),
}
"""Each action: the statuses it may be taken from, and the status it leads to."""

_COLUMNS = """id, name, status, flow, from_number, max_concurrent, window_start, window_end,
    window_days, max_attempts, retry_s, on_machine, created_by, created_at, updated_at,
    started_at, finished_at"""


async def create(conn: Executor, org_id: uuid.UUID, settings: dict[str, Any]) -> dict[str, Any]:
    """A draft campaign; `settings` holds the columns (checked by the caller)."""
    values = {**settings, "flow": json.dumps(settings["flow"])}
    if "retry_s" in values:
        values["retry_s"] = json.dumps(values["retry_s"])
    columns = list(values)
    row = await conn.fetchrow(
        f"""INSERT INTO campaigns (org_id, {", ".join(columns)})
            VALUES ($1, {", ".join(f"${i}" for i in range(2, len(columns) + 2))})
            RETURNING {_COLUMNS}""",
        org_id, *values.values(), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return with_json(row, "flow", "retry_s")


async def get(conn: Executor, org_id: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, Any] | None:
    """The campaign with its progress: targets by state and by outcome."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM campaigns WHERE org_id = $1 AND id = $2",
        org_id, campaign_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if row is None:
        return None
    campaign = with_json(row, "flow", "retry_s")
    counts = await conn.fetch(
        """SELECT state, outcome, count(*) AS n FROM campaign_targets
           WHERE campaign_id = $1 GROUP BY state, outcome""",
        campaign_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    states = dict.fromkeys(("pending", "dialing", "in_call", "done", "skipped"), 0)
    outcomes: dict[str, int] = {}
    for c in counts:
        states[c["state"]] += c["n"]
        if c["outcome"] is not None and c["state"] in ("done", "skipped"):
            outcomes[c["outcome"]] = outcomes.get(c["outcome"], 0) + c["n"]
    campaign["progress"] = {"targets": sum(states.values()), **states, "outcomes": outcomes}
    return campaign


async def list_campaigns(
    conn: Executor, org_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM campaigns
            WHERE org_id = $1 AND kind = 'campaign'
              AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
            ORDER BY created_at DESC, id DESC LIMIT $4""",
        org_id, after[0] if after else None, after[1] if after else None, limit,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [with_json(r, "flow", "retry_s") for r in rows]


async def enroll(
    conn: Executor,
    org_id: uuid.UUID,
    campaign_id: uuid.UUID,
    *,
    tag: str | None,
    target_ids: list[uuid.UUID] | None,
) -> int:
    """Adds the org's voice targets with `tag` (or these ids; all with neither) to the
    campaign; returns how many were new to it."""
    status: str = await conn.execute(
        """INSERT INTO campaign_targets (campaign_id, org_id, number, time_zone, target_id)
           SELECT $2, org_id, number, time_zone, id FROM voice_targets
           WHERE org_id = $1 AND ($3::text IS NULL OR tags @> ARRAY[$3])
             AND ($4::uuid[] IS NULL OR id = ANY($4))
           ON CONFLICT DO NOTHING""",
        org_id, campaign_id, tag, target_ids, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return int(status.split()[-1])


async def move(
    conn: Executor, org_id: uuid.UUID, campaign_id: uuid.UUID, action: Action
) -> tuple[str, dict[str, Any] | None]:
    """Takes `action` on the campaign: ("moved", campaign), ("not_allowed", campaign) when its
    status does not allow it, or ("unknown", None). Cancelling skips every target not yet
    called; calls in flight end as they would."""
    sources, target = _MOVES[action]
    row = await conn.fetchrow(
        f"""UPDATE campaigns SET status = $4, updated_at = now(),
                                 started_at = CASE WHEN $4 = 'running'
                                                   THEN COALESCE(started_at, now())
                                                   ELSE started_at END,
                                 finished_at = CASE WHEN $4 = 'cancelled' THEN now()
                                                    ELSE finished_at END
            WHERE org_id = $1 AND id = $2 AND status = ANY($3::text[])
            RETURNING {_COLUMNS}""",
        org_id, campaign_id, list(sources), target, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if row is None:
        current = await get(conn, org_id, campaign_id)
        return ("unknown", None) if current is None else ("not_allowed", current)
    if target == "cancelled":
        await conn.execute(
            """UPDATE campaign_targets SET state = 'skipped', outcome = 'cancelled',
                                           updated_at = now()
               WHERE campaign_id = $1 AND state = 'pending'""",
            campaign_id, timeout=QUERY_TIMEOUT_S,
        )  # fmt: skip
    return "moved", await get(conn, org_id, campaign_id)


async def results(
    conn: Executor, org_id: uuid.UUID, campaign_id: uuid.UUID, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Each target's state, attempts, last outcome and call, by number."""
    rows = await conn.fetch(
        """SELECT number, target_id, state, attempts, next_at, outcome, call_id, updated_at
           FROM campaign_targets
           WHERE org_id = $1 AND campaign_id = $2 AND ($3::text IS NULL OR number > $3)
           ORDER BY number LIMIT $4""",
        org_id, campaign_id, after, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def org_cap(conn: Executor, org_id: uuid.UUID) -> int:
    cap: int = await conn.fetchval(
        "SELECT campaign_max_concurrent FROM organizations WHERE id = $1",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return cap


async def set_org_cap(conn: Executor, org_id: uuid.UUID, cap: int) -> None:
    await conn.execute(
        "UPDATE organizations SET campaign_max_concurrent = $2 WHERE id = $1",
        org_id, cap, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


# --- the dialler's side (owner role, every org) --------------------------------------------


@dataclass(frozen=True, slots=True)
class Running:
    """A running campaign, as the dialler needs it."""

    id: uuid.UUID
    org_id: uuid.UUID
    flow: dict[str, Any]
    from_number: str
    max_concurrent: int
    window_start: time
    window_end: time
    window_days: frozenset[int]
    max_attempts: int
    retry_s: dict[str, float]
    on_machine: str


async def due(conn: Executor) -> list[Running]:
    """Running campaigns with a target due a call, found from the due targets (a booking is a
    campaign that may wait for days: visiting every running one would not scale)."""
    rows = await conn.fetch(
        """SELECT id, org_id, flow, from_number, max_concurrent, window_start, window_end,
                  window_days, max_attempts, retry_s, on_machine
           FROM campaigns
           WHERE status = 'running' AND id IN (
               SELECT campaign_id FROM campaign_targets
               WHERE state = 'pending' AND next_at <= now())
           ORDER BY started_at, id""",
        timeout=QUERY_TIMEOUT_S,
    )
    return [
        Running(
            id=r["id"], org_id=r["org_id"], flow=json.loads(r["flow"]),
            from_number=r["from_number"], max_concurrent=r["max_concurrent"],
            window_start=r["window_start"], window_end=r["window_end"],
            window_days=frozenset(r["window_days"]), max_attempts=r["max_attempts"],
            retry_s={k: float(v) for k, v in json.loads(r["retry_s"]).items()},
            on_machine=r["on_machine"],
        )
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Claimed:
    attempt_id: uuid.UUID
    number: str
    time_zone: str
    attempts: int
    """Attempts made, this one included."""


@dataclass(frozen=True, slots=True)
class Room:
    """A running campaign's calls in flight and caps, and its org's (read under lock)."""

    active_in_campaign: int
    campaign_cap: int
    active_in_org: int
    org_cap: int


async def lock_room(conn: Executor, campaign_id: uuid.UUID) -> Room | None:
    """Locks the campaign's org row, then counts what is in flight (run it in a transaction,
    then `claim`): claims of one org take turns, so its caps hold exactly however many processes
    claim at once. None when the campaign is not running."""
    caps = await conn.fetchrow(
        """SELECT c.org_id, c.max_concurrent, o.campaign_max_concurrent
           FROM campaigns c JOIN organizations o ON o.id = c.org_id
           WHERE c.id = $1 AND c.status = 'running'
           FOR UPDATE OF o""",
        campaign_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if caps is None:
        return None
    # A statement of its own: its snapshot comes after the lock, so it sees the claims of
    # whoever held the lock before (in the locking statement's snapshot they were not there).
    active = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE campaign_id = $1) AS campaign, count(*) AS org
           FROM campaign_targets WHERE org_id = $2 AND state IN ('dialing', 'in_call')""",
        campaign_id, caps["org_id"], timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    assert active is not None
    return Room(active["campaign"], caps["max_concurrent"], active["org"],
                caps["campaign_max_concurrent"])  # fmt: skip


async def claim(
    conn: Executor, campaign_id: uuid.UUID, process_id: uuid.UUID, limit: int
) -> list[Claimed]:
    """Claims up to `limit` due targets of the campaign (after `lock_room`, in its
    transaction), oldest due first."""
    if limit <= 0:
        return []
    rows = await conn.fetch(
        # MATERIALIZED: the locking subquery runs once. Joined as a plain subquery it may be
        # scanned again per row, each scan locking the next `limit` rows.
        """WITH due AS MATERIALIZED (
               SELECT number FROM campaign_targets
               WHERE campaign_id = $1 AND state = 'pending' AND next_at <= now()
               ORDER BY next_at, number LIMIT $3 FOR UPDATE SKIP LOCKED
           )
           UPDATE campaign_targets t SET state = 'dialing', attempts = attempts + 1,
                  attempt_id = gen_random_uuid(), claimed_by = $2, claimed_at = now(),
                  call_id = NULL, answered_by = NULL, updated_at = now()
           FROM due WHERE t.campaign_id = $1 AND t.number = due.number
           RETURNING t.attempt_id, t.number, t.time_zone, t.attempts""",
        campaign_id, process_id, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [Claimed(r["attempt_id"], r["number"], r["time_zone"], r["attempts"]) for r in rows]


async def defer(conn: Executor, attempt_id: uuid.UUID, until: datetime) -> None:
    """Not called after all (outside its hours): back to pending, the attempt not counted."""
    await conn.execute(
        """UPDATE campaign_targets SET state = 'pending', attempts = attempts - 1,
                  attempt_id = NULL, next_at = $2, updated_at = now()
           WHERE attempt_id = $1 AND state = 'dialing'""",
        attempt_id, until, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def skip(conn: Executor, attempt_id: uuid.UUID, outcome: str) -> uuid.UUID | None:
    """Never to be called (the do-not-call list): the attempt not counted. Returns the
    campaign (None when the attempt had moved on)."""
    campaign_id: uuid.UUID | None = await conn.fetchval(
        """UPDATE campaign_targets SET state = 'skipped', attempts = attempts - 1,
                  outcome = $2, updated_at = now()
           WHERE attempt_id = $1 AND state = 'dialing'
           RETURNING campaign_id""",
        attempt_id, outcome, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return campaign_id


async def placed(conn: Executor, attempt_id: uuid.UUID, call_id: uuid.UUID | None) -> bool:
    """SignalWire has the call ('dialing' → 'in_call'); False when the attempt had already
    moved on (its final status callback came first)."""
    status: str = await conn.execute(
        """UPDATE campaign_targets SET state = 'in_call', call_id = COALESCE($2, call_id),
                                       updated_at = now()
           WHERE attempt_id = $1 AND state = 'dialing'""",
        attempt_id, call_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "UPDATE 0"


async def finished(
    conn: Executor, attempt_id: uuid.UUID, outcome: str, retry_at: datetime | None
) -> uuid.UUID | None:
    """The attempt ended with `outcome`: pending again at `retry_at`, or done. Returns the
    campaign, or None when the attempt was unknown or had ended already (a repeated callback)."""
    campaign_id: uuid.UUID | None = await conn.fetchval(
        """UPDATE campaign_targets
           SET state = CASE WHEN $3::timestamptz IS NULL THEN 'done' ELSE 'pending' END,
               next_at = COALESCE($3, next_at), outcome = $2, attempt_id = NULL,
               updated_at = now()
           WHERE attempt_id = $1 AND state IN ('dialing', 'in_call')
           RETURNING campaign_id""",
        attempt_id, outcome, retry_at, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return campaign_id


@dataclass(frozen=True, slots=True)
class Answered:
    """A campaign's call answered: what it plays."""

    flow: dict[str, Any]
    from_number: str
    hang_up: bool
    """An answering machine answered and the campaign hangs up on machines."""


async def note_answer(
    conn: Executor, attempt_id: uuid.UUID, org_id: uuid.UUID, call_id: uuid.UUID,
    answered_by: str | None,
) -> Answered | None:  # fmt: skip
    """The attempt's call was answered (its voice webhook): the call is linked to it and what
    answered noted. None when the attempt is not one of the org's in flight."""
    row = await conn.fetchrow(
        """UPDATE campaign_targets t SET state = 'in_call', call_id = $3, answered_by = $4,
                                         updated_at = now()
           FROM campaigns c
           WHERE t.attempt_id = $1 AND t.org_id = $2 AND c.id = t.campaign_id
             AND t.state IN ('dialing', 'in_call')
           RETURNING c.flow, c.from_number, c.on_machine""",
        attempt_id, org_id, call_id, answered_by, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if row is None:
        return None
    machine = (answered_by or "").startswith("machine")
    return Answered(json.loads(row["flow"]), row["from_number"],
                    hang_up=machine and row["on_machine"] == "hangup")  # fmt: skip


async def attempt_of(conn: Executor, attempt_id: uuid.UUID) -> dict[str, Any] | None:
    """The attempt in flight, with its campaign's settings (for the call's webhooks)."""
    row = await conn.fetchrow(
        """SELECT t.campaign_id, t.org_id, t.number, t.time_zone, t.attempts, t.state,
                  t.answered_by, c.flow, c.from_number, c.max_attempts, c.retry_s,
                  c.on_machine, c.window_start, c.window_end, c.window_days
           FROM campaign_targets t JOIN campaigns c ON c.id = t.campaign_id
           WHERE t.attempt_id = $1""",
        attempt_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if row is None:
        return None
    attempt = dict(row)
    attempt["flow"] = json.loads(attempt["flow"])
    attempt["retry_s"] = {k: float(v) for k, v in json.loads(attempt["retry_s"]).items()}
    return attempt


async def release_stale(conn: Executor, older_than_s: float) -> int:
    """Claims whose process died before SignalWire took the call: no webhook of the attempt
    came in `older_than_s` (longer than a call rings), so SignalWire never placed it. Back to
    pending, the attempt not counted."""
    status: str = await conn.execute(
        """UPDATE campaign_targets SET state = 'pending', attempts = attempts - 1,
                  attempt_id = NULL, updated_at = now()
           WHERE state = 'dialing' AND claimed_at < now() - make_interval(secs => $1)""",
        older_than_s, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return int(status.split()[-1])


async def unfinished_calls(conn: Executor, older_than_s: float, limit: int) -> list[Any]:
    """Attempts whose call has been going longer than `older_than_s` with no final status heard
    (its callback lost, say): (attempt_id, call_sid, our call status), the oldest first, for the
    dialler to ask SignalWire about."""
    return list(await conn.fetch(
        """SELECT t.attempt_id, c.call_sid, c.status FROM campaign_targets t
           JOIN calls c ON c.id = t.call_id
           WHERE t.state = 'in_call' AND t.claimed_at < now() - make_interval(secs => $1)
           ORDER BY t.claimed_at LIMIT $2""",
        older_than_s, limit, timeout=QUERY_TIMEOUT_S,
    ))  # fmt: skip


async def complete_finished(
    conn: Executor, campaign_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Running campaigns (this one, or every one) with nothing left to call or in flight
    become completed."""
    rows = await conn.fetch(
        """UPDATE campaigns c SET status = 'completed', finished_at = now(), updated_at = now()
           WHERE status = 'running' AND ($1::uuid IS NULL OR id = $1) AND NOT EXISTS (
               SELECT 1 FROM campaign_targets t WHERE t.campaign_id = c.id
                 AND t.state IN ('pending', 'dialing', 'in_call'))
           RETURNING id, org_id, name, kind""",
        campaign_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    for r in rows:  # for supervisors' feeds, and the org's webhooks (campaign.finished)
        finished = {"campaign_id": str(r["id"]), "name": r["name"], "kind": r["kind"]}
        await feed.append(conn, r["org_id"], None, "campaign_finished", finished)
    return [r["id"] for r in rows]


async def take_slot(conn: Executor, key: str, interval_s: float) -> datetime:
    """The next start time in a budget of one call per `interval_s` shared by every process:
    the caller waits until it, then calls."""
    slot: datetime = await conn.fetchval(
        """INSERT INTO dialler_pacing AS p (key, next_slot)
           VALUES ($1, now() + make_interval(secs => $2))
           ON CONFLICT (key) DO UPDATE
               SET next_slot = GREATEST(p.next_slot, now()) + make_interval(secs => $2)
           RETURNING next_slot - make_interval(secs => $2)""",
        key, interval_s, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return slot
