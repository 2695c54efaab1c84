import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import event

from app import clock
from app.connect.attempt import open_cookie, open_state
from app.extensions import db
from tests.conftest import RETURN_URL, base_env
from tests.connect.conftest import binding_cookies


def test_start_redirects_to_provider_with_state_pkce_and_scopes(connect, app):
    response = connect.start("spotify")
    assert response.status_code == 303
    url = urlsplit(response.headers["Location"])
    assert (url.scheme, url.netloc, url.path) == ("https", "accounts.spotify.com", "/authorize")
    params = parse_qs(url.query)
    assert params["client_id"] == ["spotify-client"]
    # Each provider its own redirect URI (RFC 9700 4.4.2 mix-up defence).
    assert params["redirect_uri"] == ["https://connector.test/connect/callback/spotify"]
    assert params["response_type"] == ["code"]
    assert params["code_challenge_method"] == ["S256"] and len(params["code_challenge"][0]) == 43
    assert params["scope"] == ["user-read-email user-read-private"]
    assert len(params["state"][0]) > 40
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def _cookie_value(response) -> tuple[str, str]:
    [header] = binding_cookies(response)
    name, _, rest = header.partition("=")
    return name, rest.partition(";")[0]


def test_start_seals_the_attempt_in_state_and_a_host_cookie(connect, app):
    before = clock.now()
    response = connect.start("google")
    params = connect.authorize_params(response)
    assert params["access_type"] == "offline" and params["prompt"] == "consent" and params["nonce"]
    [cookie] = binding_cookies(response)
    assert cookie.startswith("__Host-connector_bind_")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"):
        assert flag in cookie
    name, value = _cookie_value(response)
    # Nothing readable in the URL or the cookie: not the user, not the return URL, not the verifier.
    for sealed in (params["state"], value):
        assert "alice" not in sealed and "app.test" not in sealed and sealed.startswith("k1.")
    keyring = app.extensions["connector"].keyring
    ref = open_state(keyring, params["state"])
    assert (ref.user_id, ref.provider, ref.return_to) == ("auth0|alice", "google", RETURN_URL)
    assert name.endswith("connector_bind_" + ref.id[:16])
    assert timedelta(minutes=10) - timedelta(seconds=1) <= ref.expires_at - before <= timedelta(minutes=10)
    attempt = open_cookie(keyring, ref, value)
    assert create_s256_code_challenge(attempt.code_verifier) == params["code_challenge"]
    assert attempt.code_verifier not in response.headers["Location"]
    assert attempt.nonce == params["nonce"] and attempt.params == {}
    # What the authorize request asked for: nothing was asked on top of the entry's defaults.
    assert attempt.scopes == tuple(params["scope"].split()) == ("openid", "email")


def test_start_writes_nothing_and_reads_only_the_granted_scopes(connect, app):
    """One read per start: the user's connection's scopes, which an incremental authorization asks for again."""
    statements = []
    with app.app_context():
        engine = db.engine

    def count(*args):
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert connect.start("spotify").status_code == 303
        assert connect.start("google").status_code == 303
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 2
    for statement in statements:
        assert statement.lstrip().startswith("SELECT connections.scopes, connections.status")
        assert "FROM connections" in statement


def test_two_starts_give_two_attempts_with_their_own_cookies(connect, app):
    first, second = connect.start("spotify"), connect.start("spotify")
    states = [connect.authorize_params(r)["state"] for r in (first, second)]
    keyring = app.extensions["connector"].keyring
    ids = [open_state(keyring, state).id for state in states]
    assert ids[0] != ids[1]
    assert _cookie_value(first)[0] != _cookie_value(second)[0]


def _back_to_app(response) -> dict[str, str]:
    """A failure after the return URL was checked: 303 back to it with the outcome in the query."""
    assert response.status_code == 303, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def test_start_refuses_machine_token(connect, app):
    response = connect.start(token=connect.auth0.m2m_token())
    assert response.status_code == 403  # an integration bug, not a user's situation: the page
    assert "machine" in response.get_data(as_text=True)
    assert binding_cookies(response) == []  # no attempt was started


@pytest.mark.parametrize("origin,referer", [
    ("https://evil.test", None),
    ("null", None),
    ("https://app.test:8443", None),
    ("http://app.test", None),
    (None, "https://evil.test/page"),
    (None, None),
    ("https://[x", None),  # unparseable (unbalanced IPv6 bracket): once a 500
    (None, "https://[x/page"),
    (None, "https://app.test]/settings"),
])
def test_start_refuses_cross_site_post(connect, app, origin, referer):
    headers = {"Referer": referer} if referer else {}
    response = connect.start(origin=origin, headers=headers)
    assert response.status_code == 403
    assert "cross_site_request" in response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert binding_cookies(response) == []  # no attempt was started


