"""The token store: stale writes fail; rotate-keys never overwrites a revoke or a refresh (issue 11.10)."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import Connection
from app.oauth_client import TokenResponse
from app.revocation import Actor, revoke_connection
from app.token_store import TokenStore
from app.vault import get_access_token
from tests.conftest import KEY_1, KEY_2, make_connection, stub_env


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path)


@pytest.fixture
def rotated(env, database_url, mocked_http):
    """The same service after an operator put a new key first (k2, then k1)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url},
                     env={**env, "TOKEN_ENCRYPTION_KEYS": f"{KEY_2},{KEY_1}"})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _row(app, user_id: str) -> Connection:
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        db.session.expunge(row)
        return row


def _plain(app, row: Connection, column: str) -> str | None:
    return TokenStore(app.extensions["connector"].keyring).open(row, column)


def _in_thread(app, work) -> None:
    """Run ``work`` in another thread with its own app context (its own session), to the end."""
    errors = []

    def run() -> None:
        try:
            with app.app_context():
                work()
        except Exception as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and errors == []


def test_a_write_over_a_stale_version_fails(app):
    make_connection(app, "auth0|alice", "spotify", access="a-1")
    token = TokenResponse(access_token="a-2", refresh_token="r-2", token_type="Bearer", expires_at=None, scopes=())
    with app.app_context():
        store = TokenStore(app.extensions["connector"].keyring)
        row = db.session.scalars(select(Connection)).one()
        seen = row.version
        assert store.replace(row, seen, store.sealed(row, token))
        db.session.commit()
        assert not store.replace(row, seen, store.sealed(row, token))  # someone wrote since `seen`
        assert not store.wipe(row, seen, {})
        db.session.rollback()
        row = db.session.scalars(select(Connection)).one()
        assert store.open(row, "access_token") == "a-2" and row.version == seen + 1


def test_rotate_keys_keeps_a_revoke_and_a_refresh_committed_mid_rotation(app, rotated, stub, monkeypatch):
    """Between rotate-keys' read of a row and its write, a revoke (row A) and a rotating refresh
    (row B) commit. Neither is overwritten; an undecryptable row (C) is reported and skipped, and
    the others (D) are still re-keyed."""
    users = {name: f"auth0|{name}" for name in "ABCD"}
    for user in users.values():
        access, refresh = stub.issue()
        make_connection(app, user, "stub", access=access, refresh=refresh)
    with app.app_context():  # C: sealed with a key that is no longer configured
        row = db.session.scalars(select(Connection).where(Connection.user_id == users["C"])).one()
        row.refresh_token_enc, row.key_id = "k9." + row.refresh_token_enc.partition(".")[2], "k9"
        db.session.commit()
    ids = {name: _row(app, user).id for name, user in users.items()}
    real_rekey = TokenStore.rekey

    def rekey_after_a_concurrent_write(store, row):
        if row.id == ids["A"]:
            _in_thread(rotated, lambda: revoke_connection(
                db.session.get(Connection, ids["A"]), Actor("user", users["A"])))
        elif row.id == ids["B"]:
            _in_thread(rotated, lambda: get_access_token(users["B"], "stub", force_refresh=True))
        return real_rekey(store, row)

    monkeypatch.setattr(TokenStore, "rekey", rekey_after_a_concurrent_write)
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys", "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert f"could not be decrypted with the configured keys; left as they are: {ids['C']}" in result.output

    a = _row(rotated, users["A"])
    assert (a.status, a.access_token_enc, a.refresh_token_enc) == ("revoked", None, None)
    b = _row(rotated, users["B"])
    assert stub.state.refresh_calls == 1 and b.key_id == "k2"
    assert stub.state.refresh_tokens[_plain(rotated, b, "refresh_token")]  # the rotated one, still valid
    assert _row(rotated, users["C"]).key_id == "k9"
    d = _row(rotated, users["D"])
    assert d.key_id == "k2" and d.refresh_token_enc.startswith("k2.") and d.access_token_enc.startswith("k2.")
    with rotated.app_context():  # the refresh token B holds is the live one: refreshing again works
        get_access_token(users["B"], "stub", force_refresh=True)
    assert not stub.state.revoked


def test_rotate_keys_leaves_a_row_under_a_refresh_lease_to_that_refresh(app, rotated):
    from app import clock

    make_connection(app, "auth0|alice", "spotify")
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        row.lease_owner, row.lease_expires_at = "a-refresher", clock.now()
        db.session.commit()
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "done: 0 connection(s)" in result.output and "1 connection(s) were being refreshed" in result.output
    assert _row(rotated, "auth0|alice").key_id == "k1"


def test_rotate_keys_concurrently_with_revokes_and_refreshes(app, rotated, stub):
    """Rotation, refreshes and revokes at once, in threads: every outcome is kept."""
    users = [f"auth0|u{n:02d}" for n in range(12)]
    for user in users:
        access, refresh = stub.issue()
        make_connection(app, user, "stub", access=access, refresh=refresh)
    refreshed, revoked = users[:6], users[6:9]
    go, errors = threading.Event(), []

    def run(work) -> None:
        go.wait(30)
        try:
            with rotated.app_context():
                work()
        except Exception as exc:  # asserted below
            errors.append(exc)

    def refresh_all() -> None:
        for user in refreshed:
            get_access_token(user, "stub", force_refresh=True)
            db.session.remove()

    def revoke_all() -> None:
        for user in revoked:
            row = db.session.scalars(select(Connection).where(Connection.user_id == user)).one()
            revoke_connection(row, Actor("user", user))
            db.session.remove()

    threads = [threading.Thread(target=run, args=(work,)) for work in (refresh_all, revoke_all)]
    for thread in threads:
        thread.start()
    go.set()
    result = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys", "--batch-size", "2"])
    for thread in threads:
        thread.join(60)
    assert errors == [] and result.exit_code == 0, result.output
    again = rotated.test_cli_runner().invoke(args=["connector", "rotate-keys"])
    assert again.exit_code == 0, again.output
    assert stub.state.refresh_calls == len(refreshed) and not stub.state.revoked
    for user in users:
        row = _row(rotated, user)
        if user in revoked:
            assert (row.status, row.access_token_enc, row.refresh_token_enc) == ("revoked", None, None)
            continue
        assert row.key_id == "k2" and row.refresh_token_enc.startswith("k2.")
        assert stub.state.refresh_tokens[_plain(rotated, row, "refresh_token")]
