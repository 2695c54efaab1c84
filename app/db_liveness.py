"""A pooled PostgreSQL connection that the server has already closed is replaced at checkout.

The pool does not ping a connection before each use (a round trip per request, see config.py).
Instead, a connection leaving the pool is checked without a round trip: it is idle, so the server
has nothing to say on it unless it ended it (a terminated backend, a restart, an idle timeout sends
its FATAL message and closes the socket). A readable socket therefore means a dead connection, which
SQLAlchemy replaces with a fresh one before the request uses it (``DisconnectionError`` at checkout).
A connection lost silently (a network partition, no FIN) is not seen here: its first statement fails
and invalidates the pool, as before. SQLite connections are not checked (there is no server).
"""
from __future__ import annotations

import select

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import Pool

CLOSED_EVENTS = select.POLLIN | select.POLLERR | select.POLLHUP


def server_closed(dbapi_connection) -> bool:
    """True when ``dbapi_connection`` (psycopg) is idle but its server has sent something or hung up."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return False  # not a psycopg connection (SQLite)
    try:
        fd = pgconn.socket
    except Exception:  # noqa: BLE001 (psycopg: "the connection is closed" or a bad connection)
        return True
    poller = select.poll()
    poller.register(fd, CLOSED_EVENTS)
    return bool(poller.poll(0))


@event.listens_for(Pool, "checkout")
def _replace_closed(dbapi_connection, _record, _proxy) -> None:
    if server_closed(dbapi_connection):
        raise DisconnectionError("the database server closed this pooled connection")
