"""What a refused or failed connect leaves behind: the browser back at the app with a stable code
(or a plain-words page when no checked return URL exists), an audit row and one warning line.
Also the per-provider callback path (RFC 9700 4.4.2 mix-up defence)."""
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app import clock, create_app
from app.extensions import db
from app.models import AuditEvent
from tests.conftest import BASE_URL, RETURN_URL, base_env
from tests.connect.conftest import PROVIDER_MOCKS, binding_cookies, connection_rows, used_attempts

IDP = "https://idp.test"
DISCOVERY = {"issuer": IDP, "authorization_endpoint": IDP + "/auth", "token_endpoint": IDP + "/token",
             "userinfo_endpoint": IDP + "/me"}


@pytest.fixture
def env(tmp_path):
    providers = tmp_path / "providers.toml"
    providers.write_text(f'[idp]\nissuer = "{IDP}"\nscopes = ["openid", "offline_access"]\n')
    return base_env(CONNECTOR_PROVIDERS_FILE=str(providers), IDP_CLIENT_ID="idp-client",
                    IDP_CLIENT_SECRET="idp-secret-value")


def _outcome(response) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(RETURN_URL + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _rejections(app) -> list[tuple]:
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.outcome == "rejected")).all()
        return [(e.action, e.provider, e.user_id, e.detail["reason"]) for e in events]


def _token_calls(connect) -> int:
    return sum(1 for call in connect.http.calls if "token" in call.request.url and "jwks" not in call.request.url)


# ---------------------------------------------------------------- the callback path (11.14)

def test_code_arriving_on_another_providers_path_is_refused(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify")
    response = connect.callback({"code": "CODE123", "state": params["state"]}, path="/connect/callback/github")
    assert _outcome(response) == {"connector_status": "error", "provider": "spotify", "error": "invalid_callback"}
    assert _token_calls(connect) == 0  # the code went to no token endpoint
    assert connection_rows(app) == []
    assert _rejections(app) == [("connect", "spotify", "auth0|alice", "invalid_callback")]
    # The request is still pending: the genuine response, on spotify's own path, completes it.
    assert _outcome(connect.callback({"code": "CODE123", "state": params["state"]}))["connector_status"] == "connected"


@pytest.mark.parametrize("path", ["/connect/callback", "/connect/callback/nope", "/connect/callback/" + "x" * 300])
def test_code_on_the_bare_or_an_unknown_path_is_refused(connect, app, path):
    params = connect.authorize_params(connect.start("google"))
    response = connect.callback({"code": "C", "state": params["state"], "iss": "https://accounts.google.com"},
                                path=path)
    assert _outcome(response)["error"] == "invalid_callback"
    assert _token_calls(connect) == 0 and connection_rows(app) == []


@pytest.mark.parametrize("provider", ["github", "google", "spotify"])
def test_each_provider_has_its_own_redirect_uri(connect, provider):
    params = connect.authorize_params(connect.start(provider))
    assert params["redirect_uri"] == f"{BASE_URL}/connect/callback/{provider}"
    connect.connect(provider)
    token_call = [c for c in connect.http.calls if c.request.url == PROVIDER_MOCKS[provider]["token_url"]][-1]
    assert f"callback%2F{provider}" in token_call.request.body  # the same URI in the code exchange


# ---------------------------------------------------------------- rejected callbacks are recorded (13.8)

def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _assert_no_secrets(caplog, app, *values):
    with app.app_context():
        audit = repr([(e.detail, e.actor_id) for e in db.session.scalars(select(AuditEvent))])
    text = caplog.text + audit
    for value in values:
        assert value not in text


def test_replayed_callback_is_recorded(connect, app, caplog):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify")
    query = {"code": "CODE123", "state": params["state"]}
    connect.callback(query)
    caplog.set_level(logging.INFO)
    assert _outcome(connect.callback(query))["error"] == "already_used"
    assert _rejections(app) == [("connect", "spotify", "auth0|alice", "already_used")]
    [line] = _warnings(caplog)
    assert "connect rejected" in line and "reason=already_used" in line and "provider=spotify" in line
    _assert_no_secrets(caplog, app, "CODE123", params["state"], "BQSECRETACCESS", "AQSECRETREFRESH")


def test_expired_callback_is_recorded(connect, app, caplog, monkeypatch):
    params = connect.authorize_params(connect.start("spotify"))
    later = clock.now() + timedelta(minutes=11)
    monkeypatch.setattr(clock, "now", lambda: later)
    caplog.set_level(logging.INFO)
    assert _outcome(connect.callback({"code": "CODE123", "state": params["state"]}))["error"] == "expired"
    assert _rejections(app) == [("connect", "spotify", "auth0|alice", "expired")]
    assert len(_warnings(caplog)) == 1
    _assert_no_secrets(caplog, app, "CODE123", params["state"])


def test_callback_in_another_browser_is_recorded(connect, app, caplog):
    params = connect.authorize_params(connect.start("spotify"))
    caplog.set_level(logging.INFO)
    response = connect.callback({"code": "CODE123", "state": params["state"]}, client=app.test_client())
    assert _outcome(response)["error"] == "other_browser"
    assert _rejections(app) == [("connect", "spotify", "auth0|alice", "other_browser")]
    [line] = _warnings(caplog)
    assert "other_browser" in line
    _assert_no_secrets(caplog, app, "CODE123", params["state"])


@pytest.mark.parametrize("query", ["code=CODE123&state=forged", "code=CODE123", "code=CODE123&state=a.b",
                                   "state=x&state=y"])
def test_forged_callback_is_recorded_and_gets_a_plain_words_page(connect, app, caplog, query):
    caplog.set_level(logging.INFO)
    response = connect.callback(query, path="/connect/callback/spotify")
    assert response.status_code == 400 and "Location" not in response.headers
    page = response.get_data(as_text=True)
    assert "This connect link is not valid" in page and "Nothing was connected" in page
    assert "press Connect again" in page
    [(action, provider, user, reason)] = _rejections(app)
    assert (action, provider, user) == ("connect", "spotify", None)
    assert reason in ("invalid_state", "invalid_request")
    assert len(_warnings(caplog)) == 1
    _assert_no_secrets(caplog, app, "CODE123")


def test_forged_callback_on_a_junk_path_records_no_provider(connect, app):
    response = connect.callback("state=forged", path="/connect/callback/" + "Z" * 200)
    assert response.status_code == 400
    assert _rejections(app) == [("connect", None, None, "invalid_state")]


# ---------------------------------------------------------------- odd callback queries (11.2)

@pytest.mark.parametrize("query", [
    "state=%ff%fe&code=%c3%28", "code=%ff", "state[]=a&code[]=b", "state=&code=", "%ff=%ff",
    "state=" + "A" * 5000, "error=access_denied&error=x", "state=a&state=", "code=" + "x" * 100_000,
])
def test_odd_callback_queries_are_never_a_500(connect, app, query):
    response = connect.callback(query, path="/connect/callback/spotify")
    assert response.status_code in (303, 400)
    assert connection_rows(app) == []


def test_odd_parameters_with_a_valid_state_go_back_to_the_app(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    for query in (f"state={params['state']}&code=" + "x" * 5000, f"state={params['state']}&iss=a&iss=b"):
        assert _outcome(connect.callback(query))["error"] == "invalid_request"
    assert used_attempts(app) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["state", "code", "iss", "error", "x", "state[]"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x10FFFF,
                                                         exclude_categories=("Cs",)), max_size=40)),
                max_size=6))
