"""Verification of Auth0 access tokens (RFC 8725) and the principals they name.

Keys come only from the configured JWKS; key-bearing headers (jku, jwk, x5u) are
never followed. An unknown ``kid`` refetches the JWKS at most once per cooldown, and the
fetch runs outside the cache's lock: a token whose key is already cached never waits for it.

A token is outside input of any shape: ``parse_compact`` reads its header and payload with
our own strict rules (base64url, UTF-8, bounded nesting, no duplicate members, finite numbers)
before the JOSE library sees it, and every way it can be wrong ends as ``InvalidToken``.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet
from joserfc.jws import JWSRegistry

from .errors import InvalidToken, SigningKeysUnavailable
from .http import get_json, new_session

log = logging.getLogger(__name__)

# Asymmetric algorithms only; "none" and HS* can never be accepted.
SAFE_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
DEFAULT_ALGORITHM = "RS256"
MAX_TOKEN_LENGTH = 16 * 1024
MAX_NESTING = 16
LEEWAY_SECONDS = 30
JWKS_MAX_AGE = 3600.0

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# RFC 7515 §4.1: these header members are strings when present.
_STRING_HEADERS = ("alg", "kid", "typ", "cty")
_REGISTRIES = {alg: JWSRegistry(algorithms=[alg]) for alg in SAFE_ALGORITHMS}


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):  # RFC 7515 §5.2: reject, or parsers disagree on which one counts
        raise ValueError("duplicate member")
    return result


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError("number out of range")
    return value


def _no_constant(text: str):  # NaN, Infinity, -Infinity are not JSON
    raise ValueError(f"{text} is not JSON")


def _nesting_ok(value: object, limit: int = MAX_NESTING) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def json_segment(segment: str, what: str) -> dict:
    """One base64url segment of a compact JWS, as a JSON object; ``InvalidToken`` otherwise."""
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise InvalidToken(f"token {what} is not valid base64url")
    try:
        text = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_finite, parse_constant=_no_constant)
    except (binascii.Error, ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidToken(f"token {what} is not valid JSON") from None
    # A value cannot nest deeper than the text has "{" and "[" (those in strings only add to the count),
    # so the walk is needed only for a text with more than MAX_NESTING of them; a token has a handful.
    few_containers = text.count("{") + text.count("[") <= MAX_NESTING
    if not isinstance(value, dict) or not (few_containers or _nesting_ok(value)):
        raise InvalidToken(f"token {what} is not valid")
    return value


def parse_compact(token: object, what: str = "access token") -> tuple[dict, dict]:
    """The header and claims of a compact JWS (not yet verified), checked for shape only."""
    if not isinstance(token, str) or not token:
        raise InvalidToken(f"an Auth0 {what} is required")
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken(f"the {what} is not a compact JWT")
    header_segment, payload_segment, _ = token.split(".")
    header = json_segment(header_segment, "header")
    if any(name in header and not isinstance(header[name], str) for name in _STRING_HEADERS):
        raise InvalidToken("token header is not valid")
    # We implement no JWS extension, so a header that marks one critical must be refused (§4.1.11);
    # "b64" (RFC 7797) would change what the signature covers.
    if "crit" in header or "b64" in header:
        raise InvalidToken("token header uses an unsupported extension")
    return header, json_segment(payload_segment, "payload")


def is_number(value: object) -> bool:
    """A JSON number as a NumericDate needs it: not a boolean, not NaN or infinite (ints of any size are)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def is_clean_text(value: object, max_length: int = 255) -> bool:
    """A non-empty printable string that can be stored and logged (no control characters, no lone
    surrogates from a ``\\ud800`` escape)."""
    if not isinstance(value, str) or not value or len(value) > max_length or not value.isprintable():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
                   client_id=client_id if is_clean_text(client_id) else None)


@dataclass(frozen=True)
class _Keys:
    """One fetched JWKS, indexed once: (kid, alg) -> the imported key, ready to verify with."""

    by_kid_alg: dict[tuple[str | None, str], Key]
    kids: frozenset[str | None]
    count: int

    @classmethod
    def index(cls, key_set: KeySet) -> _Keys:
        by_kid_alg: dict[tuple[str | None, str], Key] = {}
        for key in key_set.keys:
            # RS256 unless the key itself declares another (asymmetric) algorithm.
            by_kid_alg.setdefault((key.kid, key.alg or DEFAULT_ALGORITHM), key)
        if len(key_set.keys) == 1:  # a token without kid may use the only key
            key = key_set.keys[0]
            by_kid_alg.setdefault((None, key.alg or DEFAULT_ALGORITHM), key)
        return cls(by_kid_alg, frozenset(key.kid for key in key_set.keys), len(key_set.keys))

    def has(self, kid: str | None) -> bool:
        return kid in self.kids if kid else self.count == 1

    def get(self, kid: str | None, alg: str) -> Key | None:
        return self.by_kid_alg.get((kid, alg))


