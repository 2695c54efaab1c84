"""Shared fixtures: the app on SQLite (always) and PostgreSQL (when TEST_DATABASE_URL is set),
an Auth0 stand-in whose JWKS is served through ``responses``, and token minting."""
from __future__ import annotations

import base64
import functools
import os
import re
import time
import uuid

import pytest
import responses
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import text

from app import create_app
from app.extensions import db

ISSUER = "https://tenant.test/"
AUDIENCE = "https://connector.test/api"
JWKS_URL = "https://tenant.test/.well-known/jwks.json"
APP_ORIGIN = "https://app.test"
RETURN_URL = "https://app.test/settings/integrations"
BASE_URL = "https://connector.test"
KEY_1 = "k1:" + base64.b64encode(b"1" * 32).decode()
KEY_2 = "k2:" + base64.b64encode(b"2" * 32).decode()


def base_env(**overrides: str) -> dict[str, str]:
    env = {
        "PUBLIC_BASE_URL": BASE_URL,
        "AUTH0_ISSUER": ISSUER,
        "AUTH0_AUDIENCE": AUDIENCE,
        "AUTH0_JWKS_URL": JWKS_URL,
        "TOKEN_ENCRYPTION_KEYS": KEY_1,
        "CONNECT_ALLOWED_RETURN_URLS": RETURN_URL,
        "SECRET_KEY": "s" * 40,
        "GITHUB_CLIENT_ID": "gh-client",
        "GITHUB_CLIENT_SECRET": "gh-secret-value",
        "GOOGLE_CLIENT_ID": "google-client",
        "GOOGLE_CLIENT_SECRET": "google-secret-value",
        "SPOTIFY_CLIENT_ID": "spotify-client",
        "SPOTIFY_CLIENT_SECRET": "spotify-secret-value",
    }
    env.update(overrides)
    return env


@functools.cache
def shared_signing_key() -> RSAKey:
    """One RSA-2048 key for the whole session: generating one takes ~60 ms, and tests only need it to be
    the tenant's. Tests that need another key (a stranger's, a rotated one) generate their own."""
    return RSAKey.generate_key(2048, parameters={"kid": "kid-1", "alg": "RS256", "use": "sig"})


class Auth0StandIn:
    """Signs access tokens like an Auth0 tenant; its JWKS is served by ``responses``."""

    def __init__(self, key: RSAKey | None = None) -> None:
        self.key = key or shared_signing_key()

    @property
    def jwks(self) -> dict:
        return KeySet([self.key]).as_dict(private=False)

    def token(self, sub: str = "auth0|alice", *, header: dict | None = None, key=None, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": [AUDIENCE, ISSUER + "userinfo"], "sub": sub, "iat": now,
                   "exp": now + 600, "scope": "openid profile"}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": "kid-1", **(header or {})}, payload, key or self.key)

    def m2m_token(self, scope: str = "read:connections read:tokens", **claims) -> str:
        return self.token("m2m-client@clients", gty="client-credentials", scope=scope, azp="m2m-client", **claims)


def _database_params() -> list:
    params = ["sqlite"]
    params.append(pytest.param("postgresql", marks=pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="TEST_DATABASE_URL is not set")))
    return params


@pytest.fixture(params=_database_params())
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.db"
    return os.environ["TEST_DATABASE_URL"]


@pytest.fixture(scope="session")
def auth0_signing_key() -> RSAKey:
    return shared_signing_key()


@pytest.fixture
def auth0(auth0_signing_key) -> Auth0StandIn:
    return Auth0StandIn(auth0_signing_key)


@pytest.fixture
def mocked_http(auth0):
    """Every outbound HTTP call in a test goes through this; unexpected calls fail."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=auth0.jwks)
        mock.add_passthru(re.compile(r"http://127\.0\.0\.1:\d+/"))  # real loopback servers (stub provider)
        yield mock


@pytest.fixture
def stub():
    from tests.stub_provider import StubProvider

    with StubProvider() as provider:
        yield provider


def stub_env(stub, tmp_path, **overrides: str) -> dict[str, str]:
    """Environment that enables the stub provider (``stub``) through a providers file."""
    import json

    path = tmp_path / "providers.toml"
    entry = stub.catalog_entry()
    lines = ["[stub]"] + [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    from tests.stub_provider import CLIENT_ID, CLIENT_SECRET

    settings = {"CONNECTOR_PROVIDERS_FILE": str(path), "STUB_CLIENT_ID": CLIENT_ID,
                "STUB_CLIENT_SECRET": CLIENT_SECRET, "PROVIDER_READ_TIMEOUT": "2", **overrides}
    return base_env(**settings)


def providers_env(tmp_path, toml: str, **overrides: str) -> dict[str, str]:
    """Environment with a providers file holding ``toml`` (credentials as ``<NAME>_CLIENT_ID`` &c. in
    ``overrides``)."""
    path = tmp_path / "providers.toml"
    path.write_text(toml)
    return base_env(CONNECTOR_PROVIDERS_FILE=str(path), PROVIDER_READ_TIMEOUT="2", **overrides)


@pytest.fixture
def env() -> dict[str, str]:
    return base_env()


@pytest.fixture
def app(env, database_url, mocked_http, auth0):
    app = create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}, env=env)
    app.test_auth0, app.test_http = auth0, mocked_http  # for tests that drive a second client
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:  # a migrated schema left by a bench or CLI run on the same database
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def user_id() -> str:
    return f"auth0|{uuid.uuid4().hex[:8]}"


def make_connection(app, user_id: str = "auth0|alice", provider: str = "spotify", *, access: str = "access-0",
                    refresh: str | None = "refresh-0", expires_in: int | None = 3600, scopes=("a", "b"),
                    params: dict[str, str] | None = None):
    """Store a connection as a completed connect would, without going through the flow."""
    from datetime import timedelta

    from app import clock
    from app.connections import upsert_connection
    from app.oauth_client import TokenResponse

    expires_at = clock.now() + timedelta(seconds=expires_in) if expires_in is not None else None
    token = TokenResponse(access_token=access, refresh_token=refresh, token_type="Bearer", expires_at=expires_at,
                          scopes=tuple(scopes))
    with app.app_context():
        connection = upsert_connection(user_id, provider, token, app.extensions["connector"].keyring, "ext-1",
                                       params=params)
        db.session.commit()
        return connection.id


@pytest.fixture
def recorder():
    """A loopback HTTP server that records each request and answers what a test scripts
    (tests/loopback_recorder.py)."""
    from tests.loopback_recorder import Recorder

    with Recorder() as server:
        yield server
