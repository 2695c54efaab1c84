"""Talking to a provider's token endpoint through Authlib, with failures classified.

``ProviderUnavailable`` means "try again later" (timeout, connection error, 5xx,
429, a body that is not JSON, a 200 without an access token); ``ProviderError``
carries the provider's OAuth ``error`` code (``invalid_grant`` and friends).
Nothing here logs or echoes token material.
"""
from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from . import clock, http
from .errors import ProviderError, ProviderUnavailable
from .http import new_session
from .providers.spec import ProviderSpec
from .scopes import scope_parameter

Timeout = tuple[float, float]
MAX_BODY = 256 * 1024
MAX_SECONDS = 10 * 366 * 24 * 3600  # an expiry further out than ten years is read as ten years


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scopes: tuple[str, ...]
    id_token: str | None = field(default=None, repr=False)
    raw: dict = field(default_factory=dict, repr=False)


def _seconds(value: object) -> int | None:
    """A non-negative number of seconds from a provider (JSON number or digit string), capped."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return min(int(value), MAX_SECONDS)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        return min(int(value), MAX_SECONDS)
    return None


def _retry_after(response: requests.Response) -> float | None:
    return _seconds(response.headers.get("Retry-After", ""))


def _check_response(response: requests.Response) -> requests.Response:
    """Authlib compliance hook: turn transient failures into ``ProviderUnavailable``."""
    if response.status_code == 429 or response.status_code >= 500:
        raise ProviderUnavailable(f"token endpoint answered HTTP {response.status_code}",
                                  retry_after=_retry_after(response))
    if len(response.content) > MAX_BODY:
        raise ProviderUnavailable("token endpoint answered with an oversized body")
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
        raise ProviderUnavailable(f"token endpoint answered HTTP {response.status_code} with a non-JSON body") from None
    if not isinstance(body, dict):
        raise ProviderUnavailable("token endpoint answered with JSON that is not an object")
    if response.status_code >= 400 and "error" not in body:
        raise ProviderError(f"token endpoint answered HTTP {response.status_code} without an OAuth error")
    return response


def _session(spec: ProviderSpec, redirect_uri: str | None = None) -> OAuth2Session:
    client = http.configure(OAuth2Session(spec.client_id, spec.client_secret,
                                          token_endpoint_auth_method=spec.client_auth, redirect_uri=redirect_uri))
    client.register_compliance_hook("access_token_response", _check_response)
    client.register_compliance_hook("refresh_token_response", _check_response)
    return client


def new_pkce_verifier() -> str:
    """A PKCE code verifier (RFC 7636 §4.1: 43–128 unreserved characters): 64 random bytes, base64url,
    86 characters, from one ``secrets`` call (Authlib's generator makes one system call per character)."""
    return secrets.token_urlsafe(64)


def authorize_url(spec: ProviderSpec, *, redirect_uri: str, state: str, code_verifier: str | None,
                  nonce: str | None, scopes: tuple[str, ...] | None = None) -> str:
    """``scopes``: what to ask for (default: the entry's ``scopes``), sent as the entry's
    ``scope_param`` joined with its ``scope_separator``."""
    params = dict(spec.extra_authorize_params)
    params.update(scope_parameter(spec, spec.scopes if scopes is None else scopes))
    if code_verifier:
        params.update(code_challenge=create_s256_code_challenge(code_verifier), code_challenge_method="S256")
    if nonce:
        params["nonce"] = nonce
    # What OAuth2Session.create_authorization_url ends in, without building a requests session per start.
    response_type = params.pop("response_type", "code")
    return prepare_grant_uri(spec.authorize_url, client_id=spec.client_id, response_type=response_type,
                             redirect_uri=redirect_uri, state=state, **params)


def _call(action, spec: ProviderSpec) -> dict:
    try:
        return dict(action())
    except (ProviderUnavailable, ProviderError):
        raise
    except OAuthError as exc:
        valid = isinstance(exc.error, str) and re.fullmatch(r"[A-Za-z0-9_]+", exc.error)
        code = exc.error if valid else "provider_error"
        raise ProviderError(f"provider {spec.name!r} rejected the token request: {code}", code=code[:64]) from None
    except requests.Timeout:
        raise ProviderUnavailable(f"provider {spec.name!r} timed out") from None
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"provider {spec.name!r} is unreachable ({type(exc).__name__})") from None
    except (ValueError, TypeError, OverflowError, RecursionError):
        # Authlib reading a malformed field ("expires_in": "soon", 1e999, a list) or a deeply nested body
        raise ProviderUnavailable(f"provider {spec.name!r} answered a malformed token response") from None


def _malformed(spec: ProviderSpec, what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"provider {spec.name!r} answered a malformed token response ({what})")


