"""Secrets the server keeps for an org (a cloud speech service's API key), sealed before they
are stored. No I/O.

AES-256-GCM with a fresh 96-bit nonce per seal, under a key derived (HKDF-SHA256) from the
server's credentials key. The org's id is the associated data: a sealed value copied onto
another org's row does not open. Stored form: version byte, nonce, ciphertext and tag; the
version leaves room to rotate the key.
"""

from __future__ import annotations

import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed value that does not open: another key, another org, or damaged."""


class Sealer:
    def __init__(self, secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"voxsouth org credentials v1"
        ).derive(secret.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, org_id: uuid.UUID) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), org_id.bytes)

    def open(self, sealed: bytes, org_id: uuid.UUID) -> str:
        if sealed[:1] != _VERSION or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise SealError("not a sealed value this server can open")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, org_id.bytes).decode()
        except InvalidTag:
            raise SealError("sealed under another key or for another org") from None
