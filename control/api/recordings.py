"""A call recording's audio, played or downloaded through the control plane.

SignalWire's media URLs are public (docs/protocols.md e): whoever holds one can listen. So none
is handed out (`GET /api/calls/{id}` says only whether a recording has audio); the audio comes
from here, for roles that may listen, each play audited as a read. Seeking works whatever
SignalWire's side supports: a `Range` is served by reading the audio up to where it starts.
"""

from __future__ import annotations

import re
from typing import Literal, cast

from aiohttp import StreamReader, web

from control.api import audit
from control.api.byte_ranges import parse_range, resolve
from control.api.openapi import Query, doc
from control.api.outbound import signalwire_client
from control.app_keys import POOL
from control.auth import principal, requires
from control.errors import ApiError
from control.permissions import Action
from control.signalwire import SignalWireError
from storage import recordings
from storage.tenancy import tenant

CHUNK_BYTES = 64 * 1024
_SID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/recordings/{recording_sid}/audio", get_audio, allow_head=False),
        web.delete("/api/recordings/{recording_sid}", delete_recording),
    ]


@doc(
    "A recording's audio (WAV, or MP3 with ?format=mp3), from SignalWire through this server; "
    "a Range header seeks; every play is audited",
    query=(Query("format", {"type": "string", "enum": ["wav", "mp3"]}, "wav (default) or mp3"),),
    errors=(404, 409, 416, 422, 502, 503),
)
@requires(Action.RECORDINGS_LISTEN)
async def get_audio(request: web.Request) -> web.StreamResponse:
    who = principal(request)
    sid = request.match_info["recording_sid"]
    fmt = request.query.get("format", "wav")
    if fmt not in _TYPES:
        raise ApiError(422, "INVALID_FORMAT", "format is wav or mp3")
    if not _SID.fullmatch(sid):
        raise ApiError(404, "NOT_FOUND", "no such recording")
    async with tenant(request.app[POOL], who.org_id) as conn:
        found = await recordings.media_of(conn, who.org_id, sid)
        if found is None:  # another org's recording is "no such recording" too
            raise ApiError(404, "NOT_FOUND", "no such recording")
        url, status = found
        if url is None:
            raise ApiError(409, "RECORDING_NOT_READY", f"the recording has no audio yet ({status})")
        client = signalwire_client(request)
        await audit.record(
            conn, request, "recording.listen", resource_type="recording", resource_id=sid
        )
    try:
        async with client.recording_media(url, cast(Literal["wav", "mp3"], fmt)) as upstream:
            return await _relay(request, upstream.content, upstream.content_length, _TYPES[fmt])
    except SignalWireError as exc:
        raise ApiError(502, "RECORDING_UNAVAILABLE", "SignalWire did not give the audio") from exc


@doc("Delete a recording: its audio at SignalWire, then its record here (audited)",
     status=204, errors=(404, 502, 503))  # fmt: skip
@requires(Action.RECORDINGS_DELETE)
async def delete_recording(request: web.Request) -> web.Response:
    who = principal(request)
    sid = request.match_info["recording_sid"]
    async with tenant(request.app[POOL], who.org_id) as conn:
        if not _SID.fullmatch(sid) or await recordings.media_of(conn, who.org_id, sid) is None:
            raise ApiError(404, "NOT_FOUND", "no such recording")
    client = signalwire_client(request)
    try:
        await client.delete_recording(sid)  # first: a failure leaves it listed, to try again
    except SignalWireError as exc:
        raise ApiError(502, "RECORDING_NOT_DELETED", "SignalWire did not delete it") from exc
    async with tenant(request.app[POOL], who.org_id) as conn, conn.transaction():
        if await recordings.delete(conn, who.org_id, sid):
            await audit.record(
                conn, request, "recording.delete", resource_type="recording", resource_id=sid
            )
    return web.Response(status=204)


async def _relay(
    request: web.Request, body: StreamReader, length: int | None, content_type: str
) -> web.StreamResponse:
    """The audio, or the part of it a `Range` asks for (when its length is known)."""
    wanted = parse_range(request.headers.get("Range"))
    first, last = 0, None if length is None else length - 1
    response = web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "Accept-Ranges": "bytes",
            "Cache-Control": "private, no-store",
        }
    )
    if wanted is not None and length is not None:
        span = resolve(wanted, length)
        if span is None:
            raise ApiError(
                416, "RANGE_NOT_SATISFIABLE", f"the audio is {length} bytes",
                headers={"Content-Range": f"bytes */{length}"},
            )  # fmt: skip
        first, last = span
        response.set_status(206)
        response.headers["Content-Range"] = f"bytes {first}-{last}/{length}"
    if last is not None:
        response.content_length = last - first + 1
    await response.prepare(request)
    skip, left = first, None if last is None else last - first + 1
    async for chunk in body.iter_chunked(CHUNK_BYTES):
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
        if left is not None:
            chunk, left = chunk[:left], left - min(left, len(chunk))
        if chunk:
            await response.write(chunk)
        if left == 0:
            break
    await response.write_eof()
    return response
