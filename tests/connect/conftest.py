"""Helpers to drive /connect/start and /connect/callback with mocked providers."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Connection, UsedConnectAttempt
from tests.conftest import APP_ORIGIN, BASE_URL, RETURN_URL

PROVIDER_MOCKS = {
    "github": {
        "token_url": "https://github.com/login/oauth/access_token",
        "token": {"access_token": "gho_SECRETACCESS", "token_type": "bearer", "scope": "read:user"},
        "userinfo": ("https://api.github.com/user", {"id": 4242, "login": "octo"}),
        "iss": "https://github.com/login/oauth",
    },
    "google": {
        "token_url": "https://oauth2.googleapis.com/token",
        "token": {"access_token": "ya29.SECRETACCESS", "refresh_token": "1//SECRETREFRESH", "expires_in": 3599,
                  "token_type": "Bearer", "scope": "openid https://www.googleapis.com/auth/userinfo.email"},
        "userinfo": ("https://openidconnect.googleapis.com/v1/userinfo", {"sub": "1077", "email": "a@example.com"}),
        "iss": "https://accounts.google.com",
    },
    "spotify": {
        "token_url": "https://accounts.spotify.com/api/token",
        "token": {"access_token": "BQSECRETACCESS", "refresh_token": "AQSECRETREFRESH", "expires_in": 3600,
                  "token_type": "Bearer", "scope": "user-read-email user-read-private"},
        "userinfo": ("https://api.spotify.com/v1/me", {"id": "spotify-user"}),
        "iss": None,
    },
}


def fake_id_token(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'x'})}.{part(claims)}.c2ln"


class ConnectDriver:
    def __init__(self, client, auth0, http):
        self.client, self.auth0, self.http = client, auth0, http
        self.provider = "github"  # whose callback path callback() uses: the last one started

    def start(self, provider: str = "github", *, token: str | None = None, return_to: str = RETURN_URL,
              origin: str | None = APP_ORIGIN, headers: dict | None = None, data: dict | None = None,
              client=None):
        form = {"access_token": token or self.auth0.token(), "provider": provider, "return_to": return_to}
        if data is not None:
            form = data
        self.provider = provider
        all_headers = {"Origin": origin} if origin else {}
        all_headers.update(headers or {})
        return (client or self.client).post("/connect/start", data=form, headers=all_headers, base_url=BASE_URL)

    def authorize_params(self, response) -> dict[str, str]:
        assert response.status_code == 303, response.get_data(as_text=True)
        return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}

    def mock_provider(self, provider: str, *, token: dict | None = None, status: int = 200, body=None):
        spec = PROVIDER_MOCKS[provider]
        if body is None:
            self.http.post(spec["token_url"], json=token if token is not None else spec["token"], status=status)
        else:
            self.http.post(spec["token_url"], body=body, status=status)
        url, data = spec["userinfo"]
        self.http.get(url, json=data)

    def callback(self, query: dict | str, client=None, *, path: str | None = None):
        """GET the callback; ``path`` defaults to the last started provider's /connect/callback/<name>."""
        if not isinstance(query, str):
            query = "&".join(f"{k}={v}" for k, v in query.items())
        path = path or f"/connect/callback/{self.provider}"
        return (client or self.client).get(path + "?" + query, base_url=BASE_URL)

    def connect(self, provider: str = "github", **start_kw):
        """Run a complete successful connect; returns the callback response."""
        params = self.authorize_params(self.start(provider, **start_kw))
        spec = PROVIDER_MOCKS[provider]
        token = dict(spec["token"])
        if "nonce" in params:
            token["id_token"] = fake_id_token({"iss": spec["iss"], "aud": f"{provider}-client",
                                               "nonce": params["nonce"], "sub": "1077"})
        self.mock_provider(provider, token=token)
        query = {"code": "CODE123", "state": params["state"]}
        if spec["iss"]:
            query["iss"] = spec["iss"]
        return self.callback(query)


@pytest.fixture
def connect(client, auth0, mocked_http):
    return ConnectDriver(client, auth0, mocked_http)


def connection_rows(app) -> list[dict]:
    """Every connections row as plain values: to compare before/after a rejected request."""
    with app.app_context():
        rows = db.session.scalars(select(Connection).order_by(Connection.id)).all()
        return [{c.name: getattr(r, c.name) for c in Connection.__table__.columns} for r in rows]


def used_attempts(app) -> list[str]:
    """The ids of connect attempts whose callback was accepted (consumed)."""
    with app.app_context():
        return list(db.session.scalars(select(UsedConnectAttempt.id)))


def binding_cookies(response) -> list[str]:
    """The Set-Cookie headers of per-attempt binding cookies a response sets."""
    return [c for c in response.headers.getlist("Set-Cookie") if "connector_bind_" in c]
