"""Incremental authorization through the real parties: connect with one scope, connect again with
another, and the one connection (same id) holds both while the grant it replaced is revoked at the
provider; a job that needs a scope the connection lacks is told which, with a link that asks for it."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

try:
    from . import flows
except ImportError:
    import flows

pytestmark = pytest.mark.e2e


def _connect_with_scopes(page, spa, auth0, provider, username: str, scopes: str, *, name: str | None = None,
                         sign_in: bool = True) -> set[str]:
    """Sign in in this browser (unless signed in already), connect the scoped entry (or ``name``) asking for
    ``scopes``; the scope the service's authorize request asked the provider for."""
    name = name or provider.scoped_connector_name
    if sign_in:
        flows.sign_in(page, spa, auth0, username)
    endpoint = provider.discovery()["authorization_endpoint"]
    authorize: list[str] = []
    # (not the /auth/<uid> resumes after the login and consent pages)
    page.on("request", lambda r: authorize.append(r.url) if r.url.startswith(endpoint + "?") else None)
    got = flows.connect(page, spa, provider, username, provider_name=name, fields={"scopes": scopes})
    assert got == {"connector_status": "connected", "provider": name}, got
    [url] = authorize
    return set(flows.query(url)["scope"].split())


def _granted(db, user_id: str, provider) -> set[str]:
    """What the connection holds: the provider's token response's scope (oidc-provider leaves
    offline_access out of it when the request has no prompt=consent, and still issues a refresh token)."""
    return set(db.connection(user_id, provider.scoped_connector_name)["scopes"].split())


def _token(service, auth0, user_id: str, provider, name: str | None = None, **params) -> requests.Response:
    return requests.post(service.url(f"/api/users/{quote(user_id, safe='')}/connections/"
                                     f"{name or provider.scoped_connector_name}/token"),
                         params=params, headers={"Authorization": "Bearer " + auth0.m2m_token("read:tokens")},
                         timeout=15)


def test_connecting_again_with_another_scope_keeps_one_connection_with_both(
        page, new_context, spa, auth0, provider, service, db, username):
    user_id, name = f"auth0|{username}", provider.scoped_connector_name

    # 1) The app asks for api:read: the provider is asked for the entry's defaults and api:read.
    assert _connect_with_scopes(page, spa, auth0, provider, username, "api:read") == {
        "openid", "offline_access", "api:read"}
    first = db.connection(user_id, name)
    assert first["status"] == "active"
    assert {"openid", "api:read"} <= _granted(db, user_id, provider) and "email" not in _granted(db, user_id, provider)
    first_refresh = provider.issued_tokens(username)["refresh_token"][-1]

    # A job that needs email is told the connection lacks it, with a link that would ask for it.
    lacking = _token(service, auth0, user_id, provider, required_scopes="api:read email")
    assert lacking.status_code == 409, lacking.text
    assert lacking.json()["code"] == "insufficient_scope" and lacking.json()["missing_scopes"] == ["email"]
    assert lacking.json()["reconnect_url"].startswith(service.url("/link/"))

    # 2) Later, on another device (no session at the provider: it makes a new grant), the app asks
    # for email: the provider is asked for everything granted so far plus email.
    other = new_context().new_page()
    assert _connect_with_scopes(other, spa, auth0, provider, username, "email") == {
        "openid", "offline_access", "api:read", "email"}
    second = db.connection(user_id, name)
    assert second["id"] == first["id"] and second["status"] == "active"
    assert {"openid", "api:read", "email"} <= _granted(db, user_id, provider)
    assert second["refresh_token_enc"] != first["refresh_token_enc"]
    assert [c["id"] for c in db.connections(user_id)] == [first["id"]]

    # The grant the reconnect replaced is queued, then revoked at the provider.
    assert ("revoke_remote", "queued") in [(e["action"], e["outcome"]) for e in db.audit(user_id)]
    revocations = provider.stats()["revocation"]
    service.flask("connector", "retry-revocations")
    assert provider.stats()["revocation"] == revocations + 1
    dead = requests.post(provider.discovery()["token_endpoint"], timeout=10,
                         auth=(provider.client["client_id"], provider.client["client_secret"]),
                         data={"grant_type": "refresh_token", "refresh_token": first_refresh})
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"

    # The one connection now serves both scopes, through a refresh of the new grant.
    served = _token(service, auth0, user_id, provider, required_scopes="api:read email",
                    min_ttl=str(provider.access_token_ttl))
    assert served.status_code == 200, served.text
    assert {"api:read", "email"} <= set(served.json()["scopes"])
    me = requests.get(provider.api_url, headers={"Authorization": "Bearer " + served.json()["access_token"]},
                      timeout=10)
    assert me.status_code == 200 and {"api:read", "email"} <= set(me.json()["scope"].split())
    assert db.connection(user_id, name)["status"] == "active"

    # The user's own list shows the granted scopes.
    listing = requests.get(service.url("/api/connections"), timeout=10, headers={
        "Authorization": "Bearer " + other.evaluate("sessionStorage.getItem('access_token')")})
    [entry] = [c for c in listing.json()["connections"] if c["provider"] == name]
    assert set(entry["scopes"]) == _granted(db, user_id, provider) >= {"api:read", "email"}


def test_in_the_same_browser_a_provider_that_extends_its_grant_keeps_it(page, spa, auth0, provider, service, db,
                                                                        username):
    """oidc-provider extends the grant it made for this browser's session, and revoking any token of a
    grant ends all of it. An entry declaring that (revocation_revokes_grant = true) revokes nothing when
    the same account connects again, so the extended grant lives on with both scopes. (Without the
    declaration the replaced refresh token's revocation would end the new tokens too: the connection
    would turn needs_reauth at its next refresh.)"""
    user_id, name = f"auth0|{username}", provider.scoped_grant_connector_name
    assert "api:read" in _connect_with_scopes(page, spa, auth0, provider, username, "api:read", name=name)
    first = db.connection(user_id, name)
    revocations = provider.stats()["revocation"]
    asked = _connect_with_scopes(page, spa, auth0, provider, username, "email", name=name, sign_in=False)
    assert {"api:read", "email"} <= asked
    second = db.connection(user_id, name)
    assert second["id"] == first["id"] and {"api:read", "email"} <= set(second["scopes"].split())
    assert ("revoke_remote", "queued") not in [(e["action"], e["outcome"]) for e in db.audit(user_id)]
    service.flask("connector", "retry-revocations")
    assert provider.stats()["revocation"] == revocations
    served = _token(service, auth0, user_id, provider, name, required_scopes="api:read email",
                    min_ttl=str(provider.access_token_ttl))
    assert served.status_code == 200, served.text
    assert db.connection(user_id, name)["status"] == "active"
