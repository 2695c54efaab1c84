"""The one HTTP client for outbound calls (providers, JWKS, discovery)."""
from __future__ import annotations

import http.cookiejar
import time
from functools import lru_cache

import requests
import urllib3
from requests.adapters import HTTPAdapter

USER_AGENT = "oauth-connector/1.0"
CHUNK = 64 * 1024


def deadline_for(timeout: tuple[float, float] | float | None) -> float | None:
    """The monotonic time by which a whole exchange started now must be over: connect + read.

    requests' timeouts bound each socket operation, so a peer that sends a byte every few seconds
    would otherwise hold the caller (and a refresh lease) for as long as it likes."""
    if isinstance(timeout, tuple):
        return time.monotonic() + sum(t for t in timeout if t)
    return time.monotonic() + timeout if timeout else None


def read_body(response: requests.Response, deadline: float | None, limit: int | None = None) -> bytes:
    """A streamed response's body, read as it arrives; ``requests.Timeout`` once ``deadline`` passes,
    ``BodyTooLarge`` past ``limit`` bytes. Closes the response when it fails."""
    chunks, size = [], 0
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise requests.Timeout("the response did not arrive in time")
            chunk = response.raw.read1(CHUNK, decode_content=True)  # returns after one receive
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if limit is not None and size > limit:
                raise BodyTooLarge(f"the response is larger than {limit} bytes")
            chunks.append(chunk)
    except BaseException:
        response.close()
        raise


class BodyTooLarge(requests.RequestException):
    pass


class _Adapter(HTTPAdapter):
    """Reads every non-streamed body within the request's overall deadline."""

    def send(self, request, stream=False, timeout=None, **kwargs):
        deadline = deadline_for(timeout)
        response = super().send(request, stream=True, timeout=timeout, **kwargs)
        if not stream:
            try:
                content = read_body(response, deadline)
            except requests.RequestException:  # ours (an OSError too): as it is
                raise
            except (urllib3.exceptions.HTTPError, OSError) as exc:  # as requests maps them when it reads
                raise requests.ConnectionError(type(exc).__name__) from None
            response._content = content  # what requests' Response.content does after a full read
            response._content_consumed = True
        return response


# One connection pool for the process (urllib3's pools are thread-safe): a batch of refreshes
# against one provider reuses kept-alive connections instead of a TCP + TLS handshake each.
_ADAPTER = _Adapter(pool_connections=32, pool_maxsize=32)


def configure(session: requests.Session) -> requests.Session:
    """Our defaults on any requests session (also Authlib's OAuth2Session, a subclass)."""
    session.headers["User-Agent"] = USER_AGENT
    # Never read proxy settings or .netrc credentials from the environment for these calls.
    session.trust_env = False
    session.mount("https://", _ADAPTER)
    session.mount("http://", _ADAPTER)
    return session


def new_session() -> requests.Session:
    return configure(requests.Session())


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Keeps no cookie: the shared session below carries every user's calls."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


def _no_cookie_jar() -> requests.cookies.RequestsCookieJar:
    return requests.cookies.RequestsCookieJar(policy=_NoCookies())


def _shared_session() -> requests.Session:
    session = new_session()
    session.cookies = _no_cookie_jar()
    return session


# For calls made many times a second (a sweep's token requests): requests' Session.send is thread-safe
# once nothing writes the session, and with no cookie jar nothing does.
_SHARED = _shared_session()


@lru_cache(maxsize=256)
def _prepared_url(url: str) -> str:
    """``url`` as requests prepares it (checked, IDNA-encoded, re-quoted): the same few token URLs again
    and again. Not a secret (a templated URL holds a connection's params, never a token)."""
    request = requests.PreparedRequest()
    request.prepare_url(url, None)
    return request.url


def post(url: str, body: str, headers: dict[str, str], timeout: tuple[float, float]) -> requests.Response:
    """POST an already encoded ``body`` through the shared session: the request is prepared here, with
    the session's default headers under ``headers``, instead of by ``Session.request``, whose merging of
    session settings cost more than the rest of the call. Sent with ``Session.send`` (what
    RequestsInstrumentor traces) through the shared pool, within the whole-exchange deadline. A redirect
    is not followed but answered as it came: the body carries credentials (client_secret_post, a code,
    a refresh token) that must reach no other URL than the one configured."""
    request = requests.PreparedRequest()
    request.prepare_method("POST")
    request.url = _prepared_url(url)
    request.prepare_headers({**_SHARED.headers, **headers})
    request.prepare_body(body, None)
    # An empty jar that keeps nothing, as Session.request gives every request one: requests reads a
    # redirect's cookies into it even when it only notes the redirect (``Response.next``).
    request.prepare_cookies(_no_cookie_jar())
    return _SHARED.send(request, timeout=timeout, allow_redirects=False)


def get_json(session: requests.Session, url: str, timeout: tuple[float, float], max_bytes: int = 1 << 20) -> dict:
    """GET a JSON object; raises ``ValueError`` or ``requests.RequestException`` on failure."""
    response = session.get(url, timeout=timeout, allow_redirects=False, headers={"Accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > max_bytes:
        raise ValueError(f"response from {url} is larger than {max_bytes} bytes")
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError(f"response from {url} is not a JSON object")
    return data
