"""Admin console fixtures: an Auth0 tenant's OIDC endpoints mocked with ``responses``."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import ISSUER, JWKS_URL, base_env

ADMIN_CLIENT_ID = "admin-console"
ADMIN_SUB = "auth0|operator"
AUTHORIZE_URL = ISSUER + "authorize"
TOKEN_URL = ISSUER + "oauth/token"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def env():
    return base_env(ADMIN_CLIENT_ID=ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET="admin-console-secret",
                    ADMIN_SUBS=ADMIN_SUB, ADMIN_ROLE_CLAIM="https://connector.test/roles",
                    ADMIN_LOGIN_MAX_FAILURES="3")


@pytest.fixture(autouse=True)
def discovery(mocked_http):
    mocked_http.get(ISSUER + ".well-known/openid-configuration", json={
        "issuer": ISSUER, "authorization_endpoint": AUTHORIZE_URL, "token_endpoint": TOKEN_URL,
        "jwks_uri": JWKS_URL, "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
    })


class AdminLogin:
    """Drives the console's sign-in against the mocked tenant, as a browser would."""

    def __init__(self, client, auth0, http):
        self.client, self.auth0, self.http = client, auth0, http

    def start(self, **environ) -> dict:
        response = self.client.get("/admin/login/start", environ_base=environ)
        assert response.status_code == 302, response.text
        return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}

    def complete(self, params: dict, *, sub: str = ADMIN_SUB, nonce: str | None = None, state: str | None = None,
                 environ: dict | None = None, **claims):
        id_token = self.auth0.token(sub, aud=ADMIN_CLIENT_ID, nonce=nonce or params["nonce"], scope=None,
                                    name="Operator", **claims)
        self.http.replace("POST", TOKEN_URL, json={"access_token": "at-admin", "token_type": "Bearer",
                                                   "expires_in": 3600, "id_token": id_token})
        return self.client.get("/admin/callback", query_string={"code": "code-1", "state": state or params["state"]},
                               environ_base=environ or {})

    def sign_in(self, sub: str = ADMIN_SUB, **claims):
        return self.complete(self.start(), sub=sub, **claims)


@pytest.fixture
def admin_login(client, auth0, mocked_http):
    mocked_http.post(TOKEN_URL, json={})
    return AdminLogin(client, auth0, mocked_http)


@pytest.fixture
def signed_in(admin_login):
    response = admin_login.sign_in()
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/connections")
    return admin_login.client


def csrf_token(client, path: str = "/admin/connections") -> str:
    return CSRF_RE.search(client.get(path).text).group(1)
