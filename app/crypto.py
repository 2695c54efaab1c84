"""Encryption at rest: AES-256-GCM with a key ring and row-bound associated data.

A ciphertext is ``<key_id>.<base64url(nonce || ciphertext+tag)>``. The associated
data names the row and field it belongs to, so a ciphertext copied to another
row or column fails to decrypt.
"""
from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionError

NONCE_BYTES = 12
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps(..., separators=...) builds one per call


def associated_data(*parts: str) -> bytes:
    """Unambiguous encoding of the row identity (JSON, so separators cannot collide)."""
    return COMPACT_JSON.encode(list(parts)).encode()


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self.primary_id = keys[0][0]

    def encrypt(self, plaintext: str, aad: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary_id].encrypt(nonce, plaintext.encode(), aad)
        return f"{self.primary_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, aad: bytes) -> str:
        key_id, _, body = token.partition(".")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise DecryptionError(f"no key with id {key_id!r} in TOKEN_ENCRYPTION_KEYS")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad).decode()
        except (InvalidTag, ValueError):
            raise DecryptionError("ciphertext does not belong to this row or was altered") from None

    @staticmethod
    def key_id_of(token: str) -> str:
        return token.partition(".")[0]

    def needs_rotation(self, token: str | None) -> bool:
        return token is not None and self.key_id_of(token) != self.primary_id


def generate_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"
