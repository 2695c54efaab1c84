"""Per-connection params on their way in (app/connect/params.py): from the start form, the provider's
redirect and the token response; a value off its declared pattern ends the connect with
``invalid_connection_param`` and writes no connection."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Connection, RevocationTask, UsedConnectAttempt
from tests.conftest import RETURN_URL, providers_env
from tests.connect.conftest import connection_rows
from tests.zen_provider import CREDENTIALS, zen_toml

HOSTILE = ["evil.com/", "evil.com", "acme/../../x", "ACME", "a" * 64, "acme\n", "acme%2f", "-acme", "acme?x=1"]
TOKEN = {"access_token": "zen-ACCESS", "refresh_token": "zen-REFRESH", "expires_in": 3600, "token_type": "Bearer"}


@pytest.fixture
def extra_entry() -> dict:
    return {}


@pytest.fixture
def env(recorder, tmp_path, extra_entry):
    return providers_env(tmp_path, zen_toml(recorder.url, **extra_entry), **CREDENTIALS)


def _outcome(response) -> dict[str, str]:
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(RETURN_URL + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def _start(connect, **fields):
    form = {"access_token": connect.auth0.token(), "provider": "zen", "return_to": RETURN_URL, **fields}
    return connect.start("zen", data=form)


def _nothing_written(app) -> bool:
    with app.app_context():
        return db.session.scalars(select(UsedConnectAttempt)).all() == [] and connection_rows(app) == []


def test_start_fills_the_authorize_url_with_the_subdomain_and_seals_it_for_the_callback(connect, app, recorder):
    from app.connect.attempt import open_cookie, open_state

    response = _start(connect, subdomain="acme")
    assert response.headers["Location"].startswith(f"{recorder.url}/acme/oauth/authorizations/new?")
    keyring = app.extensions["connector"].keyring
    ref = open_state(keyring, connect.authorize_params(response)["state"])
    cookie = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert open_cookie(keyring, ref, cookie).params == {"subdomain": "acme"}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_start_refuses_a_subdomain_off_its_pattern_and_sends_the_browser_back(connect, app, hostile):
    response = _start(connect, subdomain=hostile)
    assert _outcome(response) == {"connector_status": "error", "provider": "zen", "error": "invalid_connection_param"}
    assert "Set-Cookie" not in response.headers and _nothing_written(app)
    assert hostile not in response.headers["Location"]


def test_start_without_the_required_param_is_refused(connect, app):
    response = _start(connect)
    assert _outcome(response)["error"] == "invalid_connection_param" and "Set-Cookie" not in response.headers


def test_start_answers_a_json_client_with_the_problem(connect):
    response = connect.start("zen", data={"access_token": connect.auth0.token(), "provider": "zen",
                                          "return_to": RETURN_URL, "subdomain": "evil.com/"},
                             headers={"Accept": "application/json"})
    assert response.status_code == 400 and response.json["code"] == "invalid_connection_param"
    assert "evil.com" not in response.get_data(as_text=True)


def _callback(connect, response, **extra):
    state = connect.authorize_params(response)["state"]
    return connect.callback({"code": "CODE123", "state": state, **extra})


def test_connect_exchanges_at_the_subdomains_token_url_and_stores_the_params(connect, app, client, recorder):
    recorder.answer("/acme/oauth/tokens", json_body=TOKEN)
    outcome = _outcome(_callback(connect, _start(connect, subdomain="acme")))
    assert outcome == {"connector_status": "connected", "provider": "zen"}
    assert recorder.at("/acme/oauth/tokens")[0].form()["code"] == "CODE123"
    with app.app_context():
        assert db.session.scalars(select(Connection)).one().params == {"subdomain": "acme"}
    listed = client.get("/api/connections", headers={"Authorization": f"Bearer {connect.auth0.token()}"}).json
    assert listed["connections"][0]["params"] == {"subdomain": "acme"}


def test_the_proxy_reaches_only_the_connections_own_api(connect, app, client, recorder):
    recorder.answer("/acme/oauth/tokens", json_body=TOKEN)
    _callback(connect, _start(connect, subdomain="acme"))
    recorder.answer("/acme/api/v2/users/me.json", json_body={"user": {"id": 7}})
    headers = {"Authorization": f"Bearer {connect.auth0.token()}"}
    response = client.get("/api/proxy/zen/users/me.json", headers=headers)
    assert response.status_code == 200 and response.json == {"user": {"id": 7}}
    assert recorder.at("/acme/api/v2/users/me.json")[0].headers["Authorization"] == "Bearer zen-ACCESS"
    assert client.get("/api/proxy/zen/../../other/api/v2/x", headers=headers).status_code in (400, 404)
    assert [r.path for r in recorder.requests if "other" in r.path] == []


class TestCallbackParam:
    """QuickBooks: the realm id comes with the provider's redirect."""

    @pytest.fixture
    def extra_entry(self):
        return {"params": {"subdomain": {"pattern": "[a-z]{1,20}"},
                           "realm_id": {"pattern": "[0-9]{1,32}", "source": "callback", "path": "realmId"}},
                "account_id": {"source": "param", "field": "realm_id"}}

    def test_the_realm_id_from_the_redirect_is_stored_and_is_the_account_id(self, connect, app, recorder):
        recorder.answer("/acme/oauth/tokens", json_body=TOKEN)
        assert _outcome(_callback(connect, _start(connect, subdomain="acme"), realmId="9130"))["connector_status"] \
            == "connected"
        with app.app_context():
            row = db.session.scalars(select(Connection)).one()
            assert (row.params, row.external_account_id) == ({"subdomain": "acme", "realm_id": "9130"}, "9130")

    @pytest.mark.parametrize("realm", ["91x30", "", "1" * 33])
    def test_a_hostile_realm_id_fails_the_connect_and_writes_nothing(self, connect, app, recorder, realm):
        recorder.answer("/acme/oauth/tokens", json_body=TOKEN)
        outcome = _outcome(_callback(connect, _start(connect, subdomain="acme"), realmId=realm))
        assert outcome["error"] == "invalid_connection_param"
        assert connection_rows(app) == [] and recorder.requests == []
        with app.app_context():
            audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "connect")).all()
            assert [(e.outcome, e.detail["error"]) for e in audit] == [("error", "invalid_connection_param")]


