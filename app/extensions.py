"""Extensions are created here and bound in ``create_app`` (Flask-Migrate: ``app/migrate_cli.py``)."""
import logging
import sqlite3

from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from . import db_liveness  # noqa: F401 (registers the pool's checkout check)


class Base(DeclarativeBase):
    # Named constraints so Alembic migrations are stable on every database.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


log = logging.getLogger(__name__)


class SafeTeardownSQLAlchemy(SQLAlchemy):
    """Ending a request's session never fails the request.

    Flask-SQLAlchemy removes the session in an app-context teardown, after the response is made.
    If the database went away meanwhile (a terminated backend), the rollback raises, the error
    escapes Flask's handlers and gunicorn replaces the finished response (perhaps a 200 carrying a
    token that was just stored) with its own 500 page. Here the failure is logged in one line and
    the session's connections are invalidated (dropped from the pool, never reused).
    """

    def _teardown_session(self, exc: BaseException | None) -> None:
        try:
            self.session.remove()
        except Exception as error:  # noqa: BLE001 (nothing may escape a teardown)
            log.warning("database session cleanup failed after the response was made (%s); connection dropped",
                        type(error).__name__)
            try:
                self.session.registry().invalidate()
            except Exception:  # noqa: BLE001
                log.warning("invalidating the database connection failed too")
            self.session.registry.clear()


db = SafeTeardownSQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """SQLite: readers never block the writer (WAL), and writers wait instead of failing at once."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()
