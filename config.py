"""Configuration from environment variables, validated once at start-up.

Every problem is reported as one ``ConfigError`` line that names the variable.
Nothing else lives here.
"""
from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Publicly known values, used only in demo mode, which says so loudly.
DEMO_ENCRYPTION_KEY = "demo:" + base64.b64encode(b"demo-key-never-use-in-production").decode()
DEMO_AUDIENCE = "https://connector.demo/api"


class ConfigError(Exception):
    """A missing or malformed setting; the message names the variable."""


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: expected 1/0/true/false, got {value!r}")


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive")
    return value


def parse_encryption_keys(raw: str, name: str = "TOKEN_ENCRYPTION_KEYS") -> list[tuple[str, bytes]]:
    """Parse ``key_id:base64(32 bytes)`` entries; the first one encrypts."""
    keys: list[tuple[str, bytes]] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        if not sep or not KEY_ID_RE.match(key_id):
            raise ConfigError(f"{name}: each entry must be key_id:base64key (key id [A-Za-z0-9_-]{{1,32}})")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ConfigError(f"{name}: key {key_id!r} is not valid base64") from None
        if len(key) != 32:
            raise ConfigError(f"{name}: key {key_id!r} must decode to 32 bytes, got {len(key)}")
        if any(existing == key_id for existing, _ in keys):
            raise ConfigError(f"{name}: key id {key_id!r} appears twice")
        keys.append((key_id, key))
    if not keys:
        raise ConfigError(f"{name}: at least one key is required")
    return keys


