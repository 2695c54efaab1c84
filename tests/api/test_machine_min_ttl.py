"""min_ttl above the provider's access-token lifetime is refused, naming the lifetime (issue 11.16)."""
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import Connection
from tests.conftest import make_connection

TOKEN_PATH = "/api/users/{user_id}/connections/{provider}/token"


def _ask(client, auth0, min_ttl):
    return client.post(f"/api/users/{quote('auth0|job', safe='')}/connections/stub/token?min_ttl={min_ttl}",
                       headers={"Authorization": "Bearer " + auth0.m2m_token("read:tokens")})


def _short_lived_connection(app, stub, lifetime=300):
    access, refresh = stub.issue()
    make_connection(app, "auth0|job", "stub", access=access, refresh=refresh, expires_in=lifetime)
    return access


def test_min_ttl_longer_than_the_token_lifetime_is_400_naming_it(client, app, auth0, stub, openapi):
    access = _short_lived_connection(app, stub)
    response = _ask(client, auth0, 3600)
    assert response.status_code == 400, response.json
    assert response.json["code"] == "min_ttl_exceeds_token_lifetime"
    assert "(300 s)" in response.json["detail"] and "at most 300" in response.json["detail"]
    openapi.check(response, TOKEN_PATH, "post")
    assert stub.state.refresh_calls == 0  # refused before any refresh
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        assert app.extensions["connector"].keyring.decrypt(row.access_token_enc, row.aad("access_token")) == access


def test_min_ttl_within_the_lifetime_is_served(client, app, auth0, stub):
    access = _short_lived_connection(app, stub)
    response = _ask(client, auth0, 120)
    assert response.status_code == 200 and response.json["access_token"] == access
    assert stub.state.refresh_calls == 0


def test_min_ttl_equal_to_the_lifetime_asks_for_a_new_token(client, app, auth0, stub):
    access = _short_lived_connection(app, stub)
    response = _ask(client, auth0, 300)
    assert response.status_code == 200 and response.json["access_token"] != access
    assert stub.state.refresh_calls == 1


def test_lifetime_is_the_refreshed_tokens(client, app, auth0, stub, monkeypatch):
    """After a refresh, the stub's 3600 s tokens are the lifetime, not the first token's 300 s."""
    _short_lived_connection(app, stub)
    assert _ask(client, auth0, 300).status_code == 200  # refreshes: the new token lives 3600 s
    later = clock.now() + timedelta(seconds=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert _ask(client, auth0, 3000).status_code == 200
    assert _ask(client, auth0, 3601).json["code"] == "min_ttl_exceeds_token_lifetime"
