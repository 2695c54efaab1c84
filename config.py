"""Configuration from environment variables, validated once at start-up.

Every problem is one line that names the variable; all of them are reported at once, in one
``ConfigError``, so an operator fixes the environment in one pass. No line echoes a secret's value
or a URL's password. Nothing else lives here.
"""
from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Publicly known values, used only in demo mode, which says so loudly.
DEMO_ENCRYPTION_KEY = "demo:" + base64.b64encode(b"demo-key-never-use-in-production").decode()
DEMO_AUDIENCE = "https://connector.demo/api"


# A URL's user-info (``//user:password@``) never reaches a message, whatever the value looked like.
URL_CREDENTIALS_RE = re.compile(r"(?<=//)[^/@\s'\"]*@")


class ConfigError(Exception):
    """Missing or malformed settings: one line per problem, each starting with the variable's name."""

    def __init__(self, *problems: str) -> None:
        self.problems = [URL_CREDENTIALS_RE.sub("***@", line) for line in problems]
        super().__init__("\n".join(self.problems))


class _Problems:
    """Collects the problems of every variable, so they are reported together."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def check(self, parse: Callable, *args, **kwargs):
        """``parse(*args)``, or None after recording its problems."""
        try:
            return parse(*args, **kwargs)
        except ConfigError as exc:
            self.lines.extend(exc.problems)
            return None

    def add(self, line: str) -> None:
        self.lines.append(line)

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(*self.lines)


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


def _admin(env: Mapping[str, str], demo: bool, problems: _Problems) -> dict:
    client_id = env.get("ADMIN_CLIENT_ID", "").strip()
    client_secret = env.get("ADMIN_CLIENT_SECRET", "").strip()
    if bool(client_id) != bool(client_secret):
        problems.add("ADMIN_CLIENT_ID: set both ADMIN_CLIENT_ID and ADMIN_CLIENT_SECRET, or neither")
    subs = [s.strip() for s in env.get("ADMIN_SUBS", "").split(",") if s.strip()]
    role_claim = env.get("ADMIN_ROLE_CLAIM", "").strip() or None
    if client_id and client_secret and not (subs or role_claim):
        problems.add("ADMIN_SUBS: set ADMIN_SUBS or ADMIN_ROLE_CLAIM, or no one can use the admin console")
    raw_hops = env.get("TRUSTED_PROXY_HOPS", "").strip() or "0"
    if not raw_hops.isdigit() or int(raw_hops) > 5:
        problems.add(f"TRUSTED_PROXY_HOPS: expected a whole number 0-5, got {raw_hops!r}")
        raw_hops = "0"
    max_failures = problems.check(_number, env, "ADMIN_LOGIN_MAX_FAILURES", 10)
    return {
        "ADMIN_CLIENT_ID": client_id or None,
        "ADMIN_CLIENT_SECRET": client_secret or None,
        "ADMIN_SUBS": subs,
        "ADMIN_ROLE_CLAIM": role_claim,
        "ADMIN_ROLE": env.get("ADMIN_ROLE", "").strip() or "connector-admin",
        "ADMIN_SESSION_LIFETIME": problems.check(_number, env, "ADMIN_SESSION_LIFETIME", 8 * 3600.0),
        "ADMIN_LOGIN_MAX_FAILURES": int(max_failures or 0),
        "ADMIN_DEMO_LOGIN": demo,
        "TRUSTED_PROXY_HOPS": int(raw_hops),
    }


def _links(env: Mapping[str, str], problems) -> dict:
    """Reconnect links (issue 15): on when the admin console's Auth0 client and this are set."""
    default_return = env.get("CONNECT_LINK_DEFAULT_RETURN_URL", "").strip() or None
    return {
        "CONNECT_LINK_DEFAULT_RETURN_URL": default_return,
        "CONNECT_LINK_TTL": problems.check(_number, env, "CONNECT_LINK_TTL", 7 * 24 * 3600.0),
        "REFRESH_TOKEN_EXPIRY_WARNING": problems.check(_number, env, "REFRESH_TOKEN_EXPIRY_WARNING", 7 * 24 * 3600.0),
    }


