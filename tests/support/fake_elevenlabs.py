"""A fake ElevenLabs text-to-speech API on loopback that speaks the real one's protocol and
renders real speech (Piper), so what an adapter gets back is words a listener can hear.

`POST /v1/text-to-speech/{voice_id}?output_format=…` with the `xi-api-key` header and a JSON
body whose `text` is required: 200 with the audio (`ulaw_8000`: raw 8 kHz mu-law, no header;
`mp3_44100_128`, the service's default: MP3), or the service's error bodies: 401
`{"detail": {"status": "invalid_api_key", …}}`, 404 `voice_not_found`, 422 `{"detail": [{"loc",
"msg", "type"}]}`. Faults are scripted with `fail_next` (a status and body, e.g. 429
`too_many_concurrent_requests`, 500), `answer_next` (a 200 with any body and content type) and
`hold` (an event the fake waits on before answering).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import av
import numpy as np
from aiohttp import web

from control.voices import load_piper
from media.codecs import ulaw_encode
from tests.support.audio_files import encode

KEY = "el-test-key"
VOICES = ("21m00Tcm4TlvDq8ikWAM", "pNInz6obpgDQGcFmaJgB")


def detail(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


@dataclass
class FakeElevenLabs:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    scripted: list[tuple[int, bytes, str]] = field(default_factory=list)
    hold: asyncio.Event | None = None

    def fail_next(self, status: int, body: dict[str, Any] | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.scripted.append((status, text.encode(), "application/json"))

    def answer_next(self, body: bytes, content_type: str) -> None:
        self.scripted.append((200, body, content_type))

    async def tts(self, request: web.Request) -> web.Response:
        voice = request.match_info["voice_id"]
        fmt = request.query.get("output_format", "mp3_44100_128")
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append({"voice": voice, "format": fmt, "body": body,
                              "key": request.headers.get("xi-api-key")})  # fmt: skip
        answer = self._answer(request, voice, fmt, body)
        if self.hold is not None:  # answered as things stood when the request came
            await self.hold.wait()
        return answer

    def _answer(self, request: web.Request, voice: str, fmt: str, body: Any) -> web.Response:
        if request.headers.get("xi-api-key") != KEY:
            return web.json_response(detail("invalid_api_key", "Invalid API key"), status=401)
        if self.scripted:
            status, data, content_type = self.scripted.pop(0)
            return web.Response(status=status, body=data, content_type=content_type)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            missing = {"loc": ["body", "text"], "msg": "field required",
                       "type": "value_error.missing"}  # fmt: skip
            return web.json_response({"detail": [missing]}, status=422)
        if voice not in VOICES:
            return web.json_response(
                detail("voice_not_found", f"A voice with the voice_id {voice} was not found."),
                status=404,
            )
        if fmt == "ulaw_8000":
            return web.Response(body=ulaw_8000(body["text"]), content_type="audio/basic")
        if fmt == "mp3_44100_128":
            return web.Response(body=mp3(body["text"]), content_type="audio/mpeg")
        return web.json_response(detail("invalid_output_format", fmt), status=422)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}", self.tts)
        return app


@cache
def _voice() -> Any:
    return load_piper()


def _speech(text: str, rate: int) -> np.ndarray:
    """Piper's rendering of `text`, as 16-bit samples at `rate`."""
    voice = _voice()
    samples = np.concatenate([np.asarray(c.audio_float_array, np.float32)
                              for c in voice.synthesize(text)])  # fmt: skip
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = int(voice.config.sample_rate)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame),
                                                 *resampler.resample(None)]]  # fmt: skip
    return np.concatenate(out).astype(np.int16)


def ulaw_8000(text: str) -> bytes:
    return ulaw_encode(_speech(text, 8000).tobytes())


def mp3(text: str) -> bytes:
    return encode(_speech(text, 44_100), 44_100, "mp3", "libmp3lame", 44_100)
