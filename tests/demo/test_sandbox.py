"""The sandbox provider, driven through the service as the demo SPA drives it."""
from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from app.demo import sandbox
from app.demo.sandbox_store import SandboxStore
from app.errors import ReauthorizationRequired
from app.extensions import db
from app.models import Connection
from app.runtime import runtime
from app.vault import get_access_token

USER = "demo|alice"


def _connection(demo) -> Connection | None:
    with demo.app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == USER)).one_or_none()
        db.session.expunge_all()
        return row


def _refresh_token(demo) -> str:
    with demo.app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == USER)).one()
        return runtime().keyring.decrypt(row.refresh_token_enc, row.aad("refresh_token"))


def _refresh_at_sandbox(demo, refresh_token: str) -> requests.Response:
    return requests.post(demo.url("/demo/sandbox/token"), auth=(sandbox.CLIENT_ID, sandbox.CLIENT_SECRET), timeout=5,
                         data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_connect_through_the_sandbox_and_call_its_api_by_proxy(demo):
    browser = requests.Session()
    token = demo.sign_in(browser)
    outcome = demo.connect(browser, token, account="sam")
    assert outcome["connector_status"] == ["connected"] and outcome["provider"] == ["sandbox"]
    row = _connection(demo)
    assert row.status == "active" and row.external_account_id == "sam" and row.refresh_token_enc
    me = requests.get(demo.url("/api/proxy/sandbox/me"), headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200 and me.json() == {"id": "sam", "name": "sam", "plan": "sandbox"}


def test_refresh_rotates_and_reusing_an_old_refresh_token_revokes_the_grant(demo):
    browser = requests.Session()
    demo.connect(browser, demo.sign_in(browser))
    first_refresh = _refresh_token(demo)
    with demo.app.app_context():
        before = get_access_token(USER, "sandbox").token
        after = get_access_token(USER, "sandbox", force_refresh=True).token
    assert after != before and _refresh_token(demo) != first_refresh  # rotated and persisted
    reused = _refresh_at_sandbox(demo, first_refresh)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # Reuse revoked the whole grant: the connection's current refresh token is dead too.
    with demo.app.app_context(), pytest.raises(ReauthorizationRequired):
        get_access_token(USER, "sandbox", force_refresh=True)
    assert _connection(demo).status == "needs_reauth"


def test_denied_consent_returns_access_denied_and_stores_nothing(demo):
    browser = requests.Session()
    outcome = demo.connect(browser, demo.sign_in(browser), decision="deny")
    assert outcome["connector_status"] == ["error"] and outcome["error"] == ["access_denied"]
    assert _connection(demo) is None


def test_disconnect_revokes_the_grant_at_the_sandbox(demo):
    browser = requests.Session()
    token = demo.sign_in(browser)
    demo.connect(browser, token)
    refresh = _refresh_token(demo)
    gone = requests.delete(demo.url("/api/connections/sandbox"), headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
    assert gone.status_code == 200 and gone.json()["remote_revocation"] == "done"
    assert _refresh_at_sandbox(demo, refresh).json()["error"] == "invalid_grant"


def test_authorize_requires_pkce_and_the_exact_redirect_uri(demo):
    query = {"response_type": "code", "client_id": sandbox.CLIENT_ID,
             "redirect_uri": demo.url("/connect/callback/sandbox"), "scope": "profile", "state": "x" * 20}
    no_pkce = requests.get(demo.url("/demo/sandbox/authorize"), params=query, timeout=5, allow_redirects=False)
    assert no_pkce.status_code == 400 and "PKCE" in no_pkce.text
    pkce = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    elsewhere = requests.get(demo.url("/demo/sandbox/authorize"), timeout=5, allow_redirects=False,
                             params={**query, **pkce, "redirect_uri": demo.url("/connect/callback")})
    assert elsewhere.status_code == 400 and "Location" not in elsewhere.headers


def test_grants_survive_a_restart_of_the_sandbox(demo, tmp_path):
    browser = requests.Session()
    demo.connect(browser, demo.sign_in(browser))
    refresh = _refresh_token(demo)
    reloaded = SandboxStore(str(tmp_path / "state"))
    assert reloaded.claim_refresh(refresh) is not None


def test_demo_pages_carry_a_strict_policy_and_root_opens_the_spa(demo):
    root = requests.get(demo.url("/"), allow_redirects=False, timeout=5)
    assert root.headers["Location"] == demo.url("/demo/spa")
    page = requests.get(demo.url("/demo/spa"), timeout=5)
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["Referrer-Policy"] == "same-origin"  # no-referrer would make the connect POST's Origin null
