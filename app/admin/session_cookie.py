"""The console's signed session cookie: Flask's own, with its signing serializer made once.

Flask opens the session on every request (the API's and the connect flow's too, which never use it),
and its ``SecureCookieSessionInterface`` builds a new itsdangerous serializer each time, which costs
about as much as the rest of opening an absent session. Here the serializer is kept for as long as
the secret keys (``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``) stay the same, and a request without
a ``Cookie`` header (API clients, machines) gets its empty session without its headers being searched
for cookies; everything else, what is signed, how and when the cookie is written, is Flask's.
"""
from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer


class SessionCookieInterface(SecureCookieSessionInterface):
    def __init__(self) -> None:
        self._cached: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._cached  # one read: another thread may replace it meanwhile, with an equal one
        if cached is not None and cached[0] == keys:
            return cached[1]
        serializer = super().get_signing_serializer(app)
        self._cached = (keys, serializer)
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()  # what Flask answers when the session cookie is absent
        return super().open_session(app, request)
