"""Calling a provider's API on the user's behalf: the provider token never reaches the browser.

Only the provider's configured API base URL is reachable (a templated one, e.g.
``https://{subdomain}.zendesk.com/api/v2/``, filled with the connection's own validated params); the incoming
Authorization header and cookies are never forwarded, redirects are not
followed, and bodies and time are bounded.
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from .. import clock, http
from ..errors import InvalidRequest, NotFound, ProviderError, ProviderUnavailable, ReauthorizationRequired
from ..extensions import db
from ..http import new_session
from ..models import Connection
from ..observability.metrics import count_proxy_requests
from ..providers import templates
from ..runtime import runtime
from ..vault import AccessToken, get_access_token
from .access import user_access
from .auth import require_user

bp = Blueprint("proxy", __name__, url_prefix="/api/proxy")

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
REQUEST_HEADERS = ("Accept", "Accept-Language", "Content-Type", "If-Match", "If-None-Match",
                   "If-Modified-Since", "If-Unmodified-Since", "Prefer")
RESPONSE_HEADERS = ("Content-Type", "ETag", "Last-Modified", "Link", "Retry-After", "Content-Language",
                    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# A 304 carries the validators and caching headers a 200 would have (RFC 9110 §15.4.5), no body.
# Not Date: the server in front of the app sets its own (gunicorn always does; two would conflict).
NOT_MODIFIED_HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Expires", "Vary", "Content-Location",
                        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# On every answer that is the provider's own (any status), so a client tells it from ours.
UPSTREAM_HEADER = "Connector-Upstream"
# At most one forced refresh per connection in this interval (see _token_after_401).
FORCED_REFRESH_INTERVAL = timedelta(seconds=60)


# What a second decoding must not produce: an upstream (or a framework in front of it) that decodes
# twice would read "..%252f" as "../", "%255c" as "\\" and "%2e%2e%252f" as "../".
_HIDDEN = frozenset("/\\.?#;") | {chr(c) for c in range(33)} | {chr(127)}
_MAX_DECODINGS = 8


def _hides_separator(segment: str) -> bool:
    """True if decoding ``segment`` more than once yields a separator, a dot or a control character
    that the first decoding does not: a %25-encoded "/", "\\", "." (at any depth, in any spelling)."""
    layer = unquote(segment)
    for _ in range(_MAX_DECODINGS):
        deeper = unquote(layer)
        if deeper == layer:
            return False
        if any(deeper.count(ch) > layer.count(ch) for ch in _HIDDEN):
            return True
        layer = deeper
    return True  # still changing after that many decodings: nothing legitimate looks like this


def _fully_decoded(segment: str) -> str:
    for _ in range(_MAX_DECODINGS):
        decoded = unquote(segment)
        if decoded == segment:
            break
        segment = decoded
    return segment


def target_url(base_url: str, raw_path: str, query: bytes) -> str:
    """Join a client-supplied path onto the API base URL, refusing anything that could leave it."""
    if any(ch in "\\?#" or ord(ch) < 33 or ord(ch) == 127 for ch in raw_path):  # "?", "#": never in a path
        raise InvalidRequest("the proxied path contains a backslash, ?, #, whitespace or a control character")
    lowered = raw_path.lower()
    if raw_path.startswith("/") or "//" in raw_path or "%2f" in lowered or "%5c" in lowered:
        raise InvalidRequest("the proxied path must be relative to the provider's API")
    segments = raw_path.split("/")
    if any(_hides_separator(segment) for segment in segments):
        raise InvalidRequest("the proxied path must not contain encoded separators or dots")
    # ";" too: servers that take path parameters (Tomcat, Spring) read "..;" as "..".
    if any(_fully_decoded(segment).split(";")[0] in (".", "..") for segment in segments):
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
@count_proxy_requests
def proxy(provider: str, path: str) -> Response:
    principal = require_user()
    spec = runtime().registry.get(provider)
    if not spec.api_base_url:
        raise NotFound(f"provider {provider!r} has no API base URL configured")
    url = target_url(_base_url(spec, principal.sub), _raw_path(provider), request.query_string)
    limit = current_app.config["PROXY_MAX_BODY_BYTES"]
    # The whole body is read (413 past the limit, whatever its framing) before anything is sent.
    request.max_content_length = limit
    body = request.get_data(cache=False) if request.method in ("POST", "PUT", "PATCH", "DELETE") else None
    headers = {name: request.headers[name] for name in REQUEST_HEADERS if name in request.headers}

    token = get_access_token(principal.sub, provider)
    upstream, deadline = _send(request.method, url, headers, body, token.token)
    if upstream.status_code == 401:  # the provider revoked or expired it early: a new token, once
        upstream.close()
        token = _token_after_401(principal.sub, provider, token)
        upstream, deadline = _send(request.method, url, headers, body, token.token)
        if upstream.status_code == 401:
            upstream.close()
            raise _provider_unauthorized()
    if upstream.status_code == 304:  # not a redirection (RFC 9110 §15.4.5): the client's copy is current
        upstream.close()
        return _passed_through(NotModified(status=304), upstream, NOT_MODIFIED_HEADERS)
    if 300 <= upstream.status_code < 400:
        upstream.close()
        raise ProviderError("the provider's API answered with a redirect, which the proxy does not follow",
                            code="upstream_redirect")
    content = _read_limited(upstream, deadline, limit)
    return _passed_through(Response(content, status=upstream.status_code), upstream, RESPONSE_HEADERS)


def _base_url(spec, user_id: str) -> str:
    """The API base URL for this user's connection: a templated one filled with its params."""
    if not templates.placeholders(spec.api_base_url):
        return spec.api_base_url
    row = db.session.execute(
        select(Connection.id, Connection.params).where(Connection.user_id == user_id, Connection.provider == spec.name)
    ).first()
    if row is None:
        raise NotFound(f"user has no {spec.name!r} connection")
    try:
        return templates.url(spec, spec.api_base_url, row.params)
    except templates.InvalidConnectionParam:
        # Stored before the entry changed its pattern: only a new connect gives usable values.
        raise ReauthorizationRequired(f"the {spec.name!r} connection's parameters no longer fit the provider "
                                      "entry; the user must connect again") from None


