"""Phone numbers as SignalWire sends them: E.164, or SIP/tel URIs carrying one."""

from __future__ import annotations

import re

_E164_BODY = r"\+[1-9][0-9]{6,14}"
E164 = f"^{_E164_BODY}$"
"""For pydantic `Field(pattern=...)` (its regex engine's `$` is the end of the text)."""
_E164 = re.compile(_E164_BODY)
# Matched with fullmatch: `$` would also accept a trailing newline.
_URI = re.compile(r"(?:sips?|tel):(\+?[0-9]{7,15})(?:[@;].*)?", re.IGNORECASE | re.DOTALL)


def is_e164(value: str) -> bool:
    return bool(_E164.fullmatch(value))


def normalize_number(value: str | None) -> str | None:
    """`+17065551234`, `sip:+17065551234@sip.swire.io` and `tel:+17065551234` → E.164;
    anything else (a SIP user name, a client id) → None."""
    if not value:
        return None
    value = value.strip()
    if _E164.fullmatch(value):
        return value
    if m := _URI.fullmatch(value):
        number = m[1] if m[1].startswith("+") else "+" + m[1]
        return number if _E164.fullmatch(number) else None
    return None
