"""Secure mode (payments): whether a call is in it, and what the org's secure mode does.

The change is written with its feed row, so every process hears it (`NOTIFY`) and the one
carrying the call's media stops or resumes hearing the caller; the recording follows it
(`storage.recordings.claim_pause`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from storage import feed
from storage.calls import TERMINAL_STATUSES
from storage.db import QUERY_TIMEOUT_S, Executor

CallerWords = Literal["suspend", "redact"]
PauseBehavior = Literal["skip", "silence"]


@dataclass(frozen=True, slots=True)
class OrgSecureMode:
    pause_behavior: PauseBehavior
    """SignalWire's `PauseBehavior` for a paused recording: the time left out, or silence."""
    caller_words: CallerWords
    """The caller's words in secure mode: not transcribed, or transcribed and wholly redacted."""


SetOutcome = Literal["changed", "unchanged", "ended", "unknown"]


async def set_call(
    conn: Executor, org_id: uuid.UUID, call_id: uuid.UUID, on: bool, by: str
) -> SetOutcome:
    """Turns the call's secure mode on or off, with its feed row (run it in a transaction).
    A call that has ended cannot enter it ("ended"); leaving it is always allowed."""
    row = await conn.fetchrow(
        "SELECT status, secure_mode FROM calls WHERE org_id = $1 AND id = $2 FOR UPDATE",
        org_id, call_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if row is None:
        return "unknown"
    if row["secure_mode"] == on:
        return "unchanged"
    if on and row["status"] in TERMINAL_STATUSES:
        return "ended"
    await conn.execute(
        "UPDATE calls SET secure_mode = $3, updated_at = now() WHERE org_id = $1 AND id = $2",
        org_id, call_id, on, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    await feed.append(conn, org_id, call_id, "secure_mode", {"on": on, "by": by})
    return "changed"


async def get_org(conn: Executor, org_id: uuid.UUID) -> OrgSecureMode:
    row = await conn.fetchrow(
        "SELECT secure_pause_behavior, secure_caller_words FROM organizations WHERE id = $1",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    if row is None:
        raise LookupError(f"no organization {org_id}")
    return OrgSecureMode(row["secure_pause_behavior"], row["secure_caller_words"])


async def put_org(conn: Executor, org_id: uuid.UUID, settings: OrgSecureMode) -> None:
    await conn.execute(
        """UPDATE organizations SET secure_pause_behavior = $2, secure_caller_words = $3
           WHERE id = $1""",
        org_id, settings.pause_behavior, settings.caller_words, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
