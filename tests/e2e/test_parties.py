"""Proves the e2e third parties (tests/e2e/node/party.mjs) behave like the real ones.

No connector code involved: plain `requests` against the parties (plus one Chromium run),
so when a connector e2e test fails, these tell whether the party or the connector is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

try:  # tests/e2e may or may not become a package
    from . import parties
except ImportError:
    import parties

pytestmark = pytest.mark.e2e

PROVIDER_SCOPE = "openid profile email offline_access api:read"
AUDIENCE = "https://connector.test/api"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _need_node():
    reason = parties.node_available()
    if reason:
        if parties.in_ci():  # in CI a missing party is a failure, not a skip
            pytest.fail(f"e2e parties cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def callback_server():
    """A stand-in redirect_uri target: answers 200 "ok" and remembers what it was sent."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/callback"
    server.hits = hits
    yield server
    server.shutdown()
    server.server_close()


def _party(party):
    yield party
    party.stop()
    print(f"--- {party.name} log tail ---\n{party.log_tail(30)}")  # shown for failing tests


@pytest.fixture(scope="module")
def provider(tmp_path_factory, callback_server):
    yield from _party(
        parties.start_provider(tmp_path_factory.mktemp("parties"), redirect_uri=callback_server.url)
    )


@pytest.fixture(scope="module")
def auth0(tmp_path_factory):
    yield from _party(
        parties.start_auth0(
            tmp_path_factory.mktemp("parties"),
            audience=AUDIENCE,
            spa_redirect_uri="http://127.0.0.1:9/spa/callback",  # never followed
        )
    )


# ---------------------------------------------------------------- helpers


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize(party, client_id, redirect_uri, *, username="alice", decision="allow",
              scope=PROVIDER_SCOPE, pkce=True, **extra):
    """Drive /authorize through the login and consent pages like a browser would.

    Returns (query params delivered to redirect_uri, code_verifier, state).
    """
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(8)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, **extra}
    if pkce:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    s = requests.Session()
    r = s.get(party.discovery()["authorization_endpoint"], params=params,
              allow_redirects=False, timeout=10)
    for _ in range(10):
        if r.is_redirect:
            location = urljoin(r.url, r.headers["Location"])
            if location.startswith(redirect_uri):  # arrived: don't follow to the client
                return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, verifier, state
            r = s.get(location, allow_redirects=False, timeout=10)
            continue
        assert r.status_code == 200, r.text
        action = urljoin(r.url, re.search(r'<form method="post" action="([^"]+)"', r.text)[1])
        if 'id="username"' in r.text:
            data = {"username": username, "password": parties.PASSWORD}
        else:
            assert 'id="allow"' in r.text and 'id="deny"' in r.text
            data = {"decision": decision}
        r = s.post(action, data=data, allow_redirects=False, timeout=10)
    raise AssertionError(f"authorization did not reach {redirect_uri}")


def token_request(party, client, data):
    """POST to the token endpoint, authenticating the way the client is registered."""
    url = party.discovery()["token_endpoint"]
    if client["client_id"].endswith("-basic"):
        return requests.post(url, data=data, auth=(client["client_id"], client["client_secret"]), timeout=10)
    return requests.post(url, data={**data, **client}, timeout=10)


def code_flow(provider, kind="basic", **kw):
    client = provider.clients[kind]
    got, verifier, state = authorize(provider, client["client_id"], provider.redirect_uri, **kw)
    assert got["state"] == state and got["iss"] == provider.issuer, sorted(got)  # RFC 9207; names, not values
    r = token_request(provider, client, {"grant_type": "authorization_code", "code": got["code"],
                                         "redirect_uri": provider.redirect_uri, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def refresh(provider, kind, refresh_token):
    return token_request(provider, provider.clients[kind],
                         {"grant_type": "refresh_token", "refresh_token": refresh_token})


def api_me(provider, access_token=None):
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.get(provider.api_url, headers=headers, timeout=10)


def verify_jwt(party, token):
    jwks = requests.get(party.discovery()["jwks_uri"], timeout=10).json()
    return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])


# ---------------------------------------------------------------- tests