def _base_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"PUBLIC_BASE_URL: expected an absolute http(s) URL, got {raw!r}")
    if parts.query or parts.fragment or parts.username:
        raise ConfigError("PUBLIC_BASE_URL: must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigError("PUBLIC_BASE_URL: plain http is only allowed on a loopback host; use https")
    return raw.rstrip("/")


def _issuer(env: Mapping[str, str], demo_issuer: str | None) -> str:
    issuer = env.get("AUTH0_ISSUER", "").strip()
    domain = env.get("AUTH0_DOMAIN", "").strip()
    if issuer and domain:
        raise ConfigError("AUTH0_ISSUER: set either AUTH0_ISSUER or AUTH0_DOMAIN, not both")
    if domain:
        if "/" in domain or ":" in domain:
            raise ConfigError(f"AUTH0_DOMAIN: expected a bare host name like tenant.eu.auth0.com, got {domain!r}")
        return f"https://{domain}/"
    if issuer:
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"AUTH0_ISSUER: expected an absolute URL, got {issuer!r}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ConfigError("AUTH0_ISSUER: plain http is only allowed on a loopback host")
        return issuer
    if demo_issuer:
        return demo_issuer
    raise ConfigError("AUTH0_DOMAIN: required (or AUTH0_ISSUER)")


def _admin(env: Mapping[str, str], demo: bool) -> dict:
    client_id = env.get("ADMIN_CLIENT_ID", "").strip()
    client_secret = env.get("ADMIN_CLIENT_SECRET", "").strip()
    if bool(client_id) != bool(client_secret):
        raise ConfigError("ADMIN_CLIENT_ID: set both ADMIN_CLIENT_ID and ADMIN_CLIENT_SECRET, or neither")
    subs = [s.strip() for s in env.get("ADMIN_SUBS", "").split(",") if s.strip()]
    role_claim = env.get("ADMIN_ROLE_CLAIM", "").strip() or None
    if client_id and not (subs or role_claim):
        raise ConfigError("ADMIN_SUBS: set ADMIN_SUBS or ADMIN_ROLE_CLAIM, or no one can use the admin console")
    raw_hops = env.get("TRUSTED_PROXY_HOPS", "").strip() or "0"
    if not raw_hops.isdigit() or int(raw_hops) > 5:
        raise ConfigError(f"TRUSTED_PROXY_HOPS: expected a whole number 0-5, got {raw_hops!r}")
    return {
        "ADMIN_CLIENT_ID": client_id or None,
        "ADMIN_CLIENT_SECRET": client_secret or None,
        "ADMIN_SUBS": subs,
        "ADMIN_ROLE_CLAIM": role_claim,
        "ADMIN_ROLE": env.get("ADMIN_ROLE", "").strip() or "connector-admin",
        "ADMIN_SESSION_LIFETIME": _number(env, "ADMIN_SESSION_LIFETIME", 8 * 3600.0),
        "ADMIN_LOGIN_MAX_FAILURES": int(_number(env, "ADMIN_LOGIN_MAX_FAILURES", 10)),
        "ADMIN_DEMO_LOGIN": demo,
        "TRUSTED_PROXY_HOPS": int(raw_hops),
    }


def load_config(env: Mapping[str, str] | None = None, *, testing: bool = False) -> dict:
    """Build the Flask config mapping from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    demo = _flag(env, "CONNECTOR_DEMO")

    raw_base_url = env.get("PUBLIC_BASE_URL", "").strip() or ("http://127.0.0.1:5000" if demo else "")
    if not raw_base_url:
        raise ConfigError("PUBLIC_BASE_URL: required (the service's external URL)")
    base_url = _base_url(raw_base_url)

    secret_key = env.get("SECRET_KEY", "").strip()
    if not secret_key:
        if not (demo or testing):
            raise ConfigError("SECRET_KEY: required outside demo/testing")
        secret_key = os.urandom(32).hex()
    elif len(secret_key) < 32 and not (demo or testing):
        raise ConfigError("SECRET_KEY: use at least 32 random characters")

    demo_issuer = f"{base_url}/demo/issuer/" if demo else None
    audience = env.get("AUTH0_AUDIENCE", "").strip() or (DEMO_AUDIENCE if demo else "")
    if not audience:
        raise ConfigError("AUTH0_AUDIENCE: required")

    raw_keys = env.get("TOKEN_ENCRYPTION_KEYS", "").strip() or (DEMO_ENCRYPTION_KEY if demo else "")
    return_urls = env.get("CONNECT_ALLOWED_RETURN_URLS", "").strip() or (f"{base_url}/demo/spa" if demo else "")
    if not return_urls:
        raise ConfigError("CONNECT_ALLOWED_RETURN_URLS: required (comma-separated URLs)")

    providers_file = env.get("CONNECTOR_PROVIDERS_FILE", "").strip() or None
    if providers_file and not os.path.isfile(providers_file):
        raise ConfigError(f"CONNECTOR_PROVIDERS_FILE: no such file {providers_file!r}")

    jwks_url = env.get("AUTH0_JWKS_URL", "").strip() or None
    if jwks_url and (urlsplit(jwks_url).scheme not in ("http", "https") or not urlsplit(jwks_url).hostname):
        raise ConfigError(f"AUTH0_JWKS_URL: expected an absolute URL, got {jwks_url!r}")

    database_url = env.get("DATABASE_URL", "").strip() or None
    if database_url:
        try:
            make_url(database_url).get_dialect()
        except ArgumentError:  # (our own messages: SQLAlchemy's may echo the URL, password included)
            raise ConfigError("DATABASE_URL: not a database URL; use dialect+driver://user:pass@host/db") from None
        except NoSuchModuleError:
            raise ConfigError("DATABASE_URL: unknown database dialect or driver "
                              "(e.g. postgresql+psycopg://..., sqlite:///path)") from None

    return {
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PUBLIC_BASE_URL": base_url,
        "AUTH0_ISSUER": _issuer(env, demo_issuer),
        "AUTH0_AUDIENCE": audience,
        "AUTH0_JWKS_URL": jwks_url,
        "TOKEN_ENCRYPTION_KEYS": parse_encryption_keys(raw_keys),
        "CONNECT_ALLOWED_RETURN_URLS": [u.strip() for u in return_urls.split(",") if u.strip()],
        "CONNECTOR_PROVIDERS_FILE": providers_file,
        "PROVIDER_CONNECT_TIMEOUT": _number(env, "PROVIDER_CONNECT_TIMEOUT", 3.05),
        "PROVIDER_READ_TIMEOUT": _number(env, "PROVIDER_READ_TIMEOUT", 10.0),
        "JWKS_REFETCH_COOLDOWN": _number(env, "JWKS_REFETCH_COOLDOWN", 60.0),
        "VAULT_MIN_TTL": _number(env, "VAULT_MIN_TTL", 60.0),
        "REFRESH_BACKOFF_BASE": _number(env, "REFRESH_BACKOFF_BASE", 5.0),
        "REFRESH_BACKOFF_MAX": _number(env, "REFRESH_BACKOFF_MAX", 900.0),
        "PROXY_MAX_BODY_BYTES": int(_number(env, "PROXY_MAX_BODY_BYTES", 1024 * 1024)),
        "CONNECTOR_DEMO": demo,
        # Credentials are read per provider by the registry (``<NAME>_CLIENT_ID``).
        "PROVIDER_CREDENTIALS_ENV": {k: v for k, v in env.items() if k.endswith(("_CLIENT_ID", "_CLIENT_SECRET"))},
        "MAX_CONTENT_LENGTH": 64 * 1024,
        **_admin(env, demo),
        **_observability(env),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "hide_parameters": True},  # no ciphertext in logs
    }


def _observability(env: Mapping[str, str]) -> dict:
    log_format = env.get("LOG_FORMAT", "").strip().lower() or "text"
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT: expected text or json, got {log_format!r}")
    metrics_token = env.get("METRICS_TOKEN", "").strip() or None
    if metrics_token and len(metrics_token) < 16:
        raise ConfigError("METRICS_TOKEN: use at least 16 random characters (or leave it unset: /metrics is off)")
    # prometheus_client reads it itself (several processes: gunicorn workers, the CLI worker); a missing
    # directory would fail every request that moves a metric, so it is checked here.
    multiproc_dir = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if multiproc_dir and not (os.path.isdir(multiproc_dir) and os.access(multiproc_dir, os.W_OK)):
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR: {multiproc_dir!r} is not a writable directory")
    # Traces: on when an OpenTelemetry exporter is configured (the SDK reads the OTEL_* variables itself).
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    tracing = exporter not in ("", "none") or (bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())
                                               and exporter != "none")
    if exporter not in ("", "none", "otlp", "console"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER: expected otlp, console or none, got {exporter!r}")
    return {"LOG_FORMAT": log_format, "METRICS_TOKEN": metrics_token, "TRACING": tracing}
