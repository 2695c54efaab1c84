"""One read outside the ORM session, for hot paths: a Core statement on a pooled connection.

No unit of work, no identity map, and no transaction round trips: on PostgreSQL the connection
runs the statement in autocommit (psycopg would otherwise send BEGIN before it and the pool a
ROLLBACK after it); on SQLite a SELECT opens no transaction in the first place, so the pool's
reset is a no-op. The pool does not ping connections at checkout (see config.py): a connection
found dead by the statement is retried once on a fresh one, SQLAlchemy's "optimistic" disconnect
handling (the failed statement has invalidated the pool, so the retry connects anew). Any other
database error, or a second disconnect, is raised for the caller's 503.
"""
from __future__ import annotations

from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from .extensions import db

AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
ATTEMPTS = 2  # the statement, and once more after a connection was found dead


def read_one(statement: Executable, params: dict) -> Row | None:
    """The first row of ``statement`` with ``params`` (None when there is none), as committed now."""
    engine = db.engine
    autocommit = engine.dialect.name != "sqlite"  # pysqlite begins no transaction for a SELECT
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.connect() as connection:
                if autocommit:
                    connection.execution_options(**AUTOCOMMIT)
                return connection.execute(statement, params).first()
        except DBAPIError as exc:
            if attempt == ATTEMPTS or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")
