"""Token verification as callers meet it over HTTP: a malformed token is a 401 ``invalid_token``
with ``WWW-Authenticate`` on the API (RFC 6750 §3.1) and the documented 401 page on
``/connect/start``, one short log line at most; unreachable signing keys are a 503 with Retry-After."""
from __future__ import annotations

import http.client
import logging
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from tests.conftest import APP_ORIGIN, BASE_URL, JWKS_URL, RETURN_URL
from tests.jose_strategies import tokens
from tests.test_identity import GOOD_HEADER, NESTED, _claims, signed

HTTP_CASES = settings(max_examples=12, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                             HealthCheck.data_too_large])


def _assert_quiet(caplog) -> None:
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) <= 1 and not any(r.exc_info for r in caplog.records), [r.getMessage() for r in noisy]
    assert all(len(r.getMessage()) < 200 and "\n" not in r.getMessage() for r in noisy)


def _api_refused(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.mimetype == "application/problem+json" and response.json["code"] == "invalid_token"


def _start(client, token: str):
    return client.post("/connect/start", data={"access_token": token, "provider": "github", "return_to": RETURN_URL},
                       headers={"Origin": APP_ORIGIN}, base_url=BASE_URL)


@pytest.mark.parametrize("token", [
    lambda key: signed(key, {**GOOD_HEADER, "crit": [1]}, _claims()),
    lambda key: signed(key, {**GOOD_HEADER, "crit": [{}]}, _claims()),
    lambda key: signed(key, NESTED, _claims()),
    lambda key: signed(key, GOOD_HEADER, NESTED),
    lambda key: signed(key, b"\xff\xfe", _claims()),
])
def test_malformed_tokens_are_401_on_the_api_and_on_connect_start(client, auth0, caplog, token):
    token = token(auth0.key)
    _api_refused(client.get("/api/connections", headers={"Authorization": f"Bearer {token}"}))
    page = _start(client, token)
    # The form's return URL passed its checks: back to the app with login_required; a token longer than a
    # form field may be is refused before anything is read (a 400 page: no checked return URL yet).
    if page.status_code == 303:
        assert _outcome(page) == {"connector_status": ["error"], "provider": ["github"], "error": ["login_required"]}
    else:
        assert page.status_code == 400 and page.mimetype == "text/html" and "invalid_request" in page.text, page.text
    _assert_quiet(caplog)


def _outcome(page) -> dict:
    location = page.headers["Location"]
    assert location.startswith(RETURN_URL), location
    return parse_qs(urlsplit(location).query)


@HTTP_CASES
@given(data=st.data())
def test_generated_tokens_over_http_are_never_a_server_error(client, auth0, caplog, data):
    token = data.draw(tokens(auth0.key))
    caplog.clear()
    api = client.get("/api/connections", headers={"Authorization": f"Bearer {token}"})
    if api.status_code != 200:  # a well-formed token with odd extra members may be valid
        _api_refused(api)
    start = _start(client, token)
    assert start.status_code in (303, 400, 401), start.text
    _assert_quiet(caplog)


@pytest.fixture
def server(app):
    """The app behind a real werkzeug server on loopback (its JWKS still comes from ``responses``)."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_port
    srv.shutdown()
    srv.server_close()


def _get(port: int, path: str, headers: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_malformed_tokens_against_a_real_server(server, auth0, caplog):
    for token in (signed(auth0.key, {**GOOD_HEADER, "crit": [None]}, _claims()),
                  signed(auth0.key, GOOD_HEADER, b'{"sub":"a","x":' + NESTED + b"}"),
                  signed(auth0.key, b'{"alg":"RS256","kid":"kid-1","x":1e999}', _claims())):
        status, headers, body = _get(server, "/api/connections", {"Authorization": f"Bearer {token}"})
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer error="invalid_token"', body
        assert b'"invalid_token"' in body
    status, _, _ = _get(server, "/api/connections", {"Authorization": f"Bearer {auth0.token()}"})
    assert status == 200
    _assert_quiet(caplog)


def test_unreachable_signing_keys_are_503_with_retry_after(client, auth0, mocked_http):
    mocked_http.replace("GET", JWKS_URL, status=503)
    api = client.get("/api/connections", headers={"Authorization": f"Bearer {auth0.token()}"})
    assert api.status_code == 503 and api.mimetype == "application/problem+json"
    assert api.json["code"] == "signing_keys_unavailable" and int(api.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in api.headers  # not "you are signed out"
    page = _start(client, auth0.token())  # back to the app, which can say "try again shortly"
    assert page.status_code == 303 and _outcome(page)["error"] == ["temporarily_unavailable"], page.headers
