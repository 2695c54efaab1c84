"""Calling a provider's API on the user's behalf: the provider token never reaches the browser.

Only the provider's configured API base URL is reachable; the incoming
Authorization header and cookies are never forwarded, redirects are not
followed, and bodies and time are bounded.
"""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

import requests
import urllib3
from flask import Blueprint, Response, current_app, request

from .. import http
from ..errors import InvalidRequest, NotFound, ProviderError, ProviderUnavailable
from ..http import new_session
from ..runtime import runtime
from ..vault import get_access_token
from .access import user_access
from .auth import require_user

bp = Blueprint("proxy", __name__, url_prefix="/api/proxy")

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
REQUEST_HEADERS = ("Accept", "Accept-Language", "Content-Type", "If-Match", "If-None-Match",
                   "If-Modified-Since", "If-Unmodified-Since", "Prefer")
RESPONSE_HEADERS = ("Content-Type", "ETag", "Last-Modified", "Link", "Retry-After", "Content-Language",
                    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def target_url(base_url: str, raw_path: str, query: bytes) -> str:
    """Join a client-supplied path onto the API base URL, refusing anything that could leave it."""
    if "\\" in raw_path or any(ord(ch) < 33 or ord(ch) == 127 for ch in raw_path):
        raise InvalidRequest("the proxied path contains a backslash, whitespace or control character")
    lowered = raw_path.lower()
    if raw_path.startswith("/") or "//" in raw_path or "%2f" in lowered or "%5c" in lowered:
        raise InvalidRequest("the proxied path must be relative to the provider's API")
    # ";" too: servers that take path parameters (Tomcat, Spring) read "..;" as "..".
    if any(unquote(unquote(segment)).split(";")[0] in (".", "..") for segment in raw_path.split("/")):
        raise InvalidRequest("the proxied path must not contain dot segments")
    url = base_url.rstrip("/") + "/" + raw_path
    base, parts = urlsplit(base_url), urlsplit(url)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(base.path):
        raise InvalidRequest("the proxied path leaves the provider's API")
    return url + ("?" + query.decode("latin-1") if query else "")


def _raw_path(provider: str) -> str:
    raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    path = raw_uri.split("?", 1)[0] if raw_uri else request.path  # keep percent-encoding as the client sent it
    prefix = f"/api/proxy/{provider}/"
    if not path.startswith(prefix):
        raise InvalidRequest("the proxied path could not be read")
    return path[len(prefix):]


@bp.route("/<provider>/<path:path>", methods=METHODS, merge_slashes=False)
@user_access
def proxy(provider: str, path: str) -> Response:
    principal = require_user()
    spec = runtime().registry.get(provider)
    if not spec.api_base_url:
        raise NotFound(f"provider {provider!r} has no API base URL configured")
    url = target_url(spec.api_base_url, _raw_path(provider), request.query_string)
    limit = current_app.config["PROXY_MAX_BODY_BYTES"]
    request.max_content_length = limit
    body = request.get_data(cache=False) if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
    headers = {name: request.headers[name] for name in REQUEST_HEADERS if name in request.headers}

    token = get_access_token(principal.sub, provider)
    upstream, deadline = _send(request.method, url, headers, body, token.token)
    if upstream.status_code == 401:  # the provider revoked or expired it early: refresh once and retry
        upstream.close()
        token = get_access_token(principal.sub, provider, force_refresh=True)
        upstream, deadline = _send(request.method, url, headers, body, token.token)
    if 300 <= upstream.status_code < 400:
        upstream.close()
        raise ProviderError("the provider's API answered with a redirect, which the proxy does not follow",
                            code="upstream_redirect")
    content = _read_limited(upstream, deadline, limit)
    response = Response(content, status=upstream.status_code)
    for name in RESPONSE_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    return response


def _send(method: str, url: str, headers: dict, body: bytes | None, token: str) -> tuple[requests.Response, float]:
    """The upstream response (headers read, body not yet) and the time by which its body must be in."""
    timeout = runtime().timeout
    deadline = http.deadline_for(timeout)  # the whole exchange, not each read
    try:
        return new_session().request(method, url, headers={**headers, "Authorization": f"Bearer {token}"},
                                     data=body, timeout=timeout, allow_redirects=False, stream=True), deadline
    except requests.Timeout:
        raise ProviderUnavailable("the provider's API timed out", code="upstream_timeout") from None
    except requests.RequestException:
        raise ProviderUnavailable("the provider's API is unreachable", code="upstream_unreachable") from None


def _read_limited(upstream: requests.Response, deadline: float, limit: int) -> bytes:
    try:
        return http.read_body(upstream, deadline, limit)
    except http.BodyTooLarge:
        raise ProviderError(f"the provider's response is larger than {limit} bytes",
                            code="upstream_too_large") from None
    except requests.Timeout:
        raise ProviderUnavailable("the provider's API did not finish its response in time",
                                  code="upstream_timeout") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
        raise ProviderUnavailable("the provider's API broke off its response", code="upstream_unreachable") from None
    finally:
        upstream.close()
