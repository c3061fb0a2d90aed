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
