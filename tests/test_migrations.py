"""`flask db upgrade` on an empty database yields exactly the models' schema."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from app import models  # noqa: F401  (registers the tables on db.metadata)
from app.extensions import db
from tests.conftest import base_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def empty_database(database_url):
    if database_url.startswith("sqlite"):
        yield database_url
        return
    # A database of its own, so the unit tests' tables cannot hide a missing migration.
    name = f"connector_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(database_url)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# SQLite cannot reflect expression indexes (ix_connections_user_id_lower), so SQLAlchemy and Alembic
# skip comparing them there, with a warning each; PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_upgrade_on_empty_database_matches_models(empty_database):
    env = {**os.environ, **base_env(DATABASE_URL=empty_database)}
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    finally:
        engine.dispose()
    assert diff == []