def test_discovery(provider, auth0):
    d = provider.discovery()
    assert d["issuer"] == provider.issuer and not provider.issuer.endswith("/")
    assert d["authorization_response_iss_parameter_supported"] is True
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert {"revocation_endpoint", "introspection_endpoint", "jwks_uri"} <= d.keys()
    assert set(PROVIDER_SCOPE.split()) <= set(d["scopes_supported"])

    a = auth0.discovery()
    assert a["issuer"] == auth0.issuer and auth0.issuer.endswith("/")  # like https://{domain}/
    assert a["token_endpoint"] == auth0.issuer + "oauth/token"
    assert a["jwks_uri"] == auth0.issuer + ".well-known/jwks.json"
    assert requests.get(a["jwks_uri"], timeout=5).json()["keys"][0]["alg"] == "RS256"


def test_m2m_token_is_an_auth0_like_jwt(auth0):
    token = verify_jwt(auth0, auth0.m2m_token("read:connections delete:connections"))
    assert token.header["alg"] == "RS256"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": auth0.issuer},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    ).validate(token.claims)
    assert token.claims["gty"] == "client-credentials"
    assert token.claims["sub"] == f"{auth0.m2m_client_id}@clients"
    assert token.claims["scope"] == "read:connections delete:connections"

    # RFC 8707 `resource` works like `audience`; unknown APIs are refused.
    r = requests.post(auth0.token_endpoint, auth=(auth0.m2m_client_id, auth0.m2m_client_secret),
                      data={"grant_type": "client_credentials", "resource": AUDIENCE}, timeout=10)
    assert verify_jwt(auth0, r.json()["access_token"]).claims["scope"] == parties.M2M_SCOPES
    r = requests.post(auth0.token_endpoint, auth=(auth0.m2m_client_id, auth0.m2m_client_secret),
                      data={"grant_type": "client_credentials", "audience": "https://other.test/"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_target"


def test_auth0_spa_user_login(auth0):
    redirect_uri = auth0.spa_redirect_uri
    got, verifier, _ = authorize(auth0, auth0.spa_client_id, redirect_uri, username="bob",
                                 scope="openid profile email read:connections", audience=AUDIENCE)
    assert got["iss"] == auth0.issuer
    spa_origin = "http://127.0.0.1:9"
    r = requests.post(auth0.token_endpoint, headers={"Origin": spa_origin}, timeout=10, data={
        "grant_type": "authorization_code", "code": got["code"], "client_id": auth0.spa_client_id,
        "redirect_uri": redirect_uri, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == spa_origin  # callable from the SPA page
    at = verify_jwt(auth0, r.json()["access_token"]).claims
    assert (at["iss"], at["aud"], at["sub"]) == (auth0.issuer, AUDIENCE, "auth0|bob")
    assert at["scope"] == "read:connections"
    idt = verify_jwt(auth0, r.json()["id_token"]).claims
    assert (idt["sub"], idt["email"], idt["aud"]) == ("auth0|bob", "bob@example.test", auth0.spa_client_id)


def test_code_flow_with_refresh_rotation_and_reuse_detection(provider):
    before = provider.stats()
    tokens = code_flow(provider, "basic")
    assert {"access_token", "refresh_token", "id_token"} <= tokens.keys()
    # oidc-provider keeps offline_access only with prompt=consent (OIDC Core 11); this party
    # issues refresh tokens regardless, like most OAuth providers.
    assert tokens["expires_in"] == 60 and set(tokens["scope"].split()) == {"openid", "profile", "email", "api:read"}

    me = api_me(provider, tokens["access_token"])
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "alice" and "api:read" in me.json()["scope"]
    assert api_me(provider, tokens["access_token"]).json()["hits"] == me.json()["hits"] + 1

    # Every refresh rotates the refresh token.
    rt0 = tokens["refresh_token"]
    r1 = refresh(provider, "basic", rt0).json()
    r2 = refresh(provider, "basic", r1["refresh_token"]).json()
    assert len({rt0, r1["refresh_token"], r2["refresh_token"]}) == 3, "a refresh did not rotate"
    assert api_me(provider, r2["access_token"]).status_code == 200

    # Replaying a rotated refresh token fails and revokes the whole grant.
    replay = refresh(provider, "basic", rt0)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    latest = refresh(provider, "basic", r2["refresh_token"])
    assert latest.status_code == 400 and latest.json()["error"] == "invalid_grant"
    assert api_me(provider, r2["access_token"]).status_code == 401

    after = provider.stats()
    assert after["token"]["authorization_code"] == before["token"].get("authorization_code", 0) + 1
    assert after["token"]["refresh_token"] == before["token"].get("refresh_token", 0) + 4
    assert after["token_error"]["refresh_token"] == before["token_error"].get("refresh_token", 0) + 2
    assert after["grant_revoked"] >= before["grant_revoked"] + 1


def test_post_client_and_revocation(provider):
    disc = provider.discovery()
    client = provider.clients["post"]
    tokens = code_flow(provider, "post", username="carol")

    # Strict: clients must authenticate with their registered method, not the other one.
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    r = requests.post(disc["token_endpoint"], auth=(client["client_id"], client["client_secret"]),
                      data=data, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(disc["token_endpoint"], data={**data, **provider.clients["basic"]}, timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    revocations = provider.stats()["revocation"]
    r = requests.post(disc["revocation_endpoint"], timeout=10,
                      data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", **client})
    assert r.status_code == 200
    assert provider.stats()["revocation"] == revocations + 1
    assert refresh(provider, "post", tokens["refresh_token"]).json()["error"] == "invalid_grant"
    # oidc-provider revokes the grant's access tokens along with the refresh token.
    assert api_me(provider, tokens["access_token"]).status_code == 401
    r = requests.post(disc["introspection_endpoint"], data={"token": tokens["access_token"], **client}, timeout=10)
    assert r.json() == {"active": False}


def test_api_me_rejects_missing_and_bad_tokens(provider):
    for token in (None, "not-a-token"):
        r = api_me(provider, token)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_deny_and_missing_pkce(provider):
    client_id = provider.clients["basic"]["client_id"]
    got, _, _ = authorize(provider, client_id, provider.redirect_uri, decision="deny")
    assert got["error"] == "access_denied" and got["iss"] == provider.issuer
    got, _, _ = authorize(provider, client_id, provider.redirect_uri, pkce=False)
    assert got["error"] == "invalid_request" and "PKCE" in got["error_description"]


def test_short_access_token_ttl_forces_refresh(tmp_path, callback_server):
    with parties.start_provider(tmp_path, redirect_uri=callback_server.url,
                                access_token_ttl=1, name="shortlived") as p:
        tokens = code_flow(p, "basic")
        assert tokens["expires_in"] == 1
        time.sleep(2.1)
        assert api_me(p, tokens["access_token"]).status_code == 401
        fresh = refresh(p, "basic", tokens["refresh_token"]).json()
        assert api_me(p, fresh["access_token"]).status_code == 200


def test_browser_login_and_consent(provider, callback_server, browser):
    # `browser`: the session's Chromium from conftest.py (one Playwright per process: a
    # second sync_playwright() inside the running one is refused).
    _, challenge = pkce_pair()
    url = provider.discovery()["authorization_endpoint"] + "?" + urlencode({
        "response_type": "code", "client_id": provider.clients["basic"]["client_id"],
        "redirect_uri": callback_server.url, "scope": PROVIDER_SCOPE, "state": "browser-state",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.fill("#username", "dave")
        page.fill("#password", "wrong")
        page.click("#login")
        assert "Wrong username or password" in page.text_content("#error")
        page.fill("#username", "dave")
        page.fill("#password", parties.PASSWORD)
        page.click("#login")
        page.click("#allow")
        page.wait_for_url(callback_server.url + "?*")
        assert page.text_content("body") == "ok"
    finally:
        context.close()
    query = parse_qs(urlsplit([h for h in callback_server.hits if h.startswith("/callback?")][-1]).query)
    assert query["state"] == ["browser-state"] and query["iss"] == [provider.issuer] and query["code"]
