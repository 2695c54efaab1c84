"""required_scopes on the token endpoint: 409 insufficient_scope naming what the connection lacks."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, Connection
from tests.conftest import make_connection

TOKEN_PATH = "/api/users/{user_id}/connections/{provider}/token"
USER = "auth0|job"


def _ask(client, auth0, **params):
    return client.post(f"/api/users/{quote(USER, safe='')}/connections/stub/token", query_string=params,
                       headers={"Authorization": "Bearer " + auth0.m2m_token("read:tokens")})


def _connection(app, stub, scopes=("read", "write"), expires_in=3600):
    access, refresh = stub.issue()
    make_connection(app, USER, "stub", access=access, refresh=refresh, expires_in=expires_in, scopes=scopes)
    return access


def _row(app) -> Connection:
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        db.session.expunge(row)
        return row


def test_scopes_the_connection_was_granted_are_served(client, app, auth0, stub, openapi):
    access = _connection(app, stub)
    response = _ask(client, auth0, required_scopes="write read")
    assert response.status_code == 200, response.json
    openapi.check(response, TOKEN_PATH, "post")
    assert response.json["access_token"] == access and response.json["scopes"] == ["read", "write"]


def test_missing_scopes_are_409_insufficient_scope_naming_them(client, app, auth0, stub, openapi):
    _connection(app, stub)
    response = _ask(client, auth0, required_scopes="read admin write delete admin")
    assert response.status_code == 409, response.json
    assert response.mimetype == "application/problem+json"
    openapi.check(response, TOKEN_PATH, "post")
    assert response.json["code"] == "insufficient_scope"
    assert response.json["missing_scopes"] == ["admin", "delete"]  # in the order asked, once each
    assert "reconnect_url" not in response.json  # reconnect links are not configured here
    assert stub.state.refresh_calls == 0
    assert _row(app).status == "active"  # the connection itself is fine


def test_missing_scopes_are_found_before_any_refresh(client, app, auth0, stub):
    _connection(app, stub, expires_in=10)  # due for a refresh
    response = _ask(client, auth0, required_scopes="admin", min_ttl="10")
    assert response.status_code == 409 and response.json["missing_scopes"] == ["admin"]
    assert stub.state.refresh_calls == 0


@pytest.mark.parametrize("raw", ["", " read", "read ", "read  write", 're"ad', "re\\ad", "read,write", "réad",
                                 "read\twrite", "read\nwrite", "x" * 129, " ".join(f"s{i}" for i in range(31))])
def test_malformed_required_scopes_are_400(client, app, auth0, stub, raw, openapi):
    _connection(app, stub)
    response = _ask(client, auth0, required_scopes=raw)
    assert response.status_code == 400 and response.json["code"] == "invalid_request", response.json
    if raw.isprintable():  # (a control character is refused before the view, for every URL)
        assert response.json["detail"].startswith("required_scopes must be a space-separated list")
    openapi.check(response, TOKEN_PATH, "post")


def test_longest_well_formed_list_is_accepted(client, app, auth0, stub):
    scopes = tuple(f"{i:02d}" + "x" * 126 for i in range(30))
    _connection(app, stub, scopes=scopes)
    response = _ask(client, auth0, required_scopes=" ".join(scopes))
    assert response.status_code == 200, response.json


def test_a_refresh_that_narrows_the_grant_is_stored_audited_and_checked(client, app, auth0, stub, openapi):
    """The provider answers a refresh with fewer scopes (the user withdrew one): the row follows, the
    audit trail says what went, and a caller requiring the withdrawn scope gets 409 at once."""
    _connection(app, stub, expires_in=10)
    response = _ask(client, auth0, required_scopes="write", min_ttl="10")  # granted as the row says: refresh
    assert stub.state.refresh_calls == 1
    assert response.status_code == 409 and response.json["missing_scopes"] == ["write"], response.json
    openapi.check(response, TOKEN_PATH, "post")
    assert _row(app).scope_list == ["read"]
    with app.app_context():
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.outcome == "scopes_narrowed")).all()
        assert (event.action, event.provider, event.user_id, event.detail) == (
            "refresh", "stub", USER, {"removed": "write"})
    again = _ask(client, auth0, required_scopes="read")
    assert again.status_code == 200 and again.json["scopes"] == ["read"]
    assert stub.state.refresh_calls == 1


def test_a_refresh_without_scope_in_its_answer_keeps_the_stored_scopes(client, app, auth0, stub):
    _connection(app, stub, expires_in=10)
    stub.state.granted_scope = None
    response = _ask(client, auth0, required_scopes="read write", min_ttl="10")
    assert response.status_code == 200 and stub.state.refresh_calls == 1
    assert response.json["scopes"] == ["read", "write"] and _row(app).scope_list == ["read", "write"]
    with app.app_context():
        assert db.session.scalars(select(AuditEvent).where(AuditEvent.outcome == "scopes_narrowed")).all() == []
