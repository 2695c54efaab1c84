"""The shipped gunicorn.conf.py: a worker is never killed before the longest refresh can finish, and
the access log never carries a query string."""
from __future__ import annotations

import runpy

import pytest

from tests.conftest import Auth0StandIn, base_env
from tests.gunicorn_service import ROOT, Gunicorn, JwksServer, flask_db_upgrade


def load_conf(monkeypatch, **env: str) -> dict:
    for name in ("PROVIDER_CONNECT_TIMEOUT", "PROVIDER_READ_TIMEOUT", "VAULT_STORE_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_timeouts_cover_the_longest_refresh_with_the_defaults(monkeypatch):
    conf = load_conf(monkeypatch)
    # 2 x (3.05 + 10 + 5) + 10 + 120 (VAULT_STORE_DEADLINE's default when unset) = 166.1 -> 167, + 5 s margin
    assert conf["timeout"] == conf["graceful_timeout"] == 172
    assert conf["worker_class"] == "gthread"


def test_timeouts_follow_the_settings(monkeypatch):
    conf = load_conf(monkeypatch, PROVIDER_CONNECT_TIMEOUT="2", PROVIDER_READ_TIMEOUT="20", VAULT_STORE_DEADLINE="300")
    assert conf["timeout"] == conf["graceful_timeout"] == 2 * 27 + 10 + 300 + 5


@pytest.mark.parametrize("bad", ["abc", "-1", "inf", "nan"])
def test_a_malformed_setting_falls_back_to_the_default(monkeypatch, bad):
    assert load_conf(monkeypatch, PROVIDER_READ_TIMEOUT=bad)["timeout"] == 172


def test_access_log_format_prints_no_query(monkeypatch):
    fmt = load_conf(monkeypatch)["access_log_format"]
    assert "%(q)s" not in fmt and "%(r)s" not in fmt and "%(U)s" in fmt


def test_a_short_worker_timeout_is_raised_at_start_up_and_a_slow_request_finishes(tmp_path):
    """A sync worker with --timeout 2 would be SIGKILLed during a 4-second request; gunicorn.conf.py raises
    the timeout to the longest refresh (2 x (1 + 1 + 5) + 10 + 2 + 5 = 31 s) and says so."""
    url = f"sqlite:///{tmp_path}/connector.db"
    flask_db_upgrade(base_env(DATABASE_URL=url))
    with JwksServer(Auth0StandIn().jwks) as jwks:
        env = base_env(AUTH0_JWKS_URL=jwks.url, DATABASE_URL=url, PUBLIC_BASE_URL="http://127.0.0.1:5000",
                       PROVIDER_CONNECT_TIMEOUT="1", PROVIDER_READ_TIMEOUT="1", VAULT_STORE_DEADLINE="2")
        with Gunicorn(env, tmp_path / "gunicorn.log", app="tests.fault_wsgi:app",
                      args=("--worker-class", "sync", "--workers", "1", "--threads", "1", "--timeout", "2",
                            "--graceful-timeout", "1")) as service:
            response = service.get("/_fault/slow?seconds=4")
            assert response.status_code == 200 and response.text == "finished"
            service.get("/connect/callback?code=the-code-value&state=the-state-value")
    log = service.log()
    assert "timeout raised from 2 to 31 seconds" in log
    assert "graceful_timeout raised from 1 to 31 seconds" in log
    assert "WORKER TIMEOUT" not in log
    assert '"GET /connect/callback HTTP/1.1"' in log  # the access log line, without its query
    assert "the-code-value" not in log and "the-state-value" not in log


def test_the_timeout_covers_what_the_vault_itself_may_take(monkeypatch):
    """gunicorn.conf.py cannot import the app (it runs in the master); its figure must still cover the vault's."""
    from app.vault import longest_refresh_seconds

    for env in ({}, {"PROVIDER_CONNECT_TIMEOUT": "2", "PROVIDER_READ_TIMEOUT": "20", "VAULT_STORE_DEADLINE": "300"}):
        conf = load_conf(monkeypatch, **env)
        config = {"PROVIDER_CONNECT_TIMEOUT": 3.05, "PROVIDER_READ_TIMEOUT": 10.0, "VAULT_STORE_DEADLINE": 120.0}
        config.update({k: float(v) for k, v in env.items()})
        assert conf["timeout"] > longest_refresh_seconds(config)
