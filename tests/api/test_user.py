import base64
import json

import pytest

from tests.conftest import make_connection


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_providers_lists_enabled_ones(client, auth0, openapi):
    response = client.get("/api/providers", headers=_bearer(auth0.token()))
    assert response.status_code == 200
    openapi.check(response, "/api/providers", "get")
    names = [p["name"] for p in response.json["providers"]]
    assert names == ["github", "google", "spotify", "stub"]
    assert "secret" not in response.get_data(as_text=True)


def test_connections_lists_only_callers(client, app, auth0, openapi):
    make_connection(app, "auth0|alice", "spotify")
    make_connection(app, "auth0|bob", "github")
    response = client.get("/api/connections", headers=_bearer(auth0.token("auth0|alice")))
    openapi.check(response, "/api/connections", "get")
    assert [c["provider"] for c in response.json["connections"]] == ["spotify"]
    connection = response.json["connections"][0]
    assert connection["status"] == "active" and connection["scopes"] == ["a", "b"]
    assert "access-0" not in response.get_data(as_text=True) and "refresh-0" not in response.get_data(as_text=True)


def test_machine_token_is_refused_on_user_endpoints(client, auth0, openapi):
    for path in ("/api/providers", "/api/connections"):
        response = client.get(path, headers=_bearer(auth0.m2m_token()))
        assert response.status_code == 403
        openapi.check(response, path, "get")


def test_cors_allows_only_the_spa_origins(client, auth0):
    preflight = client.options("/api/connections", headers={
        "Origin": "https://app.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.test"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    response = client.get("/api/connections", headers={"Origin": "https://app.test", **_bearer(auth0.token())})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.test"
    evil = client.get("/api/connections", headers={"Origin": "https://evil.test", **_bearer(auth0.token())})
    assert "Access-Control-Allow-Origin" not in evil.headers


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("header", [{"alg": ["RS256"]}, {"alg": {}}, {"alg": "RS256", "kid": ["kid-1"]},
                                    {"alg": "RS256", "typ": {}}])
def test_non_string_jwt_header_is_a_401_not_a_500(client, header, openapi):
    token = f"{_segment(header)}.{_segment({'sub': 'auth0|alice'})}.c2ln"
    response = client.get("/api/connections", headers=_bearer(token))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json" and response.json["code"] == "invalid_token"
    openapi.check(response, "/api/connections", "get")
