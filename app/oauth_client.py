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
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from . import clock, http
from .errors import ProviderError, ProviderUnavailable
from .http import new_session
from .providers.spec import ProviderSpec

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
    except ValueError:
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
    return generate_token(64)


def authorize_url(spec: ProviderSpec, *, redirect_uri: str, state: str, code_verifier: str | None,
                  nonce: str | None) -> str:
    params = dict(spec.extra_authorize_params)
    if code_verifier:
        params.update(code_challenge=create_s256_code_challenge(code_verifier), code_challenge_method="S256")
    if nonce:
        params["nonce"] = nonce
    client = _session(spec, redirect_uri)
    url, _ = client.create_authorization_url(spec.authorize_url, state=state,
                                             scope=spec.scope_separator.join(spec.scopes) or None, **params)
    return url


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
    except (ValueError, TypeError, OverflowError):  # Authlib reading a malformed field ("expires_in": "soon", 1e999)
        raise ProviderUnavailable(f"provider {spec.name!r} answered a malformed token response") from None


def _token_response(spec: ProviderSpec, body: dict, requested_scopes: tuple[str, ...]) -> TokenResponse:
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderUnavailable(f"provider {spec.name!r} answered without an access_token")
    refresh_token = body.get("refresh_token")
    expires_in = _seconds(body.get("expires_in"))
    if expires_in is None and body.get("expires_in") is not None:
        raise ProviderUnavailable(f"provider {spec.name!r} answered a malformed expires_in")
    expires_at = None if expires_in is None else clock.now() + timedelta(seconds=expires_in)
    scope = body.get("scope")
    scopes = tuple(scope.replace(",", " ").split()) if isinstance(scope, str) else requested_scopes
    return TokenResponse(
        access_token=access_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        token_type=str(body.get("token_type") or "Bearer")[:32],
        expires_at=expires_at,
        scopes=scopes,
        id_token=body.get("id_token") if isinstance(body.get("id_token"), str) else None,
        raw=body,
    )


def exchange_code(spec: ProviderSpec, *, code: str, code_verifier: str | None, redirect_uri: str,
                  timeout: Timeout) -> TokenResponse:
    client = _session(spec, redirect_uri)
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    body = _call(lambda: client.fetch_token(spec.token_url, code=code, timeout=timeout, **extra), spec)
    return _token_response(spec, body, spec.scopes)


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
        try:
            deadline = http.deadline_for(timeout)
            response = new_session().get(spec.account_id_url, timeout=timeout, allow_redirects=False, stream=True,
                                         headers={"Authorization": f"Bearer {token.access_token}",
                                                  "Accept": "application/json"})
            if response.status_code != 200:
                response.close()
                raise ProviderUnavailable(
                    f"provider {spec.name!r} account lookup answered HTTP {response.status_code}")
            body = http.read_body(response, deadline, MAX_BODY)  # capped, as every provider answer
        except http.BodyTooLarge:
            raise ProviderError(f"provider {spec.name!r} account lookup answered more than {MAX_BODY} bytes",
                                code="account_lookup_failed") from None
        except requests.RequestException:
            raise ProviderUnavailable(f"provider {spec.name!r} account lookup failed") from None
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProviderUnavailable(f"provider {spec.name!r} account lookup answered non-JSON") from None
    for part in spec.account_id_field.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    if data is None or isinstance(data, (dict, list)):
        raise ProviderError(f"provider {spec.name!r} account lookup has no {spec.account_id_field!r}",
                            code="account_lookup_failed")
    return str(data)[:255]
