"""Talking to a provider's token endpoint, with Authlib's encoders, and failures classified.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import requests
from authlib.common.urls import url_decode
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oauth2.rfc6749.wrappers import OAuth2Token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from . import clock, http
from .errors import ProviderError, ProviderUnavailable
from .http import new_session
from .providers import templates
from .providers.entry_types import ERROR_CODE_PATTERN
from .providers.spec import ErrorShape, ProviderSpec, TokenPaths
from .scopes import scope_parameter

Timeout = tuple[float, float]
MAX_BODY = 256 * 1024
MAX_SECONDS = 10 * 366 * 24 * 3600  # an expiry further out than ten years is read as ten years
ERROR_CODE_RE = re.compile(ERROR_CODE_PATTERN)  # anything else is reported as provider_error
DEFAULT_HEADERS = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}


@dataclass(frozen=True)
class TokenResponse:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scopes: tuple[str, ...]
    id_token: str | None = field(default=None, repr=False)
    raw: dict = field(default_factory=dict, repr=False)
    # Seconds the new refresh token lives, when the provider says (at token_response.refresh_token_expires_in).
    refresh_token_expires_in: int | None = None


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


def get_path(body: object, path: str) -> object:
    """The value at a dotted ``path`` (``authed_user.access_token``) in a JSON object, or None."""
    for part in path.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


def safe_code(value: object) -> str:
    """A provider's error code as we repeat it: a short identifier, or ``provider_error``."""
    return value if isinstance(value, str) and ERROR_CODE_RE.fullmatch(value) else "provider_error"


