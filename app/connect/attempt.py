"""A connect attempt kept sealed in the browser instead of a database row.

``/connect/start`` writes nothing: what the callback needs travels in two AES-GCM ciphertexts made
with the keyring (``app.crypto``), each bound by its associated data to its one use:

- ``state`` (in the URL, through the provider and back) seals the attempt's *reference*: its id,
  user, provider, checked return URL and expiry. It is what lets a refused callback (another
  browser, an expired attempt, a wrong path) still go back to the app with a stable code.
- the per-attempt httponly cookie seals the *secrets*: the PKCE verifier, the nonce, the requested
  scopes and extra parameters, bound to the reference's id, user and provider, so a cookie only
  completes the attempt it was made for and only in the browser that started it.

Neither is readable or changeable without the key; single use is enforced at the callback
(``app.connect.flow``: a unique insert of the id into ``connect_attempts_used``). A ciphertext made
with a key that is later retired still opens while that key stays in ``TOKEN_ENCRYPTION_KEYS``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..crypto import COMPACT_JSON, Keyring, associated_data
from ..errors import DecryptionError, InvalidRequest

ATTEMPT_TTL = timedelta(minutes=10)
STATE_AAD = associated_data("connect_state", "v1")
MAX_COOKIE_LENGTH = 3800  # browsers keep cookies up to 4096 bytes, name and attributes included
EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class AttemptRef:
    """What ``state`` names: enough to report an outcome to the app without the browser's cookie."""

    id: str
    user_id: str
    provider: str
    return_to: str
    expires_at: datetime  # naive UTC, whole seconds


@dataclass(frozen=True)
class ConnectAttempt(AttemptRef):
    """The whole attempt: the reference plus what only the browser that started it holds."""

    code_verifier: str | None = field(default=None, repr=False)
    nonce: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> AttemptRef:
        return AttemptRef(self.id, self.user_id, self.provider, self.return_to, self.expires_at)


def _cookie_aad(ref: AttemptRef) -> bytes:
    return associated_data("connect_attempt", "v1", ref.id, ref.user_id, ref.provider)


def _dumps(document: dict) -> str:
    return COMPACT_JSON.encode(document)


def seal(keyring: Keyring, attempt: ConnectAttempt) -> tuple[str, str]:
    """``(state, cookie value)`` for ``attempt``; an InvalidRequest when the cookie would be too large."""
    expires = int((attempt.expires_at - EPOCH).total_seconds())
    state = keyring.encrypt(_dumps({"i": attempt.id, "u": attempt.user_id, "p": attempt.provider,
                                    "r": attempt.return_to, "e": expires}), STATE_AAD)
    cookie = keyring.encrypt(_dumps({"v": attempt.code_verifier, "n": attempt.nonce, "s": list(attempt.scopes),
                                     "a": attempt.params}), _cookie_aad(attempt))
    if len(cookie) > MAX_COOKIE_LENGTH:
        raise InvalidRequest("this connect asks for too many scopes or parameters to keep in a cookie")
    return state, cookie


def open_state(keyring: Keyring, state: str) -> AttemptRef | None:
    """The reference ``state`` seals, or None for anything this service did not seal as a state."""
    try:
        doc = json.loads(keyring.decrypt(state, STATE_AAD))
        ref = AttemptRef(doc["i"], doc["u"], doc["p"], doc["r"], EPOCH + timedelta(seconds=int(doc["e"])))
    except (DecryptionError, ValueError, KeyError, TypeError, OverflowError):
        return None
    if not all(isinstance(value, str) for value in (ref.id, ref.user_id, ref.provider, ref.return_to)):
        return None
    return ref


def open_cookie(keyring: Keyring, ref: AttemptRef, value: str | None) -> ConnectAttempt | None:
    """The whole attempt when ``value`` is the cookie sealed with ``ref``; None for any other value."""
    if not value or len(value) > MAX_COOKIE_LENGTH:
        return None
    try:
        doc = json.loads(keyring.decrypt(value, _cookie_aad(ref)))
        scopes, params = tuple(doc["s"]), dict(doc["a"])
        verifier, nonce = doc["v"], doc["n"]
    except (DecryptionError, ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(s, str) for s in (*scopes, *params.keys(), *params.values())):
        return None
    if not all(v is None or isinstance(v, str) for v in (verifier, nonce)):
        return None
    return ConnectAttempt(ref.id, ref.user_id, ref.provider, ref.return_to, ref.expires_at,
                          code_verifier=verifier, nonce=nonce, scopes=scopes, params=params)
