"""Which database errors mean "unavailable or busy, try again soon" (answered 503) rather than a bug.

Disconnects, refused connections, a server shutting down, lock and statement timeouts, pool
exhaustion, serialization failures and SQLite's "database is locked" are transient: the client
should retry after a short wait, and the pool recovers by itself (a dead connection
invalidates the pool; app.db_read retries its read once).
Everything else (a missing table, a constraint violated) stays a 500: it is a bug or a bad deployment.
"""
from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

# SQLite primary result codes: BUSY, LOCKED, IOERR, CANTOPEN.
SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 14})
# PostgreSQL SQLSTATE: class 08 connection exception, 53 insufficient resources, 57P operator
# intervention (admin/crash shutdown, cannot connect now), lock_not_available, query_canceled
# (statement/lock timeout), serialization_failure, deadlock_detected.
PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P")
PG_UNAVAILABLE_STATES = frozenset({"55P03", "57014", "40001", "40P01"})
MAX_CHAIN = 10


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError):  # the pool had no connection to give within pool_timeout
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in SQLITE_UNAVAILABLE
        return "locked" in str(error) or "unable to open" in str(error)
    if isinstance(error, sqlite3.Error):
        return False
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if sqlstate:
        return sqlstate.startswith(PG_UNAVAILABLE_PREFIXES) or sqlstate in PG_UNAVAILABLE_STATES
    # A driver's OperationalError or InterfaceError without a SQLSTATE: the connection could not be
    # made, or was lost ("connection refused", "server closed the connection unexpectedly").
    return type(error).__name__ in ("OperationalError", "InterfaceError") and _is_dbapi_error(error)


def _is_dbapi_error(error: BaseException) -> bool:
    return any(cls.__name__ == "Error" and cls.__module__.split(".")[0] in ("psycopg", "psycopg2")
               for cls in type(error).__mro__)


def database_unavailable(error: BaseException | None) -> bool:
    """True if ``error``, or an error it was raised from, means the database is unavailable or busy."""
    seen = 0
    while error is not None and seen < MAX_CHAIN:
        if _unavailable(error):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def describe(error: BaseException) -> str:
    """A short, secret-free description for a log line: the driver's error class and SQLSTATE/code."""
    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None) or ""
    return f"{type(orig).__module__}.{type(orig).__name__}" + (f" ({code})" if code else "")
