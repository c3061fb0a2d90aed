"""Stream tokens: format, every refusal reason, and robustness against arbitrary strings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import uuid
from typing import Any

import pytest

from media.stream_token import (
    MAX_TOKEN_LENGTH,
    StreamGrant,
    TokenError,
    issue_token,
    verify_token,
)

SECRET = b"s3cret-for-tests-only-0123456789"
GRANT = StreamGrant(
    org_id=uuid.UUID("11111111-2222-3333-4444-555555555555"),
    call_id=uuid.UUID("66666666-7777-8888-9999-aaaaaaaaaaaa"),
    call_sid="7d56cc11-536d-4a45-b4fb-ed3d55be843b",
    expires_at=1_700_000_600,
)
NOW = 1_700_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_payload(payload_text: str, secret: bytes = SECRET) -> str:
    """Forge a token over any payload text, as only a holder of the secret could."""
    payload_b64 = b64(payload_text.encode())
    return f"{payload_b64}.{b64(hmac.new(secret, payload_b64.encode(), hashlib.sha256).digest())}"


def reason_of(token: str, *, call_sid: str = GRANT.call_sid, now: float = NOW) -> str:
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, token, call_sid=call_sid, now=now)
    return info.value.reason


def test_round_trip() -> None:
    token = issue_token(SECRET, GRANT)
    assert verify_token(SECRET, token, call_sid=GRANT.call_sid, now=NOW) == GRANT


def test_format_is_unpadded_base64url_json_and_hmac_sha256() -> None:
    token = issue_token(SECRET, GRANT)
    payload_b64, signature_b64 = token.split(".")
    assert "=" not in token and "+" not in token and "/" not in token
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert payload == {
        "org_id": str(GRANT.org_id),
        "call_id": str(GRANT.call_id),
        "call_sid": GRANT.call_sid,
        "exp": GRANT.expires_at,
    }
    assert token == sign_payload(json.dumps(payload, separators=(",", ":")))
    assert len(base64.urlsafe_b64decode(signature_b64 + "=")) == 32


def test_token_fits_in_a_parameter_and_is_url_safe() -> None:
    token = issue_token(SECRET, GRANT)
    assert len(token) < 300
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_wrong_secret_is_bad_signature() -> None:
    token = issue_token(b"another secret", GRANT)
    assert reason_of(token) == "bad_signature"


def test_tampered_payload_is_bad_signature() -> None:
    token = issue_token(SECRET, GRANT)
    other = issue_token(SECRET, StreamGrant(GRANT.org_id, GRANT.call_id, "other", 2_000_000_000))
    # A genuine payload for another grant with this token's signature.
    assert reason_of(other.split(".")[0] + "." + token.split(".")[1]) == "bad_signature"
    payload_b64, signature_b64 = token.split(".")
    flipped = ("B" if payload_b64[5] == "A" else "A").join((payload_b64[:5], payload_b64[6:]))
    assert reason_of(f"{flipped}.{signature_b64}") == "bad_signature"


def test_tampered_signature_is_bad_signature() -> None:
    payload_b64, signature_b64 = issue_token(SECRET, GRANT).split(".")
    for index in (0, len(signature_b64) // 2):
        char = "B" if signature_b64[index] == "A" else "A"
        tampered = signature_b64[:index] + char + signature_b64[index + 1 :]
        assert reason_of(f"{payload_b64}.{tampered}") == "bad_signature"
    assert reason_of(f"{payload_b64}.{signature_b64[:-1]}") == "bad_signature"


def test_non_canonical_signature_encoding_is_refused() -> None:
    # 32 bytes = 43 base64 characters, the last carrying 2 unused bits: setting them decodes
    # to the same MAC but is not the token we issued.
    payload_b64, signature_b64 = issue_token(SECRET, GRANT).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature_b64[-1])
    variant = signature_b64[:-1] + alphabet[last | 0b11 if last & 0b11 == 0 else last & ~0b11]
    assert base64.urlsafe_b64decode(variant + "=") == base64.urlsafe_b64decode(signature_b64 + "=")
    assert reason_of(f"{payload_b64}.{variant}") == "bad_signature"


def test_expiry_boundary() -> None:
    token = issue_token(SECRET, GRANT)
    assert verify_token(SECRET, token, call_sid=GRANT.call_sid, now=GRANT.expires_at - 0.001)
    assert reason_of(token, now=GRANT.expires_at) == "expired"
    assert reason_of(token, now=GRANT.expires_at + 3600) == "expired"


def test_nan_clock_counts_as_expired() -> None:
    assert reason_of(issue_token(SECRET, GRANT), now=math.nan) == "expired"


def test_call_mismatch() -> None:
    token = issue_token(SECRET, GRANT)
    assert reason_of(token, call_sid="another-call") == "call_mismatch"
    assert reason_of(token, call_sid="") == "call_mismatch"


def test_signature_is_checked_before_expiry_and_call() -> None:
    expired_elsewhere = issue_token(b"another secret", GRANT)
    assert reason_of(expired_elsewhere, call_sid="x", now=GRANT.expires_at + 1) == "bad_signature"


def test_too_long_is_malformed_even_if_genuine() -> None:
    # A valid grant padded with JSON whitespace: the cap alone refuses it.
    payload = json.dumps(_valid_payload(), indent=200)
    token = sign_payload(payload)
    assert len(token) > MAX_TOKEN_LENGTH
    assert reason_of(token) == "malformed"
    compact = sign_payload(json.dumps(_valid_payload(), indent=1))
    assert verify_token(SECRET, compact, call_sid=GRANT.call_sid, now=NOW) == GRANT


@pytest.mark.parametrize(
    "payload_b64",
    [
        "abcde",  # length 1 modulo 4: not base64
        b64(b"\xff\xfe{}"),  # not UTF-8
        b64(b"\x00"),
    ],
)
def test_signed_undecodable_payload_is_malformed(payload_b64: str) -> None:
    signature = b64(hmac.new(SECRET, payload_b64.encode(), hashlib.sha256).digest())
    assert reason_of(f"{payload_b64}.{signature}") == "malformed"


def test_issue_refuses_a_grant_it_could_not_verify() -> None:
    huge = StreamGrant(GRANT.org_id, GRANT.call_id, "x" * MAX_TOKEN_LENGTH, GRANT.expires_at)
    with pytest.raises(ValueError):
        issue_token(SECRET, huge)


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        issue_token(b"", GRANT)
    with pytest.raises(ValueError):
        verify_token(b"", issue_token(SECRET, GRANT), call_sid=GRANT.call_sid, now=NOW)


def test_unicode_call_sid_round_trips() -> None:
    grant = StreamGrant(GRANT.org_id, GRANT.call_id, "appel-é-通话", GRANT.expires_at)
    token = issue_token(SECRET, grant)
    assert verify_token(SECRET, token, call_sid="appel-é-通话", now=NOW) == grant


def _valid_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "org_id": str(GRANT.org_id),
        "call_id": str(GRANT.call_id),
        "call_sid": GRANT.call_sid,
        "exp": GRANT.expires_at,
    }
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    "payload_text",
    [
        "not json",
        "",
        "\udcff",
        "[1, 2]",
        "null",
        "[" * 700,
        json.dumps({**_valid_payload(), "extra": 1}),
        json.dumps({k: v for k, v in _valid_payload().items() if k != "exp"}),
        json.dumps(_valid_payload(exp="1700000600")),
        json.dumps(_valid_payload(exp=True)),
        json.dumps(_valid_payload(exp=1.7e9)),
        json.dumps(_valid_payload(org_id="not-a-uuid")),
        json.dumps(_valid_payload(call_id=42)),
        json.dumps(_valid_payload(call_sid=None)),
    ],
)
def test_signed_payload_that_is_not_a_grant_is_malformed(payload_text: str) -> None:
    payload_b64 = b64(payload_text.encode("utf-8", errors="surrogatepass"))
    signature = b64(hmac.new(SECRET, payload_b64.encode(), hashlib.sha256).digest())
    assert reason_of(f"{payload_b64}.{signature}") == "malformed"


NASTY_TOKENS = [
    "",
    ".",
    "..",
    "abc",
    "abc.",
    ".abc",
    "a.b.c",
    "a" * (MAX_TOKEN_LENGTH + 1),
    "a" * 5000 + "." + "b" * 5000,
    "eyJ9.",
    "a=.b=",
    "ab+/.cd+/",
    "\x00.\x00",
    "é.é",
    "\udcff.\udcff",
    "👋" * 10 + "." + "👋",
    " " + "abc.def",
    "abc.def\n",
    "abcde.fghij",  # length 1 modulo 4: not valid base64
    "null.null",
    "{}.{}",
]


@pytest.mark.parametrize("token", NASTY_TOKENS)
def test_garbage_raises_only_token_error(token: str) -> None:
    assert reason_of(token) in {"malformed", "bad_signature"}


@pytest.mark.parametrize("token", ["", ".", "a.b.c", "a=.b=", "é.é", "abc.def\n"])
def test_wrong_shape_is_malformed(token: str) -> None:
    assert reason_of(token) == "malformed"


def test_token_error_carries_reason() -> None:
    error = TokenError("expired")
    assert error.reason == "expired"
    assert str(error) == "expired"
    assert isinstance(error, Exception)
