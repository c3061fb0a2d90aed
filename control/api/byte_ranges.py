"""HTTP byte ranges (RFC 9110 §14), one range per request, for seeking in a recording. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True, slots=True)
class ByteRange:
    first: int | None
    """None: the last `last` bytes (`bytes=-500`)."""
    last: int | None
    """None: to the end (`bytes=100-`)."""


def parse_range(header: str | None) -> ByteRange | None:
    """The one range a `Range` header asks for; None for no header, several ranges or one this
    does not read, which a server may answer with the whole body (RFC 9110 §14.2)."""
    if not header:
        return None
    match = _ONE_RANGE.fullmatch(header.strip())
    if match is None or not (match[1] or match[2]):
        return None
    first = int(match[1]) if match[1] else None
    last = int(match[2]) if match[2] else None
    if first is not None and last is not None and last < first:
        return None
    return ByteRange(first, last)


def resolve(wanted: ByteRange, length: int) -> tuple[int, int] | None:
    """The (first, last) byte offsets, inclusive, that `wanted` selects of a body of `length`
    bytes; None when it selects none (answered with 416)."""
    if wanted.first is None:
        if not wanted.last or length == 0:
            return None
        return max(0, length - wanted.last), length - 1
    if wanted.first >= length:
        return None
    last = length - 1 if wanted.last is None else min(wanted.last, length - 1)
    return wanted.first, last
