import base64

import pytest

from app.crypto import Keyring, associated_data, generate_key
from app.errors import DecryptionError
from config import parse_encryption_keys

K1 = ("k1", b"1" * 32)
K2 = ("k2", b"2" * 32)


def test_round_trip_records_key_id():
    ring = Keyring([K1])
    sealed = ring.encrypt("secret-token", associated_data("connection", "id1", "field"))
    assert sealed.startswith("k1.") and "secret-token" not in sealed
    assert ring.decrypt(sealed, associated_data("connection", "id1", "field")) == "secret-token"


def test_associated_data_bytes_are_those_stored_ciphertexts_were_sealed_with():
    assert associated_data("connection", "id1", "ä\"") == b'["connection","id1","\\u00e4\\""]'


def test_each_encryption_uses_a_fresh_nonce():
    ring = Keyring([K1])
    aad = associated_data("x")
    assert ring.encrypt("same", aad) != ring.encrypt("same", aad)


@pytest.mark.parametrize("other", [("connection", "id2", "field"), ("connection", "id1", "other_field"),
                                   ("connection", "id1field")])
def test_ciphertext_moved_to_another_row_or_field_fails(other):
    ring = Keyring([K1])
    sealed = ring.encrypt("secret", associated_data("connection", "id1", "field"))
    with pytest.raises(DecryptionError, match="does not belong"):
        ring.decrypt(sealed, associated_data(*other))


def test_tampered_ciphertext_fails():
    ring = Keyring([K1])
    sealed = ring.encrypt("secret", b"aad")
    key_id, body = sealed.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.decrypt(f"{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode()}", b"aad")


def test_old_keys_still_decrypt_after_rotation():
    old = Keyring([K1]).encrypt("secret", b"aad")
    rotated = Keyring([K2, K1])
    assert rotated.decrypt(old, b"aad") == "secret"
    assert rotated.needs_rotation(old)
    assert rotated.encrypt("secret", b"aad").startswith("k2.")


def test_removed_key_gives_clear_error():
    sealed = Keyring([K1]).encrypt("secret", b"aad")
    with pytest.raises(DecryptionError, match="no key with id 'k1'"):
        Keyring([K2]).decrypt(sealed, b"aad")


def test_generate_key_is_parseable():
    (key_id, key), = parse_encryption_keys(generate_key("k9"))
    assert key_id == "k9" and len(key) == 32
