import base64
import logging
import os

import pytest
from sqlalchemy import create_engine, text

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
    ({"DATABASE_URL": "mysql+nosuchdriver://u:secret@db/x"}, "DATABASE_URL"),
    ({"GITHUB_CLIENT_SECRET": ""}, "GITHUB_CLIENT_SECRET"),
    ({"GOOGLE_CLIENT_ID": ""}, "GOOGLE_CLIENT_ID"),
    ({"CONNECTOR_DEMO": "1"}, "CONNECTOR_DEMO"),  # on https://connector.test: not loopback
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


def test_every_problem_is_reported_at_once_one_line_per_variable():
    with pytest.raises(ConfigError) as info:
        load_config({})
    variables = [line.split(":", 1)[0] for line in str(info.value).splitlines()]
    assert info.value.problems == str(info.value).splitlines()
    assert set(variables) == {"PUBLIC_BASE_URL", "SECRET_KEY", "AUTH0_DOMAIN", "AUTH0_AUDIENCE",
                              "TOKEN_ENCRYPTION_KEYS", "CONNECT_ALLOWED_RETURN_URLS"}
    assert len(variables) == len(set(variables))


def test_problems_in_one_go_never_echo_a_secret_or_a_password():
    env = base_env(SECRET_KEY="hunter2", TOKEN_ENCRYPTION_KEYS="k1:hunter2", GITHUB_CLIENT_SECRET="",
                   DATABASE_URL="nosuch://admin:hunter2@db.internal/connector",
                   PUBLIC_BASE_URL="ftp://admin:hunter2@connector.example.com",
                   AUTH0_JWKS_URL="ftp://admin:hunter2@tenant.test/jwks", ADMIN_CLIENT_ID="console",
                   GOOGLE_CLIENT_SECRET="hunter2-google")
    env.pop("GOOGLE_CLIENT_ID")
    with pytest.raises(ConfigError) as info:
        load_config(env)
    message = str(info.value)
    assert "hunter2" not in message
    assert [line.split(":", 1)[0] for line in message.splitlines()] == [
        "PUBLIC_BASE_URL", "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "GITHUB_CLIENT_SECRET", "GOOGLE_CLIENT_ID",
        "AUTH0_JWKS_URL", "DATABASE_URL", "ADMIN_CLIENT_ID"]


def test_half_configured_provider_from_a_providers_file_is_an_error(tmp_path):
    providers = tmp_path / "providers.toml"
    providers.write_text('[acme]\nauthorize_url = "https://acme.test/a"\ntoken_url = "https://acme.test/t"\n')
    env = base_env(CONNECTOR_PROVIDERS_FILE=str(providers), ACME_CLIENT_SECRET="acme-secret-value")
    with pytest.raises(ConfigError, match=r"^ACME_CLIENT_ID: required when ACME_CLIENT_SECRET is set") as info:
        load_config(env)
    assert "acme-secret-value" not in str(info.value)
    env["ACME_CLIENT_ID"] = "acme"
    assert load_config(env)["CONNECTOR_PROVIDERS_FILE"] == str(providers)


def test_start_up_logs_the_enabled_providers_by_name_only(tmp_path, caplog):
    env = base_env(SPOTIFY_CLIENT_ID="", SPOTIFY_CLIENT_SECRET="")
    with caplog.at_level(logging.INFO, logger="app"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"}, env=env)
    lines = [r.getMessage() for r in caplog.records if "provider" in r.getMessage()]
    assert lines == ["providers enabled: github, google"]
    assert "secret-value" not in caplog.text and "gh-client" not in caplog.text


@pytest.mark.parametrize("base_url", ["https://connector.example.com", "https://10.0.0.5:5000",
                                      "https://127.0.0.1.nip.io"])
def test_demo_mode_is_refused_unless_the_base_url_is_loopback(base_url):
    with pytest.raises(ConfigError, match="^CONNECTOR_DEMO: demo mode runs only on a loopback PUBLIC_BASE_URL"):
        load_config({"CONNECTOR_DEMO": "1", "PUBLIC_BASE_URL": base_url})


@pytest.mark.parametrize("base_url", ["", "http://127.0.0.1:5050", "http://localhost:5000", "http://[::1]:5000"])
def test_demo_mode_runs_on_loopback(base_url):
    cfg = load_config({"CONNECTOR_DEMO": "1", "PUBLIC_BASE_URL": base_url})
    assert cfg["CONNECTOR_DEMO"] is True and cfg["ADMIN_DEMO_LOGIN"] is True


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_urls_use_the_installed_driver(scheme):
    cfg = load_config(base_env(DATABASE_URL=f"{scheme}://connector:p%40ss@db.internal:5433/connector?sslmode=require"))
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://connector:p%40ss@db.internal:5433/connector" \
                                            "?sslmode=require"
    assert create_engine(cfg["SQLALCHEMY_DATABASE_URI"]).dialect.driver == "psycopg"


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="TEST_DATABASE_URL is not a PostgreSQL URL")
def test_postgres_scheme_url_connects():
    hosted_form = "postgres://" + os.environ["TEST_DATABASE_URL"].split("://", 1)[1]
    engine = create_engine(load_config(base_env(DATABASE_URL=hosted_form))["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar() == 1
    finally:
        engine.dispose()
