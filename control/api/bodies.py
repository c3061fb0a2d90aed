"""JSON bodies in (validated by pydantic models) and out (uuid/datetime made plain).

`parse_body` is the one way a route reads its body. It takes `application/json` only (415
otherwise), at most the app's `client_max_size` (aiohttp answers 413), parses with orjson
and refuses nesting deeper than `MAX_DEPTH` (400 INVALID_JSON), text Postgres cannot store
and anything the route's model rejects (422 VALIDATION_FAILED).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from control.errors import ApiError

M = TypeVar("M", bound=BaseModel)

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
"""An email address, as far as a form can tell: the mail server has the last word."""

MAX_DEPTH = 32
"""Our bodies nest three levels at most. orjson stops at 1024, but what runs after it
(pydantic's error reports, `plain`, json.dumps into audit rows) may recurse in Python, whose
limit is near 1000 frames: a deep body stops here, not at a RecursionError (a 500)."""


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model`; 415 for another content type, 400 for unreadable
    or too deeply nested JSON, 422 listing bad fields."""
    data = await _read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise ApiError(
            422, "VALIDATION_FAILED", "the body is invalid", {"fields": fields}
        ) from None


def invalid_field(field: str, message: str) -> ApiError:
    """422 VALIDATION_FAILED for one field, in the shape `parse_body` gives."""
    return ApiError(
        422, "VALIDATION_FAILED", message, {"fields": [{"field": field, "message": message}]}
    )


async def _read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    raw = await request.read()  # over client_max_size: aiohttp raises its 413
    try:
        # orjson, not json: its parser does not recurse on the Python stack and refuses,
        # as a JSONDecodeError, what json lets through to a 500 or into the data (nesting
        # past its limit, integers too long for int(), NaN, lone surrogates).
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        where = {"line": exc.lineno, "column": exc.colno}
        raise ApiError(400, "INVALID_JSON", "the body is not valid JSON", where) from None
    _check_values(data)
    return data


def _check_values(data: Any) -> None:
    """ApiError for nesting deeper than MAX_DEPTH or a string Postgres cannot store (JSON may
    carry NUL characters as escapes; text columns take none; orjson has refused lone
    surrogates already). Walked in document order with an explicit stack, not recursion:
    recursion is what a deep body attacks."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if not storable_text(value):
                raise _unstorable(path)
            continue
        children = _children(value)
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise ApiError(
                400, "INVALID_JSON", f"the body nests deeper than {MAX_DEPTH} levels",
                {"max_depth": MAX_DEPTH},
            )  # fmt: skip
        found: list[tuple[Any, str, int]] = []
        for key, item in children:
            if isinstance(key, str) and not storable_text(key):
                raise _unstorable(path)
            found.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        stack.extend(reversed(found))


def _children(value: Any) -> Iterable[tuple[Any, Any]] | None:
    """A JSON container's (key or index, item) pairs; None for a scalar."""
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, list):
        return enumerate(value)
    return None


def _unstorable(path: str) -> ApiError:
    fields = [{"field": path or "body", "message": "text with a NUL character"}]
    return ApiError(422, "VALIDATION_FAILED", "the body is invalid", {"fields": fields})


def storable_text(text: str) -> bool:
    """Postgres text takes neither NUL characters nor lone surrogates (not valid UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    """The UUID path parameter `name`; anything else is "no such <what>" (404)."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"no such {what}") from None


def plain(value: Any) -> Any:
    """JSON-ready copy of rows: uuids, datetimes and times of day as strings, bytes never
    leave."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | time):
        return value.isoformat()
    return value
