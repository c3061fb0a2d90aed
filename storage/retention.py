"""How long each org keeps its calls' data, the deletions that enforce it, and erasure.

Retention deletes in small batches, each its own short transaction (no lock held for long, and
a sweep stopped midway has lost nothing it had not deleted). It runs as the pool's owner role,
across orgs, so every statement names its org. Recordings are not deleted here: their audio
lives at SignalWire, which must delete it first (control.retention).

Erasure (a data-subject request) removes one org's calls' words, digits, feed rows and
escalations, and blanks what else carries their content (consent evidence, notes); the calls'
rows stay, with their numbers replaced when the request named a number.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Literal, get_args

from storage.calls import LOST_STATUS, TERMINAL_STATUSES
from storage.db import QUERY_TIMEOUT_S, Executor, Pool

Kind = Literal["transcripts", "recordings", "dtmf", "escalations", "feed", "audit"]
KINDS: tuple[Kind, ...] = get_args(Kind)

_TABLES: dict[Kind, tuple[str, str]] = {
    "transcripts": ("transcript_segments", "created_at"),
    "recordings": ("recordings", "created_at"),
    "dtmf": ("dtmf_events", "received_at"),
    "escalations": ("escalations", "raised_at"),
    "feed": ("feed_events", "created_at"),
    "audit": ("audit_log", "at"),
}
"""Each kind's table and the time its age counts from (names fixed here, never from input)."""

ERASED = "[erased]"
"""What stands in for erased text that a row keeps (consent evidence, a call's numbers)."""

Policy = dict[Kind, int | None]
"""Days each kind is kept; None keeps it."""


async def get_policy(conn: Executor, org_id: uuid.UUID) -> Policy:
    row = await conn.fetchrow(
        "SELECT * FROM retention_policies WHERE org_id = $1", org_id, timeout=QUERY_TIMEOUT_S
    )
    return {kind: None if row is None else row[f"{kind}_days"] for kind in KINDS}


