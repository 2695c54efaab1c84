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


@pytest.fixture
def gated():
    from tests.faults import GatedStub

    with GatedStub() as provider:
        provider.release.set()
        yield provider


@pytest.fixture
def env(gated, tmp_path):
    from tests.conftest import stub_env

    return stub_env(gated, tmp_path)


def _tasks(app):
    from app.models import RevocationTask

    with app.app_context():
        keyring = app.extensions["connector"].keyring
        return [(keyring.decrypt(t.token_enc, t.aad()), t.token_type_hint)
                for t in db.session.scalars(select(RevocationTask))]


def test_a_reconnect_queues_the_replaced_grant_for_revocation(app, gated):
    """11.8: connecting again must not leave the first grant alive at the provider."""
    from app.revocation import retry_revocations

    make_connection(app, "auth0|alice", "stub", access="access-1", refresh="refresh-1")
    make_connection(app, "auth0|alice", "stub", access="access-2", refresh="refresh-2")
    assert _tasks(app) == [("refresh-1", "refresh_token")]
    with app.app_context():
        assert retry_revocations()["done"] == 1
        row = db.session.scalars(select(Connection)).one()
        assert row.status == "active" and row.remote_revocation is None  # the live grant is untouched
    assert gated.revoked_tokens == ["refresh-1"]


def test_two_tabs_connecting_at_once_queue_the_replaced_grant(app, gated, monkeypatch):
    """11.8, the IntegrityError path: another tab's callback inserts the row between our SELECT
    and our INSERT; ours replaces it, and its grant is queued for revocation."""
    import threading

    from sqlalchemy import event

    from app.connections import upsert_connection

    keyring = app.extensions["connector"].keyring
    other_tab = []

    def insert_from_the_other_tab(session, *args) -> None:
        if other_tab or not any(isinstance(o, Connection) for o in session.new):
            return
        other_tab.append(threading.Thread(target=make_connection, args=(app, "auth0|alice", "stub"),
                                          kwargs={"access": "access-tab1", "refresh": "refresh-tab1"}))
        other_tab[0].start()
        other_tab[0].join(30)

    with app.app_context():
        event.listen(db.session, "before_flush", insert_from_the_other_tab)
        try:
            upsert_connection("auth0|alice", "stub", _token("access-tab2"), keyring, "ext-1")
            db.session.commit()
        finally:
            event.remove(db.session, "before_flush", insert_from_the_other_tab)
        row = db.session.scalars(select(Connection)).one()
        assert keyring.decrypt(row.access_token_enc, row.aad("access_token")) == "access-tab2"
    assert other_tab and _tasks(app) == [("refresh-tab1", "refresh_token")]


def test_a_reconnect_of_the_same_account_keeps_a_grant_wide_revocation_from_ending_the_new_grant(app):
    """Google revokes the whole grant for any of its tokens: the replaced tokens of the same
    account are not revoked (the user's disconnect revokes the grant, old tokens included)."""
    make_connection(app, "auth0|alice", "google", access="access-1", refresh="refresh-1")
    make_connection(app, "auth0|alice", "google", access="access-2", refresh="refresh-2")
    assert _tasks(app) == []
