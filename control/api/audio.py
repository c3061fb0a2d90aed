"""Audio clips calls can play, and the voice the org's prompts are said in.

- `POST /api/audio` (multipart/form-data: `file`, optional `name`): a WAV, MP3, OGG or M4A file,
  known by its content, converted to telephony WAV (control.audio_convert) and stored.
- `POST /api/audio/speech {"text", "engine"?, "voice"?}`: words rendered by a voice (the org's
  own unless named), or the clip already rendered from them.
- `GET /api/audio`, `GET /api/audio/{id}` (with a signed `play_url`), `GET /api/audio/{id}/content`
  (the WAV, for the dashboard's player), `DELETE /api/audio/{id}` (refused while a campaign or
  survey plays it).
- `GET/PUT /api/org/voice {"engine": "say" | "elevenlabs" | "piper", "voice"}`.
- `GET /audio/{id}.wav?expires=&signature=`: the clip for SignalWire's `<Play>`, no session
  (control.play_urls).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field

from control.api import audit
from control.api.bodies import invalid_field, parse_body, path_uuid, plain
from control.api.openapi import Query, doc
from control.api.query import decode_cursor, encode_cursor, parse_int
from control.app_keys import AUDIO_LIMITS, POOL, PROMPTS
from control.audio_convert import AudioRejected, to_telephony
from control.auth import principal, requires
from control.errors import ApiError
from control.metrics import AUDIO_UPLOADS
from control.permissions import Action
from control.voices import MAX_TEXT_CHARS, VoiceFailed
from storage import audio
from storage.tenancy import tenant

CHUNK_BYTES = 64 * 1024
MAX_NAME_CHARS = 200


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/audio", list_clips),
        web.post("/api/audio", upload),
        web.post("/api/audio/speech", speech),
        web.get("/api/audio/{clip_id}", get_clip),
        web.get("/api/audio/{clip_id}/content", clip_content, allow_head=False),
        web.delete("/api/audio/{clip_id}", delete_clip),
        web.get("/api/org/voice", get_voice),
        web.put("/api/org/voice", put_voice),
        web.get(r"/audio/{clip_id}.wav", play, allow_head=False),
    ]


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    engine: Literal["elevenlabs", "piper"] | None = None
    """None: the org's voice."""
    voice: str | None = Field(default=None, min_length=1, max_length=100)


class VoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    engine: Literal["say", "elevenlabs", "piper"]
    voice: str | None = Field(default=None, min_length=1, max_length=100)
    """The engine's voice (an ElevenLabs voice id); None: the engine's default."""


def _clip_id(request: web.Request) -> uuid.UUID:
    return path_uuid(request, "clip_id", "audio clip")


@doc("The organization's audio clips, newest first (no audio: see /content)",
     query=(Query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "default 50"),
            Query("cursor", {"type": "string"}, "the previous page's next_cursor")),
     errors=(422,))  # fmt: skip
@requires(Action.AUDIO_READ)
async def list_clips(request: web.Request) -> web.Response:
    limit = parse_int(request.query.get("limit"), "limit", default=50, low=1, high=200)
    before = decode_cursor(request.query.get("cursor"))
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        rows = await audio.listed(conn, org_id, limit, before)
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if len(rows) == limit else None
    return web.json_response({"clips": plain(rows), "next_cursor": cursor})


@doc("Upload an audio file (multipart/form-data: file, and an optional name): WAV, MP3, OGG "
     "or M4A by its content, converted to 8 kHz mu-law WAV for calls to play",
     status=201, errors=(400, 413, 415, 422))  # fmt: skip