def _parse_body(response: requests.Response) -> dict:
    """The token endpoint's body as a dict: JSON, or a form-encoded body (GitHub without Accept JSON)
    when the response says so, whatever the provider entry declares."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(response.content.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise ProviderUnavailable("token endpoint answered a malformed form-encoded body") from None
        if len({key for key, _ in pairs}) != len(pairs):
            raise ProviderUnavailable("token endpoint answered a form-encoded body with repeated fields")
        return dict(pairs)
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than the parser goes
        raise ProviderUnavailable(f"token endpoint answered HTTP {response.status_code} with a non-JSON body") from None
    if not isinstance(body, dict):
        raise ProviderUnavailable("token endpoint answered with JSON that is not an object")
    return body


def error_code(shape: ErrorShape, body: dict, status: int) -> str | None:
    """The provider's error code if ``body`` (answered with ``status``) is an error, else None.

    An HTTP error status always is; on a 2xx, a ``success_flag`` that is not true (Slack's
    ``ok: false``), or the ``field`` present (``error``, or the entry's own with ``on_http_200``)."""
    value = get_path(body, shape.field)
    present = value not in (None, "")
    if status >= 400:
        return safe_code(value) if present else "provider_error"
    if shape.success_flag is not None and get_path(body, shape.success_flag) is not True:
        return safe_code(value) if present else "provider_error"
    if present and (shape.on_http_200 or shape.field == "error"):
        return safe_code(value)
    return None


def _checked(spec: ProviderSpec, response: requests.Response) -> dict:
    """The token endpoint's answer as a dict, or the failure: transient ones ``ProviderUnavailable``,
    errors in the entry's ``error_shape`` a ``ProviderError`` with the (sanitised) code. Without an
    ``error`` field (the shape said it is no error)."""
    if response.status_code == 429 or response.status_code >= 500:
        raise ProviderUnavailable(f"token endpoint answered HTTP {response.status_code}",
                                  retry_after=_retry_after(response))
    if 300 <= response.status_code < 400:  # never followed (app.http.post): the credentials stay put
        raise ProviderUnavailable(f"token endpoint answered a redirect (HTTP {response.status_code}); token "
                                  "requests are not redirected: check the entry's token URL")
    if len(response.content) > MAX_BODY:
        raise ProviderUnavailable("token endpoint answered with an oversized body")
    body = _parse_body(response)
    code = error_code(spec.error_shape, body, response.status_code)
    if code is not None:
        raise ProviderError(f"provider {spec.name!r} rejected the token request: {code}", code=code)
    return {k: v for k, v in body.items() if k != "error"}


def _token_request(spec: ProviderSpec, url: str, grant_type: str, params: dict, timeout: Timeout) -> dict:
    """POST a grant to the token endpoint as Authlib's OAuth2Session did (its form body, its client
    authentication, then the entry's body format and headers), without building a session per call:
    through ``http.post``. The answer read as Authlib reads it (``OAuth2Token``: an ``expires_at``
    from ``expires_in``, a malformed one raising)."""
    # Authlib's form body, re-encoded as requests encoded the dict Authlib handed it: one value per name.
    form = urlencode(list(dict(url_decode(prepare_token_request(grant_type, **params))).items()))
    url, headers, body = ClientAuth(spec.client_id, spec.client_secret, spec.client_auth).prepare(
        "POST", url, _headers(spec), form)
    if spec.token_body_format == "json":  # Atlassian, Notion: the same fields as a JSON object
        body = json.dumps(dict(url_decode(body or "")))
        headers["Content-Type"] = "application/json"
    return dict(OAuth2Token(_checked(spec, http.post(url, body, headers, timeout))))


def _headers(spec: ProviderSpec) -> dict[str, str]:
    return {**DEFAULT_HEADERS, **dict(spec.token_request_headers)}


def new_pkce_verifier() -> str:
    """A PKCE code verifier (RFC 7636 §4.1: 43–128 unreserved characters): 64 random bytes, base64url,
    86 characters, from one ``secrets`` call (Authlib's generator makes one system call per character)."""
    return secrets.token_urlsafe(64)


# What quote_plus leaves as it is, and "=": a sealed state is base64url with its "=" padding.
_BASE64URL_PADDED = re.compile(r"[A-Za-z0-9_.~=-]*")


def _form_quoted(value: str) -> str:
    """``quote_plus(value)``; for a base64url value without quote_plus' per-character loop, which
    the state's padding would otherwise take it through."""
    return value.replace("=", "%3D") if _BASE64URL_PADDED.fullmatch(value) else quote_plus(value)


# The authorization request's parameters other than state, the PKCE challenge and the nonce depend only on
# these arguments: form-encoded once each (an entry per provider, redirect URI and set of scopes asked).
@lru_cache(maxsize=256)
def _fixed_query(spec: ProviderSpec, endpoint: str, redirect_uri: str,
                 scopes: tuple[str, ...]) -> tuple[str, str, str]:
    """``(the URL up to "state=", the entry's parameters and scopes after state, the fragment)``."""
    query = dict(spec.extra_authorize_params)
    query.update(scope_parameter(spec, scopes))
    parts = urlsplit(endpoint)
    head = [*parse_qsl(parts.query, keep_blank_values=True), ("response_type", query.pop("response_type", "code")),
            ("client_id", spec.client_id), ("redirect_uri", redirect_uri)]
    base = urlunsplit(parts._replace(query="", fragment=""))
    return (f"{base}?{urlencode(head)}&state=", f"&{urlencode(query)}" if query else "",
            f"#{parts.fragment}" if parts.fragment else "")


def authorize_url(spec: ProviderSpec, *, redirect_uri: str, state: str, code_verifier: str | None,
                  nonce: str | None, scopes: tuple[str, ...] | None = None,
                  params: Mapping[str, str] | None = None) -> str:
    """``scopes``: what to ask for (default: the entry's ``scopes``), sent as the entry's
    ``scope_param`` joined with its ``scope_separator``; ``params``: the connection's, for a
    templated authorize_url.

    RFC 6749 §4.1.1: the parameters added to the endpoint's own query, form-encoded, in the order
    response_type, client_id, redirect_uri, state, the entry's extra parameters, the scope
    parameter(s), code_challenge, code_challenge_method, nonce: the query one ``urlencode`` of them
    all gives (and Authlib's prepare_grant_uri), with the fixed part encoded once (``_fixed_query``)."""
    endpoint = templates.url(spec, spec.authorize_url, params)
    head, tail, fragment = _fixed_query(spec, endpoint, redirect_uri, spec.scopes if scopes is None else tuple(scopes))
    url = head + _form_quoted(state) + tail
    if code_verifier:
        url += f"&code_challenge={quote_plus(create_s256_code_challenge(code_verifier))}&code_challenge_method=S256"
    if nonce:
        url += f"&nonce={quote_plus(nonce)}"
    return url + fragment


def _call(action, spec: ProviderSpec) -> dict:
    try:
        return action()
    except (ProviderUnavailable, ProviderError):
        raise
    except requests.Timeout:
        raise ProviderUnavailable(f"provider {spec.name!r} timed out") from None
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"provider {spec.name!r} is unreachable ({type(exc).__name__})") from None
    except (ValueError, TypeError, OverflowError, RecursionError):
        # Authlib reading a malformed field ("expires_in": "soon", 1e999, a list) or a deeply nested body
        raise ProviderUnavailable(f"provider {spec.name!r} answered a malformed token response") from None


def _malformed(spec: ProviderSpec, what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"provider {spec.name!r} answered a malformed token response ({what})")


def _optional_string(spec: ProviderSpec, body: dict, path: str, limit: int = 64 * 1024) -> str | None:
    """A string field that may be absent (or null/empty); any other type is a malformed response."""
    value = get_path(body, path)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _malformed(spec, f"{path} is not a string")
    return value


def _expires_at(spec: ProviderSpec, paths: TokenPaths, body: dict) -> datetime | None:
    """From expires_in; without one, the provider's default_access_token_ttl, unless the provider
    declares non-expiring access tokens (GitHub OAuth apps)."""
    raw = get_path(body, paths.expires_in)
    if raw is None or raw == "":
        if spec.non_expiring_access_tokens:
            return None
        return clock.now() + timedelta(seconds=spec.default_access_token_ttl)
    expires_in = _seconds(raw)
    if expires_in is None:
        raise _malformed(spec, "expires_in is not a number of seconds")
    return clock.now() + timedelta(seconds=expires_in)