def _webhooks(env: Mapping[str, str]) -> dict:
    """Webhook delivery and the worker (app/events, app/worker.py)."""
    url = env.get("WEBHOOK_URL", "").strip() or None
    secrets = [s.strip() for s in env.get("WEBHOOK_SECRET", "").split(",") if s.strip()]
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise ConfigError("WEBHOOK_URL: expected an absolute https URL without credentials")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ConfigError("WEBHOOK_URL: plain http is only allowed on a loopback host; use https")
        if not secrets:
            raise ConfigError("WEBHOOK_SECRET: required with WEBHOOK_URL (make one: connector generate-webhook-secret)")
    for secret in secrets:
        encoded = secret.removeprefix("whsec_")
        try:
            raw = base64.b64decode(encoded, validate=True) if secret.startswith("whsec_") else b""
        except ValueError:
            raw = b""
        if len(raw) < 24:
            raise ConfigError("WEBHOOK_SECRET: each secret must be whsec_ and the base64 of at least 24 random bytes")
    return {
        "WEBHOOK_URL": url,
        "WEBHOOK_SECRETS": secrets,
        "WEBHOOK_BACKOFF_BASE": _number(env, "WEBHOOK_BACKOFF_BASE", 5.0),
        "WEBHOOK_BACKOFF_MAX": _number(env, "WEBHOOK_BACKOFF_MAX", 3600.0),
        "WEBHOOK_TIMEOUT": _number(env, "WEBHOOK_TIMEOUT", 10.0),
        "WEBHOOK_MAX_ATTEMPTS": int(_number(env, "WEBHOOK_MAX_ATTEMPTS", 34)),
        "WORKER_INTERVAL": _number(env, "WORKER_INTERVAL", 5.0),
        "REFRESH_FAILING_AFTER": int(_number(env, "REFRESH_FAILING_AFTER", 3)),
    }


def _public_base_url(env: Mapping[str, str], demo: bool) -> str:
    raw = env.get("PUBLIC_BASE_URL", "").strip() or ("http://127.0.0.1:5000" if demo else "")
    if not raw:
        raise ConfigError("PUBLIC_BASE_URL: required (the service's external URL)")
    base_url = _base_url(raw)
    if demo and urlsplit(base_url).hostname not in LOOPBACK_HOSTS:
        # Demo mode lets anyone sign in as administrator, and its secrets are public.
        raise ConfigError("CONNECTOR_DEMO: demo mode runs only on a loopback PUBLIC_BASE_URL "
                          "(e.g. http://127.0.0.1:5000): anyone can sign in as administrator in it")
    return base_url


def _secret_key(env: Mapping[str, str], relaxed: bool) -> str:
    secret_key = env.get("SECRET_KEY", "").strip()
    if not secret_key:
        if not relaxed:
            raise ConfigError("SECRET_KEY: required outside demo/testing")
        return os.urandom(32).hex()
    if len(secret_key) < 32 and not relaxed:
        raise ConfigError("SECRET_KEY: use at least 32 random characters")
    return secret_key


def _required(env: Mapping[str, str], name: str, default: str, hint: str = "") -> str:
    value = env.get(name, "").strip() or default
    if not value:
        raise ConfigError(f"{name}: required{hint}")
    return value


def _absolute_url(env: Mapping[str, str], name: str) -> str | None:
    url = env.get(name, "").strip() or None
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        raise ConfigError(f"{name}: expected an absolute URL, got {url!r}")
    return url


def database_url(raw: str | None) -> str | None:
    """The SQLAlchemy URL for ``DATABASE_URL``; ``postgres://`` and ``postgresql://`` (what hosts hand out)
    use the installed driver, psycopg 3. Messages never echo the URL: it may carry a password."""
    if not raw:
        return None
    try:
        url = make_url(raw)
        if url.drivername in ("postgres", "postgresql"):
            url = url.set(drivername="postgresql+psycopg")
        url.get_dialect()
    except ArgumentError:  # (our own messages: SQLAlchemy's may echo the URL, password included)
        raise ConfigError("DATABASE_URL: not a database URL; use dialect+driver://user:pass@host/db") from None
    except NoSuchModuleError:
        raise ConfigError("DATABASE_URL: unknown database dialect or driver "
                          "(e.g. postgresql://..., sqlite:///path)") from None
    return url.render_as_string(hide_password=False)


def _providers(env: Mapping[str, str], providers_file: str | None, return_urls: str | None) -> None:
    """What the app checks again when it builds its parts, checked here too so it comes in the same report:
    the providers file, the return URLs, and each provider's credentials (both, or neither)."""
    from app.connect.return_url import ReturnUrlPolicy
    from app.providers.registry import load_specs
    from app.providers.spec import SpecError

    problems = _Problems()
    if return_urls:
        try:
            ReturnUrlPolicy([u.strip() for u in return_urls.split(",") if u.strip()])
        except ValueError as exc:
            problems.add(f"CONNECT_ALLOWED_RETURN_URLS: {exc}")
    try:
        names = sorted(load_specs(providers_file))
    except SpecError as exc:
        problems.add(f"CONNECTOR_PROVIDERS_FILE: {exc}")
        names = []
    for name in names:
        client_id, secret = f"{name.upper()}_CLIENT_ID", f"{name.upper()}_CLIENT_SECRET"
        has_id, has_secret = bool(env.get(client_id, "").strip()), bool(env.get(secret, "").strip())
        if has_id != has_secret:
            missing, present = (secret, client_id) if has_id else (client_id, secret)
            problems.add(f"{missing}: required when {present} is set (set both to enable {name}, or neither)")
    problems.raise_if_any()


