"""app.db_liveness: a pooled connection the server closed is replaced at checkout, with no round trip."""
import select
import sqlite3
import time

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy import select as sql_select

from app.db_liveness import server_closed
from app.extensions import db
from app.models import Connection


def _wait_readable(dbapi_connection, timeout: float = 5.0) -> None:
    """The server ends a terminated backend's connection asynchronously: wait (bounded) for it to say so."""
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, select.POLLIN | select.POLLHUP)
    assert poller.poll(int(timeout * 1000)), "the server did not close the connection"


def test_a_sqlite_connection_is_never_taken_for_closed():
    assert not server_closed(sqlite3.connect(":memory:"))


def test_an_orm_request_after_a_backend_was_terminated_gets_a_fresh_connection(app, database_url):
    """The session path (no retry of its own) meets a connection the server ended: no error, no ping."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a server that ends a connection: PostgreSQL")
    with app.app_context():
        db.engine.dispose()
        raw = db.engine.raw_connection()  # the pool's one idle connection, after this
        dbapi = raw.driver_connection
        pid = dbapi.info.backend_pid
        raw.close()
        other = create_engine(database_url)  # another session ends it, as a restart would
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        other.dispose()
        _wait_readable(dbapi)
        sent: list[str] = []
        listener = lambda *args: sent.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            db.session.scalars(sql_select(Connection).limit(1)).all()
            again = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
            db.session.remove()
    assert again != pid
    assert len(sent) == 2  # the two statements, no ping before them


def test_a_terminated_idle_connection_reads_as_closed_and_a_live_one_does_not(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("a server that ends a connection: PostgreSQL")
    engine = create_engine(database_url)
    try:
        raw = engine.raw_connection()
        conn = raw.driver_connection
        assert not server_closed(conn)
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": conn.info.backend_pid})
        _wait_readable(conn)
        assert server_closed(conn)
        raw.invalidate()
        conn.close()
        assert server_closed(conn)  # closed on our side too
    finally:
        engine.dispose()


def test_checkout_replaces_a_closed_connection_without_a_ping(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("a server that ends a connection: PostgreSQL")
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            dbapi = conn.connection.driver_connection
        with engine.connect() as other_engine_conn:  # pool_size=1: this is the same pooled connection
            assert other_engine_conn.connection.driver_connection is dbapi
        killer = create_engine(database_url)
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        _wait_readable(dbapi)
        started = time.monotonic()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        assert time.monotonic() - started < 10
    finally:
        engine.dispose()
