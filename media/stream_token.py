"""Short-lived tokens that bind a media stream to the call the control plane answered.

SignalWire signs no header on the media WebSocket upgrade, so the control plane issues a token,
puts it in the stream's `<Parameter name="token">`, and the media plane checks it against the
`start` message's `customParameters.token` and `callSid` before accepting any audio.

Format: `b64url(payload) + "." + b64url(HMAC-SHA256(secret, b64url(payload)))`, base64url
without padding, `payload` the compact JSON object
`{"org_id": uuid, "call_id": uuid, "call_sid": str, "exp": unix seconds}`. The MAC covers the
encoded payload text, so only the exact encoding issued is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from typing import Literal

MAX_TOKEN_LENGTH = 1024
"""Longer strings are rejected unread, before any decoding work."""

TokenErrorReason = Literal["malformed", "bad_signature", "expired", "call_mismatch"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_FIELDS = frozenset({"org_id", "call_id", "call_sid", "exp"})


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a token allows: streaming the audio of `call_sid` until `expires_at` (exclusive)."""

    org_id: uuid.UUID
    call_id: uuid.UUID
    call_sid: str
    expires_at: int  # unix seconds


class TokenError(Exception):
    """A token was refused; `reason` says why, in a form fit for a metric label or a log."""

    def __init__(self, reason: TokenErrorReason) -> None:
        super().__init__(reason)
        self.reason: TokenErrorReason = reason


def issue_token(secret: bytes, grant: StreamGrant) -> str:
    """Return a token for `grant`, signed with `secret`.

    Raises ValueError when `secret` is empty, or when the token would exceed
    `MAX_TOKEN_LENGTH` (a very long `call_sid`), since `verify_token` would then refuse it.
    """
    if not secret:
        raise ValueError("stream token secret must not be empty")
    payload = {
        "org_id": str(grant.org_id),
        "call_id": str(grant.call_id),
        "call_sid": grant.call_sid,
        "exp": grant.expires_at,
    }
    payload_b64 = _b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    token = f"{payload_b64}.{_sign(secret, payload_b64)}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"stream token would be longer than {MAX_TOKEN_LENGTH} characters")
    return token


def verify_token(secret: bytes, token: str, *, call_sid: str, now: float) -> StreamGrant:
    """Return the grant in `token` if it is genuine, unexpired at `now` and for `call_sid`.

    Checks run in this order and the first failure raises TokenError with its reason:
    "malformed" (shape, length over `MAX_TOKEN_LENGTH`, or a signed payload that is not a
    grant), "bad_signature", "expired" (`now >= expires_at`), "call_mismatch". For any token
    string, TokenError is the only exception raised; ValueError means `secret` is empty.
    """
    if not secret:
        raise ValueError("stream token secret must not be empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed")
    payload_b64, dot, signature_b64 = token.partition(".")
    if not dot or not _SEGMENT.fullmatch(payload_b64) or not _SEGMENT.fullmatch(signature_b64):
        raise TokenError("malformed")
    # Authenticate before parsing: the JSON decoder never sees bytes we did not sign.
    expected = _sign(secret, payload_b64).encode("ascii")
    if not hmac.compare_digest(expected, signature_b64.encode("ascii")):
        raise TokenError("bad_signature")
    grant = _parse_payload(payload_b64)
    # Written as "not <" so that a NaN `now` counts as expired.
    if not now < grant.expires_at:
        raise TokenError("expired")
    if grant.call_sid != call_sid:
        raise TokenError("call_mismatch")
    return grant


def _parse_payload(payload_b64: str) -> StreamGrant:
    try:
        payload = json.loads(_b64decode(payload_b64))
    except (ValueError, RecursionError) as exc:  # binascii, Unicode and JSON errors
        raise TokenError("malformed") from exc
    if not isinstance(payload, dict) or payload.keys() != _FIELDS:
        raise TokenError("malformed")
    org_id, call_id = payload["org_id"], payload["call_id"]
    call_sid, expires_at = payload["call_sid"], payload["exp"]
    # bool is an int subclass: refuse `"exp": true` rather than read it as 1.
    if (
        not isinstance(org_id, str)
        or not isinstance(call_id, str)
        or not isinstance(call_sid, str)
        or not isinstance(expires_at, int)
        or isinstance(expires_at, bool)
    ):
        raise TokenError("malformed")
    try:
        return StreamGrant(uuid.UUID(org_id), uuid.UUID(call_id), call_sid, expires_at)
    except ValueError as exc:
        raise TokenError("malformed") from exc


def _sign(secret: bytes, payload_b64: str) -> str:
    return _b64encode(hmac.new(secret, payload_b64.encode("ascii"), hashlib.sha256).digest())


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Raises binascii.Error (a ValueError), e.g. for a length of 1 modulo 4."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
