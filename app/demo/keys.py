"""The demo issuer's RSA signing key: generated once, kept in the state directory, owner-only."""
from __future__ import annotations

import json
import os
import secrets

from joserfc.jwk import RSAKey

KEY_FILE = "demo-issuer-key.json"


def load_or_create(state_dir: str) -> RSAKey:
    path = os.path.join(state_dir, KEY_FILE)
    os.makedirs(state_dir, exist_ok=True)
    try:
        # O_EXCL: two processes starting together cannot both write a key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="utf-8") as handle:
            return RSAKey.import_key(json.load(handle))
    key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"},
                              private=True)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(key.as_dict(private=True), handle)
    return key
