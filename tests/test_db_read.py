"""app.db_read: a hot read outside the session, retried once when its pooled connection had died."""
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import DBAPIError

from app.db_read import read_one
from app.extensions import db


def _statements(engine, sent: list[str]):
    def before(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return lambda: event.remove(engine, "before_cursor_execute", before)


def test_a_read_whose_connection_died_is_retried_once_on_a_fresh_one(app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("a server that drops a connection: PostgreSQL")
    with app.app_context():
        pid = read_one(text("SELECT pg_backend_pid()"), {})[0]  # the pool now holds this connection
        other = create_engine(database_url)  # another session ends the pooled one, as a restart would
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        other.dispose()
        again = read_one(text("SELECT pg_backend_pid()"), {})[0]
    assert again != pid


def test_an_error_that_is_not_a_dropped_connection_is_raised_at_once(app):
    with app.app_context():
        sent: list[str] = []
        stop = _statements(db.engine, sent)
        try:
            with pytest.raises(DBAPIError) as raised:
                read_one(text("SELECT * FROM no_such_table"), {})
        finally:
            stop()
    assert not raised.value.connection_invalidated
    assert [s for s in sent if "no_such_table" in s] == ["SELECT * FROM no_such_table"]  # not retried
