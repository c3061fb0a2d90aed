"""The error control/ raises for an API client; server/middleware.py renders it."""

from __future__ import annotations

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