def test_any_callback_query_is_a_redirect_or_a_400(connect, app, pairs):
    from urllib.parse import urlencode

    response = connect.callback(urlencode(pairs), path="/connect/callback/spotify")
    assert response.status_code in (303, 400)


# ---------------------------------------------------------------- provider unavailable (13.11)

def test_discovery_unreachable_at_start_goes_back_to_the_app(connect, app):
    # Nothing answers https://idp.test: responses refuses the connection.
    response = connect.start("idp")
    assert _outcome(response) == {"connector_status": "error", "provider": "idp", "error": "provider_unavailable"}
    assert binding_cookies(response) == []


def test_discovery_unreachable_at_callback_goes_back_to_the_app(connect, app, env, database_url):
    connect.http.get(IDP + "/.well-known/openid-configuration", json=DISCOVERY)
    params = connect.authorize_params(connect.start("idp"))
    # The callback reaches another worker, whose discovery fails (nothing is mocked for it now).
    connect.http.remove("GET", IDP + "/.well-known/openid-configuration")
    other_worker = create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}, env=env)
    browser = other_worker.test_client()
    cookie = next(c for c in connect.client._cookies.values() if c.key.startswith("__Host-connector_bind_"))
    browser.set_cookie(cookie.key, cookie.value, domain="connector.test", secure=True, path="/")
    response = browser.get(f"/connect/callback/idp?code=C&state={params['state']}", base_url=BASE_URL)
    assert _outcome(response) == {"connector_status": "error", "provider": "idp", "error": "provider_unavailable"}
    assert connection_rows(app) == []
    with other_worker.app_context():
        db.engine.dispose()


def test_token_endpoint_unreachable_goes_back_to_the_app(connect, app):
    params = connect.authorize_params(connect.start("spotify"))  # nothing mocked: connection refused
    response = connect.callback({"code": "CODE123", "state": params["state"]})
    assert _outcome(response) == {"connector_status": "error", "provider": "spotify", "error": "provider_unavailable"}


# ---------------------------------------------------------------- pages where no checked return URL exists

@pytest.mark.parametrize("case,status,code,heading", [
    ("cross_site", 403, "cross_site_request", "This connect did not come from the application"),
    ("duplicated", 400, "invalid_request", "This connect request is malformed"),
    ("return_url", 400, "invalid_return_url", "return address this service does not allow"),
])
def test_start_failures_without_a_checked_return_url_are_plain_words_pages(connect, app, case, status, code,
                                                                           heading):
    form = {"access_token": connect.auth0.token(), "provider": "github", "return_to": RETURN_URL}
    if case == "duplicated":
        form["provider"] = ["github", "google"]
    if case == "return_url":
        form["return_to"] = "https://evil.test/settings"
    response = connect.start(data=form, origin="https://evil.test" if case == "cross_site" else None,
                             headers={} if case == "cross_site" else {"Origin": "https://app.test"})
    assert response.status_code == status and "Location" not in response.headers
    page = response.get_data(as_text=True)
    assert heading in page and "Nothing was connected" in page and f">{code}<" in page
    json_response = connect.start(data=form, origin="https://evil.test" if case == "cross_site" else None,
                                  headers={"Accept": "application/json",
                                           **({} if case == "cross_site" else {"Origin": "https://app.test"})})
    assert json_response.json["code"] == code
