"""Liveness and readiness: /healthz answers while the process runs; /readyz only when the database
answers and its schema is at the migration head, and otherwise says which of the two is wrong."""
from __future__ import annotations

import os
from contextlib import nullcontext

import pytest

from app import create_app
from tests.conftest import base_env
from tests.gunicorn_service import flask_db_upgrade, postgres_database


def test_healthz_is_liveness_only(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_refuses_a_database_that_was_never_migrated(client):
    # The fixture's tables come from create_all: no Alembic revision is recorded.
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "not_ready"
    assert "at none (never migrated)" in body["detail"] and "flask db upgrade" in body["detail"]
    assert int(response.headers["Retry-After"]) >= 1


@pytest.fixture
def empty_database(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        context = nullcontext(f"sqlite:///{tmp_path}/ready.db")
    else:
        context = postgres_database(os.environ["TEST_DATABASE_URL"])
    with context as url:
        yield url


def test_readyz_on_an_empty_database_then_after_the_migrations(empty_database, mocked_http):
    app = create_app(test_config={"TESTING": True}, env=base_env(DATABASE_URL=empty_database))
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and "never migrated" in response.get_json()["detail"]

    flask_db_upgrade(base_env(DATABASE_URL=empty_database))
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "ready"
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


def test_readyz_when_the_database_is_unreachable(tmp_path, mocked_http):
    url = f"sqlite:///{tmp_path}/missing-dir/none.db"  # the directory does not exist: cannot open
    app = create_app(test_config={"TESTING": True}, env=base_env(DATABASE_URL=url))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["detail"] == "database unreachable or busy"
    assert app.test_client().get("/healthz").status_code == 200


def test_readyz_does_not_log_per_probe(client, caplog):
    """A load balancer probes every few seconds: Alembic's two INFO lines per check would flood the log."""
    import logging

    with caplog.at_level(logging.INFO):
        client.get("/readyz")
        client.get("/readyz")
    assert not [r for r in caplog.records if r.name.startswith("alembic")]
    assert not logging.getLogger("alembic.runtime.migration").disabled  # switched back on
