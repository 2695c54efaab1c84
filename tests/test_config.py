import base64

import pytest

from app import create_app
from config import ConfigError, load_config
from tests.conftest import base_env


def test_valid_environment_loads():
    cfg = load_config(base_env())
    assert cfg["AUTH0_ISSUER"] == "https://tenant.test/"
    assert cfg["TOKEN_ENCRYPTION_KEYS"][0][0] == "k1"


def test_domain_becomes_issuer_with_trailing_slash():
    env = base_env(AUTH0_DOMAIN="tenant.eu.auth0.com")
    del env["AUTH0_ISSUER"]
    assert load_config(env)["AUTH0_ISSUER"] == "https://tenant.eu.auth0.com/"


@pytest.mark.parametrize("change,variable", [
    ({"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL"),
    ({"PUBLIC_BASE_URL": "http://connector.example.com"}, "PUBLIC_BASE_URL"),
    ({"PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL"),
    ({"SECRET_KEY": ""}, "SECRET_KEY"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"AUTH0_ISSUER": ""}, "AUTH0_DOMAIN"),
    ({"AUTH0_DOMAIN": "x.auth0.com"}, "AUTH0_ISSUER"),
    ({"AUTH0_ISSUER": "http://tenant.example.com/"}, "AUTH0_ISSUER"),
    ({"AUTH0_AUDIENCE": ""}, "AUTH0_AUDIENCE"),
    ({"TOKEN_ENCRYPTION_KEYS": ""}, "TOKEN_ENCRYPTION_KEYS"),
    ({"TOKEN_ENCRYPTION_KEYS": "k1:notbase64!"}, "TOKEN_ENCRYPTION_KEYS"),
    ({"TOKEN_ENCRYPTION_KEYS": "k1:" + base64.b64encode(b"short").decode()}, "TOKEN_ENCRYPTION_KEYS"),
    ({"TOKEN_ENCRYPTION_KEYS": base64.b64encode(b"1" * 32).decode()}, "TOKEN_ENCRYPTION_KEYS"),
    ({"CONNECT_ALLOWED_RETURN_URLS": ""}, "CONNECT_ALLOWED_RETURN_URLS"),
    ({"CONNECTOR_PROVIDERS_FILE": "/nonexistent.toml"}, "CONNECTOR_PROVIDERS_FILE"),
    ({"PROVIDER_READ_TIMEOUT": "soon"}, "PROVIDER_READ_TIMEOUT"),
    ({"CONNECTOR_DEMO": "maybe"}, "CONNECTOR_DEMO"),
    ({"ADMIN_CLIENT_ID": "console"}, "ADMIN_CLIENT_ID"),
    ({"ADMIN_CLIENT_ID": "console", "ADMIN_CLIENT_SECRET": "s"}, "ADMIN_SUBS"),
    ({"TRUSTED_PROXY_HOPS": "-1"}, "TRUSTED_PROXY_HOPS"),
    ({"TRUSTED_PROXY_HOPS": "lots"}, "TRUSTED_PROXY_HOPS"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgres://u:secret@db/x"}, "DATABASE_URL"),  # SQLAlchemy knows no "postgres" dialect
    ({"AUTH0_JWKS_URL": "https://"}, "AUTH0_JWKS_URL"),
])
def test_bad_setting_names_the_variable(change, variable):
    with pytest.raises(ConfigError) as info:
        load_config(base_env(**change))
    assert str(info.value).startswith(variable + ":")
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_duplicate_key_ids_are_rejected():
    key = base64.b64encode(b"1" * 32).decode()
    with pytest.raises(ConfigError, match="appears twice"):
        load_config(base_env(TOKEN_ENCRYPTION_KEYS=f"k1:{key},k1:{key}"))


def test_secret_key_optional_when_testing():
    assert load_config(base_env(SECRET_KEY=""), testing=True)["SECRET_KEY"]


def test_loopback_http_drops_secure_cookie_prefix(tmp_path):
    env = base_env(PUBLIC_BASE_URL="http://127.0.0.1:8000")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"}, env=env)
    ctx = app.extensions["connector"].connect
    assert not ctx.secure_cookies and ctx.cookie_name("ab" * 8) == "connector_bind_abababababababab"
    assert ctx.redirect_uri == "http://127.0.0.1:8000/connect/callback"


def test_invalid_allowlist_entry_stops_start_up(tmp_path):
    env = base_env(CONNECT_ALLOWED_RETURN_URLS="https://app.test/#x")
    with pytest.raises(ConfigError, match="^CONNECT_ALLOWED_RETURN_URLS: allowed return URL"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"}, env=env)
