"""Fault injection for the database fault tests: a provider that answers when told to, a
PostgreSQL database that refuses connections (its backends terminated), and a SQLite write lock
held by another process."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, text

from tests.stub_provider import StubProvider


class GatedStub(StubProvider):
    """The stub provider, but a refresh answers only once ``release`` is set: ``requested`` is set
    once it has rotated the tokens, ``answered`` when they are on their way back. It also
    offers RFC 7009 revocation and records the tokens revoked."""

    def __init__(self, access_ttl: int = 3600):
        super().__init__(access_ttl)
        self.requested, self.release, self.answered = threading.Event(), threading.Event(), threading.Event()
        self.revoked_tokens: list[str] = []
        self.revocation_headers: list[dict] = []

    def catalog_entry(self) -> dict:
        return {**super().catalog_entry(), "revocation_url": f"{self.url}/revoke"}

    def _app(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        if request.path != "/revoke":
            return super()._app(environ, start_response)
        token = request.form.get("token", "")
        with self._lock:
            self.revocation_headers.append(dict(request.headers))
            self.revoked_tokens.append(token)
            self.state.refresh_tokens[token] = False
            self.state.access_tokens.discard(token)
        return Response("", status=200)(environ, start_response)

    def _token(self, request):
        response = super()._token(request)  # rotated now; the answer is held back until released
        if request.form.get("grant_type") == "refresh_token":
            self.requested.set()
            self.release.wait(60)
        self.answered.set()
        return response


def _admin_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path="/postgres"))


@contextmanager
def postgres_outage(database_url: str):
    """While inside: the database refuses new connections and every backend connected to it is
    terminated (as a restart or a failover does). Only this test's own database is touched."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = create_engine(_admin_url(database_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def _hold_write_lock(path: str, locked, release) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, until released
    locked.set()
    release.wait(120)
    conn.execute("ROLLBACK")
    conn.close()


@contextmanager
def sqlite_write_lock(database_url: str):
    """While inside: another process holds the SQLite database's write lock."""
    ctx = multiprocessing.get_context("spawn")
    locked, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_write_lock, args=(database_url.removeprefix("sqlite:///"), locked, release))
    proc.start()
    try:
        assert locked.wait(60), "the lock holder never took the lock"
        yield
    finally:
        release.set()
        proc.join(30)
