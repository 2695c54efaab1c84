"""Reconnect-link fixtures: the admin console's Auth0 client (mocked tenant) and a link driver."""
from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.admin.conftest import ADMIN_CLIENT_ID, ADMIN_SUB, TOKEN_URL, discovery  # noqa: F401
from tests.api.conftest import openapi  # noqa: F401
from tests.conftest import BASE_URL, RETURN_URL, base_env

LINKS_PATH = "/api/users/{user_id}/connect-links"


@pytest.fixture
def env():
    return base_env(ADMIN_CLIENT_ID=ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET="admin-console-secret",
                    ADMIN_SUBS=ADMIN_SUB, CONNECT_LINK_DEFAULT_RETURN_URL=RETURN_URL)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class LinkDriver:
    """A company's job creating a link, and a browser opening it and signing in at the mocked tenant."""

    def __init__(self, client, auth0, http):
        self.client, self.auth0, self.http = client, auth0, http

    def create(self, user_id: str, provider: str = "spotify", return_to: str = RETURN_URL,
               scope: str = "create:connect_links"):
        return self.client.post(LINKS_PATH.format(user_id=quote(user_id, safe="")),
                                json={"provider": provider, "return_to": return_to},
                                headers=bearer(self.auth0.m2m_token(scope)))

    def url(self, user_id: str, provider: str = "spotify", return_to: str = RETURN_URL) -> str:
        response = self.create(user_id, provider, return_to)
        assert response.status_code == 200, response.json
        return response.json["url"]

    def open(self, url: str):
        return self.client.get(url.removeprefix(BASE_URL), base_url=BASE_URL)

    def sign_in(self, response, sub: str, **claims):
        """Complete the Auth0 sign-in the link page started (``response`` is its redirect)."""
        assert response.status_code == 302, response.text
        params = query_of(response.headers["Location"])
        id_token = self.auth0.token(sub, aud=ADMIN_CLIENT_ID, nonce=params["nonce"], scope=None, **claims)
        self.http.replace("POST", TOKEN_URL, json={"access_token": "at-link", "token_type": "Bearer",
                                                   "expires_in": 3600, "id_token": id_token})
        return self.client.get("/link/callback", query_string={"code": "code-1", "state": params["state"]},
                                base_url=BASE_URL)


@pytest.fixture
def links(client, auth0, mocked_http):
    mocked_http.post(TOKEN_URL, json={})
    return LinkDriver(client, auth0, mocked_http)
