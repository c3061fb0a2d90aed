"""The error control/ raises for an API client; server/middleware.py renders it."""

from __future__ import annotations

import math
from typing import Any


class ApiError(Exception):
    """An HTTP error with a stable machine-readable `code` and safe `message`/`details`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def retry_later(status: int, code: str, message: str, wait_s: float) -> ApiError:
    """A 429 or 503 saying when to come back: whole seconds, rounded up, at least 1 (rounded
    to the millisecond first, so float noise cannot add a second), in `Retry-After` and in
    `details.retry_after_s`."""
    retry = max(1, math.ceil(round(wait_s, 3)))
    return ApiError(status, code, message, {"retry_after_s": retry}, {"Retry-After": str(retry)})
