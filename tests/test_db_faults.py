"""Database faults injected into the service running under real gunicorn: an unavailable or busy
database is a 503 problem+json (or page) with Retry-After, never a 500, and the service recovers by
itself; a failure while ending the session never replaces a finished response."""
from __future__ import annotations

import os
import sqlite3
import threading
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import APP_ORIGIN, RETURN_URL, Auth0StandIn, base_env
from tests.gunicorn_service import (
    Gunicorn,
    JwksServer,
    TcpProxy,
    flask_db_upgrade,
    postgres_database,
    wait_until,
)

needs_postgres = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set")


@pytest.fixture(scope="module")
def auth0() -> Auth0StandIn:
    return Auth0StandIn()


@pytest.fixture(scope="module")
def jwks(auth0):
    with JwksServer(auth0.jwks) as server:
        yield server


def service_env(jwks: JwksServer, database_url: str, **overrides: str) -> dict[str, str]:
    return base_env(AUTH0_JWKS_URL=jwks.url, DATABASE_URL=database_url, PUBLIC_BASE_URL="http://127.0.0.1:5000",
                    **overrides)


def assert_database_503(response, *, html: bool = False) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert int(response.headers["Retry-After"]) >= 1
    if html:
        assert response.headers["Content-Type"].startswith("text/html")
        assert "database_unavailable" in response.text
    else:
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "database_unavailable"


@pytest.fixture
def pg_behind_proxy(tmp_path):
    """A migrated PostgreSQL database that the service reaches through a proxy the test can cut."""
    admin_url = os.environ["TEST_DATABASE_URL"]
    with postgres_database(admin_url) as url:
        flask_db_upgrade(base_env(DATABASE_URL=url))
        parts = make_url(url)
        with TcpProxy((parts.host or "127.0.0.1", parts.port or 5432)) as proxy:
            yield proxy, url, parts.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@needs_postgres
def test_postgres_outage_is_503_with_retry_after_and_the_service_recovers(pg_behind_proxy, jwks, auth0, tmp_path):
    proxy, _, proxied_url = pg_behind_proxy
    user = {"Authorization": "Bearer " + auth0.token("auth0|alice")}
    m2m = {"Authorization": "Bearer " + auth0.m2m_token("read:connections read:tokens delete:connections")}
    with Gunicorn(service_env(jwks, proxied_url), tmp_path / "gunicorn.log",
                  args=("--workers", "1", "--threads", "4")) as service:
        assert service.get("/api/connections", headers=user).status_code == 200

        proxy.cut()  # open connections die; new ones are refused
        assert_database_503(service.get("/api/connections", headers=user))
        assert_database_503(service.get("/api/users/auth0%7Calice/connections", headers=m2m))
        assert_database_503(service.request("POST", "/api/users/auth0%7Calice/connections/github/token", headers=m2m))
        assert_database_503(service.request("DELETE", "/api/connections/github", headers=user))
        assert_database_503(service.request(
            "POST", "/connect/start", headers={"Origin": APP_ORIGIN},
            data={"access_token": auth0.token("auth0|alice"), "provider": "github", "return_to": RETURN_URL}),
            html=True)
        assert service.get("/readyz").status_code == 503
        assert service.get("/healthz").status_code == 200  # liveness: the process still answers

        proxy.restore()  # no restart: the pool replaces its dead connections
        wait_until(lambda: service.get("/api/connections", headers=user).status_code == 200, timeout=30,
                   what="the service to answer 200 again")
        assert service.get("/readyz").status_code == 200
    log = service.log()
    assert "Traceback" not in log and "[ERROR]" not in log
    assert "database unavailable on GET /api/connections" in log


@needs_postgres
def test_backend_termination_storm_is_never_a_500(pg_behind_proxy, jwks, auth0, tmp_path):
    _, url, _ = pg_behind_proxy
    user = {"Authorization": "Bearer " + auth0.token("auth0|alice")}
    stop = threading.Event()
    database = urlsplit(url).path.lstrip("/")

    def terminate_backends() -> None:
        engine = create_engine(os.environ["TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            while not stop.wait(0.02):  # the fault's cadence, not a wait for the code under test
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
        engine.dispose()

    with Gunicorn(service_env(jwks, url), tmp_path / "gunicorn.log", args=("--workers", "1", "--threads", "4")) as svc:
        terminator = threading.Thread(target=terminate_backends)
        terminator.start()
        try:
            statuses = [svc.get("/api/connections", headers=user) for _ in range(60)]
        finally:
            stop.set()
            terminator.join(30)
        for response in statuses:
            assert response.status_code in (200, 503), (response.status_code, response.text[:300])
            if response.status_code == 503:
                assert_database_503(response)
        assert svc.get("/api/connections", headers=user).status_code == 200
    assert "Traceback" not in svc.log()


@needs_postgres
def test_teardown_failure_never_replaces_a_finished_response(pg_behind_proxy, jwks, tmp_path):
    """The view answered 200; its session's backend is gone before the teardown's rollback."""
    _, url, _ = pg_behind_proxy
    with Gunicorn(service_env(jwks, url), tmp_path / "gunicorn.log", app="tests.fault_wsgi:app",
                  args=("--workers", "1", "--threads", "2")) as service:
        for _ in range(3):
            response = service.get("/_fault/terminate-own-backend")
            assert response.status_code == 200, response.text[:300]
            assert response.text == "stored"
        assert service.get("/readyz").status_code == 200  # the dead connection was dropped, not reused
    log = service.log()
    assert "database session cleanup failed after the response was made" in log
    assert "Traceback" not in log and "Error handling request" not in log


def test_sqlite_write_lock_held_by_another_process_is_503_and_released_recovers(jwks, auth0, tmp_path):
    """A request that writes meets another process's write lock: 503, then it works once released.
    /connect/start writes nothing, so it goes on working under the lock; a callback writes (its
    rejection is audited)."""
    path = tmp_path / "connector.db"
    url = f"sqlite:///{path}"
    flask_db_upgrade(base_env(DATABASE_URL=url))
    form = {"access_token": auth0.token("auth0|alice"), "provider": "github", "return_to": RETURN_URL}
    callback = "/connect/callback/github?state=forged&code=x"
    with Gunicorn(service_env(jwks, url), tmp_path / "gunicorn.log", args=("--workers", "1", "--threads", "2")) as svc:
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held past busy_timeout
            response = svc.request("POST", "/connect/start", headers={"Origin": APP_ORIGIN}, data=form,
                                   allow_redirects=False, timeout=60)
            assert response.status_code == 303  # nothing to write
            response = svc.request("GET", callback, headers={"Accept": "application/json"},
                                   allow_redirects=False, timeout=60)
            assert_database_503(response)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        response = svc.request("GET", callback, headers={"Accept": "application/json"}, allow_redirects=False)
        assert response.status_code == 400, response.text[:300]
    assert "Traceback" not in svc.log()
