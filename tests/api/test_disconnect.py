import pytest
from sqlalchemy import select

from app.crypto import Keyring
from app.extensions import db
from app.models import AuditEvent, Connection
from tests.conftest import make_connection

GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"


def _state(app, user_id, provider):
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id,
                                                          Connection.provider == provider)).one()
        events = [(e.action, e.outcome, e.actor_type, e.detail) for e in db.session.scalars(
            select(AuditEvent).order_by(AuditEvent.id))]
        return row, None, events


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_user_disconnects_own_connection(client, app, auth0, mocked_http, openapi):
    make_connection(app, "auth0|alice", "google")
    mocked_http.post(GOOGLE_REVOKE, status=200)
    response = client.delete("/api/connections/google", headers=_bearer(auth0.token("auth0|alice")))
    assert response.status_code == 200
    assert response.json == {"provider": "google", "status": "revoked", "remote_revocation": "done"}
    openapi.check(response, "/api/connections/{provider}", "delete")
    again = client.delete("/api/connections/google", headers=_bearer(auth0.token("auth0|alice")))
    assert again.status_code == 200 and again.json["remote_revocation"] == "done"
    row, _, events = _state(app, "auth0|alice", "google")
    assert events[0][2] == "user"
    missing = client.delete("/api/connections/spotify", headers=_bearer(auth0.token("auth0|alice")))
    assert missing.status_code == 404
    openapi.check(missing, "/api/connections/{provider}", "delete")


def test_user_cannot_disconnect_with_machine_token(client, app, auth0):
    make_connection(app, "auth0|alice", "spotify")
    response = client.delete("/api/connections/spotify", headers=_bearer(auth0.m2m_token("delete:connections")))
    assert response.status_code == 403
    assert _state(app, "auth0|alice", "spotify")[0].status == "active"


def test_m2m_revokes_one_and_offboards_all(client, app, auth0, mocked_http, openapi):
    mocked_http.post(GOOGLE_REVOKE, status=200)
    make_connection(app, "auth0|bob", "google")
    make_connection(app, "auth0|bob", "spotify")
    token = auth0.m2m_token("delete:connections")
    response = client.delete("/api/users/auth0%7Cbob/connections/spotify", headers=_bearer(token))
    assert response.status_code == 200 and response.json["remote_revocation"] == "not_supported"
    openapi.check(response, "/api/users/{user_id}/connections/{provider}", "delete")
    response = client.delete("/api/users/auth0%7Cbob/connections", headers=_bearer(token))
    assert response.status_code == 200
    assert [r["provider"] for r in response.json["revoked"]] == ["google"]
    openapi.check(response, "/api/users/{user_id}/connections", "delete")
    assert _state(app, "auth0|bob", "google")[2][0][2] == "m2m"


def test_m2m_delete_needs_permission_and_refuses_user_tokens(client, app, auth0):
    make_connection(app, "auth0|bob", "spotify")
    for token in (auth0.m2m_token("read:tokens"), auth0.token("auth0|bob")):
        assert client.delete("/api/users/auth0%7Cbob/connections", headers=_bearer(token)).status_code == 403
    assert _state(app, "auth0|bob", "spotify")[0].status == "active"


@pytest.mark.parametrize("path", ["/api/connections/sp%00x", "/api/connections/sp%0Ax", "/api/connections/sp%1Fx"])
def test_control_characters_in_path_are_400_not_a_database_error(client, app, auth0, path, openapi):
    # On PostgreSQL a NUL reaching a query is a DataError (a 500); refused before any view runs.
    make_connection(app, "auth0|alice", "spotify")
    response = client.delete(path, headers=_bearer(auth0.token("auth0|alice")))
    assert (response.status_code, response.mimetype) == (400, "application/problem+json")
    openapi.check(response, "/api/connections/{provider}", "delete")
    assert response.json["code"] == "invalid_request"
    assert "control character" in response.json["detail"]
    row, _, events = _state(app, "auth0|alice", "spotify")
    assert row.status == "active" and events == []


def test_control_characters_in_query_are_400(client, auth0):
    response = client.get("/api/connections?x=a%00b", headers=_bearer(auth0.token("auth0|alice")))
    assert (response.status_code, response.json["code"]) == (400, "invalid_request")
    assert "control character" in response.json["detail"]


def test_disconnect_with_undecryptable_tokens_still_revokes(client, app, auth0, mocked_http, openapi):
    make_connection(app, "auth0|alice", "google")
    lost = Keyring([("k0", b"0" * 32)])  # the key that sealed the tokens was removed from the configuration
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == "auth0|alice")).one()
        row.access_token_enc = lost.encrypt("a", row.aad("access_token"))
        row.refresh_token_enc = lost.encrypt("r", row.aad("refresh_token"))
        db.session.commit()
    response = client.delete("/api/connections/google", headers=_bearer(auth0.token("auth0|alice")))
    assert response.status_code == 200
    assert response.json == {"provider": "google", "status": "revoked", "remote_revocation": "failed"}
    openapi.check(response, "/api/connections/{provider}", "delete")
    row, _, events = _state(app, "auth0|alice", "google")
    assert row.status == "revoked" and row.access_token_enc is None and row.refresh_token_enc is None
    assert events[-1][:2] == ("revoke", "revoked") and events[-1][3]["error"] == "decryption_failed"
