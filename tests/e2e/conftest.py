"""End-to-end harness: every party except the connector is real software we did not write.

Session-scoped (started once, stopped at the end):
    provider   oidc-provider as the third-party OAuth/OIDC provider (parties.start_provider)
    auth0      oidc-provider as the Auth0 stand-in (parties.start_auth0): SPA client, M2M client and the
               admin console's web client (admin_client_id/_secret; auth0|<admin_username> is in ADMIN_SUBS)
    spa        the test SPA page on its own origin (tests/e2e/spa/), signs in at `auth0`
    attacker   a static page on yet another origin (connect-CSRF)
    database   a fresh database: PostgreSQL (TEST_DATABASE_URL) or SQLite; migrated with `flask db upgrade`
    service    the connector under gunicorn, configured only by environment variables
    db         SQLAlchemy access to the service's database, for assertions
    browser    headless Debian Chromium (Playwright)
Function-scoped:
    context / new_context   fresh browser contexts (no shared cookies), closed after the test
    page                    a page in `context`
    username                a username unique to the test (sub at the stand-in: auth0|<username>)
    user_token              callable(username) -> a user's Auth0 access token without a browser

On a failing test the log tails of the parties, gunicorn and the browser console are attached
to the report. Missing node/oidc-provider/Chromium/Playwright skips the suite, or fails it when CI=true.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests

from tests.gunicorn_service import wait_until  # one bounded poll for every test that starts a process

try:  # tests/e2e may or may not become a package
    from . import browser as browser_mod
    from . import parties
except ImportError:
    import browser as browser_mod
    import parties

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
SPA_DIR = E2E_DIR / "spa"

AUDIENCE = "https://connector.e2e/api"
PROVIDER_NAME = "acme"  # the e2e provider's name in the providers file (its client_secret_basic client)
POST_PROVIDER_NAME = "acme_post"  # the same provider through its client_secret_post client
DOWN_PROVIDER_NAME = "acme_down"  # an OpenID provider whose issuer does not answer (discovery fails)
DEAD_TOKEN_PROVIDER_NAME = "acme_dead_token"  # the provider's authorize endpoint, a token URL nobody serves
TENANT_PROVIDER_NAME = "acme_tenant"  # the provider behind per-tenant URLs: /{subdomain}/... (tenant_front)
TENANT_SUBDOMAIN_PATTERN = "[a-z0-9][a-z0-9-]{0,62}"
PROVIDER_SCOPES = ["openid", "profile", "offline_access", "api:read"]
# The same provider again, asking only for what a refresh token needs unless the app asks for more
# (incremental authorization, tests/e2e/test_scopes.py).
SCOPED_PROVIDER_NAME = "acme_scoped"
SCOPED_PROVIDER_SCOPES = ["openid", "offline_access"]
# The entry schema wants the default scopes among the allowed ones.
SCOPED_PROVIDER_ALLOWED = [*SCOPED_PROVIDER_SCOPES, "profile", "email", "api:read"]
# The same again, declaring what oidc-provider does: revoking any token of a grant ends the grant, and
# a second authorization in the same browser session extends the grant it already made.
SCOPED_GRANT_PROVIDER_NAME = "acme_scoped_grant"
PROVIDER_ACCESS_TOKEN_TTL = 60  # seconds; the vault refreshes when asked for a longer min_ttl

# name -> callable returning a log tail, attached to failing tests' reports
_LOG_SOURCES: dict[str, Callable[[], str]] = {}


# ---------------------------------------------------------------- requirements and reporting


def _requirements_missing() -> str | None:
    if reason := parties.node_available():
        return reason
    if reason := browser_mod.chromium_available():
        return reason
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    for tool in ("gunicorn", "flask"):
        if not os.access(VENV_BIN / tool, os.X_OK):
            return f"{VENV_BIN / tool} is missing (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="session")
def e2e_requirements() -> None:
    """Skip the suite when a party cannot run here; in CI that is a failure instead."""
    if reason := _requirements_missing():
        if parties.in_ci():
            pytest.fail(f"e2e suite cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def serve_demo(tmp_path, e2e_requirements):
    """``serve_demo(seed, **env)``: the demo app in-process on a loopback port, on SQLite, its tables
    created and ``seed()`` run in an app context; returns the base URL. Stopped after the test."""
    from werkzeug.serving import make_server

    from app import create_app
    from app.extensions import db

    running = []

    def serve(seed: Callable[[], None], **env: str) -> str:
        slot: dict = {}
        server = make_server("127.0.0.1", 0, lambda environ, start: slot["app"](environ, start), threaded=True)
        base_url = f"http://127.0.0.1:{server.server_port}"
        app = create_app(test_config={"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/demo.db",
                                      "DEMO_STATE_DIR": str(tmp_path / "state")},
                         env={"CONNECTOR_DEMO": "1", "PUBLIC_BASE_URL": base_url, **env})
        with app.app_context():
            db.create_all()
            seed()
            db.session.commit()
        slot["app"] = app
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread, app))
        return base_url

    yield serve
    for server, thread, app in running:
        server.shutdown()
        thread.join(5)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _LOG_SOURCES:
        for name, tail in list(_LOG_SOURCES.items()):
            try:
                text = tail()
            except Exception as exc:  # a dead party must not hide the real failure
                text = f"(log unavailable: {exc!r})"
            report.sections.append((f"e2e log tail: {name}", text or "(empty)"))
    return report


def file_tail(path: Path, n: int = 60) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=n))
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------- static sites (SPA, attacker)


class StaticSite:
    """A threaded http.server on 127.0.0.1:<free port> serving `routes` (path -> file or callable)."""

    def __init__(self, name: str, routes: dict[str, Path | Callable[[], tuple[str, bytes]]]):
        self.name = name
        self.routes = routes
        self.hits: deque[str] = deque(maxlen=200)
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = urlsplit(self.path).path
                site.hits.append(f"GET {path}")  # no query: it may carry codes
                target = site.routes.get(path)
                if target is None:
                    self.send_error(404)
                    return
                if callable(target):
                    content_type, body = target()
                else:
                    content_type = "text/html" if target.suffix == ".html" else "text/javascript"
                    body = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"{name}-http", daemon=True)
        self.thread.start()

    def log_tail(self) -> str:
        return "\n".join(list(self.hits)[-30:])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Spa(StaticSite):
    """The test SPA: `/` signs in, `/callback` finishes the sign-in, `/settings` is the return URL."""

    def __init__(self):
        self.config: dict = {}
        index = SPA_DIR / "index.html"
        super().__init__("spa", {
            "/": index, "/callback": index, "/settings": index, "/settings/integrations": index,
            "/spa.js": SPA_DIR / "spa.js",
            "/config.js": lambda: ("text/javascript", f"window.SPA_CONFIG = {json.dumps(self.config)};".encode()),
        })
        self.redirect_uri = self.origin + "/callback"
        self.return_url = self.origin + "/settings"


@pytest.fixture(scope="session")
def spa(e2e_requirements):
    site = Spa()
    _LOG_SOURCES["spa requests"] = site.log_tail
    yield site
    _LOG_SOURCES.pop("spa requests", None)
    site.stop()


@pytest.fixture(scope="session")
def attacker(e2e_requirements):
    """Another origin: `/` is a page that auto-submits the start form from its fragment."""
    site = StaticSite("attacker", {"/": SPA_DIR / "attacker.html"})
    yield site
    site.stop()


# ---------------------------------------------------------------- parties


@pytest.fixture(scope="session")
def service_port(e2e_requirements) -> int:
    # Needed before the provider starts (its client's redirect URI); gunicorn binds it later.
    return parties.free_port()


@pytest.fixture(scope="session")
def provider(tmp_path_factory, service_port):
    party = parties.start_provider(
        tmp_path_factory.mktemp("provider"),
        # Each provider its own redirect URI at the service: /connect/callback/<name>.
        redirect_uri={"basic": [f"http://127.0.0.1:{service_port}/connect/callback/{name}"
                                for name in (PROVIDER_NAME, DEAD_TOKEN_PROVIDER_NAME, TENANT_PROVIDER_NAME,
                                             SCOPED_PROVIDER_NAME, SCOPED_GRANT_PROVIDER_NAME)],
                      "post": f"http://127.0.0.1:{service_port}/connect/callback/{POST_PROVIDER_NAME}"},
        access_token_ttl=PROVIDER_ACCESS_TOKEN_TTL,
    )
    party.connector_name = PROVIDER_NAME  # its client: party.client (client_secret_basic)
    party.client = party.clients["basic"]
    party.post_connector_name = POST_PROVIDER_NAME  # the same provider with party.clients["post"]
    party.down_connector_name = DOWN_PROVIDER_NAME  # configured too, but its issuer does not answer
    party.dead_token_connector_name = DEAD_TOKEN_PROVIDER_NAME  # its authorize page, a token URL that is down
    party.scoped_connector_name = SCOPED_PROVIDER_NAME  # its basic client, few default scopes
    party.scoped_grant_connector_name = SCOPED_GRANT_PROVIDER_NAME  # the same, revocation_revokes_grant = true
    _LOG_SOURCES["provider (oidc-provider)"] = party.log_tail
    yield party
    _LOG_SOURCES.pop("provider (oidc-provider)", None)
    party.stop()


ADMIN_USERNAME = "e2e-admin"  # ADMIN_SUBS = auth0|e2e-admin


@pytest.fixture(scope="session")
def auth0(tmp_path_factory, spa, service_port):
    # A regular web application for the admin console, as an operator registers it at Auth0.
    admin_client = {"client_id": "auth0-admin", "client_secret": secrets.token_urlsafe(24),
                    "redirect_uris": [f"http://127.0.0.1:{service_port}/admin/callback",
                                      f"http://127.0.0.1:{service_port}/link/callback"],  # reconnect links
                    "token_endpoint_auth_method": "client_secret_basic"}
    party = parties.start_auth0(tmp_path_factory.mktemp("auth0"), audience=AUDIENCE,
                                spa_redirect_uri=spa.redirect_uri, extra_clients=[admin_client])
    party.admin_client_id, party.admin_client_secret = admin_client["client_id"], admin_client["client_secret"]
    party.admin_username = ADMIN_USERNAME
    _LOG_SOURCES["auth0 stand-in (oidc-provider)"] = party.log_tail
    yield party
    _LOG_SOURCES.pop("auth0 stand-in (oidc-provider)", None)
    party.stop()


# ---------------------------------------------------------------- database


def _psycopg_dsn(sqlalchemy_url) -> str:
    return sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database(tmp_path_factory, e2e_requirements) -> str:
    """A fresh, empty database URL for this run (dropped at the end)."""
    from sqlalchemy.engine import make_url

    test_url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not test_url or os.environ.get("E2E_DATABASE", "").lower() == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'connector.db'}"
        return

    import psycopg

    admin_url = make_url(test_url)
    name = f"e2e_{secrets.token_hex(6)}"
    with psycopg.connect(_psycopg_dsn(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_psycopg_dsn(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- the service


@dataclass
class Service:
    base_url: str
    env: dict[str, str] = field(repr=False)  # secrets: keep them out of assertion output
    database_url: str
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, n: int = 80) -> str:
        return file_tail(self.log_path, n)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def flask(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """`flask --app wsgi <args>` with the service's environment (operator commands)."""
        result = subprocess.run(
            [str(VENV_BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"flask {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


def _base_process_env() -> dict[str, str]:
    """Only what a process needs to run; nothing from the developer's connector settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {k: os.environ[k] for k in keep if k in os.environ}


@pytest.fixture(scope="session")
def tenant_front(provider):
    """The provider's endpoints under /<tenant>/ on their own port; only the tenant "acme" exists."""
    try:
        from .tenant_front import TenantFront
    except ImportError:
        from tenant_front import TenantFront

    authorize_path = urlsplit(provider.discovery()["authorization_endpoint"]).path
    front = TenantFront(provider.base_url, authorize_path)
    front.connector_name = TENANT_PROVIDER_NAME
    yield front
    front.stop()


def _tenant_toml(provider, front) -> list[str]:
    """A Zendesk-like entry: every URL carries the connection's {subdomain}, declared with its pattern."""
    def at_tenant(url: str) -> str:
        return front.url + "/{subdomain}" + urlsplit(url).path

    discovery = provider.discovery()
    return [
        f"[{TENANT_PROVIDER_NAME}]", 'display_name = "Acme, per tenant"',
        "params = { subdomain = { pattern = " + json.dumps(TENANT_SUBDOMAIN_PATTERN)
        + ', source = "connect", description = "your Acme subdomain" } }',
        f"authorize_url = {json.dumps(at_tenant(discovery['authorization_endpoint']))}",
        f"token_url = {json.dumps(at_tenant(discovery['token_endpoint']))}",
        f"revocation_url = {json.dumps(at_tenant(discovery['revocation_endpoint']))}",
        'revocation_style = "rfc7009"',
        f"api_base_url = {json.dumps(front.url + '/{subdomain}/api/')}",
        f"scopes = {json.dumps(PROVIDER_SCOPES)}", "",
    ]


def _providers_toml(provider, front=None) -> str:
    # Exactly what an operator writes for an OpenID provider: the issuer (discovery does the
    # rest), the scopes to ask for, and the API base URL for the proxy.
    entry = [
        f"issuer = {json.dumps(provider.issuer)}",
        f"scopes = {json.dumps(PROVIDER_SCOPES)}",
        f"api_base_url = {json.dumps(provider.base_url + '/api/')}",
    ]
    return "\n".join([
        f"[{PROVIDER_NAME}]", 'display_name = "Acme (oidc-provider)"', *entry, "",
        f"[{POST_PROVIDER_NAME}]", 'display_name = "Acme, client_secret_post"', *entry,
        'client_auth = "client_secret_post"', "",
        f"[{DOWN_PROVIDER_NAME}]", 'display_name = "Acme (down)"',
        f"issuer = {json.dumps(f'http://127.0.0.1:{parties.free_port()}/')}",  # nothing listens there
        f"scopes = {json.dumps(PROVIDER_SCOPES)}", "",
        f"[{DEAD_TOKEN_PROVIDER_NAME}]", 'display_name = "Acme (token endpoint down)"',
        f"authorize_url = {json.dumps(provider.discovery()['authorization_endpoint'])}",
        f"token_url = {json.dumps(f'http://127.0.0.1:{parties.free_port()}/token')}",  # nothing listens there
        f"scopes = {json.dumps(PROVIDER_SCOPES)}", "",
        *(_tenant_toml(provider, front) if front is not None else []),
        f"[{SCOPED_PROVIDER_NAME}]", 'display_name = "Acme, scopes on demand"',
        f"issuer = {json.dumps(provider.issuer)}",
        f"scopes = {json.dumps(SCOPED_PROVIDER_SCOPES)}",
        f"allowed_scopes = {json.dumps(SCOPED_PROVIDER_ALLOWED)}",
        f"api_base_url = {json.dumps(provider.base_url + '/api/')}", "",
        f"[{SCOPED_GRANT_PROVIDER_NAME}]", 'display_name = "Acme, scopes on demand, grant-wide revocation"',
        f"issuer = {json.dumps(provider.issuer)}",
        f"scopes = {json.dumps(SCOPED_PROVIDER_SCOPES)}",
        f"allowed_scopes = {json.dumps(SCOPED_PROVIDER_ALLOWED)}",
        "revocation_revokes_grant = true", "",
    ])


class WebhookReceiver:
    """A company's webhook endpoint on 127.0.0.1:<free port>: records every POST (headers and raw body)
    and answers 204. Its secret is the service's WEBHOOK_SECRET."""

    def __init__(self):
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/connector"
        threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True).start()

    def events(self) -> list[dict]:
        """Every event received, each verified with the standardwebhooks library (not our code)."""
        from standardwebhooks.webhooks import Webhook

        verifier = Webhook(self.secret)
        return [verifier.verify(body, headers) | {"webhook-id": headers["webhook-id"]}
                for headers, body in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def webhooks():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def service(tmp_path_factory, service_port, provider, auth0, spa, database, webhooks, tenant_front):
    workdir = tmp_path_factory.mktemp("service")
    providers_file = workdir / "providers.toml"
    providers_file.write_text(_providers_toml(provider, tenant_front))
    base_url = f"http://127.0.0.1:{service_port}"
    env = {
        **_base_process_env(),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "AUTH0_ISSUER": auth0.issuer,
        "AUTH0_AUDIENCE": AUDIENCE,
        "PUBLIC_BASE_URL": base_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TOKEN_ENCRYPTION_KEYS": "e2e:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "CONNECT_ALLOWED_RETURN_URLS": spa.return_url,
        "CONNECTOR_PROVIDERS_FILE": str(providers_file),
        f"{PROVIDER_NAME.upper()}_CLIENT_ID": provider.client["client_id"],
        f"{PROVIDER_NAME.upper()}_CLIENT_SECRET": provider.client["client_secret"],
        f"{POST_PROVIDER_NAME.upper()}_CLIENT_ID": provider.clients["post"]["client_id"],
        f"{POST_PROVIDER_NAME.upper()}_CLIENT_SECRET": provider.clients["post"]["client_secret"],
        f"{DEAD_TOKEN_PROVIDER_NAME.upper()}_CLIENT_ID": provider.client["client_id"],
        f"{DEAD_TOKEN_PROVIDER_NAME.upper()}_CLIENT_SECRET": provider.client["client_secret"],
        f"{TENANT_PROVIDER_NAME.upper()}_CLIENT_ID": provider.client["client_id"],
        f"{TENANT_PROVIDER_NAME.upper()}_CLIENT_SECRET": provider.client["client_secret"],
        f"{SCOPED_PROVIDER_NAME.upper()}_CLIENT_ID": provider.client["client_id"],
        f"{SCOPED_PROVIDER_NAME.upper()}_CLIENT_SECRET": provider.client["client_secret"],
        f"{SCOPED_GRANT_PROVIDER_NAME.upper()}_CLIENT_ID": provider.client["client_id"],
        f"{SCOPED_GRANT_PROVIDER_NAME.upper()}_CLIENT_SECRET": provider.client["client_secret"],
        f"{DOWN_PROVIDER_NAME.upper()}_CLIENT_ID": "down-client",
        f"{DOWN_PROVIDER_NAME.upper()}_CLIENT_SECRET": "down-secret",
        "DATABASE_URL": database,
        "ADMIN_CLIENT_ID": auth0.admin_client_id,
        "ADMIN_CLIENT_SECRET": auth0.admin_client_secret,
        "ADMIN_SUBS": f"auth0|{auth0.admin_username}",
        "CONNECT_LINK_DEFAULT_RETURN_URL": spa.return_url,
        "PROVIDER_READ_TIMEOUT": "5",
        "WEBHOOK_URL": webhooks.url,  # delivered when a test runs the worker (`connector worker --once`)
        "WEBHOOK_SECRET": webhooks.secret,
    }
    svc = Service(base_url, env, database, workdir / "gunicorn.log")
    svc.flask("db", "upgrade", timeout=120)

    log = open(svc.log_path, "a", buffering=1, encoding="utf-8")
    svc.proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "--workers", "2", "--threads", "4", "--worker-class", "gthread",
         "--bind", f"127.0.0.1:{service_port}", "--timeout", "30", "--graceful-timeout", "5",
         "--error-logfile", "-", "--log-level", "info",
         "--no-control-socket",  # no shared ~/.gunicorn/gunicorn.ctl with other gunicorns on this host
         "wsgi:app"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    _LOG_SOURCES["service (gunicorn)"] = svc.log_tail

    def healthy() -> bool:
        if svc.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {svc.proc.returncode}:\n{svc.log_tail()}")
        try:
            return requests.get(svc.url("/healthz"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.2, what="gunicorn /healthz")
        spa.config.update({
            "serviceUrl": base_url,
            "provider": PROVIDER_NAME,
            "returnUrl": spa.return_url,
            "redirectUri": spa.redirect_uri,
            "clientId": auth0.spa_client_id,
            "audience": AUDIENCE,
            "issuer": auth0.issuer,
            "authorizationEndpoint": auth0.discovery()["authorization_endpoint"],
            "tokenEndpoint": auth0.token_endpoint,
        })
        yield svc
    finally:
        _LOG_SOURCES.pop("service (gunicorn)", None)
        svc.proc.terminate()
        try:
            svc.proc.wait(15)
        except subprocess.TimeoutExpired:
            svc.proc.kill()
            svc.proc.wait(5)
        log.close()


@pytest.fixture(autouse=True)
def _service_log_stays_clean(request):
    """A test that makes the service log a traceback or an error fails, even if its assertions pass."""
    if "service" not in request.fixturenames:
        yield
        return
    svc = request.getfixturevalue("service")
    start = svc.log_path.stat().st_size
    yield
    with open(svc.log_path, encoding="utf-8", errors="replace") as f:
        f.seek(start)
        new = f.read()
    bad = [line for line in new.splitlines() if "Traceback" in line or "[ERROR]" in line or " ERROR " in line]
    assert not bad, "the service logged errors during this test:\n" + new[-4000:]


# ---------------------------------------------------------------- direct database access


class Database:
    """Read the service's tables directly (assertions only; the service owns the writes)."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine

        self.engine = create_engine(url)

    def rows(self, sql: str, **params) -> list[dict]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def connection(self, user_id: str, provider: str = PROVIDER_NAME) -> dict | None:
        rows = self.rows("SELECT * FROM connections WHERE user_id = :u AND provider = :p", u=user_id, p=provider)
        return rows[0] if rows else None

    def connections(self, user_id: str) -> list[dict]:
        return self.rows("SELECT * FROM connections WHERE user_id = :u", u=user_id)

    def used_attempts(self) -> set[str]:
        """The ids of the connect attempts whose callback was accepted (each once)."""
        return {row["id"] for row in self.rows("SELECT id FROM connect_attempts_used")}

    def audit(self, user_id: str) -> list[dict]:
        return self.rows("SELECT * FROM audit_events WHERE user_id = :u ORDER BY id", u=user_id)

    def dump(self, table: str) -> str:
        """Every column of every row as text, as a backup or a curious DBA would see it."""
        assert re.fullmatch(r"[a-z_]+", table)
        return "\n".join(
            "|".join("" if value is None else str(value) for value in row.values())
            for row in self.rows(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
        )

    def dispose(self) -> None:
        self.engine.dispose()


@pytest.fixture(scope="session")
def db(service):
    database = Database(service.database_url)
    yield database
    database.dispose()


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser(e2e_requirements):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = browser_mod.launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser):
    """Factory for fresh browser contexts (separate cookie jars); all closed after the test."""
    contexts = []
    console: deque[str] = deque(maxlen=100)

    def make():
        context = browser.new_context()
        context.set_default_timeout(10_000)
        context.set_default_navigation_timeout(15_000)
        n = len(contexts) + 1
        context.on("console", lambda msg: console.append(f"[context {n}] {msg.type}: {msg.text}"))
        context.on("weberror", lambda err: console.append(f"[context {n}] page error: {err.error}"))
        contexts.append(context)
        return context

    _LOG_SOURCES["browser console"] = lambda: "\n".join(console)
    yield make
    _LOG_SOURCES.pop("browser console", None)
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def page(context):
    return context.new_page()


# ---------------------------------------------------------------- users


@pytest.fixture
def username(request) -> str:
    """Unique per test: tests never share rows at the provider, the stand-in or in our DB."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:24].strip("-")
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture(scope="session")
def user_token(auth0, spa):
    """callable(username) -> an Auth0 access token (RS256 JWT for AUDIENCE) of auth0|<username>.

    The SPA client's code + PKCE flow driven with `requests` (no browser) for tests that only
    need a token; `flows.sign_in` does the same in the browser through the SPA page.
    """
    authorize_endpoint = auth0.discovery()["authorization_endpoint"]

    def get(name: str) -> str:
        verifier, challenge = _pkce_pair()
        state = secrets.token_urlsafe(8)
        session = requests.Session()
        r = session.get(authorize_endpoint, allow_redirects=False, timeout=10, params={
            "response_type": "code", "client_id": auth0.spa_client_id, "redirect_uri": spa.redirect_uri,
            "scope": "openid profile email", "audience": AUDIENCE, "state": state,
            "code_challenge": challenge, "code_challenge_method": "S256"})
        for _ in range(10):  # bounded: login page, then auto-consent redirects
            if r.is_redirect:
                location = urljoin(r.url, r.headers["Location"])
                if location.startswith(spa.redirect_uri):
                    got = dict(parse_qsl(urlsplit(location).query))
                    assert got.get("state") == state and "code" in got, sorted(got)  # names, not values
                    break
                r = session.get(location, allow_redirects=False, timeout=10)
                continue
            assert r.status_code == 200 and 'id="username"' in r.text, r.text[:500]
            action = urljoin(r.url, re.search(r'<form method="post" action="([^"]+)"', r.text)[1])
            r = session.post(action, data={"username": name, "password": parties.PASSWORD},
                             allow_redirects=False, timeout=10)
        else:
            raise AssertionError("sign-in at the Auth0 stand-in did not reach the SPA redirect URI")
        r = requests.post(auth0.token_endpoint, timeout=10, data={
            "grant_type": "authorization_code", "code": got["code"], "client_id": auth0.spa_client_id,
            "redirect_uri": spa.redirect_uri, "code_verifier": verifier})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    return get
