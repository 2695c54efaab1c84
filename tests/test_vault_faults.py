"""Database faults injected into a real refreshing process (issue 12.1, 12.2, 12.7): the rotated
refresh token the provider handed out is never lost while the process lives, and nobody refreshes
with the old one meanwhile."""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import pytest
from sqlalchemy import select

from app.errors import ProviderUnavailable, ReauthorizationRequired
from app.extensions import db
from app.models import Connection
from app.vault import get_access_token
from tests import vault_workers
from tests.conftest import make_connection, stub_env
from tests.faults import GatedStub, postgres_outage, sqlite_write_lock

STORE_FAILURE = "storing the refreshed tokens"


@pytest.fixture
def stub():
    with GatedStub() as provider:
        yield provider


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path, PROVIDER_CONNECT_TIMEOUT="0.5", PROVIDER_READ_TIMEOUT="5",
                    VAULT_STORE_DEADLINE="60")


def _start(target, env, database_url, user_id):
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    proc = ctx.Process(target=target, args=(env, database_url, user_id, events))
    proc.start()
    return proc, events


def _wait_for_store_failures(events, count: int) -> None:
    failures = 0
    while failures < count:
        kind, *rest = events.get(timeout=90)
        assert kind == "log", rest
        failures += STORE_FAILURE in rest[0]


def _outcome(events):
    while True:
        kind, *rest = events.get(timeout=120)
        if kind != "log":
            return kind, rest


def _assert_rotated_token_kept(app, stub, user_id, token):
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        stored = app.extensions["connector"].keyring.decrypt(row.refresh_token_enc, row.aad("refresh_token"))
        assert row.status == "active" and row.lease_owner is None
        assert get_access_token(user_id, "stub").token == token  # no second refresh: the stored one
    assert stub.state.refresh_tokens[stored] and stub.state.refresh_calls == 1 and not stub.state.revoked


def _expired_connection(app, stub, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    with app.app_context():  # the test process keeps no connection the outage would break
        db.session.remove()
        db.engine.dispose()


def test_a_rotated_token_survives_a_postgresql_outage(app, stub, env, database_url, user_id):
    """12.1: the provider rotates while the database is down (backends terminated, new
    connections refused) for about 5 s; the refresher keeps trying and stores it afterwards."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL outage")
    _expired_connection(app, stub, user_id)
    proc, events = _start(vault_workers.refresh_reporting, env, database_url, user_id)
    try:
        assert stub.requested.wait(60), "the refresh never reached the provider"
        with postgres_outage(database_url):
            stub.release.set()
            assert stub.answered.wait(30)
            _wait_for_store_failures(events, 7)  # backoff 0.1 s doubling to 2 s: about 5 s
        kind, rest = _outcome(events)
        assert kind == "ok", rest
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    _assert_rotated_token_kept(app, stub, user_id, rest[0])


def test_a_rotated_token_survives_a_sqlite_write_lock_held_by_another_process(app, stub, env, database_url,
                                                                              user_id):
    """12.2: another process holds SQLite's write lock while the provider rotates; each store
    attempt waits a bounded time, the refresher backs off and tries again until it is stored."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite write lock")
    _expired_connection(app, stub, user_id)
    proc, events = _start(vault_workers.refresh_reporting, env, database_url, user_id)
    try:
        assert stub.requested.wait(60), "the refresh never reached the provider"
        with sqlite_write_lock(database_url):
            stub.release.set()
            assert stub.answered.wait(30)
            _wait_for_store_failures(events, 3)
        kind, rest = _outcome(events)
        assert kind == "ok", rest
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    _assert_rotated_token_kept(app, stub, user_id, rest[0])


def test_a_refresher_killed_after_the_provider_rotated_leaves_no_lease_and_a_409(app, stub, tmp_path,
                                                                                 database_url, user_id):
    """12.7: SIGKILL between the provider's answer and the store. The new refresh token dies with
    the process (inherent); the lease does not outlive it, and callers get 503 with Retry-After
    while its storing window runs, then 409 needs_reauth (the provider refuses the old token)."""
    env = stub_env(stub, tmp_path, PROVIDER_CONNECT_TIMEOUT="0.5", PROVIDER_READ_TIMEOUT="1",
                   VAULT_STORE_DEADLINE="1")
    stub.release.set()
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    proc, events = _start(vault_workers.die_before_storing, env, database_url, user_id)
    try:
        assert events.get(timeout=60) == ("storing",)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    caller = vault_workers._app(env, database_url)  # the same settings as the killed process
    outcomes = []
    for _ in range(6):  # each call waits at most the lease + 5 s
        try:
            with caller.app_context():
                get_access_token(user_id, "stub")
            outcomes.append("ok")
        except ProviderUnavailable as exc:
            assert exc.status == 503 and exc.retry_after
            outcomes.append(503)
            continue
        except ReauthorizationRequired as exc:
            assert exc.status == 409
            outcomes.append(409)
        break
    assert outcomes[-1] == 409 and set(outcomes) <= {503, 409}, outcomes
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        assert (row.status, row.lease_owner, row.lease_expires_at) == ("needs_reauth", None, None)
    assert stub.state.refresh_calls == 2
    with caller.app_context():
        db.engine.dispose()


