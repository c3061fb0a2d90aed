"""JSON bodies in (validated by pydantic models) and out (uuid/datetime made plain)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from control.errors import ApiError

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model`; 400 for unreadable JSON, 422 listing bad fields."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "the body is not valid JSON") from None
    if (where := _unstorable_text(data, "")) is not None:
        fields = [{"field": where or "body", "message": "text with NUL or unpaired surrogates"}]
        raise ApiError(422, "VALIDATION_FAILED", "the body is invalid", {"fields": fields})
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


def storable_text(text: str) -> bool:
    """Postgres text takes neither NUL characters nor lone surrogates (not valid UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unstorable_text(value: Any, path: str) -> str | None:
    """The path of the first string Postgres cannot store (JSON may carry NUL characters and
    lone UTF-16 surrogates as escapes; text columns take neither), or None."""
    if isinstance(value, str):
        return None if storable_text(value) else path
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else (enumerate(value) if isinstance(value, list) else ())
    )
    for key, item in items:
        if isinstance(key, str) and _unstorable_text(key, path) is not None:
            return path or "body"
        child = f"{path}.{key}" if path else str(key)
        if (found := _unstorable_text(item, child)) is not None:
            return found
    return None


def path_uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    """The UUID path parameter `name`; anything else is "no such <what>" (404)."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"no such {what}") from None


def plain(value: Any) -> Any:
    """JSON-ready copy of rows: uuids and datetimes as strings, bytes never leave."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
