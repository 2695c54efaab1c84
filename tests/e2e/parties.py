"""Real third parties for e2e tests: oidc-provider instances run by tests/e2e/node/party.mjs.

Plain module (no fixtures here) so conftest.py decides scopes and skip/fail policy:

    reason = node_available()          # None when usable, else a skip reason
    provider = start_provider(tmp_path, redirect_uri="http://127.0.0.1:5000/callback")
    auth0 = start_auth0(tmp_path, audience="https://connector.test/api",
                        spa_redirect_uri="http://127.0.0.1:5001/spa/callback")
    ...
    provider.stop(); auth0.stop()

Every party listens on 127.0.0.1 on a port it picks itself; `.issuer` tells which.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections import deque
from pathlib import Path

import requests

NODE_DIR = Path(__file__).resolve().parent / "node"
PARTY_SCRIPT = NODE_DIR / "party.mjs"
PASSWORD = "pass"  # the parties' login pages accept any username with this password


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (for servers that need a port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_available() -> str | None:
    """None if the parties can run here, else why not (a pytest skip reason)."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"oidc-provider is not installed: run `npm ci` in {NODE_DIR}"
    return None


class NodeParty:
    """One `node party.mjs cfg.json` process; its output goes to `<workdir>/<name>.log`."""

    def __init__(self, workdir: Path | str, name: str, config: dict, *, timeout: float = 20.0):
        self.name = name
        self.config = config
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / f"{name}.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.log_path = self.workdir / f"{name}.log"
        self._log = open(self.log_path, "a", buffering=1, encoding="utf-8")
        self._ready = threading.Event()
        self.issuer: str | None = None
        self.proc = subprocess.Popen(
            ["node", str(PARTY_SCRIPT), str(self.config_path)],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one interleaved log
            text=True,
            bufsize=1,
        )
        # A reader thread both spots READY and keeps the pipe drained so node never blocks.
        self._reader = threading.Thread(target=self._pump, name=f"{name}-log", daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or self.issuer is None:
            self.stop()
            raise RuntimeError(
                f"party {name} did not become ready within {timeout}s:\n{self.log_tail()}"
            )

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._log.write(line)
            if self.issuer is None and line.startswith("READY "):
                self.issuer = line.split(" ", 1)[1].strip()
                self._ready.set()
        self._ready.set()  # process ended: unblock the constructor

    @property
    def base_url(self) -> str:
        """Issuer without trailing slash, for building URLs like base_url + '/test/stats'."""
        return self.issuer.rstrip("/")

    def discovery(self) -> dict:
        r = requests.get(self.base_url + "/.well-known/openid-configuration", timeout=5)
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict:
        """Counters kept by the party: token calls per grant type, errors, revocations, ..."""
        r = requests.get(self.base_url + "/test/stats", timeout=5)
        r.raise_for_status()
        return r.json()

    def log_tail(self, n: int = 50) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(deque(f, maxlen=n))
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _uris(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def start_provider(
    tmpdir: Path | str,
    *,
    redirect_uri: str | dict[str, str | list[str]],
    access_token_ttl: int = 60,
    name: str = "provider",
) -> NodeParty:
    """A strict third-party OAuth/OIDC provider with a basic-auth and a post-auth client.

    redirect_uri: one for both clients, or {"basic": uri or [uris], "post": ...} (registered exactly).

    party.clients == {"basic": {"client_id", "client_secret"}, "post": {...}}
    Protected resource: GET <issuer>/api/me with a Bearer token.
    party.issued_tokens(sub): the token values the provider issued to that account.
    """
    clients = {
        "basic": {"client_id": f"{name}-basic", "client_secret": f"{name}-basic-secret"},
        "post": {"client_id": f"{name}-post", "client_secret": f"{name}-post-secret"},
    }
    config = {
        "role": "provider",
        "access_token_ttl": access_token_ttl,
        "clients": [
            {
                **creds,
                "redirect_uris": _uris(redirect_uri[kind] if isinstance(redirect_uri, dict) else redirect_uri),
                "token_endpoint_auth_method": f"client_secret_{kind}",
            }
            for kind, creds in clients.items()
        ],
    }
    party = NodeParty(tmpdir, name, config)
    party.clients = clients
    party.redirect_uri = redirect_uri
    party.access_token_ttl = access_token_ttl
    party.api_url = party.base_url + "/api/me"

    def issued_tokens(sub: str) -> dict:
        """{"access_token": [...], "refresh_token": [...]}: values issued to account `sub`, oldest first."""
        r = requests.get(party.base_url + "/test/tokens", params={"sub": sub}, timeout=5)
        r.raise_for_status()
        return r.json()

    party.issued_tokens = issued_tokens
    return party


M2M_SCOPES = "read:connections read:tokens delete:connections create:connect_links"


def start_auth0(
    tmpdir: Path | str,
    *,
    audience: str,
    spa_redirect_uri: str,
    access_token_ttl: int = 600,
    name: str = "auth0",
    extra_clients: list[dict] | None = None,
) -> NodeParty:
    """An Auth0 stand-in: issuer 'http://127.0.0.1:<port>/', RS256 JWT access tokens for `audience`.

    Attributes: issuer, audience, spa_client_id, m2m_client_id, m2m_client_secret, m2m_token(scope).
    User subs are 'auth0|<username>'. `extra_clients`: more client metadata (e.g. a regular web
    application for the admin console), registered as given.
    """
    spa_client_id = f"{name}-spa"
    m2m_client_id, m2m_client_secret = f"{name}-m2m", f"{name}-m2m-secret"
    config = {
        "role": "auth0",
        "audience": audience,
        "api_scopes": M2M_SCOPES,
        "access_token_ttl": access_token_ttl,
        "clients": [
            {
                "client_id": spa_client_id,
                "token_endpoint_auth_method": "none",
                "redirect_uris": [spa_redirect_uri],
            },
            {
                "client_id": m2m_client_id,
                "client_secret": m2m_client_secret,
                "grant_types": ["client_credentials"],
                "api_scopes": M2M_SCOPES,
            },
            *(extra_clients or []),
        ],
    }
    party = NodeParty(tmpdir, name, config)
    party.audience = audience
    party.spa_client_id = spa_client_id
    party.spa_redirect_uri = spa_redirect_uri
    party.m2m_client_id = m2m_client_id
    party.m2m_client_secret = m2m_client_secret
    party.token_endpoint = party.base_url + "/oauth/token"

    def m2m_token(scope: str = M2M_SCOPES) -> str:
        # Auth0-style: `audience` selects the API, so the token is a JWT for it.
        r = requests.post(
            party.token_endpoint,
            data={"grant_type": "client_credentials", "audience": audience, "scope": scope},
            auth=(m2m_client_id, m2m_client_secret),
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["access_token"]

    party.m2m_token = m2m_token
    return party


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
