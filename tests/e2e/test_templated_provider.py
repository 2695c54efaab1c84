"""A provider whose URLs are per tenant (Zendesk-like: /{subdomain}/... in front of the real oidc-provider),
end to end in Chromium: a hostile subdomain is refused before anything leaves the service; a valid one
is stored on the connection and used for the code exchange, the refresh, the proxy and the revocation."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests

try:
    from . import flows
    from .conftest import TENANT_PROVIDER_NAME
except ImportError:
    import flows
    from conftest import TENANT_PROVIDER_NAME

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def _params(row: dict) -> dict:
    value = row["params"]
    return json.loads(value) if isinstance(value, str) else value  # SQLite hands JSON back as text


@pytest.mark.parametrize("hostile", ["evil.com/", "evil.com", "acme/../../token", "ACME"])
def test_a_hostile_subdomain_is_refused_and_nothing_leaves(page, spa, auth0, service, db, tenant_front, username,
                                                           hostile):
    flows.sign_in(page, spa, auth0, username)
    seen = len(tenant_front.hits)
    page.evaluate("([provider, params]) => window.spa.connect({ provider, params })",
                  [TENANT_PROVIDER_NAME, {"subdomain": hostile}])
    got = flows.back_at_app(page, spa)
    assert got == {"connector_status": "error", "provider": TENANT_PROVIDER_NAME,
                   "error": "invalid_connection_param"}, got
    assert flows.outcome(page)["error"] == "invalid_connection_param"
    assert tenant_front.hits[seen:] == []  # not even the authorize page of any tenant
    assert not any(name.startswith("connector_bind_") for name in (c["name"] for c in page.context.cookies()))
    assert db.connection(f"auth0|{username}", TENANT_PROVIDER_NAME) is None


def test_a_templated_provider_end_to_end(page, spa, auth0, provider, service, db, tenant_front, username):
    user_token = flows.sign_in(page, spa, auth0, username)
    user_id = f"auth0|{username}"
    seen = len(tenant_front.hits)
    got = flows.connect(page, spa, provider, username, provider_name=TENANT_PROVIDER_NAME,
                        params={"subdomain": "acme"})
    assert got == {"connector_status": "connected", "provider": TENANT_PROVIDER_NAME}, got
    row = db.connection(user_id, TENANT_PROVIDER_NAME)
    assert row["status"] == "active" and _params(row) == {"subdomain": "acme"}
    assert row["access_token_enc"] and row["refresh_token_enc"]
    # The browser was sent to the tenant's authorize URL, the service exchanged the code at its token URL.
    paths = tenant_front.paths()[seen:]
    assert paths[0] == "/acme/auth" and "/acme/token" in paths

    listed = requests.get(service.url("/api/connections"), headers=bearer(user_token), timeout=10).json()
    [mine] = [c for c in listed["connections"] if c["provider"] == TENANT_PROVIDER_NAME]
    assert mine["params"] == {"subdomain": "acme"}
    providers = requests.get(service.url("/api/providers"), headers=bearer(user_token), timeout=10).json()
    [entry] = [p for p in providers["providers"] if p["name"] == TENANT_PROVIDER_NAME]
    assert [p["name"] for p in entry["params"]] == ["subdomain"]

    # The proxy reaches this tenant's API, and only it.
    seen = len(tenant_front.hits)
    me = requests.get(service.url(f"/api/proxy/{TENANT_PROVIDER_NAME}/me"), headers=bearer(user_token), timeout=15)
    assert me.status_code == 200 and me.json()["sub"] == username
    assert tenant_front.paths()[seen:] == ["/acme/api/me"]

    # A refresh (a brand-new token asked for) goes to the tenant's token URL.
    seen = len(tenant_front.hits)
    users = service.url(f"/api/users/{quote(user_id, safe='')}")
    r = requests.post(users + f"/connections/{TENANT_PROVIDER_NAME}/token?min_ttl=60",
                      headers=bearer(auth0.m2m_token()), timeout=15)
    assert r.status_code == 200, r.text
    assert tenant_front.paths()[seen:] == ["/acme/token"]

    # Disconnecting revokes at the tenant's revocation URL.
    seen = len(tenant_front.hits)
    r = requests.delete(service.url(f"/api/connections/{TENANT_PROVIDER_NAME}"), headers=bearer(user_token),
                        timeout=15)
    assert r.status_code == 200 and r.json()["remote_revocation"] == "done", r.text
    assert tenant_front.paths()[seen:] == ["/acme/token/revocation"]
