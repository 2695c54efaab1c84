"""Machine-to-machine API with real client-credentials tokens from the Auth0 stand-in, and the
line between user and machine tokens in both directions."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

try:
    from . import flows
except ImportError:
    import flows

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def connected_user(page, spa, auth0, provider, username) -> tuple[str, str]:
    """(user id, user's Auth0 access token) of a user who connected the provider in the browser."""
    token = flows.sign_in(page, spa, auth0, username)
    assert flows.connect(page, spa, provider, username)["connector_status"] == "connected"
    return f"auth0|{username}", token


def test_m2m_token_reads_connections_and_tokens(connected_user, auth0, provider, service, username):
    user_id, _ = connected_user
    m2m = auth0.m2m_token()  # read:connections read:tokens delete:connections
    users = service.url(f"/api/users/{quote(user_id, safe='')}")

    r = requests.get(users + "/connections", headers=bearer(m2m), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == user_id
    [connection] = r.json()["connections"]
    assert connection["provider"] == provider.connector_name and connection["status"] == "active"
    assert connection["external_account_id"] == username
    assert not {k for k in connection if k in ("access_token", "refresh_token")}

    r = requests.post(users + f"/connections/{provider.connector_name}/token", headers=bearer(m2m), timeout=15)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer" and 0 < body["expires_in"] <= 60
    assert "api:read" in body["scopes"]
    me = requests.get(provider.api_url, headers=bearer(body["access_token"]), timeout=10)
    assert me.status_code == 200 and me.json()["sub"] == username  # a real token of this user

    # Unknown user / unconnected provider: clean errors, not a token.
    r = requests.post(service.url("/api/users/auth0%7Cnobody-here/connections/acme/token"),
                      headers=bearer(m2m), timeout=10)
    assert r.status_code == 404


def test_m2m_permissions_are_enforced(connected_user, auth0, provider, service):
    user_id, _ = connected_user
    users = service.url(f"/api/users/{quote(user_id, safe='')}")
    read_only = auth0.m2m_token("read:connections")

    assert requests.get(users + "/connections", headers=bearer(read_only), timeout=10).status_code == 200
    r = requests.post(users + f"/connections/{provider.connector_name}/token", headers=bearer(read_only), timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    r = requests.delete(users + f"/connections/{provider.connector_name}", headers=bearer(read_only), timeout=10)
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"


def test_user_token_is_refused_on_machine_endpoints(connected_user, provider, service, db):
    user_id, user_token = connected_user
    users = service.url(f"/api/users/{quote(user_id, safe='')}")
    before = db.connection(user_id)
    for method, url in [
        ("GET", users + "/connections"),
        ("POST", users + f"/connections/{provider.connector_name}/token"),
        ("DELETE", users + f"/connections/{provider.connector_name}"),
        ("DELETE", users + "/connections"),
    ]:
        r = requests.request(method, url, headers=bearer(user_token), timeout=10)
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["code"] == "forbidden"
    assert db.connection(user_id) == before


def test_m2m_token_is_refused_on_user_endpoints(connected_user, auth0, provider, service, spa, db):
    user_id, _ = connected_user
    m2m = auth0.m2m_token()
    for method, path in [
        ("GET", "/api/connections"),
        ("GET", "/api/providers"),
        ("GET", f"/api/proxy/{provider.connector_name}/me"),
        ("DELETE", f"/api/connections/{provider.connector_name}"),
    ]:
        r = requests.request(method, service.url(path), headers=bearer(m2m), timeout=10)
        assert r.status_code == 403, (method, path, r.text)
        assert "machine" in r.json()["detail"]

    # /connect/start from the SPA's own origin, so only the token's kind can be the reason.
    api_me_calls = provider.stats()["api_me"]
    r = requests.post(service.url("/connect/start"), allow_redirects=False, timeout=10,
                      headers={"Origin": spa.origin},
                      data={"access_token": m2m, "provider": provider.connector_name, "return_to": spa.return_url})
    assert r.status_code == 403 and "machine" in r.text
    assert "connector_bind_" not in r.headers.get("Set-Cookie", "")  # no attempt was started
    assert provider.stats()["api_me"] == api_me_calls
    assert db.connection(user_id)["status"] == "active"


def test_m2m_offboarding_revokes_at_the_provider(connected_user, auth0, provider, service, db, username):
    user_id, user_token = connected_user
    revocations = provider.stats()["revocation"]
    live_refresh = provider.issued_tokens(username)["refresh_token"][-1]

    r = requests.delete(service.url(f"/api/users/{quote(user_id, safe='')}/connections"),
                        headers=bearer(auth0.m2m_token("delete:connections")), timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] == [{**r.json()["revoked"][0], "provider": provider.connector_name}]

    row = db.connection(user_id)
    assert row["status"] == "revoked" and row["access_token_enc"] is None and row["refresh_token_enc"] is None
    assert provider.stats()["revocation"] == revocations + 1
    client = provider.client
    r = requests.post(provider.discovery()["token_endpoint"], auth=(client["client_id"], client["client_secret"]),
                      data={"grant_type": "refresh_token", "refresh_token": live_refresh}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    audit = [(e["action"], e["outcome"], e["actor_type"]) for e in db.audit(user_id)]
    assert audit[0] == ("connect", "success", "user") and any(a[2] == "m2m" for a in audit[1:])

    # The user's own token sees it as revoked; the vault refuses to hand out a token.
    r = requests.get(service.url("/api/connections"), headers=bearer(user_token), timeout=10)
    assert r.json()["connections"][0]["status"] == "revoked"
    r = requests.post(service.url(f"/api/users/{quote(user_id, safe='')}/connections/acme/token"),
                      headers=bearer(auth0.m2m_token("read:tokens")), timeout=10)
    assert r.status_code == 409
