"""The error root and the one place errors become HTTP responses.

    VoxsouthError             a failure the CLI reports in one line
    SettingsError             (server.settings) invalid or missing configuration at start-up
    EmbeddedPostgresError     (storage.embedded) the default database did not start
    ApiError                  (control.errors) an HTTP error with a stable code, raised by
                              control/ and rendered by server/middleware.py

Every error response has the shape
`{"error": {"code": ..., "message": ..., "request_id": ..., "details": {...}}}`;
internal errors never carry a traceback or SQL to the client.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class VoxsouthError(Exception):
    pass


def code_for_status(status: int) -> str:
    """A stable machine-readable code for aiohttp's own HTTP exceptions (404, 405, 413, ...)."""
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "HTTP_ERROR"


def error_body(code: str, message: str, request_id: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "request_id": request_id, "details": details}
    }
