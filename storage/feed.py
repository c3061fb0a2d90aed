"""The supervisors' feed, as stored: one row per thing a supervisor sees happen, in order.

A feed row is written in the same transaction as the change it announces, and nothing more:
a writer takes no lock for the feed and sends no notification (either would line up every
node's commits behind one another, issue 18). Once committed, the row is given its position,
`seq`, by the sequencer (`sequence`, one batch at a time, run by control/feed_sequencer.py in
whichever process holds its lock), and `NOTIFY voxsouth_events` carries that position, its org,
call and type (far under NOTIFY's 8000-byte limit): every process's feed hub reads the row
itself, and a client that reconnects after position N is served every row positioned since,
from the table. A row is readable here only once positioned, and positions only grow, so
whoever has seen position N has seen every row that will ever be below it (migration 0038).
A feed event's public id is its position.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor

NOTIFY_CHANNEL = "voxsouth_events"  # named again in the function of migration 0038
PARTIALS_CHANNEL = "voxsouth_partials"
"""Interim transcripts: announced with their content and never stored, so they have no
position; a supervisor who misses one sees the next, or the final segment."""
MAX_PARTIAL_CHARS = 2_000
"""Keeps a partial's notification far under NOTIFY's 8000-byte payload limit."""


async def announce_partials(
    conn: Executor, partials: Sequence[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]]
) -> None:
    """Sends interim transcripts, each (org, call, data), to every process's feed hub (at
    commit, after the rows of the same transaction), in one round trip."""
    notes = [
        json.dumps(
            {
                "org_id": str(org_id), "call_id": str(call_id),
                "data": {**data, "text": data["text"][:MAX_PARTIAL_CHARS]},
            }
        )
        for org_id, call_id, data in partials
    ]  # fmt: skip
    await conn.execute(
        "SELECT pg_notify($1, note) FROM unnest($2::text[]) AS note",  # in the array's order
        PARTIALS_CHANNEL, notes, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def append(
    conn: Executor,
    org_id: uuid.UUID,
    call_id: uuid.UUID | None,
    type_: str,
    payload: dict[str, Any],
    event_id: uuid.UUID | None = None,
) -> bool:
    """Adds a feed row, positioned and announced once committed (`sequence`); False when
    `event_id` was already fed (a replayed event is announced once)."""
    added: bool = await conn.fetchval(
        """WITH row AS (
               INSERT INTO feed_events (org_id, call_id, event_id, type, payload)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (event_id) DO NOTHING
               RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM row)""",
        org_id, call_id, event_id, type_, json.dumps(payload), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return added


async def append_many(
    conn: Executor,
    org_id: uuid.UUID,
    rows: Sequence[tuple[uuid.UUID | None, str, dict[str, Any], uuid.UUID | None]],
) -> None:
    """`append` for several rows of one org, each (call, type, payload, event id), in order,
    in one statement."""
    call_ids, types, payloads, event_ids = zip(*rows, strict=True)
    await conn.execute(
        """INSERT INTO feed_events (org_id, call_id, event_id, type, payload)
           SELECT $1, call_id, event_id, type, payload::jsonb
           FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[])
                WITH ORDINALITY AS f(call_id, event_id, type, payload, at)
           ORDER BY at
           ON CONFLICT (event_id) DO NOTHING""",
        org_id, list(call_ids), list(event_ids), list(types),
        [json.dumps(p) for p in payloads], timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


SEQUENCE_BATCH = 1_000
"""Rows one `sequence` call positions at most (one transaction; the next call takes the rest)."""


async def sequence(conn: Executor, max_rows: int = SEQUENCE_BATCH) -> int | None:
    """Positions up to `max_rows` committed rows that have none yet, in insert order, and
    announces each on `NOTIFY_CHANNEL`; the positions (and announcements) take effect when the
    batch commits (at once outside a transaction). Returns how many rows it positioned, or None
    when another sequencer's batch holds the lock (nothing waits on it: try again later)."""
    count = await conn.fetchval(
        "SELECT feed_events_sequence($1)", max_rows, timeout=QUERY_TIMEOUT_S
    )
    return None if count is None else int(count)


async def read_since(
    conn: Executor, org_id: uuid.UUID, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """The org's feed rows after position `after_id`, oldest first, at most `limit` (rows not
    positioned yet are not read: they will come after every row read here)."""
    rows = await conn.fetch(
        """SELECT seq, call_id, type, payload, created_at FROM feed_events
           WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        org_id, after_id, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [_row(r) for r in rows]


async def read_ids(conn: Executor, ids: list[int]) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Feed rows by position, with their org (for the hub, which serves every org)."""
    rows = await conn.fetch(
        """SELECT seq, org_id, call_id, type, payload, created_at FROM feed_events
           WHERE seq = ANY($1::bigint[]) ORDER BY seq""",
        ids, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [(r["org_id"], _row(r)) for r in rows]


async def latest_id(conn: Executor, org_id: uuid.UUID) -> int:
    value = await conn.fetchval(
        "SELECT COALESCE(max(seq), 0) FROM feed_events WHERE org_id = $1",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return int(value)


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r["seq"],
        "type": r["type"],
        "call_id": str(r["call_id"]) if r["call_id"] else None,
        "at": r["created_at"].isoformat(),
        "data": json.loads(r["payload"]),
    }
