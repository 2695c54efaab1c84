"""/connect/start's scopes: within allowed_scopes, asked for with the entry's defaults and what the
user's connection holds (incremental authorization), stored as the provider granted them."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import REVOKED, Connection
from tests.conftest import RETURN_URL, make_connection
from tests.connect.conftest import PROVIDER_MOCKS, connection_rows

SPOTIFY_DEFAULTS = "user-read-email user-read-private"


def _form(connect, provider: str = "spotify", **fields) -> dict:
    return {"access_token": connect.auth0.token(), "provider": provider, "return_to": RETURN_URL, **fields}


def _finish(connect, start_response, token: dict) -> dict:
    """The provider answers the code exchange with ``token`` (a Spotify-shaped response)."""
    params = connect.authorize_params(start_response)
    connect.mock_provider("spotify", token=token)
    done = connect.callback({"code": "CODE123", "state": params["state"]})
    assert done.status_code == 303 and "connector_status=connected" in done.headers["Location"], done.headers
    return params


def _row(app) -> Connection:
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        db.session.expunge(row)
        return row


@pytest.fixture
def allowed(app):
    """Spotify's entry with allowed_scopes (set on the running registry, as a providers file would)."""
    registry = app.extensions["connector"].registry
    spec = registry._specs["spotify"]
    registry._specs["spotify"] = dataclasses.replace(spec, allowed_scopes=("playlist-read-private", "streaming"))
    yield
    registry._specs["spotify"] = spec


def test_the_form_scopes_are_asked_for_with_the_entrys_defaults(connect):
    response = connect.start("spotify", data=_form(connect, scopes="playlist-read-private user-read-email"))
    assert connect.authorize_params(response)["scope"] == SPOTIFY_DEFAULTS + " playlist-read-private"


def test_an_empty_scopes_field_asks_for_the_defaults(connect):
    response = connect.start("spotify", data=_form(connect, scopes=""))
    assert connect.authorize_params(response)["scope"] == SPOTIFY_DEFAULTS


def test_connecting_again_asks_for_the_union_and_keeps_the_connection(connect, app):
    first = connect.start("spotify", data=_form(connect, scopes="playlist-read-private"))
    granted = dict(PROVIDER_MOCKS["spotify"]["token"], scope=SPOTIFY_DEFAULTS + " playlist-read-private")
    _finish(connect, first, granted)
    before = _row(app)
    assert before.scope_list == [*SPOTIFY_DEFAULTS.split(), "playlist-read-private"]

    again = connect.start("spotify", data=_form(connect, scopes="streaming"))
    no_scope = {k: v for k, v in PROVIDER_MOCKS["spotify"]["token"].items() if k != "scope"}
    params = _finish(connect, again, dict(no_scope, access_token="BQSECOND", refresh_token="AQSECOND"))
    union = [*SPOTIFY_DEFAULTS.split(), "playlist-read-private", "streaming"]
    assert params["scope"].split() == union
    after = _row(app)
    assert after.id == before.id and after.status == "active"
    assert after.scope_list == union  # no scope in the answer: granted as asked


def test_the_provider_granting_less_than_asked_is_what_is_stored(connect, app):
    response = connect.start("spotify", data=_form(connect, scopes="streaming"))
    _finish(connect, response, dict(PROVIDER_MOCKS["spotify"]["token"], scope="user-read-email"))
    assert _row(app).scope_list == ["user-read-email"]


def test_a_disconnected_connections_scopes_are_not_asked_for_again(connect, app):
    connection_id = make_connection(app, "auth0|alice", "spotify", scopes=("old-scope",))
    with app.app_context():
        db.session.get(Connection, connection_id).status = REVOKED
        db.session.commit()
    assert connect.authorize_params(connect.start("spotify"))["scope"] == SPOTIFY_DEFAULTS


def test_a_needs_reauth_connections_scopes_are_asked_for_again(connect, app):
    connection_id = make_connection(app, "auth0|alice", "spotify", scopes=("old-scope",))
    with app.app_context():
        db.session.get(Connection, connection_id).status = "needs_reauth"
        db.session.commit()
    assert connect.authorize_params(connect.start("spotify"))["scope"] == SPOTIFY_DEFAULTS + " old-scope"


def test_scopes_within_allowed_scopes_are_asked_for(connect, allowed):
    response = connect.start("spotify", data=_form(connect, scopes="streaming"))
    assert connect.authorize_params(response)["scope"] == SPOTIFY_DEFAULTS + " streaming"


@pytest.mark.parametrize("scopes", ["user-library-modify", "streaming user-library-modify"])
def test_a_scope_outside_allowed_scopes_goes_back_to_the_app(connect, app, allowed, scopes, caplog):
    before = connection_rows(app)
    response = connect.start("spotify", data=_form(connect, scopes=scopes))
    assert response.status_code == 303
    assert response.headers["Location"] == (RETURN_URL + "?connector_status=error&provider=spotify"
                                            "&error=scope_not_allowed")
    assert "Set-Cookie" not in response.headers and connection_rows(app) == before
    assert "connect start refused: scope_not_allowed" in caplog.text


@pytest.mark.parametrize("scopes", [" streaming", "streaming  user-read-email", 'a"b', "a,b", "x" * 129,
                                    " ".join(f"s{i}" for i in range(31))])
def test_a_malformed_scopes_field_goes_back_to_the_app(connect, scopes):
    response = connect.start("spotify", data=_form(connect, scopes=scopes))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("&error=scope_not_allowed")
    assert "Set-Cookie" not in response.headers


def test_a_script_asking_for_json_gets_the_problem(connect, allowed):
    response = connect.start("spotify", data=_form(connect, scopes="admin"), headers={"Accept": "application/json"})
    assert response.status_code == 400 and response.json["code"] == "scope_not_allowed"
    assert "admin" in response.json["detail"]
