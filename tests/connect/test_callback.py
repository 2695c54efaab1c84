import base64
import logging
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from app import clock, create_app
from app.connect import flow
from app.connect.attempt import open_cookie, open_state
from app.extensions import db
from app.identity import Principal
from app.models import AuditEvent, Connection
from tests.conftest import BASE_URL, KEY_1, KEY_2, RETURN_URL, base_env
from tests.connect.conftest import PROVIDER_MOCKS, connection_rows, used_attempts

SECRETS = ("gho_SECRETACCESS", "ya29.SECRETACCESS", "1//SECRETREFRESH", "BQSECRETACCESS", "AQSECRETREFRESH", "CODE123")


def _outcome(response) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(RETURN_URL + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _connection(app, provider):
    with app.app_context():
        return db.session.scalars(select(Connection).where(Connection.provider == provider)).one_or_none()


@pytest.mark.parametrize("provider", ["github", "google", "spotify"])
def test_callback_stores_encrypted_connection_and_redirects(connect, app, provider):
    response = connect.connect(provider)
    assert _outcome(response) == {"connector_status": "connected", "provider": provider}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    row = _connection(app, provider)
    assert row.status == "active" and row.user_id == "auth0|alice"
    assert row.external_account_id == str(PROVIDER_MOCKS[provider]["userinfo"][1].get("id") or "1077")
    dump = repr(connection_rows(app))
    assert not any(secret in dump for secret in SECRETS)
    with app.app_context():
        keyring = app.extensions["connector"].keyring
        assert keyring.decrypt(row.access_token_enc, row.aad("access_token")) == PROVIDER_MOCKS[provider]["token"][
            "access_token"]
        events = db.session.scalars(select(AuditEvent)).all()
        assert [(e.action, e.outcome, e.provider) for e in events] == [("connect", "success", provider)]


def test_github_stores_non_expiring_access_token_without_refresh(connect, app):
    connect.connect("github")
    row = _connection(app, "github")
    assert row.refresh_token_enc is None and row.access_token_enc and row.access_token_expires_at is None


def test_provider_without_refresh_token_gets_clear_error(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify", token={"access_token": "BQSECRETACCESS", "expires_in": 3600})
    response = connect.callback({"code": "CODE123", "state": params["state"]})
    assert _outcome(response)["error"] == "no_refresh_token"
    assert _connection(app, "spotify") is None


def test_reconnect_replaces_tokens_of_existing_connection(connect, app):
    connect.connect("spotify")
    first = _connection(app, "spotify")
    connect.connect("spotify")
    second = _connection(app, "spotify")
    assert first.id == second.id and first.refresh_token_enc != second.refresh_token_enc


def test_callback_replay_is_rejected_and_changes_nothing(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify")
    query = {"code": "CODE123", "state": params["state"]}
    assert _outcome(connect.callback(query))["connector_status"] == "connected"
    before = connection_rows(app)
    replay = connect.callback(query)  # Back, then Allow again: back to the app, nothing changed
    assert _outcome(replay) == {"connector_status": "error", "provider": "spotify", "error": "already_used"}
    assert connection_rows(app) == before


def test_callback_from_another_browser_is_rejected(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    other_browser = app.test_client()
    response = connect.callback({"code": "CODE123", "state": params["state"]}, client=other_browser)
    assert _outcome(response) == {"connector_status": "error", "provider": "spotify", "error": "other_browser"}
    assert connection_rows(app) == []
    # The rightful browser can still finish: the failed attempt did not consume the request.
    connect.mock_provider("spotify")
    assert _outcome(connect.callback({"code": "CODE123", "state": params["state"]}))["connector_status"] == "connected"


def test_expired_state_is_rejected(connect, app, monkeypatch):
    params = connect.authorize_params(connect.start("spotify"))
    later = clock.now() + timedelta(minutes=11)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = connect.callback({"code": "CODE123", "state": params["state"]})
    assert _outcome(response) == {"connector_status": "error", "provider": "spotify", "error": "expired"}
    assert "connector_bind_" in response.headers["Set-Cookie"] and "Max-Age=0" in response.headers["Set-Cookie"]
    assert connection_rows(app) == []


@pytest.mark.parametrize("state", ["", "forged", "abc.def", "A" * 5000])
def test_missing_or_forged_state_is_rejected(connect, app, state):
    response = connect.callback({"code": "CODE123", "state": state})
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert connection_rows(app) == []


def test_callback_without_state_is_rejected(connect):
    assert connect.callback("code=CODE123").status_code == 400


def test_duplicated_query_parameters_are_rejected(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    response = connect.callback(f"code=CODE123&code=OTHER&state={params['state']}")
    assert _outcome(response)["error"] == "invalid_request"
    assert used_attempts(app) == []


def test_state_for_another_provider_cannot_switch_provider(connect, app):
    """The provider comes from the stored request: a ?provider= in the query changes nothing."""
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify")
    response = connect.callback({"code": "CODE123", "state": params["state"], "provider": "github"})
    assert _outcome(response)["provider"] == "spotify"
    assert _connection(app, "github") is None


def test_wrong_iss_is_rejected(connect, app):
    params = connect.authorize_params(connect.start("google"))
    response = connect.callback({"code": "CODE123", "state": params["state"], "iss": "https://evil.test"})
    assert _outcome(response) == {"connector_status": "error", "provider": "google", "error": "invalid_callback"}
    assert connection_rows(app) == []
    assert used_attempts(app) == []  # not consumed: a forged response cannot cancel the real one
    connect.mock_provider("google")
    genuine = connect.callback({"code": "CODE123", "state": params["state"], "iss": "https://accounts.google.com"})
    assert _outcome(genuine)["connector_status"] == "connected"


def test_missing_iss_is_rejected_for_provider_that_sends_it(connect, app):
    params = connect.authorize_params(connect.start("github"))
    response = connect.callback({"code": "CODE123", "state": params["state"]})
    assert _outcome(response) == {"connector_status": "error", "provider": "github", "error": "invalid_callback"}


def test_id_token_with_wrong_nonce_fails(connect, app):
    from tests.connect.conftest import fake_id_token

    params = connect.authorize_params(connect.start("google"))
    token = dict(PROVIDER_MOCKS["google"]["token"],
                 id_token=fake_id_token({"iss": "https://accounts.google.com", "aud": "google-client", "nonce": "x"}))
    connect.mock_provider("google", token=token)
    response = connect.callback({"code": "C", "state": params["state"], "iss": "https://accounts.google.com"})
    assert _outcome(response)["error"] == "invalid_id_token"
    assert connection_rows(app) == []


def _raw_id_token(payload: bytes) -> str:
    """An unsigned ID token whose payload segment is exactly ``payload``."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return part(b'{"alg": "RS256", "kid": "x"}') + "." + part(payload) + ".c2ln"


@pytest.mark.parametrize("payload", [b'["nonce"]', b'"a string"', b"42", b"null", b"true", b"not json",
                                     b"[" * 5000 + b"]" * 5000, b"\xff\xfe",
                                     b'{"nonce": {"a": 1}, "aud": {"x": 1}, "iss": [1]}'])
def test_id_token_whose_payload_is_not_an_object_fails(connect, app, payload):
    params = connect.authorize_params(connect.start("google"))
    token = dict(PROVIDER_MOCKS["google"]["token"], id_token=_raw_id_token(payload))
    connect.mock_provider("google", token=token)
    response = connect.callback({"code": "C", "state": params["state"], "iss": "https://accounts.google.com"})
    outcome = _outcome(response)
    assert (outcome["connector_status"], outcome["provider"], outcome["error"]) == ("error", "google",
                                                                                    "invalid_id_token")
    assert connection_rows(app) == []


def test_provider_error_redirects_with_error_code(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    response = connect.callback({"error": "access_denied", "state": params["state"]})
    assert _outcome(response) == {"connector_status": "error", "provider": "spotify", "error": "access_denied"}
    assert connection_rows(app) == []
    with app.app_context():
        event = db.session.scalars(select(AuditEvent)).one()
        assert (event.action, event.outcome, event.detail) == ("connect", "error", {"error": "access_denied"})


def test_odd_provider_error_code_is_not_reflected(connect):
    params = connect.authorize_params(connect.start("spotify"))
    response = connect.callback({"error": "<script>", "state": params["state"]})
    assert _outcome(response)["error"] == "provider_error"


@pytest.mark.parametrize("mock,expected", [
    ({"status": 400, "token": {"error": "invalid_grant"}}, "invalid_grant"),
    ({"status": 500, "body": "oops"}, "provider_unavailable"),
    ({"status": 200, "body": "<html>not json</html>"}, "provider_unavailable"),
    ({"status": 200, "token": {"token_type": "bearer"}}, "provider_unavailable"),
    ({"status": 200, "token": {"error": "bad_verification_code"}}, "bad_verification_code"),
])
def test_failed_code_exchange_redirects_with_error(connect, app, mock, expected):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify", **mock)
    response = connect.callback({"code": "CODE123", "state": params["state"]})
    assert _outcome(response)["error"] == expected
    assert connection_rows(app) == []


def test_code_exchange_timeout_redirects_with_error(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    connect.http.post(PROVIDER_MOCKS["spotify"]["token_url"], body=requests.ReadTimeout("slow"))
    response = connect.callback({"code": "CODE123", "state": params["state"]})
    assert _outcome(response)["error"] == "provider_unavailable"
    assert connection_rows(app) == []


def test_failed_exchange_keeps_existing_connection(connect, app):
    connect.connect("spotify")
    before = connection_rows(app)
    params = connect.authorize_params(connect.start("spotify"))
    connect.http.post(PROVIDER_MOCKS["spotify"]["token_url"], body=requests.ConnectionError("down"))
    assert _outcome(connect.callback({"code": "C", "state": params["state"]}))["error"] == "provider_unavailable"
    assert connection_rows(app) == before


def test_return_url_query_is_preserved(connect, app):
    response = connect.connect("spotify", return_to=RETURN_URL + "?tab=apps&connector_status=spoofed")
    outcome = _outcome(response)
    assert outcome == {"tab": "apps", "connector_status": "connected", "provider": "spotify"}


def test_no_code_state_or_token_in_logs(connect, app, caplog):
    caplog.set_level(logging.DEBUG)
    params = connect.authorize_params(connect.start("google"))
    connect.mock_provider("google", status=500, body="down")
    connect.callback({"code": "CODE123", "state": params["state"], "iss": "https://accounts.google.com"})
    connect.connect("spotify")
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (*SECRETS, params["state"], "spotify-secret-value", "google-secret-value"):
        assert secret not in text


@pytest.mark.parametrize("query", ["state=a%00", "state=a&code=C%00D", "state=a&error=x%0A"])
def test_control_characters_in_callback_query_are_a_400_page(connect, app, query):
    response = connect.callback(query)
    assert (response.status_code, response.mimetype) == (400, "text/html")
    assert "Location" not in response.headers and "control character" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert connection_rows(app) == []


# ---------------------------------------------------------------- the sealed attempt (issue 14)

def _binding_cookie(client):
    return next(c for c in client._cookies.values() if c.key.startswith("__Host-connector_bind_"))


def test_two_tabs_connecting_at_once_both_finish(connect, app):
    first = connect.authorize_params(connect.start("spotify"))
    second = connect.authorize_params(connect.start("google"))
    connect.mock_provider("google")
    google = connect.callback({"code": "C2", "state": second["state"], "iss": "https://accounts.google.com"},
                              path="/connect/callback/google")
    connect.mock_provider("spotify")
    spotify = connect.callback({"code": "C1", "state": first["state"]}, path="/connect/callback/spotify")
    assert _outcome(google)["connector_status"] == _outcome(spotify)["connector_status"] == "connected"
    assert len(used_attempts(app)) == 2


def test_another_attempts_cookie_under_this_attempts_name_is_another_browser(connect, app):
    """A browser that holds a valid cookie of its own attempt cannot pass it off for the victim's."""
    victim = connect.authorize_params(connect.start("spotify"))
    attacker = app.test_client()
    connect.start("spotify", client=attacker)
    stolen_name = _binding_cookie(connect.client).key
    attacker.set_cookie(stolen_name, _binding_cookie(attacker).value, domain="connector.test", secure=True, path="/")
    response = connect.callback({"code": "CODE123", "state": victim["state"]}, client=attacker)
    assert _outcome(response)["error"] == "other_browser"
    assert used_attempts(app) == []
    connect.mock_provider("spotify")
    assert _outcome(connect.callback({"code": "CODE123", "state": victim["state"]}))["connector_status"] == "connected"


def test_a_used_attempt_is_recorded_until_purged(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify")
    connect.callback({"code": "CODE123", "state": params["state"]})
    ref = open_state(app.extensions["connector"].keyring, params["state"])
    assert used_attempts(app) == [ref.id]


def _with_keys(keys: str, database_url: str):
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url},
                      env=base_env(TOKEN_ENCRYPTION_KEYS=keys))


def test_an_attempt_started_before_a_key_rotation_finishes_while_the_old_key_is_kept(connect, app, database_url):
    params = connect.authorize_params(connect.start("spotify"))  # sealed with k1
    cookie = _binding_cookie(connect.client)
    query = f"/connect/callback/spotify?code=CODE123&state={params['state']}"

    only_new = _with_keys(KEY_2, database_url)  # k1 dropped too early: the attempt cannot be opened
    browser = only_new.test_client()
    browser.set_cookie(cookie.key, cookie.value, domain="connector.test", secure=True, path="/")
    assert browser.get(query, base_url=BASE_URL).status_code == 400

    rotated = _with_keys(f"{KEY_2},{KEY_1}", database_url)  # k2 first, k1 kept: it finishes
    browser = rotated.test_client()
    browser.set_cookie(cookie.key, cookie.value, domain="connector.test", secure=True, path="/")
    connect.mock_provider("spotify")
    assert _outcome(browser.get(query, base_url=BASE_URL))["connector_status"] == "connected"
    for other in (only_new, rotated):
        with other.app_context():
            db.engine.dispose()


def test_concurrent_callbacks_for_one_attempt_consume_it_once(app):
    spec = app.extensions["connector"].registry.get("spotify")
    ctx = app.extensions["connector"].connect
    with app.app_context():
        started = flow.start_connect(ctx, Principal(sub="auth0|alice", is_machine=False), spec, RETURN_URL)
    state = parse_qs(urlsplit(started.authorize_url).query)["state"][0]
    attempt = open_cookie(ctx.keyring, open_state(ctx.keyring, state), started.cookie_value)
    barrier, results = threading.Barrier(6), []

    def consume() -> None:
        with app.app_context():
            barrier.wait(timeout=30)
            results.append(flow._consume(attempt))
            db.session.remove()

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 5 + [True]


def test_scopes_and_params_travel_sealed_to_the_callback(app):
    spec = app.extensions["connector"].registry.get("spotify")
    ctx = app.extensions["connector"].connect
    with app.app_context():  # (it reads the user's connection: its granted scopes are asked for again)
        started = flow.start_connect(ctx, Principal(sub="auth0|alice", is_machine=False), spec, RETURN_URL,
                                     scopes=("playlist-read-private",), params={"login_hint": "alice@example.com"})
    state = parse_qs(urlsplit(started.authorize_url).query)["state"][0]
    attempt = open_cookie(ctx.keyring, open_state(ctx.keyring, state), started.cookie_value)
    # The entry's default scopes and the asked one (the user has no connection yet).
    assert attempt.scopes == (*spec.scopes, "playlist-read-private")
    assert attempt.params == {"login_hint": "alice@example.com"}
    assert "alice@example.com" not in started.cookie_value and "alice" not in state


def test_a_replay_that_still_carries_the_cookie_is_refused_before_any_exchange(connect, app):
    """The binding cookie outlived the success (its deletion was lost): the unique insert refuses it."""
    params = connect.authorize_params(connect.start("spotify"))
    cookie = _binding_cookie(connect.client)
    connect.mock_provider("spotify")
    query = {"code": "CODE123", "state": params["state"]}
    assert _outcome(connect.callback(query))["connector_status"] == "connected"
    before, exchanges = connection_rows(app), len(connect.http.calls)
    connect.client.set_cookie(cookie.key, cookie.value, domain="connector.test", secure=True, path="/")
    replay = connect.callback(query)
    assert _outcome(replay) == {"connector_status": "error", "provider": "spotify", "error": "already_used"}
    assert "Max-Age=0" in replay.headers["Set-Cookie"]
    assert connection_rows(app) == before and len(connect.http.calls) == exchanges
