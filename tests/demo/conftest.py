"""The demo app served on a real loopback port: the service calls its own sandbox provider and
fetches its own issuer's JWKS over HTTP, exactly as ``scripts/demo`` runs it."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class LiveDemo:
    app: object
    base_url: str

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def store(self):
        return self.app.extensions["demo_sandbox"].store

    def sign_in(self, session: requests.Session, user: str = "alice") -> str:
        """The SPA's sign-in at the demo issuer; returns the access token from the fragment."""
        params = {"client_id": "demo-spa", "response_type": "token", "redirect_uri": self.url("/demo/spa"),
                  "state": "s" * 24}
        page = session.get(self.url("/demo/issuer/authorize"), params=params, timeout=5)
        assert page.status_code == 200, page.text
        response = session.post(page.url, data={"csrf_token": csrf(page.text), "user": user},
                                allow_redirects=False, timeout=5)
        assert response.status_code == 303, response.text
        fragment = parse_qs(urlsplit(response.headers["Location"]).fragment)
        assert fragment["state"] == ["s" * 24]
        return fragment["access_token"][0]

    def start_connect(self, session: requests.Session, token: str) -> requests.Response:
        """The SPA's form POST to /connect/start; returns the sandbox's consent page."""
        return session.post(self.url("/connect/start"), headers={"Origin": self.base_url}, timeout=5,
                            data={"access_token": token, "provider": "sandbox", "return_to": self.url("/demo/spa")})

    def connect(self, session: requests.Session, token: str, decision: str = "allow",
                account: str = "sam") -> dict[str, list[str]]:
        """The whole connect, consent included; returns the SPA's outcome query."""
        consent = self.start_connect(session, token)
        assert consent.status_code == 200 and "Authorize" in consent.text, consent.text
        done = session.post(consent.url, data={"csrf_token": csrf(consent.text), "decision": decision,
                                               "account": account}, timeout=10)
        assert urlsplit(done.url).path == "/demo/spa", done.url
        return parse_qs(urlsplit(done.url).query)


def csrf(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return unescape(match.group(1))


@pytest.fixture
def demo(database_url, tmp_path):
    slot: dict = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: slot["app"](environ, start), threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(test_config={"SQLALCHEMY_DATABASE_URI": database_url, "DEMO_STATE_DIR": str(tmp_path / "state")},
                     env={"CONNECTOR_DEMO": "1", "PUBLIC_BASE_URL": base_url})
    with app.app_context():
        db.drop_all()
        db.create_all()
    slot["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveDemo(app, base_url)
    server.shutdown()
    thread.join(5)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
