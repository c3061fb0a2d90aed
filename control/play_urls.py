"""Signed, expiring URLs for audio clips, so SignalWire can fetch a `<Play>` with no session.

`{base}/audio/{clip id}.wav?expires={unix time}&signature={hex}`, the signature an HMAC-SHA256
over `"{clip id}.{expires}"` with a server secret: a URL cannot be made for another clip or
stretched past its expiry. Expiries are rounded up to a whole `ttl_s / 4`, so the prompts of
calls a few minutes apart share one URL and SignalWire's media cache serves them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlayUrls:
    secret: bytes
    base_url: str
    """As SignalWire reaches this server (the public URL), no trailing slash."""
    ttl_s: int = 3600

    def url(self, clip_id: uuid.UUID, now: float | None = None) -> str:
        step = max(1, self.ttl_s // 4)
        expires = math.ceil(((time.time() if now is None else now) + self.ttl_s) / step) * step
        return (f"{self.base_url}/audio/{clip_id}.wav?expires={expires}"
                f"&signature={self._sign(clip_id, expires)}")  # fmt: skip

    def verify(self, clip_id: uuid.UUID, expires: str, signature: str,
               now: float | None = None) -> bool:  # fmt: skip
        """Whether the URL was made here for this clip and has not expired."""
        if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(self._sign(clip_id, int(expires)), signature)

    def _sign(self, clip_id: uuid.UUID, expires: int) -> str:
        return hmac.new(self.secret, f"{clip_id}.{expires}".encode(), hashlib.sha256).hexdigest()