class TestTokenResponseParam:
    """Salesforce: the instance URL comes with the token, and the API base URL is built on it."""

    @pytest.fixture
    def extra_entry(self, recorder):
        return {"params": {"subdomain": {"pattern": "[a-z]{1,20}"},
                           "instance_url": {"pattern": r"http://127\.0\.0\.1:[0-9]{1,5}", "source": "token_response"}},
                "api_base_url": "{instance_url}/services/data/"}

    def test_the_instance_url_from_the_token_response_is_stored(self, connect, app, recorder):
        recorder.answer("/acme/oauth/tokens", json_body={**TOKEN, "instance_url": recorder.url})
        assert _outcome(_callback(connect, _start(connect, subdomain="acme")))["connector_status"] == "connected"
        with app.app_context():
            assert db.session.scalars(select(Connection)).one().params["instance_url"] == recorder.url

    @pytest.mark.parametrize("instance", ["https://evil.example", "http://127.0.0.1:1/x", None, 42])
    def test_a_hostile_instance_url_fails_the_connect_and_writes_nothing(self, connect, app, recorder, instance):
        recorder.answer("/acme/oauth/tokens", json_body={**TOKEN, "instance_url": instance})
        outcome = _outcome(_callback(connect, _start(connect, subdomain="acme")))
        assert outcome["error"] == "invalid_connection_param" and connection_rows(app) == []

    def test_the_tokens_issued_with_a_hostile_instance_url_are_revoked_at_the_connections_own_url(
            self, connect, app, recorder):
        """Only the params validated so far (the subdomain) go with the revocation task."""
        from app.revocation import retry_revocations

        recorder.answer("/acme/oauth/tokens", json_body={**TOKEN, "instance_url": "https://evil.example"})
        assert _outcome(_callback(connect, _start(connect, subdomain="acme")))["error"] == "invalid_connection_param"
        with app.app_context():
            task = db.session.scalars(select(RevocationTask)).one()
            assert (task.params, task.token_type_hint) == ({"subdomain": "acme"}, "access_token")
        recorder.answer("/acme/api/v2/oauth/tokens/current.json", status=204, body="")
        with app.app_context():
            assert retry_revocations()["done"] == 1
        sent = recorder.at("/acme/api/v2/oauth/tokens/current.json")
        assert [(r.method, r.headers["Authorization"]) for r in sent] == [("DELETE", "Bearer zen-ACCESS")]
