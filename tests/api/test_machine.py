from urllib.parse import quote

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Connection
from tests.conftest import make_connection

TOKEN_PATH = "/api/users/{user_id}/connections/{provider}/token"
LIST_PATH = "/api/users/{user_id}/connections"


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_action_lists_a_users_connections(client, app, auth0, openapi):
    make_connection(app, "google-oauth2|123", "spotify")
    response = client.get(f"/api/users/{quote('google-oauth2|123', safe='')}/connections",
                          headers=_bearer(auth0.m2m_token("read:connections")))
    assert response.status_code == 200
    openapi.check(response, LIST_PATH, "get")
    assert response.json["user_id"] == "google-oauth2|123"
    assert [(c["provider"], c["scopes"]) for c in response.json["connections"]] == [("spotify", ["a", "b"])]
    assert "refresh-0" not in response.get_data(as_text=True) and "access-0" not in response.get_data(as_text=True)


def test_job_gets_a_fresh_token(client, app, auth0, stub, openapi):
    access, refresh = stub.issue()
    make_connection(app, "auth0|job", "stub", access=access, refresh=refresh, expires_in=-1)
    response = client.post(f"/api/users/{quote('auth0|job', safe='')}/connections/stub/token",
                           headers=_bearer(auth0.m2m_token("read:tokens")))
    assert response.status_code == 200, response.json
    openapi.check(response, TOKEN_PATH, "post")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["access_token"] in stub.state.access_tokens and response.json["expires_in"] > 3000


def test_permission_from_rbac_permissions_claim(client, app, auth0):
    make_connection(app, "auth0|p", "stub")
    token = auth0.m2m_token(scope=None, permissions=["read:tokens"])
    assert client.post("/api/users/auth0%7Cp/connections/stub/token", headers=_bearer(token)).status_code == 200


@pytest.mark.parametrize("setup,status,code", [
    (None, 404, "not_found"),
    ("needs_reauth", 409, "reauthorization_required"),
    ("revoked", 409, "reauthorization_required"),
])
def test_token_errors(client, app, auth0, openapi, setup, status, code):
    if setup:
        make_connection(app, "auth0|e", "stub")
        with app.app_context():
            db.session.scalars(select(Connection)).one().status = setup
            db.session.commit()
    response = client.post("/api/users/auth0%7Ce/connections/stub/token", headers=_bearer(auth0.m2m_token()))
    assert (response.status_code, response.json["code"]) == (status, code)
    assert response.mimetype == "application/problem+json"
    openapi.check(response, TOKEN_PATH, "post")


def test_provider_unavailable_is_503_with_retry_after(client, app, auth0, stub, openapi):
    access, refresh = stub.issue()
    make_connection(app, "auth0|u", "stub", access=access, refresh=refresh, expires_in=-1)
    stub.state.failure = (503, "down", {"Retry-After": "30"})
    response = client.post("/api/users/auth0%7Cu/connections/stub/token", headers=_bearer(auth0.m2m_token()))
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 30
    openapi.check(response, TOKEN_PATH, "post")


def test_unknown_provider_is_400(client, auth0):
    response = client.post("/api/users/auth0%7Cu/connections/nope/token", headers=_bearer(auth0.m2m_token()))
    assert (response.status_code, response.json["code"]) == (400, "unknown_provider")


@pytest.mark.parametrize("min_ttl", ["-1", "abc", "999999", "", "1.5", "+5", " 5",
                                     "%C2%B2",  # "²": str.isdigit() is true, int() refuses it (was a 500)
                                     "%D9%A3",  # Arabic-Indic 3: a Unicode digit, not an ASCII one
                                     "%EF%BC%95",  # fullwidth 5
                                     "9" * 5000])  # past int()'s 4,300-digit limit (was a 500)
def test_bad_min_ttl_is_400(client, auth0, min_ttl, openapi):
    response = client.post(f"/api/users/auth0%7Cu/connections/stub/token?min_ttl={min_ttl}",
                           headers=_bearer(auth0.m2m_token()))
    assert (response.status_code, response.json["code"]) == (400, "invalid_request")
    assert "min_ttl must be a whole number of seconds" in response.json["detail"]
    openapi.check(response, TOKEN_PATH, "post")


def test_user_token_is_refused_on_machine_endpoints(client, app, auth0):
    make_connection(app, "auth0|alice", "stub")
    for method, path in (("get", "/api/users/auth0%7Calice/connections"),
                         ("post", "/api/users/auth0%7Calice/connections/stub/token")):
        response = getattr(client, method)(path, headers=_bearer(auth0.token("auth0|alice")))
        assert (response.status_code, response.json["code"]) == (403, "forbidden")


def test_missing_permission_is_refused(client, auth0):
    response = client.post("/api/users/auth0%7Cu/connections/stub/token",
                           headers=_bearer(auth0.m2m_token("read:connections")))
    assert (response.status_code, response.json["code"]) == (403, "insufficient_scope")
    response = client.get("/api/users/auth0%7Cu/connections", headers=_bearer(auth0.m2m_token("read:tokens")))
    assert response.status_code == 403


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                                     {"Authorization": "Bearer nope"}])
def test_missing_or_bad_bearer_is_401(client, headers, openapi):
    response = client.get("/api/users/auth0%7Cu/connections", headers=headers)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    openapi.check(response, LIST_PATH, "get")


def test_openapi_document_is_served(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.json["openapi"].startswith("3.1")


@pytest.mark.parametrize("method,path", [
    ("delete", "/api/users/auth0%7Cu/connections/sp%00x"),  # provider was never checked before the query
    ("post", "/api/users/auth0%7Cu/connections/stub/token?min_ttl=5%00"),
    ("get", "/api/users/auth0%7Cu%00/connections"),
])
def test_nul_in_machine_request_is_400(client, auth0, method, path):
    token = auth0.m2m_token("read:connections read:tokens delete:connections")
    response = getattr(client, method)(path, headers=_bearer(token))
    assert (response.status_code, response.mimetype) == (400, "application/problem+json")
    assert response.json["code"] == "invalid_request" and "control character" in response.json["detail"]
