"""Which URLs a user may be sent back to (RFC 9700 §4.11: no open redirector).

A candidate matches an allowed URL when scheme, host and port are equal and its
path equals the allowed path or lies below it at a ``/`` boundary. Parsing is
the standard library's; nothing is decided by string prefix. Both checks are pure functions of
the string and the allowlist: the answers for the last few hundred distinct values are kept.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, unquote, urlsplit

from ..errors import ReturnUrlRejected

MAX_LENGTH = 2048
KEPT_ANSWERS = 256  # per check; an app sends a handful of return URLs from one or two origins
DEFAULT_PORTS = {"http": 80, "https": 443}
WHITESPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class _Allowed:
    scheme: str
    host: str
    port: int
    path: str  # without trailing slash; "" for the root

    @property
    def origin(self) -> str:
        default = DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{self.host}" + ("" if default else f":{self.port}")


def _split(url: str) -> SplitResult:
    """Parse and apply every rule that does not depend on the allowlist."""
    if len(url) > MAX_LENGTH:
        raise ReturnUrlRejected(f"return URL is longer than {MAX_LENGTH} characters")
    if WHITESPACE_OR_CONTROL.search(url):
        raise ReturnUrlRejected("return URL contains whitespace or control characters")
    if not url.isascii():
        raise ReturnUrlRejected("return URL must be ASCII (percent-encode other characters)")
    if "\\" in url:
        raise ReturnUrlRejected("return URL contains a backslash")
    if url.startswith("//"):
        raise ReturnUrlRejected("return URL must be absolute, not protocol-relative")
    if "#" in url:
        raise ReturnUrlRejected("return URL must not contain a fragment")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "Invalid IPv6 URL" for an unbalanced "[" in the host
        raise ReturnUrlRejected("return URL is not a valid URL") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise ReturnUrlRejected("return URL must use http or https")
    if not parts.netloc or not parts.hostname:
        raise ReturnUrlRejected("return URL must be absolute (scheme://host/path)")
    if "@" in parts.netloc:
        raise ReturnUrlRejected("return URL must not contain user information")
    try:
        _ = parts.port  # urllib validates the port lazily
    except ValueError:
        raise ReturnUrlRejected("return URL has an invalid port") from None
    for segment in parts.path.split("/"):
        decoded = segment
        for _ in range(3):  # catches %2e, %252e and deeper double encodings
            decoded = unquote(decoded)
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded:
            raise ReturnUrlRejected("return URL path must not contain dot segments or encoded slashes")
    return parts


def _port(parts: SplitResult) -> int:
    return parts.port or DEFAULT_PORTS[parts.scheme.lower()]


class ReturnUrlPolicy:
    """The allowlist of return URLs, checked once at start-up."""

    def __init__(self, allowed_urls: Iterable[str]):
        self._allowed: list[_Allowed] = []
        for url in allowed_urls:
            try:
                parts = _split(url)
            except ReturnUrlRejected as exc:
                raise ValueError(f"allowed return URL {url!r} is invalid: {exc.description}") from None
            if parts.query:
                raise ValueError(f"allowed return URL {url!r} must not have a query")
            scheme = parts.scheme.lower()
            self._allowed.append(_Allowed(scheme, parts.hostname, _port(parts), parts.path.rstrip("/")))
        if not self._allowed:
            raise ValueError("at least one allowed return URL is required")
        self._origins = frozenset(entry.origin for entry in self._allowed)
        self._problem = lru_cache(maxsize=KEPT_ANSWERS)(self._find_problem)
        # Whether an ``Origin`` header value is the origin of an allowed return URL.
        self.origin_allowed = lru_cache(maxsize=KEPT_ANSWERS)(self._origin_allowed)

    @property
    def origins(self) -> frozenset[str]:
        return self._origins

    def check(self, url: str | None) -> str:
        """Return ``url`` unchanged if allowed, else raise ``ReturnUrlRejected``."""
        if not url:
            raise ReturnUrlRejected("return_to is required")
        problem = self._problem(url)
        if problem is not None:
            raise ReturnUrlRejected(problem)
        return url

    def _find_problem(self, url: str) -> str | None:
        """Why ``url`` is not allowed, or None."""
        try:
            parts = _split(url)
        except ReturnUrlRejected as exc:
            return exc.description
        scheme, host, port = parts.scheme.lower(), parts.hostname, _port(parts)
        path = parts.path or "/"
        for entry in self._allowed:
            if (scheme, host, port) != (entry.scheme, entry.host, entry.port):
                continue
            if path.rstrip("/") == entry.path or path.startswith(entry.path + "/"):
                return None
        return "return URL is not on the allowlist (CONNECT_ALLOWED_RETURN_URLS)"

    def _origin_allowed(self, origin: str | None) -> bool:
        if not origin or origin == "null":
            return False
        try:
            parts = _split(origin)
        except ReturnUrlRejected:
            return False
        if parts.path not in ("", "/") or parts.query:
            return False
        scheme = parts.scheme.lower()
        candidate = _Allowed(scheme, parts.hostname, _port(parts), "")
        return candidate.origin in self.origins
