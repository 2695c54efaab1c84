"""Request bodies are read within ``max_content_length`` whatever their framing, or refused.

With a ``Content-Length`` Werkzeug refuses an oversized body up front (413). A chunked body has
no length: a server that de-chunks it (gunicorn, Werkzeug's own) sets ``wsgi.input_terminated``
and Werkzeug then wraps the input in a ``LimitedStream`` that *stops* at the limit without an
error, so every reader (form parsing, ``get_data``, the proxy) saw the first ``limit`` bytes as
the whole body. Here the request's stream reads at most one byte past the limit and answers 413
if that byte exists, so an oversized body is refused before anything acts on it. A chunked body
that the server did not de-chunk cannot be read safely at all: 411.

``BoundedRequest`` is the application's ``request_class``, so every place that reads a body
(``request.form``, ``request.get_data``, ``request.json``, Flask-WTF) goes through it.
"""
from __future__ import annotations

import io
from typing import IO

from flask import Request
from werkzeug.exceptions import ClientDisconnected, LengthRequired, RequestEntityTooLarge
from werkzeug.utils import cached_property


class BoundedStream(io.RawIOBase):
    """A de-chunked input stream that raises ``RequestEntityTooLarge`` past ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # Never more than one byte past the limit: that byte only tells an oversized body apart.
        size = min(len(buffer), self._limit + 1 - self._pos)
        if size <= 0:
            raise RequestEntityTooLarge()
        try:
            data = self._stream.read(size)
        except (OSError, ValueError):
            raise ClientDisconnected() from None
        count = len(data)
        buffer[:count] = data
        self._pos += count
        if self._pos > self._limit:
            raise RequestEntityTooLarge(f"The request body is larger than {self._limit} bytes.")
        return count


def _chunked(environ: dict) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


class BoundedRequest(Request):
    @cached_property
    def stream(self) -> IO[bytes]:
        environ = self.environ
        limit = self.max_content_length
        if self.content_length is None and not self.shallow:
            if "wsgi.input_terminated" in environ and limit is not None:
                return BoundedStream(environ["wsgi.input"], limit)
            if _chunked(environ) and "wsgi.input_terminated" not in environ:
                # Werkzeug would read such a body as empty: a silently lost body, refused instead.
                raise LengthRequired("This server cannot read a chunked request body; send a Content-Length.")
        return super().stream