class NotModified(Response):
    """A 304 that keeps Last-Modified, which Werkzeug drops from every 304 as an entity header:
    RFC 9110 §15.4.5 allows it there to guide cache updates, and a provider may send no ETag."""

    def get_wsgi_headers(self, environ):
        headers = super().get_wsgi_headers(environ)
        if "Last-Modified" in self.headers and "Last-Modified" not in headers:
            headers["Last-Modified"] = self.headers["Last-Modified"]
        return headers


def _passed_through(response: Response, upstream: requests.Response, names: tuple[str, ...]) -> Response:
    """The provider's own answer, marked as such: our own answers are problem+json with a ``code``."""
    for name in names:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    response.headers[UPSTREAM_HEADER] = "provider"
    return response


def _provider_unauthorized() -> ProviderError:
    return ProviderError("the provider refused the connection's access token, also after it was renewed; "
                         "connecting the provider again may help", code="provider_unauthorized")


def _token_after_401(user_id: str, provider: str, refused: AccessToken) -> AccessToken:
    """The token to retry with after the provider refused ``refused``.

    Another request may already have replaced it: then that one, without a refresh. Otherwise one
    forced refresh, unless the connection's token was refreshed within the last
    ``FORCED_REFRESH_INTERVAL``: a provider that refuses a token less than a minute old will refuse
    the next one too, and every refresh is a grant with the operator's client credentials (rate
    limits) that rotates the refresh token. The connection row's ``last_refreshed_at`` is the shared
    record, so the limit holds across workers and processes. (Two requests refused at the same
    instant may both pass this check; the vault's single-flight lease makes them share one refresh
    unless the first has already finished.)
    """
    current = get_access_token(user_id, provider)
    if current.token != refused.token:
        return current
    last_refreshed = db.session.scalar(
        select(Connection.last_refreshed_at).where(Connection.user_id == user_id, Connection.provider == provider)
    )
    if last_refreshed is not None and clock.now() - last_refreshed < FORCED_REFRESH_INTERVAL:
        raise _provider_unauthorized()
    return get_access_token(user_id, provider, force_refresh=True)


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
