from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import select, text

from app import clock
from app.errors import ProviderUnavailable, ReauthorizationRequired
from app.extensions import db
from app.models import Connection
from app.vault import get_access_token
from tests.conftest import base_env, make_connection
from tests.observability.conftest import METRICS_TOKEN, sample


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-xxxxxxxxxxxx", f"Basic {METRICS_TOKEN}",
                                    f"Bearer {METRICS_TOKEN}x", "Bearer "])
def test_scrape_without_the_token_is_refused(client, header):
    response = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert b"connector_" not in response.data


@pytest.mark.parametrize("env", [base_env()], ids=["no-token"])
def test_metrics_are_off_without_a_token(client, env):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=_bearer("")).status_code == 404


def test_http_requests_are_counted_by_endpoint_never_by_path(client, scrape):
    before = scrape()
    client.get("/healthz")
    client.get("/no/such/path/auth0%7Csecret-user")
    client.get("/api/proxy/stub/user/secret-user-path")  # 401: no token
    after = scrape()
    assert sample(after, "connector_http_requests_total", endpoint="health.healthz", method="GET", status="200") == \
        sample(before, "connector_http_requests_total", endpoint="health.healthz", method="GET", status="200") + 1
    assert sample(after, "connector_http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    assert sample(after, "connector_http_requests_total", endpoint="proxy.proxy", method="GET", status="401") >= 1
    assert sample(after, "connector_http_request_duration_seconds_count", endpoint="health.healthz") >= 1
    labels = {value for (_name, items) in after for _key, value in items}
    assert not any("secret" in value for value in labels)


def test_token_requests_and_refreshes_are_counted(client, app, auth0, stub, scrape):
    access, refresh = stub.issue()
    make_connection(app, "auth0|job", "stub", access=access, refresh=refresh, expires_in=-1)
    before = scrape()
    ok = client.post(f"/api/users/{quote('auth0|job', safe='')}/connections/stub/token",
                     headers=_bearer(auth0.m2m_token("read:tokens")))
    missing = client.post("/api/users/auth0%7Cnobody/connections/stub/token",
                          headers=_bearer(auth0.m2m_token("read:tokens")))
    assert (ok.status_code, missing.status_code) == (200, 404)
    after = scrape()

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("connector_token_requests_total", outcome="ok") == 1
    assert moved("connector_token_requests_total", outcome="not_found") == 1
    assert moved("connector_refreshes_total", provider="stub", outcome="ok") == 1
    assert moved("connector_refresh_duration_seconds_count", provider="stub") == 1


def test_refresh_failures_are_counted_by_outcome(app, stub, scrape):
    make_connection(app, "auth0|a", "stub", expires_in=-1, refresh="unknown-refresh-token")  # invalid_grant
    access, refresh = stub.issue()
    make_connection(app, "auth0|b", "stub", access=access, refresh=refresh, expires_in=-1)
    before = scrape()
    with app.app_context():
        with pytest.raises(ReauthorizationRequired):
            get_access_token("auth0|a", "stub")
        stub.state.failure = (503, "down", {})
        with pytest.raises(ProviderUnavailable):
            get_access_token("auth0|b", "stub")
    after = scrape()
    for outcome in ("needs_reauth", "transient"):
        assert sample(after, "connector_refreshes_total", provider="stub", outcome=outcome) == \
            sample(before, "connector_refreshes_total", provider="stub", outcome=outcome) + 1
    assert sample(after, "connector_refresh_duration_seconds_count", provider="stub") == \
        sample(before, "connector_refresh_duration_seconds_count", provider="stub") + 2


def test_proxy_requests_and_revocations_are_counted(client, app, auth0, stub, scrape):
    access, refresh = stub.issue()
    make_connection(app, "auth0|alice", "stub", access=access, refresh=refresh)
    before = scrape()
    assert client.get("/api/proxy/stub/me", headers=_bearer(auth0.token("auth0|alice"))).status_code == 200
    assert client.get("/api/proxy/nope/me", headers=_bearer(auth0.token("auth0|alice"))).status_code == 400
    assert client.delete("/api/connections/stub", headers=_bearer(auth0.token("auth0|alice"))).status_code == 200
    after = scrape()

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("connector_proxy_requests_total", provider="stub", status_class="2xx") == 1
    assert moved("connector_proxy_requests_total", provider="other", status_class="4xx") == 1  # never "nope"
    assert moved("connector_revocations_total", provider="stub", outcome="revoked") == 1


def test_connection_gauges_come_from_the_database(app, scrape):
    make_connection(app, "auth0|a", "stub")
    make_connection(app, "auth0|b", "stub", expires_in=-600)
    make_connection(app, "auth0|c", "spotify")
    with app.app_context():
        db.session.scalars(select(Connection).where(Connection.user_id == "auth0|c")).one().status = "needs_reauth"
        db.session.commit()
    samples = scrape()
    assert sample(samples, "connector_connections", provider="stub", status="active") == 2
    assert sample(samples, "connector_connections", provider="spotify", status="needs_reauth") == 1
    assert 590 <= sample(samples, "connector_oldest_due_refresh_age_seconds") <= 700
    assert ("connector_webhook_backlog", ()) not in samples  # no outbox registered


def test_oldest_due_refresh_is_zero_when_nothing_is_overdue(app, scrape):
    make_connection(app, "auth0|a", "stub", expires_in=3600)
    make_connection(app, "auth0|b", "stub", expires_in=-60, refresh=None)  # not refreshable: not "due"
    assert sample(scrape(), "connector_oldest_due_refresh_age_seconds") == 0


def test_webhook_backlog_and_deliveries(app, scrape):
    from app.observability import metrics

    metrics.register_webhook_backlog(lambda session: 7)
    try:
        before = scrape()
        metrics.record_webhook_delivery("delivered")
        after = scrape()
    finally:
        metrics.register_webhook_backlog(None)
    assert sample(after, "connector_webhook_backlog") == 7
    assert sample(after, "connector_webhook_deliveries_total", outcome="delivered") == \
        sample(before, "connector_webhook_deliveries_total", outcome="delivered") + 1


def test_connections_gauge_query_uses_the_index(app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the plan is PostgreSQL's")
    from app.observability.db_gauges import CONNECTION_COUNTS, connection_counts

    with app.app_context():
        # On a near-empty table the planner rightly prefers a sequential scan; without that option
        # the plan shows whether the index can answer the query alone (at a million rows, it does).
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        statement = CONNECTION_COUNTS.compile(db.engine)
        plan = "\n".join(db.session.scalars(text(f"EXPLAIN {statement}")))
        assert "ix_connections_provider_status" in plan and "Index Only Scan" in plan, plan
        db.session.rollback()
        assert connection_counts() == []


def test_expiry_clock_is_used(app, scrape, monkeypatch):
    make_connection(app, "auth0|a", "stub", expires_in=-10)
    later = clock.now() + timedelta(seconds=100)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert 100 <= sample(scrape(), "connector_oldest_due_refresh_age_seconds") <= 200


def test_a_scrape_without_the_database_still_serves_the_counters(app, client, scrape):
    client.get("/healthz")
    with app.app_context():
        db.drop_all()  # every table gone: the gauges' queries fail
    samples = scrape()
    assert sample(samples, "connector_database_up") == 0
    assert ("connector_connections", (("provider", "stub"), ("status", "active"))) not in samples
    assert sample(samples, "connector_http_requests_total", endpoint="health.healthz", method="GET", status="200") >= 1


def test_database_up_when_the_gauges_are_read(app, scrape):
    assert sample(scrape(), "connector_database_up") == 1


def test_refused_scrapes_are_problem_documents(client):
    response = client.get("/metrics", headers={"Accept": "application/json"})
    assert response.status_code == 401 and response.json["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_missing_multiprocess_directory_is_a_configuration_error(tmp_path):
    from config import ConfigError, load_config

    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        load_config(base_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "missing")), testing=True)
    assert load_config(base_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)), testing=True)["METRICS_TOKEN"] is None