def _in_thread(app, work, results) -> threading.Thread:
    def run() -> None:
        try:
            with app.app_context():
                results.append(work())
        except Exception as exc:  # asserted by the test
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_refresher_that_lost_its_row_to_a_disconnect_revokes_what_it_received(app, stub, user_id):
    """11.9: the provider rotates RT1 -> RT2 and answers slowly; meanwhile the user disconnects
    (RT1 is revoked, which at a rotating provider does nothing). RT2 must not stay alive."""
    from app.revocation import Actor, revoke_connection

    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    results = []
    thread = _in_thread(app, lambda: get_access_token(user_id, "stub"), results)
    assert stub.requested.wait(30)
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        assert revoke_connection(row, Actor("user", user_id)).remote == "done"
    stub.release.set()
    thread.join(60)
    assert isinstance(results[0], ReauthorizationRequired)
    received = [t for t in stub.state.refresh_tokens if t != refresh]
    assert len(received) == 1 and received[0] in stub.revoked_tokens
    assert not any(stub.state.refresh_tokens.values())  # no live refresh token left at the provider
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        assert (row.status, row.refresh_token_enc, row.remote_revocation) == ("revoked", None, "done")


def test_a_commit_whose_reply_was_lost_is_recognised_and_the_lease_released(app, stub, user_id, monkeypatch):
    """12.5: the store's COMMIT succeeded but its reply was lost: the next attempt sees the row
    already holds our tokens (no revocation, no second refresh) and the lease is gone with it."""
    from sqlalchemy.exc import OperationalError

    from app.models import RevocationTask
    from app.token_store import TokenStore

    stub.release.set()
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    real_store, calls = TokenStore.store_refreshed, []

    def committed_then_lost(*args, **kwargs):
        calls.append(1)
        stored = real_store(*args, **kwargs)
        if len(calls) == 1:
            db.session.commit()
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        return stored

    monkeypatch.setattr(TokenStore, "store_refreshed", committed_then_lost)
    with app.app_context():
        token = get_access_token(user_id, "stub")
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        assert row.lease_owner is None and db.session.scalars(select(RevocationTask)).all() == []
    assert len(calls) == 2 and stub.state.refresh_calls == 1 and token.token in stub.state.access_tokens
    assert stub.revoked_tokens == []


@pytest.mark.parametrize("fails", ["load", "fast_path"])
def test_a_failure_right_after_the_lease_is_taken_releases_it(app, stub, user_id, monkeypatch, fails):
    """12.5: _load after the lease (it ran as an argument, outside the cleanup) and the fast path's
    commit: a database error there releases the lease instead of leaving it for its full length."""
    from sqlalchemy.exc import OperationalError

    from app import vault

    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    error = OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
    if fails == "load":
        real_load, loads = vault._load, []

        def load(*args):
            loads.append(1)
            if len(loads) == 2:  # the read after the lease was taken
                raise error
            return real_load(*args)

        monkeypatch.setattr(vault, "_load", load)
    else:
        monkeypatch.setattr(vault, "_replaced", lambda *args: True)

        def access_token(*args):
            raise error

        monkeypatch.setattr(vault, "_access_token", access_token)
    with app.app_context():
        with pytest.raises(OperationalError):
            get_access_token(user_id, "stub")
        db.session.rollback()
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        assert (row.lease_owner, row.lease_expires_at) == (None, None)
    assert stub.state.refresh_calls == 0


def test_a_revoke_that_read_the_row_before_a_refresh_stored_revokes_the_new_grant(app, stub, user_id):
    """11.10: the wipe is conditional on the version the revoke read; a refresh that stored a
    rotated token in between makes it read again and revoke that token, not the used one."""
    from app.revocation import Actor, revoke_connection

    stub.release.set()
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        results = []
        _in_thread(app, lambda: get_access_token(user_id, "stub").token, results).join(60)
        assert results and isinstance(results[0], str)
        assert revoke_connection(row, Actor("user", user_id)).remote == "done"
    rotated = [t for t in stub.state.refresh_tokens if t != refresh]
    assert stub.revoked_tokens == rotated and not any(stub.state.refresh_tokens.values())


def test_a_lease_whose_commit_reply_was_lost_is_released(app, stub, user_id, monkeypatch):
    """12.5: the lease's COMMIT went through but its reply was lost: the caller gets 503 with
    Retry-After, and the lease it may hold is released rather than left for its full length."""
    from sqlalchemy.exc import OperationalError

    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    with app.app_context():
        real_commit, commits = db.session.commit, []

        def reply_lost() -> None:
            commits.append(1)
            real_commit()
            if len(commits) == 1:
                raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

        monkeypatch.setattr(db.session, "commit", reply_lost)
        with pytest.raises(ProviderUnavailable) as caught:
            get_access_token(user_id, "stub")
        assert caught.value.status == 503 and caught.value.code == "database_unavailable" and caught.value.retry_after
        monkeypatch.undo()
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        assert (row.lease_owner, row.lease_expires_at) == (None, None)
    assert stub.state.refresh_calls == 0
