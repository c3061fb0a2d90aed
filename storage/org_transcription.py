"""What transcribes an org's calls: its choice of engine and, for a cloud service, its own key
(sealed by the caller before it gets here: storage never sees it in the clear)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from storage.db import QUERY_TIMEOUT_S, Executor

OrgEngine = Literal["deployment", "whisper", "assemblyai", "deepgram"]


@dataclass(frozen=True, slots=True)
class TranscriptionChoice:
    engine: OrgEngine
    api_key_sealed: bytes | None
    api_key_hint: str | None
    """The key's last characters, so that an admin can tell which key is in place."""


NO_CHOICE = TranscriptionChoice("deployment", None, None)


async def get(conn: Executor, org_id: uuid.UUID) -> TranscriptionChoice:
    row = await conn.fetchrow(
        "SELECT engine, api_key_sealed, api_key_hint FROM org_transcription WHERE org_id = $1",
        org_id,
        timeout=QUERY_TIMEOUT_S,
    )
    return NO_CHOICE if row is None else TranscriptionChoice(**dict(row))


async def put(conn: Executor, org_id: uuid.UUID, choice: TranscriptionChoice) -> None:
    await conn.execute(
        """INSERT INTO org_transcription (org_id, engine, api_key_sealed, api_key_hint)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (org_id) DO UPDATE
           SET engine = EXCLUDED.engine, api_key_sealed = EXCLUDED.api_key_sealed,
               api_key_hint = EXCLUDED.api_key_hint, updated_at = now()""",
        org_id, choice.engine, choice.api_key_sealed, choice.api_key_hint,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