def load_config(env: Mapping[str, str] | None = None, *, testing: bool = False) -> dict:
    """Build the Flask config mapping from ``env`` (default: ``os.environ``); ``ConfigError`` lists every problem."""
    env = os.environ if env is None else env
    problems = _Problems()
    demo = bool(problems.check(_flag, env, "CONNECTOR_DEMO"))
    base_url = problems.check(_public_base_url, env, demo)
    secret_key = problems.check(_secret_key, env, demo or testing)
    # Demo defaults hang off the base URL; when it is broken, a demo reports that one problem, not its echoes.
    demo_base = base_url or "http://127.0.0.1:5000"
    issuer = problems.check(_issuer, env, f"{demo_base}/demo/issuer/" if demo else None)
    audience = problems.check(_required, env, "AUTH0_AUDIENCE", DEMO_AUDIENCE if demo else "")
    keys = problems.check(parse_encryption_keys, env.get("TOKEN_ENCRYPTION_KEYS", "").strip()
                          or (DEMO_ENCRYPTION_KEY if demo else ""))
    return_urls = problems.check(_required, env, "CONNECT_ALLOWED_RETURN_URLS",
                                 f"{demo_base}/demo/spa" if demo else "", " (comma-separated URLs)")
    providers_file = env.get("CONNECTOR_PROVIDERS_FILE", "").strip() or None
    if providers_file and not os.path.isfile(providers_file):
        problems.add(f"CONNECTOR_PROVIDERS_FILE: no such file {providers_file!r}")
        providers_file = None
    problems.check(_providers, env, providers_file, return_urls)
    jwks_url = problems.check(_absolute_url, env, "AUTH0_JWKS_URL")
    db_url = problems.check(database_url, env.get("DATABASE_URL", "").strip() or None)
    numbers = {name: problems.check(_number, env, name, default) for name, default in (
        ("PROVIDER_CONNECT_TIMEOUT", 3.05), ("PROVIDER_READ_TIMEOUT", 10.0), ("JWKS_REFETCH_COOLDOWN", 60.0),
        ("VAULT_MIN_TTL", 60.0), ("VAULT_STORE_DEADLINE", 120.0), ("REFRESH_BACKOFF_BASE", 5.0),
        ("REFRESH_BACKOFF_MAX", 900.0), ("PROXY_MAX_BODY_BYTES", 1024 * 1024))}
    admin = _admin(env, demo, problems)
    links = _links(env, problems)
    webhooks = problems.check(_webhooks, env) or {}
    observability = problems.check(_observability, env) or {}
    problems.raise_if_any()

    return {
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "PUBLIC_BASE_URL": base_url,
        "AUTH0_ISSUER": issuer,
        "AUTH0_AUDIENCE": audience,
        "AUTH0_JWKS_URL": jwks_url,
        "TOKEN_ENCRYPTION_KEYS": keys,
        "CONNECT_ALLOWED_RETURN_URLS": [u.strip() for u in return_urls.split(",") if u.strip()],
        "CONNECTOR_PROVIDERS_FILE": providers_file,
        **numbers,
        "PROXY_MAX_BODY_BYTES": int(numbers["PROXY_MAX_BODY_BYTES"]),
        "CONNECTOR_DEMO": demo,
        # Credentials are read per provider by the registry (``<NAME>_CLIENT_ID``).
        "PROVIDER_CREDENTIALS_ENV": {k: v for k, v in env.items() if k.endswith(("_CLIENT_ID", "_CLIENT_SECRET"))},
        "MAX_CONTENT_LENGTH": 64 * 1024,
        **admin,
        **links,
        **webhooks,
        **observability,
        # No ciphertext in logs. No pre-ping (a round trip per checkout): a connection the server closed
        # is replaced at checkout (app.db_liveness, no round trip); one found dead by its statement
        # invalidates the pool (every older connection is replaced at its next checkout), and the hot
        # reads retry once on a fresh connection (app.db_read); elsewhere that request is a 503.
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True},
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
