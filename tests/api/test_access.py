"""API views deny by default: each declares user or machine (and its permission), or it is refused."""
from __future__ import annotations

import pytest

from app.api import access


def test_every_shipped_api_view_declares_its_access(app):
    access.check_declared(app)  # create_app already did; this names the rule being proved
    declared = {rule.endpoint: access.declared_access(app.view_functions[rule.endpoint])
                for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")}
    assert declared["machine_api.user_token"] == access.Access("machine", "read:tokens")
    assert declared["api.connections"] == access.Access("user")
    assert declared["api.openapi"] == access.Access("public")


def test_an_undeclared_api_view_stops_the_start_up_and_is_refused_with_401(app, client):
    calls = []

    @app.get("/api/_undeclared")
    def undeclared():
        calls.append(1)
        return {"secret": "data"}

    with pytest.raises(RuntimeError, match="undeclared"):
        access.check_declared(app)
    response = client.get("/api/_undeclared", headers={"Authorization": "Bearer " + app.test_auth0.token()})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert calls == []


def test_the_declared_check_runs_before_the_view(app, client, auth0):
    calls = []

    @app.get("/api/_for_jobs")
    @access.machine_access("read:tokens")
    def for_jobs():
        calls.append(1)
        return {"ok": True}

    assert client.get("/api/_for_jobs").status_code == 401
    assert client.get("/api/_for_jobs", headers={"Authorization": "Bearer " + auth0.token()}).status_code == 403
    weak = auth0.m2m_token("read:connections")
    assert client.get("/api/_for_jobs", headers={"Authorization": "Bearer " + weak}).status_code == 403
    assert calls == []
    strong = auth0.m2m_token("read:tokens")
    assert client.get("/api/_for_jobs", headers={"Authorization": "Bearer " + strong}).status_code == 200
    assert calls == [1]


def test_cors_preflight_needs_no_token(client):
    response = client.options("/api/connections", headers={
        "Origin": "https://app.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.test"


@pytest.mark.parametrize("path", ["/api/users/auth0%7Cu/connections/stub/token", "/api/users/auth0%7Cu/connections",
                                  "/api/events"])
def test_machine_endpoints_answer_no_cors_request(app, client, path):
    """Jobs and Actions call them from servers: a page on the SPA's origin gets no CORS grant."""
    preflight = client.options(path, headers={
        "Origin": "https://app.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = client.get(path, headers={"Origin": "https://app.test"})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("path", ["/api/connections", "/api/providers", "/api/openapi.json",
                                  "/api/proxy/stub/anything"])
def test_spa_endpoints_answer_cors_from_the_spa_origin(client, path):
    preflight = client.options(path, headers={
        "Origin": "https://app.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Authorization"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.test"