@requires(Action.AUDIO_MANAGE)
async def upload(request: web.Request) -> web.Response:
    limits = request.app[AUDIO_LIMITS]
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send the file as multipart/form-data")
    data, name = await _read_upload(request, limits.max_bytes)
    try:
        converted = await asyncio.to_thread(to_telephony, data, limits.max_seconds)
    except AudioRejected as exc:
        AUDIO_UPLOADS.labels(exc.code).inc()
        raise ApiError(422, exc.code, exc.message) from exc
    who = principal(request)
    clip = audio.NewClip(
        name=name, wav=converted.wav, duration_ms=converted.duration_ms,
        created_by=f"{who.actor_type}:{who.actor_id}", uploaded_type=converted.kind,
    )  # fmt: skip
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        row = await audio.add(conn, who.org_id, clip)
        await audit.record(conn, request, "audio.upload", resource_type="audio",
                           resource_id=str(row["id"]),
                           after={"name": name, "type": converted.kind,
                                  "duration_ms": converted.duration_ms})  # fmt: skip
    AUDIO_UPLOADS.labels("stored").inc()
    return web.json_response(plain(row), status=201)


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[bytes, str]:
    """The `file` part's bytes (413 past `max_bytes`, read no further) and the clip's name (the
    `name` part, else the file's name)."""
    try:
        reader = await request.multipart()
        data: bytes | None = None
        name: str | None = None
        filename = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "BAD_MULTIPART", "nested multipart bodies are not taken")
            if part.name == "file":
                filename = part.filename
                data = await _read_part(part, max_bytes)
            elif part.name == "name":
                name = (await _read_part(part, MAX_NAME_CHARS * 4)).decode("utf-8", "replace")
            else:
                await part.release()
    except (ValueError, AssertionError) as exc:  # aiohttp's refusals of a malformed body
        raise ApiError(400, "BAD_MULTIPART", f"the multipart body is malformed: {exc}") from exc
    if data is None:
        raise invalid_field("file", "send the audio as the form's `file` part")
    if not data:
        AUDIO_UPLOADS.labels("NO_AUDIO").inc()
        raise invalid_field("file", "the file is empty")
    name = (name or filename or "upload").strip()[:MAX_NAME_CHARS] or "upload"
    return data, name


async def _read_part(part: BodyPartReader, max_bytes: int) -> bytes:
    held = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        held += chunk
        if len(held) > max_bytes:
            AUDIO_UPLOADS.labels("AUDIO_TOO_LARGE").inc()
            raise ApiError(413, "AUDIO_TOO_LARGE",
                           f"the file is larger than {max_bytes // 1024} KiB")  # fmt: skip
    return bytes(held)


@doc("Render words in a voice (the organization's, unless named) as a clip; the same words "
     "in the same voice are rendered once", body=SpeechBody, status=201,
     errors=(422, 502))  # fmt: skip
@requires(Action.AUDIO_MANAGE)
async def speech(request: web.Request) -> web.Response:
    body = await parse_body(request, SpeechBody)
    prompts = request.app[PROMPTS]
    who = principal(request)
    engine: str | None = body.engine
    voice = body.voice
    if engine is None:
        async with tenant(request.app[POOL], who.org_id) as conn:
            engine, org_voice = await audio.get_voice(conn, who.org_id)
        voice = voice or org_voice
    if engine not in prompts.engines:
        raise invalid_field("engine", _no_engine(engine, prompts.engines))
    try:
        row = await prompts.render(
            who.org_id, body.text, engine, voice, f"{who.actor_type}:{who.actor_id}"
        )
    except VoiceFailed as exc:
        raise ApiError(502, "VOICE_FAILED", str(exc), {"reason": exc.reason}) from exc
    return web.json_response(plain(row), status=201)


def _no_engine(engine: str, engines: Any) -> str:
    have = ", ".join(sorted(engines)) or "none"
    if engine == "say":
        return f"the organization's voice is SignalWire's <Say>: name an engine ({have})"
    return f"this server has no {engine} voice (it has: {have})"


@doc("An audio clip, with a signed URL SignalWire can play it from (for an hour)",
     errors=(404,))  # fmt: skip