class JwksCache:
    """A cached JWKS with a rate-limited refetch for unknown key ids.

    One thread fetches at a time, without holding the lock: callers whose ``kid`` is cached go on
    with the cached keys, callers that need the new keys wait for that fetch (bounded by its timeout).
    """

    def __init__(self, issuer: str, jwks_url: str | None, *, cooldown: float,
                 timeout: tuple[float, float], monotonic: Callable[[], float] = time.monotonic):
        self.issuer = issuer
        self._jwks_url = jwks_url
        self._cooldown = cooldown
        self._timeout = timeout
        self._monotonic = monotonic
        self._session = new_session()
        self._lock = threading.Lock()
        self._keys: _Keys | None = None
        self._fetched_at = float("-inf")
        self._last_failed = False
        self._in_flight: threading.Event | None = None

    def _discover_jwks_url(self) -> str:
        config = get_json(self._session, self.issuer.rstrip("/") + "/.well-known/openid-configuration", self._timeout)
        if config.get("issuer") != self.issuer:
            raise ValueError("discovery document names a different issuer")
        url = config.get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError("discovery document has no jwks_uri")
        return url

    def _fetch(self) -> _Keys | None:
        try:
            url = self._jwks_url or self._discover_jwks_url()
            self._jwks_url = url
            data = get_json(self._session, url, self._timeout)
        except (requests.RequestException, ValueError, RecursionError) as exc:
            log.warning("JWKS fetch from %s failed: %s", self.issuer, type(exc).__name__)
            return None
        found = data.get("keys")
        keys = []
        for entry in found if isinstance(found, list) else []:
            if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue
            try:
                keys.append(KeySet.import_key_set({"keys": [entry]}).keys[0])
            except (JoseError, ValueError, TypeError, KeyError):  # one bad entry does not void the others
                log.warning("JWKS of %s: a key could not be imported and is ignored", self.issuer)
        if not keys:
            log.warning("JWKS fetch from %s failed: no usable key", self.issuer)
            return None
        return _Keys.index(KeySet(keys))

    def keys(self, kid: str | None) -> _Keys:
        """The keys to check a token naming ``kid`` against; ``SigningKeysUnavailable`` when the
        JWKS cannot be had (none cached yet, or ``kid`` unknown and the last fetch failed)."""
        with self._lock:
            now = self._monotonic()
            age = now - self._fetched_at
            keys, in_flight = self._keys, self._in_flight
            needs_new = keys is None or not keys.has(kid)
            fetch = (needs_new or age > JWKS_MAX_AGE) and in_flight is None and age >= self._cooldown
            if fetch:
                self._fetched_at = now  # counts failed attempts too: the cooldown protects Auth0
                in_flight = self._in_flight = threading.Event()
        if fetch:
            fetched = None
            try:
                fetched = self._fetch()
            finally:
                with self._lock:
                    self._in_flight = None
                    self._last_failed = fetched is None
                    if fetched is not None:
                        self._keys = fetched
                in_flight.set()
        elif needs_new and in_flight is not None:
            # Another thread is fetching the keys this token may need: wait for it, not for a lock.
            in_flight.wait(2 * sum(self._timeout) + 1)
        keys = self._keys
        if keys is None or (self._last_failed and not keys.has(kid)):
            retry_after = max(1.0, self._cooldown - (self._monotonic() - self._fetched_at))
            raise SigningKeysUnavailable("the signing keys of the Auth0 tenant cannot be fetched; try again shortly",
                                         retry_after=retry_after)
        return keys


def _signature_valid(token: str, header: dict, alg: str, key: Key) -> bool:
    """The JWS signature of ``token`` (already parsed by ``parse_compact``) checked with joserfc's
    algorithm and the cached key object, as ``jws.deserialize_compact`` does after parsing the token
    a second time (its header checks, its key checks, its verification), without that second parse."""
    header_segment, payload_segment, signature_segment = token.split(".")
    if not _BASE64URL.fullmatch(signature_segment) or len(signature_segment) % 4 == 1:
        return False
    registry = _REGISTRIES[alg]
    try:
        registry.check_header(header)
        algorithm = registry.get_alg(alg)
        algorithm.check_key(key)
        signature = base64.urlsafe_b64decode(signature_segment + "=" * (-len(signature_segment) % 4))
        return algorithm.verify(f"{header_segment}.{payload_segment}".encode("ascii"), signature, key)
    except (JoseError, binascii.Error, ValueError):
        return False
    except Exception as exc:  # noqa: BLE001 - the library failing on hostile input is a bad token, not a 500
        log.warning("access token refused: the JOSE library failed on it (%s)", type(exc).__name__)
        raise InvalidToken("token is not valid") from None


class AccessTokenVerifier:
    def __init__(self, jwks: JwksCache, audience: str, *, now: Callable[[], float] = time.time):
        self._jwks = jwks
        self._audience = audience
        self._now = now

    def verify(self, token: str | None) -> Principal:
        header, claims = parse_compact(token)
        alg = header.get("alg")
        if alg not in SAFE_ALGORITHMS:
            raise InvalidToken(f"token algorithm {str(alg)[:16]!r} is not allowed")
        kid = header.get("kid")
        key = self._jwks.keys(kid).get(kid, alg)
        if key is None:
            raise InvalidToken("token is signed with an unknown key")
        if not _signature_valid(token, header, alg, key):
            raise InvalidToken("token signature is invalid")
        return Principal.from_claims(self._check_claims(claims))

    def _check_claims(self, claims: dict) -> dict:
        now = self._now()
        if claims.get("iss") != self._jwks.issuer:
            raise InvalidToken("token issuer is not the configured Auth0 tenant")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self._audience not in audiences:
            raise InvalidToken("token audience is not this API (an ID token is not accepted)")
        exp = claims.get("exp")
        if not is_number(exp):
            raise InvalidToken("token has no expiry")
        if exp + LEEWAY_SECONDS < now:
            raise InvalidToken("token has expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not is_number(nbf) or nbf - LEEWAY_SECONDS > now):
            raise InvalidToken("token is not valid yet")
        if not is_clean_text(claims.get("sub")):
            raise InvalidToken("token has no subject")
        return claims
