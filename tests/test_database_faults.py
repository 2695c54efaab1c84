"""Which database errors are "unavailable or busy" (503 + Retry-After) and which stay a 500."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from app.database_faults import database_unavailable


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


class PgError(Exception):
    """Stands in for a psycopg error: what matters is its SQLSTATE."""

    def __init__(self, sqlstate):
        super().__init__("error")
        self.sqlstate = sqlstate


def wrapped(orig: BaseException, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError("SELECT 1", None, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    sqlite_error("database is locked", 5),
    sqlite_error("database table is locked", 6),
    sqlite_error("unable to open database file", 14),
    sqlite3.OperationalError("database is locked"),  # no error code attribute
    PgError("08006"), PgError("57P01"), PgError("57P03"), PgError("53300"), PgError("55P03"), PgError("57014"),
    PgError("40001"), PgError("40P01"),
])
def test_unavailable_or_busy(error):
    assert database_unavailable(wrapped(error))


@pytest.mark.parametrize("error", [
    sqlite_error("no such table: connection", 1),
    sqlite3.IntegrityError("UNIQUE constraint failed"),
    PgError("42P01"),  # undefined table: a deployment that was not migrated is a 500 (and /readyz says why)
    PgError("23505"),
    ValueError("not a database error"),
])
def test_other_errors_stay_server_errors(error):
    assert not database_unavailable(wrapped(error) if not isinstance(error, ValueError) else error)


def test_an_invalidated_connection_and_pool_exhaustion_are_unavailable():
    assert database_unavailable(wrapped(PgError("42P01"), invalidated=True))
    assert database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))


def test_an_error_raised_from_a_database_fault_is_unavailable():
    try:
        try:
            raise wrapped(sqlite_error("database is locked", 5))
        except sa_exc.OperationalError as exc:
            raise RuntimeError("storing failed") from exc
    except RuntimeError as exc:
        assert database_unavailable(exc)


def test_a_psycopg_connection_failure_without_sqlstate_is_unavailable():
    psycopg = pytest.importorskip("psycopg")
    assert database_unavailable(wrapped(psycopg.OperationalError("connection refused")))
