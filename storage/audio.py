"""Audio clips (migration 0036): uploaded files and voice-rendered prompts, as telephony WAV,
and the voice each org's prompts are said in."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from storage.db import QUERY_TIMEOUT_S, Executor

_META = """id, source, name, uploaded_type, engine, voice, text, duration_ms, size_bytes,
           sha256, created_by, created_at"""


@dataclass(frozen=True, slots=True)
class NewClip:
    name: str
    wav: bytes
    duration_ms: int
    created_by: str
    uploaded_type: str | None = None
    """For an upload: what the file was (wav, mp3, ogg, m4a)."""
    engine: str | None = None
    """For a render: the engine, voice and text it was rendered from."""
    voice: str | None = None
    text: str | None = None


def render_key(engine: str, voice: str | None, text: str) -> str:
    """What a render is cached by: the same words in the same voice are rendered once."""
    return hashlib.sha256(f"{engine}\x00{voice or ''}\x00{text}".encode()).hexdigest()


async def add(conn: Executor, org_id: uuid.UUID, clip: NewClip) -> dict[str, Any]:
    """Stores a clip; a render whose key another process stored first is that one."""
    key = None if clip.engine is None else render_key(clip.engine, clip.voice, clip.text or "")
    row = await conn.fetchrow(
        f"""WITH added AS (
               INSERT INTO audio_clips (org_id, source, name, uploaded_type, engine, voice, text,
                   render_key, duration_ms, size_bytes, sha256, wav, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               ON CONFLICT (org_id, render_key) DO NOTHING
               RETURNING {_META}
           )
           SELECT * FROM added
           UNION ALL
           SELECT {_META} FROM audio_clips
           WHERE org_id = $1 AND render_key = $8 AND NOT EXISTS (SELECT 1 FROM added)""",
        org_id, "upload" if clip.engine is None else "voice", clip.name, clip.uploaded_type,
        clip.engine, clip.voice, clip.text, key, clip.duration_ms, len(clip.wav),
        hashlib.sha256(clip.wav).hexdigest(), clip.wav, clip.created_by,
        timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    assert row is not None  # inserted, or the conflicting row
    return dict(row)


async def rendered(
    conn: Executor, org_id: uuid.UUID, engine: str, voice: str | None, text: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_META} FROM audio_clips WHERE org_id = $1 AND render_key = $2",
        org_id, render_key(engine, voice, text), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else dict(row)


async def listed(
    conn: Executor, org_id: uuid.UUID, limit: int, before: tuple[Any, uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Newest first; `before` (created_at, id) continues after a page's last clip."""
    rows = await conn.fetch(
        f"""SELECT {_META} FROM audio_clips
            WHERE org_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
            ORDER BY created_at DESC, id DESC LIMIT $4""",
        org_id, None if before is None else before[0], None if before is None else before[1],
        limit, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def get(conn: Executor, org_id: uuid.UUID, clip_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_META} FROM audio_clips WHERE org_id = $1 AND id = $2",
        org_id, clip_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return None if row is None else dict(row)


async def wav(conn: Executor, clip_id: uuid.UUID, org_id: uuid.UUID | None = None) -> bytes | None:
    """A clip's audio; with no `org_id` any org's (for a signed play URL, which names it)."""
    data: bytes | None = await conn.fetchval(
        "SELECT wav FROM audio_clips WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2)",
        clip_id, org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return data


async def remove(conn: Executor, org_id: uuid.UUID, clip_id: uuid.UUID) -> bool:
    done: str = await conn.execute(
        "DELETE FROM audio_clips WHERE org_id = $1 AND id = $2",
        org_id, clip_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return done.endswith(" 1")


async def get_voice(conn: Executor, org_id: uuid.UUID) -> tuple[str, str | None]:
    """The org's prompt voice: (engine, voice name); engine "say" is SignalWire's `<Say>`."""
    row = await conn.fetchrow(
        "SELECT voice_engine, voice_name FROM organizations WHERE id = $1",
        org_id, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return ("say", None) if row is None else (row["voice_engine"], row["voice_name"])


async def set_voice(conn: Executor, org_id: uuid.UUID, engine: str, voice: str | None) -> None:
    await conn.execute(
        "UPDATE organizations SET voice_engine = $2, voice_name = $3 WHERE id = $1",
        org_id, engine, voice, timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip


async def used_by(conn: Executor, org_id: uuid.UUID, clip_id: uuid.UUID) -> list[str]:
    """What plays the clip: campaigns not finished (`campaign <name>`) and surveys."""
    rows = await conn.fetch(
        """SELECT 'campaign ' || name AS user FROM campaigns
           WHERE org_id = $1 AND flow->>'play_clip' = $2::text
             AND status NOT IN ('completed', 'cancelled')
           UNION ALL
           SELECT 'survey ' || name FROM surveys
           WHERE org_id = $1 AND jsonb_path_exists(questions, '$[*] ? (@.audio_clip == $c)',
                                                   jsonb_build_object('c', $2::text))""",
        org_id, str(clip_id), timeout=QUERY_TIMEOUT_S,
    )  # fmt: skip
    return [r["user"] for r in rows]
