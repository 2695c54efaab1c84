"""The happy path through real parties: sign in at the Auth0 stand-in, connect at the provider,
then use the stored connection offline, through the proxy, and disconnect."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from playwright.sync_api import expect

try:
    from . import flows
except ImportError:
    import flows

pytestmark = pytest.mark.e2e


def _digests(tokens: list[str]) -> list[str]:
    return [hashlib.sha256(t.encode()).hexdigest()[:12] for t in tokens]


def _connect_user(page, spa, auth0, provider, username) -> str:
    token = flows.sign_in(page, spa, auth0, username)
    got = flows.connect(page, spa, provider, username)
    assert got == {"connector_status": "connected", "provider": provider.connector_name}, got
    return token


def test_connect_stores_encrypted_connection(page, spa, auth0, provider, service, db, username):
    _connect_user(page, spa, auth0, provider, username)
    assert flows.outcome(page) == {"status": "connected", "provider": provider.connector_name, "error": ""}

    row = db.connection(f"auth0|{username}")
    assert row is not None
    assert row["status"] == "active"
    assert row["external_account_id"] == username  # the provider's sub, from its userinfo endpoint
    assert set(row["scopes"].split()) >= {"openid", "api:read"}
    assert row["access_token_enc"] and row["refresh_token_enc"]

    # The provider's view: exactly what it issued to this account, none of it in our tables.
    issued = provider.issued_tokens(username)
    assert len(issued["access_token"]) == 1 and len(issued["refresh_token"]) == 1
    dump = "\n".join(db.dump(table) for table in ("connections", "connect_attempts_used", "audit_events"))
    for value in issued["access_token"] + issued["refresh_token"]:
        assert value not in dump
    # Nor in the service's log.
    log = service.log_text()
    for value in issued["access_token"] + issued["refresh_token"]:
        assert value not in log

    # The user's API shows the connection (metadata only).
    r = requests.get(service.url("/api/connections"), timeout=10,
                     headers={"Authorization": "Bearer " + page.evaluate("sessionStorage.getItem('access_token')")})
    assert r.status_code == 200
    [connection] = r.json()["connections"]
    assert connection["provider"] == provider.connector_name and connection["status"] == "active"
    assert "token" not in re.sub(r'"access_token_expires_at"', "", r.text)


def test_offline_refresh_rotates_and_persists(browser, new_context, spa, auth0, provider, service, db, username):
    context = new_context()
    page = context.new_page()
    _connect_user(page, spa, auth0, provider, username)
    context.close()  # the browser is gone: everything below is offline
    user_id = f"auth0|{username}"

    before = db.connection(user_id)
    stats0 = provider.stats()

    # 1) the operator command; min_ttl far above the provider's 60 s lifetime forces a refresh
    first = service.flask("connector", "token", user_id, provider.connector_name, "--min-ttl", "3600", "--show")
    token1 = re.search(r"^access token: (\S+)$", first.stdout, re.M)[1]
    after1 = db.connection(user_id)

    # 2) the M2M API, for a job: a min_ttl longer than the provider's token lifetime is refused,
    # naming the lifetime; asking for exactly the lifetime refreshes, with the token rotated in step 1
    token_url = service.url(f"/api/users/{user_id}/connections/{provider.connector_name}/token")
    m2m = {"Authorization": "Bearer " + auth0.m2m_token("read:tokens")}
    r = requests.post(token_url, params={"min_ttl": "3600"}, timeout=15, headers=m2m)
    assert r.status_code == 400 and r.json()["code"] == "min_ttl_exceeds_token_lifetime", r.text
    assert f"({provider.access_token_ttl} s)" in r.json()["detail"]
    r = requests.post(token_url, params={"min_ttl": str(provider.access_token_ttl)}, timeout=15, headers=m2m)
    assert r.status_code == 200, r.text
    token2 = r.json()["access_token"]
    after2 = db.connection(user_id)

    stats2 = provider.stats()
    assert stats2["token"].get("refresh_token", 0) == stats0["token"].get("refresh_token", 0) + 2
    assert stats2["token_error"].get("refresh_token", 0) == stats0["token_error"].get("refresh_token", 0)

    issued = provider.issued_tokens(username)
    # Compared as digests: a failure's output must not print the tokens themselves.
    assert _digests(issued["access_token"][-2:]) == _digests([token1, token2])
    assert len(issued["refresh_token"]) == 3  # the code exchange's, then one per rotation
    # A new ciphertext each time, for the rotated refresh token.
    assert len({before["refresh_token_enc"], after1["refresh_token_enc"], after2["refresh_token_enc"]}) == 3
    assert before["access_token_enc"] != after1["access_token_enc"] != after2["access_token_enc"]
    assert after2["status"] == "active" and after2["last_refreshed_at"] is not None
    assert after2["lease_owner"] is None
    dump = db.dump("connections")
    for value in issued["access_token"] + issued["refresh_token"]:
        assert value not in dump

    # Both tokens work at the provider's API; the latest refresh token is still the live one.
    for token in (token1, token2):
        me = requests.get(provider.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200 and me.json()["sub"] == username


def test_proxy_and_disconnect_from_spa(page, spa, auth0, provider, service, db, username):
    token = _connect_user(page, spa, auth0, provider, username)
    user_id = f"auth0|{username}"

    # The SPA calls the provider's API through the proxy (CORS, bearer token); the provider
    # sees this user's token, the browser never does.
    page.click("#call-api")
    expect(page.locator("#api-result")).to_contain_text("200 ")
    body = page.text_content("#api-result").split(" ", 1)[1]
    assert f'"sub":"{username}"' in body.replace(" ", "")
    r = requests.get(service.url(f"/api/proxy/{provider.connector_name}/me"), timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["sub"] == username and "api:read" in r.json()["scope"]

    revocations = provider.stats()["revocation"]
    live_refresh = provider.issued_tokens(username)["refresh_token"][-1]

    page.click("#disconnect")
    expect(page.locator("#disconnect-result")).to_contain_text("200 ")
    assert '"remote_revocation":"done"' in page.text_content("#disconnect-result").replace(" ", "")

    row = db.connection(user_id)
    assert row["status"] == "revoked" and row["revoked_at"] is not None
    assert row["access_token_enc"] is None and row["refresh_token_enc"] is None
    assert row["remote_revocation"] == "done"
    assert provider.stats()["revocation"] == revocations + 1

    # At the provider the grant is gone: the refresh token the service held no longer works.
    client = provider.client
    dead = requests.post(provider.discovery()["token_endpoint"], timeout=10,
                         auth=(client["client_id"], client["client_secret"]),
                         data={"grant_type": "refresh_token", "refresh_token": live_refresh})
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"

    # And the service answers accordingly.
    r = requests.get(service.url(f"/api/proxy/{provider.connector_name}/me"), timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 409, r.text

    # Connecting again after a disconnect works (same browser: the provider asks for consent only).
    assert flows.connect(page, spa, provider, username)["connector_status"] == "connected"
    row = db.connection(user_id)
    assert row["status"] == "active" and row["revoked_at"] is None and row["remote_revocation"] is None
    assert row["refresh_token_enc"] and row["access_token_enc"]
    r = requests.get(service.url(f"/api/proxy/{provider.connector_name}/me"), timeout=10,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["sub"] == username


def test_concurrent_token_requests_share_one_rotation_chain(page, spa, auth0, provider, service, db, username):
    """Jobs asking at once, across gunicorn workers and threads: the provider revokes the grant if one
    refresh token is ever used twice, so every answer being 200 proves the single-flight refresh."""
    from concurrent.futures import ThreadPoolExecutor

    _connect_user(page, spa, auth0, provider, username)
    user_id = f"auth0|{username}"
    url = service.url(f"/api/users/{user_id}/connections/{provider.connector_name}/token")
    headers = {"Authorization": "Bearer " + auth0.m2m_token("read:tokens")}
    errors0 = provider.stats()["token_error"].get("refresh_token", 0)

    def ask(_):
        # The provider's whole token lifetime: every ask needs a refresh, all but one wait for it.
        return requests.post(url, params={"min_ttl": str(provider.access_token_ttl)}, headers=headers, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    assert provider.stats()["token_error"].get("refresh_token", 0) == errors0  # no reuse, no revoked grant
    assert db.connection(user_id)["status"] == "active"
    for answer in {a.json()["access_token"] for a in answers}:
        assert answer in provider.issued_tokens(username)["access_token"]
    # The chain is intact: one more refresh still works.
    final = ask(0)
    assert final.status_code == 200, final.text
    me = requests.get(provider.api_url, headers={"Authorization": "Bearer " + final.json()["access_token"]},
                      timeout=10)
    assert me.status_code == 200 and me.json()["sub"] == username


def test_client_secret_post_provider(page, spa, auth0, provider, service, db, username):
    """The same strict provider through its client_secret_post client (it refuses any other method)."""
    token = flows.sign_in(page, spa, auth0, username)
    name = provider.post_connector_name
    errors0 = provider.stats()["token_error"]
    got = flows.connect(page, spa, provider, username, provider_name=name)
    assert got == {"connector_status": "connected", "provider": name}, got
    user_id = f"auth0|{username}"
    assert db.connection(user_id, name)["status"] == "active"
    service.flask("connector", "token", user_id, name, "--min-ttl", "3600")  # refresh, post-authenticated
    assert provider.stats()["token_error"] == errors0
    r = requests.delete(service.url(f"/api/connections/{name}"), headers={"Authorization": f"Bearer {token}"},
                        timeout=15)
    assert r.status_code == 200 and r.json()["remote_revocation"] == "done", r.text


# ---------------------------------------------------------------- failures go back to the app (13.11)


def _refused(provider_name: str, error: str) -> dict[str, str]:
    return {"connector_status": "error", "provider": provider_name, "error": error}


def test_attempt_older_than_ten_minutes_goes_back_to_the_app(page, spa, auth0, provider, service, db, username):
    """The attempt's expiry is sealed into its state: the test reseals it with an expiry in the past
    (the service's own key and code), as ten minutes passing would leave it, and delivers that."""
    from dataclasses import asdict
    from datetime import datetime

    from app.connect.attempt import ConnectAttempt, open_state, seal
    from app.crypto import Keyring
    from config import parse_encryption_keys

    flows.sign_in(page, spa, auth0, username)
    user_id = f"auth0|{username}"
    callback_url = flows.callback_url_caught(page, provider, service, username)
    keyring = Keyring(parse_encryption_keys(service.env["TOKEN_ENCRYPTION_KEYS"]))
    state = flows.query(callback_url)["state"]
    ref = open_state(keyring, state)
    old_state, _ = seal(keyring, ConnectAttempt(**{**asdict(ref), "expires_at": datetime(2000, 1, 1)}))
    parts = urlsplit(callback_url)
    query = [(k, old_state if k == "state" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    page.goto(urlunsplit(parts._replace(query=urlencode(query))))
    assert flows.back_at_app(page, spa) == _refused(provider.connector_name, "expired")
    assert flows.outcome(page) == {"status": "error", "provider": provider.connector_name, "error": "expired"}
    assert db.connection(user_id) is None
    assert [(e["action"], e["outcome"]) for e in db.audit(user_id)] == [("connect", "rejected")]


def test_provider_that_does_not_answer_goes_back_to_the_app(page, spa, auth0, provider, service, db, username):
    down = provider.down_connector_name
    flows.sign_in(page, spa, auth0, username)
    page.evaluate("(provider) => window.spa.connect({ provider })", down)
    assert flows.back_at_app(page, spa) == _refused(down, "provider_unavailable")
    assert flows.outcome(page) == {"status": "error", "provider": down, "error": "provider_unavailable"}
    assert flows.binding_cookies(page.context) == []  # no attempt was started


def test_token_endpoint_that_does_not_answer_goes_back_to_the_app(page, spa, auth0, provider, service, db,
                                                                  username):
    """The user allowed access at the provider, but its token endpoint is down when the code comes back."""
    name = provider.dead_token_connector_name
    flows.sign_in(page, spa, auth0, username)
    got = flows.connect(page, spa, provider, username, provider_name=name)
    assert got == _refused(name, "provider_unavailable")
    assert flows.outcome(page) == {"status": "error", "provider": name, "error": "provider_unavailable"}
    user_id = f"auth0|{username}"
    assert db.connections(user_id) == []
    assert [(e["action"], e["outcome"]) for e in db.audit(user_id)] == [("connect", "error")]


def test_auth0_token_that_no_longer_verifies_goes_back_to_the_app(page, spa, auth0, provider, service, db,
                                                                  username):
    """The SPA's Auth0 token expired between page load and the click on Connect: the service checked
    the form's return_to and Origin, so the browser goes back there, not to a dead-end 401 page."""
    token = flows.sign_in(page, spa, auth0, username)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = claims["iat"] - 60  # an expired copy; its signature no longer matches either
    stale = ".".join([header, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(),
                      signature])
    page.evaluate("(token) => window.spa.connect({ token })", stale)
    assert flows.back_at_app(page, spa) == _refused(provider.connector_name, "login_required")
    assert flows.outcome(page)["error"] == "login_required"
    assert flows.binding_cookies(page.context) == []  # no attempt was started