async def put_policy(conn: Executor, org_id: uuid.UUID, policy: Policy) -> None:
    """Raises asyncpg.CheckViolationError when the audit log would be kept shorter than the
    rest (the API checks first)."""
    columns = [f"{kind}_days" for kind in KINDS]
    await conn.execute(
        f"""INSERT INTO retention_policies (org_id, {", ".join(columns)})
            VALUES ($1, {", ".join(f"${i}" for i in range(2, len(KINDS) + 2))})
            ON CONFLICT (org_id) DO UPDATE SET
                {", ".join(f"{c} = EXCLUDED.{c}" for c in columns)}, updated_at = now()""",
        org_id, *(policy[kind] for kind in KINDS), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def policies(conn: Executor) -> list[tuple[uuid.UUID, Policy]]:
    """Every org that keeps some kind for a limited time, with its policy."""
    rows = await conn.fetch(
        f"""SELECT * FROM retention_policies
            WHERE {" OR ".join(f"{kind}_days IS NOT NULL" for kind in KINDS)}
            ORDER BY org_id""",
        timeout=QUERY_TIMEOUT_S,
    )
    return [(r["org_id"], {kind: r[f"{kind}_days"] for kind in KINDS}) for r in rows]


async def delete_expired(pool: Pool, kind: Kind, org_id: uuid.UUID, days: int, limit: int) -> int:
    """Deletes at most `limit` of the org's rows of `kind` older than `days`, in one short
    transaction; returns how many. Not for recordings (`expired_recordings`)."""
    assert kind != "recordings", "a recording is deleted at SignalWire first"
    table, column = _TABLES[kind]
    async with pool.acquire() as conn, conn.transaction():
        if kind == "audit":
            await conn.execute("SET LOCAL voxsouth.audit_retention = 'on'")
        status: str = await conn.execute(
            f"""DELETE FROM {table} WHERE id IN (
                    SELECT id FROM {table}
                    WHERE org_id = $1 AND {column} < now() - make_interval(days => $2)
                    LIMIT $3)""",
            org_id, days, limit, timeout=QUERY_TIMEOUT_S,
        )  # fmt: skip
    return int(status.split()[-1])


async def expired_recordings(conn: Executor, org_id: uuid.UUID, days: int, limit: int) -> list[str]:
    """RecordingSids of the org's finished recordings older than `days`, at most `limit`."""
    rows = await conn.fetch(
        """SELECT recording_sid FROM recordings
           WHERE org_id = $1 AND created_at < now() - make_interval(days => $2)
             AND status <> ALL('{in-progress,paused}'::text[])
           ORDER BY created_at LIMIT $3""",
        org_id, days, limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [r["recording_sid"] for r in rows]


async def forget_recording(conn: Executor, org_id: uuid.UUID, recording_sid: str) -> bool:
    """Removes a recording's row once SignalWire has deleted its audio."""
    status: str = await conn.execute(
        "DELETE FROM recordings WHERE org_id = $1 AND recording_sid = $2",
        org_id, recording_sid, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return status != "DELETE 0"


# --- erasure -------------------------------------------------------------------------------


async def calls_of_org(
    conn: Executor, org_id: uuid.UUID, call_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Those of `call_ids` that are the org's."""
    rows = await conn.fetch(
        "SELECT id FROM calls WHERE org_id = $1 AND id = ANY($2::uuid[])",
        org_id, list(call_ids), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def calls_of_number(conn: Executor, org_id: uuid.UUID, number: str) -> list[uuid.UUID]:
    """The org's calls to or from `number` (E.164)."""
    rows = await conn.fetch(
        "SELECT id FROM calls WHERE org_id = $1 AND (from_number = $2 OR to_number = $2)",
        org_id, number, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def erasable(
    conn: Executor, org_id: uuid.UUID, call_ids: Sequence[uuid.UUID]
) -> tuple[list[uuid.UUID], list[tuple[str, str]]]:
    """Of the org's `call_ids`: those still going (not erasable yet), and the (CallSid,
    RecordingSid) of every recording of the rest, for SignalWire to delete first."""
    live = await conn.fetch(
        """SELECT id FROM calls WHERE org_id = $1 AND id = ANY($2::uuid[])
             AND status <> ALL($3::text[])""",
        org_id, list(call_ids), sorted(TERMINAL_STATUSES | {LOST_STATUS}),
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    held = await conn.fetch(
        """SELECT c.call_sid, r.recording_sid FROM recordings r JOIN calls c ON c.id = r.call_id
           WHERE r.org_id = $1 AND r.call_id = ANY($2::uuid[]) ORDER BY r.recording_sid""",
        org_id, list(call_ids), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [r["id"] for r in live], [(r["call_sid"], r["recording_sid"]) for r in held]


async def erase_calls(
    conn: Executor, org_id: uuid.UUID, call_ids: Sequence[uuid.UUID], *, number: str | None
) -> Counter[str]:
    """Erases what the org's calls carry of what was said and keyed (run it in a transaction,
    after SignalWire deleted their recordings); returns how many rows of each table went.
    With `number`, the calls' numbers equal to it are replaced too."""
    ids = list(call_ids)
    erased: Counter[str] = Counter()
    # Webhook deliveries carry what the feed rows did (evidence, words): they go with them.
    for table in ("transcript_segments", "dtmf_events", "feed_events", "escalations",
                  "recordings", "webhook_deliveries"):  # fmt: skip
        status = await conn.execute(
            f"DELETE FROM {table} WHERE org_id = $1 AND call_id = ANY($2::uuid[])",
            org_id, ids, timeout=QUERY_TIMEOUT_S,
        )  # fmt: skip
        erased[table] = int(status.split()[-1])
    # Consent verdicts stay (they decided what was recorded); the words that proved them go.
    status = await conn.execute(
        """UPDATE consent_events SET evidence = $3
           WHERE org_id = $1 AND call_id = ANY($2::uuid[]) AND evidence <> $3""",
        org_id, ids, ERASED, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    erased["consent_evidence"] = int(status.split()[-1])
    await conn.execute(
        """UPDATE calls SET disposition_notes = NULL, updated_at = now(),
                            from_number = CASE WHEN from_number = $3 THEN $4 ELSE from_number END,
                            to_number = CASE WHEN to_number = $3 THEN $4 ELSE to_number END
           WHERE org_id = $1 AND id = ANY($2::uuid[])""",
        org_id, ids, number, ERASED, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return erased