@requires(Action.AUDIO_READ)
async def get_clip(request: web.Request) -> web.Response:
    clip_id = _clip_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        row = await audio.get(conn, org_id, clip_id)
    if row is None:
        raise ApiError(404, "NOT_FOUND", "no such audio clip")
    return web.json_response({**plain(row), "play_url": request.app[PROMPTS].urls.url(clip_id)})


@doc("An audio clip's audio (8 kHz mu-law WAV)", errors=(404,))
@requires(Action.AUDIO_READ)
async def clip_content(request: web.Request) -> web.Response:
    clip_id = _clip_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        data = await audio.wav(conn, clip_id, org_id)
    if data is None:
        raise ApiError(404, "NOT_FOUND", "no such audio clip")
    return web.Response(body=data, content_type="audio/wav")


@doc("Delete an audio clip (refused while a campaign or survey plays it)", status=204,
     errors=(404, 409))  # fmt: skip
@requires(Action.AUDIO_MANAGE)
async def delete_clip(request: web.Request) -> web.Response:
    clip_id = _clip_id(request)
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        if users := await audio.used_by(conn, org_id, clip_id):
            raise ApiError(409, "CLIP_IN_USE", f"played by {', '.join(users)}", {"used_by": users})
        if not await audio.remove(conn, org_id, clip_id):
            raise ApiError(404, "NOT_FOUND", "no such audio clip")
        await audit.record(conn, request, "audio.delete", resource_type="audio",
                           resource_id=str(clip_id))  # fmt: skip
    return web.Response(status=204)


@doc("The voice the organization's prompts are said in, and the engines this server has")
@requires(Action.CALLS_READ)
async def get_voice(request: web.Request) -> web.Response:
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn:
        engine, voice = await audio.get_voice(conn, org_id)
    return web.json_response(_voice(request, engine, voice))


@doc("Say the organization's prompts (disclosure, consent question, campaign and survey words) "
     "with SignalWire's <Say> or a rendering voice", body=VoiceBody, errors=(422,))  # fmt: skip
@requires(Action.VOICE_MANAGE)
async def put_voice(request: web.Request) -> web.Response:
    body = await parse_body(request, VoiceBody)
    engines = request.app[PROMPTS].engines
    if body.engine != "say" and body.engine not in engines:
        raise invalid_field("engine", _no_engine(body.engine, engines))
    org_id = principal(request).org_id
    async with tenant(request.app[POOL], org_id) as conn, conn.transaction():
        before = await audio.get_voice(conn, org_id)
        await audio.set_voice(conn, org_id, body.engine, body.voice)
        await audit.record(conn, request, "org.voice.set", resource_type="org",
                           resource_id=str(org_id),
                           before={"engine": before[0], "voice": before[1]},
                           after={"engine": body.engine, "voice": body.voice})  # fmt: skip
    return web.json_response(_voice(request, body.engine, body.voice))


def _voice(request: web.Request, engine: str, voice: str | None) -> dict[str, Any]:
    return {"engine": engine, "voice": voice,
            "engines": ["say", *sorted(request.app[PROMPTS].engines)]}  # fmt: skip


async def play(request: web.Request) -> web.Response:
    """A clip for SignalWire's `<Play>`, by a signed URL (no session); 403 when the signature
    is wrong or expired, 404 when the clip is gone."""
    try:
        clip_id = uuid.UUID(request.match_info["clip_id"])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", "no such audio clip") from None
    expires, signature = request.query.get("expires", ""), request.query.get("signature", "")
    if not request.app[PROMPTS].urls.verify(clip_id, expires, signature):
        raise ApiError(403, "BAD_SIGNATURE", "the URL is not signed for this clip or expired")
    async with request.app[POOL].acquire() as conn:
        data = await audio.wav(conn, clip_id)
    if data is None:
        raise ApiError(404, "NOT_FOUND", "no such audio clip")
    return web.Response(body=data, content_type="audio/wav",
                        headers={"Cache-Control": "private, max-age=300"})  # fmt: skip