def _optional_string(spec: ProviderSpec, body: dict, key: str, limit: int = 64 * 1024) -> str | None:
    """A string field that may be absent (or null/empty); any other type is a malformed response."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _malformed(spec, f"{key} is not a string")
    return value


def _expires_at(spec: ProviderSpec, body: dict) -> datetime | None:
    """From expires_in; without one, the provider's default_access_token_ttl, unless the provider
    declares non-expiring access tokens (GitHub OAuth apps)."""
    raw = body.get("expires_in")
    if raw is None or raw == "":
        if spec.non_expiring_access_tokens:
            return None
        return clock.now() + timedelta(seconds=spec.default_access_token_ttl)
    expires_in = _seconds(raw)
    if expires_in is None:
        raise _malformed(spec, "expires_in is not a number of seconds")
    return clock.now() + timedelta(seconds=expires_in)


def _scopes(spec: ProviderSpec, body: dict, requested: tuple[str, ...]) -> tuple[str, ...]:
    scope = body.get("scope")
    if scope is None:
        return requested
    if isinstance(scope, str):  # RFC 6749: space-separated; GitHub: comma-separated
        return tuple(scope.replace(",", " ").split())
    if isinstance(scope, list) and all(isinstance(item, str) and " " not in item for item in scope):
        return tuple(item for item in scope if item)  # a few providers answer a JSON array
    raise _malformed(spec, "scope is neither a string nor a list of strings")


def _token_response(spec: ProviderSpec, body: dict, requested_scopes: tuple[str, ...]) -> TokenResponse:
    """Validate every field we use; a field of the wrong type is a malformed response, never a crash
    and never silently dropped (a refresh_token that is a number is not "no refresh token")."""
    if not isinstance(body, dict):
        raise _malformed(spec, "not a JSON object")
    access_token = _optional_string(spec, body, "access_token")
    if access_token is None:
        raise ProviderUnavailable(f"provider {spec.name!r} answered without an access_token")
    token_type = _optional_string(spec, body, "token_type") or "Bearer"
    return TokenResponse(
        access_token=access_token,
        refresh_token=_optional_string(spec, body, "refresh_token"),
        token_type=token_type[:32],
        expires_at=_expires_at(spec, body),
        scopes=_scopes(spec, body, requested_scopes),
        id_token=_optional_string(spec, body, "id_token"),
        raw=body,
    )


def exchange_code(spec: ProviderSpec, *, code: str, code_verifier: str | None, redirect_uri: str,
                  timeout: Timeout, scopes: tuple[str, ...] | None = None) -> TokenResponse:
    """``scopes``: what the authorize request asked for (default: the entry's ``scopes``), taken as
    granted when the token response names none (RFC 6749 §5.1: then the grant is as requested)."""
    client = _session(spec, redirect_uri)
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    body = _call(lambda: client.fetch_token(spec.token_url, code=code, timeout=timeout, **extra), spec)
    return _token_response(spec, body, spec.scopes if scopes is None else scopes)


def refresh(spec: ProviderSpec, *, refresh_token: str, scopes: tuple[str, ...], timeout: Timeout) -> TokenResponse:
    client = _session(spec)
    body = _call(lambda: client.refresh_token(spec.token_url, refresh_token=refresh_token, timeout=timeout), spec)
    return _token_response(spec, body, scopes)


def fetch_account_id(spec: ProviderSpec, token: TokenResponse, timeout: Timeout) -> str | None:
    """The user's id at the provider, read where the spec says."""
    if spec.account_id_source == "none":
        return None
    if spec.account_id_source == "token_response":
        data = token.raw
    else:
        data = _userinfo(spec, token, timeout)
    for part in spec.account_id_field.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    if data is None or isinstance(data, (dict, list, bool)) or str(data) == "":
        raise ProviderError(f"provider {spec.name!r} account lookup has no {spec.account_id_field!r}",
                            code="account_lookup_failed")
    return str(data)[:255]


def _userinfo(spec: ProviderSpec, token: TokenResponse, timeout: Timeout) -> object:
    """GET the account URL with the new token: a JSON body of at most MAX_BODY bytes, read within the
    whole-exchange deadline."""
    try:
        response = new_session().get(spec.account_id_url, timeout=timeout, allow_redirects=False, stream=True,
                                     headers={"Authorization": f"Bearer {token.access_token}",
                                              "Accept": "application/json"})
        if response.status_code != 200:
            response.close()
            raise ProviderUnavailable(f"provider {spec.name!r} account lookup answered HTTP {response.status_code}")
        body = http.read_body(response, http.deadline_for(timeout), MAX_BODY)
    except http.BodyTooLarge:
        raise ProviderUnavailable(f"provider {spec.name!r} account lookup answered an oversized body") from None
    except requests.RequestException:
        raise ProviderUnavailable(f"provider {spec.name!r} account lookup failed") from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        raise ProviderUnavailable(f"provider {spec.name!r} account lookup answered non-JSON") from None
