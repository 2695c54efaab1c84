from sqlalchemy import select

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
