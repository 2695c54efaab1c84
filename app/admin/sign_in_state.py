"""Where Authlib's Flask client keeps an admin sign-in's state: the database, encrypted.

Without a cache Authlib writes the nonce and the PKCE code verifier into Flask's session cookie,
which is signed but readable by anyone who holds it. ``SignInStateStore`` is the cache interface
Authlib takes (``get``, ``set``, ``delete``); the cookie then only carries the entry's key and
expiry, which still binds the callback to the browser that started the sign-in.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete

from .. import clock
from ..errors import DecryptionError
from ..extensions import db
from ..models import AdminSignInState
from ..runtime import runtime


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SignInStateStore:
    def get(self, key: str) -> str | None:
        row = db.session.get(AdminSignInState, _key_hash(key))
        if row is None or row.expires_at <= clock.now():
            return None
        try:
            return runtime().keyring.decrypt(row.value_enc, row.aad())
        except DecryptionError:  # sealed with a key since removed: as if it had expired
            return None

    def set(self, key: str, value: str, timeout: float) -> None:
        now = clock.now()
        # Abandoned sign-ins are dropped here, so the table stays small without a cron job.
        db.session.execute(delete(AdminSignInState).where(AdminSignInState.expires_at < now))
        row = AdminSignInState(key_hash=_key_hash(key), expires_at=now + timedelta(seconds=timeout))
        row.value_enc = runtime().keyring.encrypt(value, row.aad())
        db.session.merge(row)
        db.session.commit()

    def delete(self, key: str) -> None:
        db.session.execute(delete(AdminSignInState).where(AdminSignInState.key_hash == _key_hash(key)))
        db.session.commit()