def test_start_accepts_referer_when_origin_absent(connect):
    response = connect.start(origin=None, headers={"Referer": RETURN_URL + "?tab=1"})
    assert response.status_code == 303


@pytest.mark.parametrize("provider", ["nope", "", "dropbox", "GITHUB"])
def test_start_rejects_unknown_or_disabled_provider(connect, app, provider):
    response = connect.start(provider)
    # Back to the app, which checked its return URL; a provider it does not know is not echoed.
    assert _back_to_app(response) == {"connector_status": "error", "error": "unknown_provider"}
    assert binding_cookies(response) == []  # no attempt was started


def test_start_rejects_return_url_off_allowlist(connect, app):
    response = connect.start(return_to="https://evil.test/settings/integrations")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_return_url" in response.get_data(as_text=True)
    assert binding_cookies(response) == []  # no attempt was started


@pytest.mark.parametrize("return_to", ["https://[app.test/x", "https://[app.test/settings/integrations"])
def test_start_rejects_unparseable_return_url(connect, app, return_to):
    response = connect.start(return_to=return_to)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_return_url" in response.get_data(as_text=True)
    assert binding_cookies(response) == []  # no attempt was started


@pytest.mark.parametrize("token", ["garbage", ""])
def test_start_with_bad_or_missing_token_sends_the_browser_back_with_login_required(connect, app, token):
    response = connect.start(data={"access_token": token, "provider": "github", "return_to": RETURN_URL})
    assert _back_to_app(response) == {"connector_status": "error", "provider": "github", "error": "login_required"}
    assert binding_cookies(response) == []  # no attempt was started


def test_start_with_expired_token_keeps_the_apps_query(connect, app):
    """An Auth0 token that expired between page load and click (13.11)."""
    token = connect.auth0.token(exp=int(time.time()) - 120)
    response = connect.start("spotify", token=token, return_to=RETURN_URL + "?tab=apps")
    assert _back_to_app(response) == {"tab": "apps", "connector_status": "error", "provider": "spotify",
                                      "error": "login_required"}
    assert binding_cookies(response) == []  # no attempt was started


def test_start_answers_problem_json_to_api_clients(connect):
    response = connect.start(token="garbage", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "invalid_token"


def test_start_rejects_duplicated_fields(connect, app):
    token = connect.auth0.token()
    data = {"access_token": token, "provider": ["github", "google"], "return_to": RETURN_URL}
    response = connect.start(data=data)
    assert response.status_code == 400
    assert binding_cookies(response) == []  # no attempt was started


def test_start_rejects_oversized_body(connect, app):
    response = connect.start(data={"access_token": "x" * 70_000, "provider": "github", "return_to": RETURN_URL})
    assert response.status_code == 413
    assert binding_cookies(response) == []  # no attempt was started


@pytest.mark.parametrize("field,value", [("provider", "github\x00"), ("return_to", RETURN_URL + "\x00"),
                                         ("provider", "git\x1bhub")])
def test_start_refuses_control_characters_in_form(connect, app, field, value):
    data = {"access_token": connect.auth0.token(), "provider": "github", "return_to": RETURN_URL, field: value}
    response = connect.start(data=data)
    assert (response.status_code, response.mimetype) == (400, "text/html")
    assert "control character" in response.get_data(as_text=True)
    assert binding_cookies(response) == []  # no attempt was started


def test_start_lets_tab_cr_lf_in_form_reach_the_normal_checks(connect, app):
    # Only the guard's own exception: tab/CR/LF in a form body go on to the view's validation.
    response = connect.start("git\thub\r\n")
    assert _back_to_app(response)["error"] == "unknown_provider"


@pytest.mark.parametrize("env,secure", [
    (base_env(PUBLIC_BASE_URL="http://[::1]:5000"), False),  # once Secure + __Host- on plain http
    (base_env(PUBLIC_BASE_URL="HTTP://LOCALHOST:5000"), False),
    (base_env(PUBLIC_BASE_URL="http://localhost:5000"), False),
    (base_env(PUBLIC_BASE_URL="http://127.0.0.1:8000/"), False),
    (base_env(PUBLIC_BASE_URL="https://[::1]:5000"), True),
    (base_env(PUBLIC_BASE_URL="https://connector.test"), True),
], ids=["ipv6-loopback", "upper-case", "localhost", "ipv4-loopback", "https-ipv6", "https"])
def test_cookie_security_follows_public_base_url(connect, app, env, secure):
    assert app.extensions["connector"].connect.secure_cookies is secure
    assert app.config["SESSION_COOKIE_SECURE"] is secure
    cookie = connect.start().headers["Set-Cookie"]
    assert cookie.startswith("__Host-connector_bind_") is secure
    assert ("Secure" in cookie.split("; ")) is secure
