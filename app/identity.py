"""Verification of Auth0 access tokens (RFC 8725) and the principals they name.

Keys come only from the configured JWKS; key-bearing headers (jku, jwk, x5u) are
never followed. An unknown ``kid`` refetches the JWKS at most once per cooldown.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .errors import InvalidToken
from .http import get_json, new_session

log = logging.getLogger(__name__)

# Asymmetric algorithms only; "none" and HS* can never be accepted.
SAFE_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
DEFAULT_ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 16 * 1024
LEEWAY_SECONDS = 30
JWKS_MAX_AGE = 3600.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (``sub``) or a machine (client-credentials)."""

    sub: str
    is_machine: bool
    permissions: frozenset[str] = field(default_factory=frozenset)
    client_id: str | None = None

    @classmethod
    def from_claims(cls, claims: dict) -> Principal:
        sub = claims["sub"]
        is_machine = claims.get("gty") == "client-credentials" or sub.endswith("@clients")
        scope = claims.get("scope")
        permissions = set(scope.split()) if isinstance(scope, str) else set()
        extra = claims.get("permissions")
        if isinstance(extra, list):
            permissions.update(p for p in extra if isinstance(p, str))
        client_id = claims.get("azp") or claims.get("client_id")
        return cls(sub=sub, is_machine=is_machine, permissions=frozenset(permissions),
                   client_id=client_id if isinstance(client_id, str) else None)


class JwksCache:
    """A cached JWKS with a rate-limited refetch for unknown key ids."""

    def __init__(self, issuer: str, jwks_url: str | None, *, cooldown: float,
                 timeout: tuple[float, float], monotonic: Callable[[], float] = time.monotonic):
        self.issuer = issuer
        self._jwks_url = jwks_url
        self._cooldown = cooldown
        self._timeout = timeout
        self._monotonic = monotonic
        self._session = new_session()
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")

    def _discover_jwks_url(self) -> str:
        config = get_json(self._session, self.issuer.rstrip("/") + "/.well-known/openid-configuration", self._timeout)
        if config.get("issuer") != self.issuer:
            raise ValueError("discovery document names a different issuer")
        url = config.get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError("discovery document has no jwks_uri")
        return url

    def _fetch(self) -> None:
        self._fetched_at = self._monotonic()  # counts failed attempts too: the cooldown protects Auth0
        try:
            if self._jwks_url is None:
                self._jwks_url = self._discover_jwks_url()
            data = get_json(self._session, self._jwks_url, self._timeout)
            keys = [k for k in data.get("keys", []) if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP")]
            self._keys = KeySet.import_key_set({"keys": keys})
        except (requests.RequestException, ValueError, JoseError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.issuer, type(exc).__name__)

    def key_set(self, kid: str | None) -> KeySet | None:
        with self._lock:
            age = self._monotonic() - self._fetched_at
            stale = self._keys is None or age > JWKS_MAX_AGE
            unknown = self._keys is not None and not self._has(kid)
            if (stale or unknown) and age >= self._cooldown:
                self._fetch()
            return self._keys

    def _has(self, kid: str | None) -> bool:
        return any(key.kid == kid for key in self._keys.keys) if kid else len(self._keys.keys) == 1


class AccessTokenVerifier:
    def __init__(self, jwks: JwksCache, audience: str, *, now: Callable[[], float] = time.time):
        self._jwks = jwks
        self._audience = audience
        self._now = now

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise InvalidToken("an Auth0 access token is required")
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidToken("the access token is not a compact JWT")
        header = self._header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in SAFE_ALGORITHMS:
            raise InvalidToken(f"token algorithm {str(alg)[:16]!r} is not allowed")
        kid = header.get("kid")
        keys = self._jwks.key_set(kid)
        if keys is None:
            raise InvalidToken("signing keys are unavailable; try again shortly")
        # RS256 unless the key itself declares another (asymmetric) algorithm.
        candidates = [k for k in keys.keys if (not kid or k.kid == kid) and (k.alg or DEFAULT_ALGORITHM) == alg]
        if not candidates:
            raise InvalidToken("token is signed with an unknown key")
        try:
            decoded = jwt.decode(token, KeySet(candidates), algorithms=[alg])
        except JoseError:
            raise InvalidToken("token signature is invalid") from None
        return Principal.from_claims(self._check_claims(decoded.claims))

    @staticmethod
    def _header(token: str) -> dict:
        segment = token.split(".", 1)[0]
        try:
            header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except ValueError:
            raise InvalidToken("token header is not valid") from None
        if not isinstance(header, dict):
            raise InvalidToken("token header is not valid")
        # RFC 7515 §4.1: these are strings; anything else is a malformed header, not a lookup key.
        if any(name in header and not isinstance(header[name], str) for name in ("kid", "typ", "cty")):
            raise InvalidToken("token header is not valid")
        return header

    def _check_claims(self, claims: dict) -> dict:
        now = self._now()
        if claims.get("iss") != self._jwks.issuer:
            raise InvalidToken("token issuer is not the configured Auth0 tenant")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self._audience not in audiences:
            raise InvalidToken("token audience is not this API (an ID token is not accepted)")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            raise InvalidToken("token has no expiry")
        if exp + LEEWAY_SECONDS < now:
            raise InvalidToken("token has expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, (int, float)) or nbf - LEEWAY_SECONDS > now):
            raise InvalidToken("token is not valid yet")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise InvalidToken("token has no subject")
        return claims
