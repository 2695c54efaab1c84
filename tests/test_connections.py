from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock, connections
from app.extensions import db
from app.models import Connection
from app.oauth_client import TokenResponse
from tests.conftest import make_connection


def _token(access: str = "access-1") -> TokenResponse:
    return TokenResponse(access_token=access, refresh_token="refresh-1", token_type="Bearer",
                         expires_at=clock.now() + timedelta(hours=1), scopes=("a",))


def test_a_connection_that_cannot_be_sealed_leaves_no_row(app, monkeypatch):
    def failing_seal(*args, **kwargs):
        raise RuntimeError("key store unavailable")

    monkeypatch.setattr(connections.TokenStore, "sealed", failing_seal)
    with app.app_context():
        with pytest.raises(RuntimeError):
            connections.upsert_connection("auth0|alice", "spotify", _token(), app.extensions["connector"].keyring, None)
        db.session.rollback()
        db.session.remove()
    with app.app_context():  # not even a half-filled row that a savepoint made visible
        assert db.session.scalars(select(Connection)).all() == []


def test_a_reconnect_clears_a_stale_refresh_lease(app):
    make_connection(app, "auth0|alice", "spotify")
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        row.lease_owner, row.lease_expires_at = "refresh-of-the-old-grant", clock.now() + timedelta(seconds=30)
        row.status = "needs_reauth"
        db.session.commit()
    make_connection(app, "auth0|alice", "spotify", access="access-new")
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        assert (row.status, row.lease_owner, row.lease_expires_at) == ("active", None, None)
        keyring = app.extensions["connector"].keyring
        assert keyring.decrypt(row.access_token_enc, row.aad("access_token")) == "access-new"
