"""What an org redacts from its calls' words (`media.events.RedactionKind`s), as its admin chose."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from storage.db import QUERY_TIMEOUT_S, Executor


async def get(conn: Executor, org_id: uuid.UUID) -> list[str]:
    kinds = await conn.fetchval(
        "SELECT redact_kinds FROM organizations WHERE id = $1", org_id, timeout=QUERY_TIMEOUT_S
    )
    return sorted(kinds or ())


async def put(conn: Executor, org_id: uuid.UUID, kinds: Sequence[str]) -> None:
    await conn.execute(
        "UPDATE organizations SET redact_kinds = $2 WHERE id = $1",
        org_id,
        sorted(set(kinds)),
        timeout=QUERY_TIMEOUT_S,
    )