@pytest.mark.parametrize("value", ["short", "json2"])
def test_bad_observability_settings_are_configuration_errors(value):
    from config import ConfigError, load_config

    with pytest.raises(ConfigError, match="METRICS_TOKEN|LOG_FORMAT"):
        load_config(base_env(METRICS_TOKEN=value) if value == "short" else base_env(LOG_FORMAT=value), testing=True)


def test_a_refresh_dropped_by_a_revocation_counts_as_lost_lease(app, stub, scrape, monkeypatch):
    from sqlalchemy import update

    from app import oauth_client

    access, refresh = stub.issue()
    make_connection(app, "auth0|a", "stub", access=access, refresh=refresh, expires_in=-1)
    real_refresh = oauth_client.refresh

    def refresh_then_revoked(*args, **kwargs):
        token = real_refresh(*args, **kwargs)
        with db.engine.begin() as conn:  # a revocation lands while the provider answered
            conn.execute(update(Connection).values(status="revoked", lease_owner=None))
        return token

    monkeypatch.setattr(oauth_client, "refresh", refresh_then_revoked)
    before = scrape()
    with app.app_context(), pytest.raises(ReauthorizationRequired):
        get_access_token("auth0|a", "stub")
    after = scrape()
    assert sample(after, "connector_refreshes_total", provider="stub", outcome="lost_lease") == \
        sample(before, "connector_refreshes_total", provider="stub", outcome="lost_lease") + 1
    assert sample(after, "connector_refreshes_total", provider="stub", outcome="ok") == \
        sample(before, "connector_refreshes_total", provider="stub", outcome="ok")


def test_unknown_methods_are_counted_as_other_and_add_no_series_per_method(client, scrape):
    """Each (endpoint, method, status) looks up its counter once; a client inventing methods adds one
    ``other`` series, not one per method (the lookup cache is bounded like the labels)."""
    from app.observability import metrics

    client.open("/healthz", method="FOO0")
    before, cached = scrape(), len(metrics._request_children)
    statuses = {client.open("/healthz", method=f"FOO{n}").status_code for n in range(1, 6)}
    after = scrape()
    assert statuses == {405}
    assert len(metrics._request_children) <= cached + 1  # at most the scrape's own series
    assert sample(after, "connector_http_requests_total", endpoint="unmatched", method="other", status="405") == \
        sample(before, "connector_http_requests_total", endpoint="unmatched", method="other", status="405") + 5
    assert not any(value.startswith("FOO") for (_name, labels) in after for _key, value in labels)
