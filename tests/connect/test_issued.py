"""A connect that fails after the provider issued tokens (app/connect/issued.py): the tokens are
queued for revocation at the provider, unless revoking them could end a grant a connection holds."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, RevocationTask
from app.revocation import retry_revocations
from tests.conftest import RETURN_URL, providers_env
from tests.connect.conftest import PROVIDER_MOCKS, connection_rows, fake_id_token

GOOGLE = PROVIDER_MOCKS["google"]
GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
SECOND = dict(GOOGLE["token"], access_token="ya29.SECONDACCESS", refresh_token="1//SECONDREFRESH")


def _outcome(response) -> dict[str, str]:
    assert response.status_code == 303 and response.headers["Location"].startswith(RETURN_URL)
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def _google(connect, *, token: dict | None = None, nonce: str | None = None, userinfo: dict | None = None,
            userinfo_status: int = 200):
    """A Google connect whose exchange succeeds; what follows it fails as the arguments say."""
    params = connect.authorize_params(connect.start("google"))
    token = dict(GOOGLE["token"] if token is None else token)
    token["id_token"] = fake_id_token({"iss": GOOGLE["iss"], "aud": "google-client", "sub": "1077",
                                       "nonce": nonce or params["nonce"]})
    connect.http.post(GOOGLE["token_url"], json=token)
    url, data = GOOGLE["userinfo"]
    connect.http.get(url, json=data if userinfo is None else userinfo, status=userinfo_status)
    return _outcome(connect.callback({"code": "C", "state": params["state"], "iss": GOOGLE["iss"]})), params


def _tasks(app) -> list[tuple[str, str, str, str]]:
    """(connection_id, provider, token_type_hint, token) of every queued revocation."""
    with app.app_context():
        keyring = app.extensions["connector"].keyring
        return [(t.connection_id, t.provider, t.token_type_hint, keyring.decrypt(t.token_enc, t.aad()))
                for t in db.session.scalars(select(RevocationTask))]


def _attempt_id(app, state: str) -> str:
    from app.connect.attempt import open_state

    return open_state(app.extensions["connector"].keyring, state).id


@pytest.mark.parametrize("failure, expected", [
    (dict(nonce="not-the-nonce"), "invalid_id_token"),
    (dict(userinfo={"email": "a@example.com"}), "account_lookup_failed"),
    (dict(userinfo_status=401), "provider_unavailable"),
])
def test_tokens_issued_to_a_failed_connect_are_queued_and_revoked(connect, app, failure, expected):
    outcome, params = _google(connect, **failure)
    assert (outcome["connector_status"], outcome["error"]) == ("error", expected)
    assert connection_rows(app) == []
    # Google revokes with the refresh token (the entry's revocation_token); the task is keyed by
    # the attempt, as no connection exists.
    assert _tasks(app) == [(_attempt_id(app, params["state"]), "google", "refresh_token", "1//SECRETREFRESH")]
    with app.app_context():
        queued = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "revoke_remote")).one()
        assert (queued.outcome, queued.detail) == ("queued", {"reason": "connect_failed"})
    connect.http.post(GOOGLE_REVOKE, status=200)
    with app.app_context():
        assert retry_revocations()["done"] == 1
    sent = [c.request for c in connect.http.calls if c.request.url == GOOGLE_REVOKE]
    assert [parse_qs(r.body)["token"] for r in sent] == [["1//SECRETREFRESH"]]
    assert _tasks(app) == []


def test_an_access_token_without_the_refresh_token_asked_for_is_queued(connect, app):
    token = {k: v for k, v in GOOGLE["token"].items() if k != "refresh_token"}
    outcome, _ = _google(connect, token=token)
    assert outcome["error"] == "no_refresh_token" and connection_rows(app) == []
    assert [(hint, value) for _, _, hint, value in _tasks(app)] == [("access_token", "ya29.SECRETACCESS")]


def test_a_failed_exchange_has_nothing_to_revoke(connect, app):
    params = connect.authorize_params(connect.start("google"))
    connect.http.post(GOOGLE["token_url"], json={"error": "invalid_grant"}, status=400)
    response = connect.callback({"code": "C", "state": params["state"], "iss": GOOGLE["iss"]})
    assert _outcome(response)["error"] == "invalid_grant" and _tasks(app) == []


def test_a_provider_without_revocation_queues_nothing(connect, app):
    params = connect.authorize_params(connect.start("spotify"))
    connect.mock_provider("spotify", token={"access_token": "BQSECRETACCESS", "expires_in": 3600})
    assert _outcome(connect.callback({"code": "C", "state": params["state"]}))["error"] == "no_refresh_token"
    assert _tasks(app) == []


def test_with_a_connection_held_a_grant_wide_revocation_is_not_queued(connect, app):
    """Google's revocation ends the whole grant: the failed connect's tokens may be of the grant the
    user's connection holds, so revoking them would disconnect it."""
    connect.connect("google")
    before = connection_rows(app)
    outcome, _ = _google(connect, token=SECOND, nonce="not-the-nonce")
    assert outcome["error"] == "invalid_id_token"
    assert _tasks(app) == [] and connection_rows(app) == before


class TestRevocationEndingOnlyTheToken:
    """The same entry with revocation_revokes_grant = false: revoking the new tokens leaves the
    connection's own grant alone, so they are revoked even while a connection is held."""

    @pytest.fixture
    def env(self, tmp_path):
        return providers_env(tmp_path, "[google]\nrevocation_revokes_grant = false\n")

    def test_with_a_connection_held_the_failed_connects_tokens_are_queued(self, connect, app):
        connect.connect("google")
        before = connection_rows(app)
        outcome, params = _google(connect, token=SECOND, nonce="not-the-nonce")
        assert outcome["error"] == "invalid_id_token"
        assert _tasks(app) == [(_attempt_id(app, params["state"]), "google", "refresh_token", "1//SECONDREFRESH")]
        assert connection_rows(app) == before
