"""Query parameters of list routes: parsing with one error shape, and page cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import datetime

from control.errors import ApiError


def bad_query(name: str, expected: str) -> ApiError:
    return ApiError(
        400,
        "INVALID_QUERY",
        f"query parameter {name} is invalid",
        {"fields": [{"field": name, "message": f"expected {expected}"}]},
    )


def parse_int(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise bad_query(name, f"a whole number from {low} to {high}")
    return int(value)


def parse_bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise bad_query(name, "true or false")
    return value == "true"


def parse_choice(value: str | None, name: str, choices: Sequence[str]) -> str | None:
    if value is not None and value not in choices:
        raise bad_query(name, f"one of {', '.join(choices)}")
    return value


def parse_uuid(value: str | None, name: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise bad_query(name, "a UUID") from None


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad_query(name, "an ISO 8601 time with a UTC offset") from None
    if parsed.tzinfo is None:
        raise bad_query(name, "an ISO 8601 time with a UTC offset")
    return parsed


def encode_cursor(at: datetime, key: uuid.UUID | str) -> str:
    """A page cursor: the (time, key) of the last row of a page ordered by both."""
    raw = f"{at.isoformat()}|{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    """A cursor whose key is a row id."""
    if (parsed := decode_keyed_cursor(value)) is None:
        return None
    try:
        return parsed[0], uuid.UUID(parsed[1])
    except ValueError:
        raise bad_query("cursor", "a cursor from a previous page") from None


def decode_keyed_cursor(value: str | None) -> tuple[datetime, str] | None:
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        at, sep, key = raw.partition("|")
        parsed = datetime.fromisoformat(at), key
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_query("cursor", "a cursor from a previous page") from None
    if parsed[0].tzinfo is None or not sep or not key:
        raise bad_query("cursor", "a cursor from a previous page")
    return parsed
