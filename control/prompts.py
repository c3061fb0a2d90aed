"""What a call hears for a prompt's words: SignalWire's `<Say>`, or the org's voice rendered.

An org that chose a rendering voice (storage.audio.get_voice) has each prompt rendered once
(control.voices), stored as a clip (storage.audio) and played from a signed URL
(control.play_urls). A webhook waits at most `wait_s` for a first render: past that, or when
the engine fails, the call hears the words through `<Say>` rather than wait, and the render
goes on so the next call plays it. One render per prompt at a time in this process; processes
that render the same prompt at once store it once (its render key).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.audio_convert import Telephony
from control.laml import Play, Spoken
from control.play_urls import PlayUrls
from control.voices import MAX_TEXT_CHARS, Synthesizer
from storage import audio
from storage.db import Pool
from storage.tenancy import tenant

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AudioLimits:
    max_bytes: int = 10 * 1024 * 1024
    """An uploaded file's size."""
    max_seconds: float = 600.0
    """How long an uploaded file may play."""


class Prompts:
    def __init__(
        self, pool: Pool, engines: Mapping[str, Synthesizer], urls: PlayUrls, wait_s: float
    ) -> None:
        self._pool = pool
        self.engines = engines
        """The rendering engines this server has, by name ("elevenlabs", "piper")."""
        self.urls = urls
        self._wait_s = wait_s
        self._renders: dict[tuple[uuid.UUID, str], asyncio.Task[dict[str, Any]]] = {}

    async def speak(self, org_id: uuid.UUID, text: str) -> Spoken:
        """`text` as the org's calls hear it: a `Play` of its render, or the words (also when
        the lookup or the render fails or takes longer than `wait_s`: a call never waits)."""
        if not self.engines or not text.strip() or len(text) > MAX_TEXT_CHARS:
            return text  # no voice here renders: no round trip to ask the org's
        try:
            async with asyncio.timeout(self._wait_s):
                async with tenant(self._pool, org_id) as conn:
                    engine, voice = await audio.get_voice(conn, org_id)
                    if engine not in self.engines:  # "say", or an engine this server lacks
                        return text
                    clip = await audio.rendered(conn, org_id, engine, voice, text)
                if clip is None:
                    clip = await asyncio.shield(self._render_once(org_id, engine, voice, text))
        except Exception as exc:  # the words are said instead: logged, never raised
            log.warning("prompt said with <Say>: %s", f"{type(exc).__name__}: {exc}")
            return text
        return Play(self.urls.url(clip["id"]))

    async def render(self, org_id: uuid.UUID, text: str, engine: str, voice: str | None,
                     created_by: str) -> dict[str, Any]:  # fmt: skip
        """The clip of `text` in `voice`, from the cache or rendered now; raises VoiceFailed."""
        async with tenant(self._pool, org_id) as conn:
            clip = await audio.rendered(conn, org_id, engine, voice, text)
        if clip is not None:
            return clip
        return await self._render_once(org_id, engine, voice, text, created_by)

    def _render_once(self, org_id: uuid.UUID, engine: str, voice: str | None, text: str,
                     created_by: str = "voice") -> asyncio.Task[dict[str, Any]]:  # fmt: skip
        key = (org_id, audio.render_key(engine, voice, text))
        task = self._renders.get(key)
        if task is None:
            task = asyncio.create_task(self._store(org_id, engine, voice, text, created_by))
            self._renders[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    def _done(self, key: tuple[uuid.UUID, str], task: asyncio.Task[dict[str, Any]]) -> None:
        self._renders.pop(key, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("prompt not rendered: %s", f"{type(exc).__name__}: {exc}")

    async def _store(self, org_id: uuid.UUID, engine: str, voice: str | None, text: str,
                     created_by: str) -> dict[str, Any]:  # fmt: skip
        rendered: Telephony = await self.engines[engine].render(text, voice)
        clip = audio.NewClip(
            name=text[:80], wav=rendered.wav, duration_ms=rendered.duration_ms,
            created_by=created_by, engine=engine, voice=voice, text=text,
        )  # fmt: skip
        async with tenant(self._pool, org_id) as conn:
            return await audio.add(conn, org_id, clip)

    async def aclose(self) -> None:
        """Cancels the renders still running (the process is stopping)."""
        for task in list(self._renders.values()):
            task.cancel()
        await asyncio.gather(*self._renders.values(), return_exceptions=True)
