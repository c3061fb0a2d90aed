"""Transcripts translated after each call into the org's chosen language, through an
OpenAI-compatible chat-completions API (off unless configured: VOXSOUTH_TRANSLATION_URL and
_API_KEY).

The API: `POST {base}/chat/completions` with `Authorization: Bearer <key>` and `{"model",
"messages": [{"role", "content"}], "temperature"}`; the answer's
`choices[0].message.content` is the model's text. The segments go as one JSON array and the
model is asked for the array of translations in order; an answer that is not such an array of
the same length is refused (nothing stored; the call is tried again later), as are 429 and
5xx answers. Only stored segments are translated: already redacted, and never what consent
holding kept back (that is never stored).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from control.metrics import TRANSLATIONS
from control.periodic import Periodic
from storage import translations
from storage.db import Pool

log = logging.getLogger(__name__)

BATCH = 50
"""Segments per request: a call's transcript goes in a few requests at most."""


class TranslationFailed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TranslationConfig:
    base_url: str
    api_key: str
    model: str = "gpt-4o-mini"
    timeout_s: float = 60.0
    every_s: float = 10.0
    stale_after_s: float = 600.0
    """A claimed call not translated in this long (its process died, or the service failed) is
    claimed again."""


class ChatTranslator:
    def __init__(self, session: aiohttp.ClientSession, config: TranslationConfig) -> None:
        self._session = session
        self._config = config
        self.engine = f"{config.model}@{URL(config.base_url).host}"

    async def translate(self, texts: list[str], language: str) -> list[str]:
        """`texts` in `language` (an IETF tag, e.g. "es"), in order; raises TranslationFailed."""
        body = {
            "model": self._config.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": (
                    f"Translate each string of the JSON array the user sends into the language "
                    f"with the tag {language!r}. Keep bracketed placeholders such as [card] as "
                    "they are. Answer with a JSON array of the translations, in the same order, "
                    "and nothing else."
                )},
                {"role": "user", "content": json.dumps(texts, ensure_ascii=False)},
            ],
        }  # fmt: skip
        try:
            async with self._session.post(
                f"{self._config.base_url.rstrip('/')}/chat/completions", json=body,
                headers={"Authorization": f"Bearer {self._config.api_key}"},
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
            ) as resp:  # fmt: skip
                if resp.status != 200:
                    raise TranslationFailed(f"answered {resp.status}: {(await resp.text())[:200]}")
                answer: Any = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TranslationFailed(f"{type(exc).__name__}: {exc}") from exc
        try:
            translated = json.loads(answer["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise TranslationFailed("the answer is not a chat completion with JSON") from exc
        if not (isinstance(translated, list) and len(translated) == len(texts)
                and all(isinstance(t, str) for t in translated)):  # fmt: skip
            raise TranslationFailed("the answer is not the array of translations asked for")
        return translated


class CallTranslator:
    """Translates ended calls' transcripts, from every process (claims make one do each)."""

    def __init__(self, pool: Pool, translator: ChatTranslator, config: TranslationConfig) -> None:
        self._pool = pool
        self._translator = translator
        self._config = config
        self._periodic = Periodic("translator", config.every_s, self.tick)

    def start(self) -> None:
        self._periodic.start()

    async def aclose(self) -> None:
        await self._periodic.aclose()

    async def tick(self) -> int:
        """Translates the calls due (a few at a time); returns how many were done."""
        async with self._pool.acquire() as conn:
            due = await translations.claim_calls(conn, 5, self._config.stale_after_s)
        done = 0
        for call in due:
            try:
                await self._translate(call)
            except TranslationFailed as exc:
                TRANSLATIONS.labels("failed").inc()
                log.warning("call %s not translated (tried again later): %s", call["id"], exc)
                continue
            TRANSLATIONS.labels("done").inc()
            done += 1
        return done

    async def _translate(self, call: dict[str, Any]) -> None:
        async with self._pool.acquire() as conn:
            found = await translations.segments(conn, call["id"])
        translated: list[tuple[Any, str]] = []
        for at in range(0, len(found), BATCH):
            batch = found[at : at + BATCH]
            texts = await self._translator.translate([s["text"] for s in batch],
                                                     call["translate_to"])  # fmt: skip
            translated += [(s["id"], t) for s, t in zip(batch, texts, strict=True)]
        async with self._pool.acquire() as conn, conn.transaction():
            await translations.store(conn, call["org_id"], call["id"], call["translate_to"],
                                     self._translator.engine, translated)  # fmt: skip
