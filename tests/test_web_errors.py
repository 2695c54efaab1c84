"""Error rendering: problem+json for the API, a page for browsers, Retry-After on every 503."""
from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

from app.api.access import public_access
from app.errors import ProviderUnavailable


def locked() -> sa_exc.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = 5
    return sa_exc.OperationalError("UPDATE connection SET x=?", None, error)


def test_database_busy_is_503_problem_json_with_retry_after_on_the_api(app, client):
    @app.get("/api/_busy")
    @public_access
    def busy():
        raise locked()

    response = client.get("/api/_busy")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert "UPDATE" not in response.get_data(as_text=True)  # no SQL in the answer


def test_database_busy_is_a_503_page_for_a_browser(app, client):
    @app.get("/_busy_page")
    def busy_page():
        raise locked()

    response = client.get("/_busy_page", headers={"Accept": "text/html"})
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "database_unavailable" in response.get_data(as_text=True)
    assert response.headers["Retry-After"]


def test_a_503_without_its_own_retry_after_still_says_when_to_retry(app, client):
    @app.get("/api/_provider_down")
    @public_access
    def provider_down():
        raise ProviderUnavailable("down")

    response = client.get("/api/_provider_down")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1


def test_other_database_errors_stay_500(app, client):
    @app.get("/api/_missing")
    @public_access
    def missing():
        raise sa_exc.OperationalError("SELECT", None, sqlite3.OperationalError("no such table: x"))

    response = client.get("/api/_missing")
    assert response.status_code == 500