def _scopes(spec: ProviderSpec, paths: TokenPaths, body: dict, requested: tuple[str, ...]) -> tuple[str, ...]:
    scope = get_path(body, paths.scope)
    if scope is None:
        return requested
    if isinstance(scope, str):  # RFC 6749: space-separated; GitHub: comma-separated
        return tuple(scope.replace(",", " ").split())
    if isinstance(scope, list) and all(isinstance(item, str) and " " not in item for item in scope):
        return tuple(item for item in scope if item)  # a few providers answer a JSON array
    raise _malformed(spec, "scope is neither a string nor a list of strings")


def _token_response(spec: ProviderSpec, paths: TokenPaths, body: dict,
                    requested_scopes: tuple[str, ...]) -> TokenResponse:
    """Validate every field we use, read where ``paths`` say (the entry's ``token_response``, or its
    ``refresh_token_response`` for a refresh); a field of the wrong type is a malformed response,
    never a crash and never silently dropped (a refresh_token that is a number is not "no refresh token")."""
    if not isinstance(body, dict):
        raise _malformed(spec, "not a JSON object")
    access_token = _optional_string(spec, body, paths.access_token)
    if access_token is None:
        raise ProviderUnavailable(f"provider {spec.name!r} answered without an access_token")
    token_type = _optional_string(spec, body, paths.token_type) or "Bearer"
    refresh_ttl = get_path(body, paths.refresh_token_expires_in)
    return TokenResponse(
        access_token=access_token,
        refresh_token=_optional_string(spec, body, paths.refresh_token),
        token_type=token_type[:32],
        expires_at=_expires_at(spec, paths, body),
        scopes=_scopes(spec, paths, body, requested_scopes),
        id_token=_optional_string(spec, body, "id_token"),
        raw=body,
        refresh_token_expires_in=None if refresh_ttl in (None, "") else _seconds(refresh_ttl),
    )


def exchange_code(spec: ProviderSpec, *, code: str, code_verifier: str | None, redirect_uri: str,
                  timeout: Timeout, scopes: tuple[str, ...] | None = None,
                  params: Mapping[str, str] | None = None) -> TokenResponse:
    """The code exchange at the entry's token_url (filled with the connection's ``params``).
    ``scopes``: what the authorize request asked for (default: the entry's ``scopes``), taken as
    granted when the token response names none (RFC 6749 §5.1: then the grant is as requested)."""
    url = templates.url(spec, spec.token_url, params)
    form = {"code": code, **dict(spec.token_params), **({"code_verifier": code_verifier} if code_verifier else {})}
    form.setdefault("redirect_uri", redirect_uri)
    body = _call(lambda: _token_request(spec, url, "authorization_code", form, timeout), spec)
    return _token_response(spec, spec.token_response, body, spec.scopes if scopes is None else scopes)


def refresh(spec: ProviderSpec, *, refresh_token: str, scopes: tuple[str, ...], timeout: Timeout,
            params: Mapping[str, str] | None = None, redirect_uri: str | None = None) -> TokenResponse:
    """A refresh at the entry's refresh_url (default token_url), with its refresh_params, and the
    redirect URI where the entry says the provider wants it (GitLab); the answer read where the
    entry's refresh_token_response says (default: token_response)."""
    try:
        url = templates.url(spec, spec.refresh_url or spec.token_url, params)
    except templates.InvalidConnectionParam as exc:  # stored params the entry no longer accepts
        raise ProviderError(exc.description, code=exc.code) from None
    form = {"refresh_token": refresh_token, **dict(spec.refresh_params)}
    if spec.refresh_sends_redirect_uri and redirect_uri:
        form["redirect_uri"] = redirect_uri
    body = _call(lambda: _token_request(spec, url, "refresh_token", form, timeout), spec)
    body.setdefault("refresh_token", refresh_token)  # as Authlib's refresh_token(): not rotated, still this one
    return _token_response(spec, spec.refresh_paths, body, scopes)


def fetch_account_id(spec: ProviderSpec, token: TokenResponse, timeout: Timeout,
                     params: Mapping[str, str] | None = None) -> str | None:
    """The user's id at the provider, read where the spec says (``param``: one of the connection's
    ``params``, e.g. QuickBooks' realm id)."""
    if spec.account_id_source == "none":
        return None
    if spec.account_id_source == "param":
        data = (params or {}).get(spec.account_id_field)
    else:
        if spec.account_id_source == "token_response":
            data = token.raw
        else:
            data = _userinfo(spec, token, timeout, params)
        data = get_path(data, spec.account_id_field)
    if data is None or isinstance(data, (dict, list, bool)) or str(data) == "":
        raise ProviderError(f"provider {spec.name!r} account lookup has no {spec.account_id_field!r}",
                            code="account_lookup_failed")
    return str(data)[:255]


def _userinfo(spec: ProviderSpec, token: TokenResponse, timeout: Timeout,
              params: Mapping[str, str] | None) -> object:
    """GET the account URL with the new token: a JSON body of at most MAX_BODY bytes, read within the
    whole-exchange deadline."""
    try:
        url = templates.url(spec, spec.account_id_url, params)
        response = new_session().get(url, timeout=timeout, allow_redirects=False, stream=True,
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
