import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.errors import NotFound, ProviderUnavailable, ReauthorizationRequired
from app.extensions import db
from app.models import AuditEvent, Connection
from app.vault import get_access_token
from tests.conftest import make_connection, stub_env


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path)


@pytest.fixture
def expired(app, stub, user_id):
    """A stub connection whose access token has expired; returns the stored refresh token."""
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-10)
    return refresh


def _row(app, user_id) -> Connection:
    with app.app_context():
        db.session.expire_all()
        return db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()


def _stored_refresh(app, user_id) -> str:
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        return app.extensions["connector"].keyring.decrypt(row.refresh_token_enc, row.aad("refresh_token"))


def test_fresh_token_is_returned_without_calling_provider(app, stub, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=3600)
    with app.app_context():
        token = get_access_token(user_id, "stub")
    assert token.token == access and stub.state.refresh_calls == 0
    assert access not in repr(token)


def test_expired_token_is_refreshed_and_rotation_persisted(app, stub, user_id, expired):
    with app.app_context():
        token = get_access_token(user_id, "stub")
    assert stub.state.refresh_calls == 1 and token.token in stub.state.access_tokens
    assert token.expires_at > clock.now() + timedelta(minutes=50)
    new_refresh = _stored_refresh(app, user_id)
    assert new_refresh != expired and stub.state.refresh_tokens[new_refresh]
    row = _row(app, user_id)
    assert row.last_refreshed_at and row.lease_owner is None and row.failure_count == 0
    with app.app_context():  # twice in a row: the rotated token works
        assert get_access_token(user_id, "stub", min_ttl=7200).token != token.token
    assert stub.state.refresh_calls == 2 and not stub.state.revoked


def test_min_ttl_forces_early_refresh(app, stub, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=300)
    with app.app_context():
        assert get_access_token(user_id, "stub", min_ttl=10).token == access
        assert get_access_token(user_id, "stub", min_ttl=600).token != access
    assert stub.state.refresh_calls == 1


def test_default_min_ttl_is_capped_at_half_a_short_token_lifetime(app, stub, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=40)  # VAULT_MIN_TTL is 60
    with app.app_context():
        assert get_access_token(user_id, "stub").token == access  # 40 s left > half of a 40 s lifetime
        assert get_access_token(user_id, "stub", min_ttl=60).token != access  # asked for explicitly
    assert stub.state.refresh_calls == 1


def test_old_refresh_token_kept_when_provider_returns_none(app, stub, user_id, expired, monkeypatch):
    from app import oauth_client

    real = oauth_client._token_response

    def without_refresh(spec, paths, body, scopes):
        return real(spec, paths, {k: v for k, v in body.items() if k != "refresh_token"}, scopes)

    monkeypatch.setattr(oauth_client, "_token_response", without_refresh)
    with app.app_context():
        get_access_token(user_id, "stub")
    assert _stored_refresh(app, user_id) == expired


def test_invalid_grant_marks_needs_reauth_and_stops_refreshing(app, stub, user_id, expired):
    stub.state.failure = (400, '{"error": "invalid_grant"}', {"Content-Type": "application/json"})
    with app.app_context():
        with pytest.raises(ReauthorizationRequired):
            get_access_token(user_id, "stub")
        with pytest.raises(ReauthorizationRequired):
            get_access_token(user_id, "stub")
        events = db.session.scalars(select(AuditEvent)).all()
    assert stub.state.refresh_calls == 1
    row = _row(app, user_id)
    assert (row.status, row.last_error_code, row.lease_owner) == ("needs_reauth", "invalid_grant", None)
    assert [(e.action, e.outcome, e.detail["error"]) for e in events] == [("refresh", "needs_reauth", "invalid_grant")]
    assert _stored_refresh(app, user_id) == expired


@pytest.mark.parametrize("failure,code", [
    ((500, "boom", {}), "provider_unavailable"),
    ((502, "<html>bad gateway</html>", {"Content-Type": "text/html"}), "provider_unavailable"),
    ((429, "slow down", {"Retry-After": "120"}), "provider_unavailable"),
    ((200, "not json at all", {}), "provider_unavailable"),
    ((200, '{"token_type": "Bearer"}', {"Content-Type": "application/json"}), "provider_unavailable"),
    ((400, '{"error": "invalid_client"}', {"Content-Type": "application/json"}), "invalid_client"),
    ((200, '{"access_token": "a", "refresh_token": "r", "expires_in": "soon"}', {"Content-Type": "application/json"}),
     "provider_unavailable"),
    ((200, '{"access_token": "a", "refresh_token": "r", "expires_in": {}}', {"Content-Type": "application/json"}),
     "provider_unavailable"),
    ((200, '{"access_token": "a", "refresh_token": "r", "expires_in": 1e999}', {"Content-Type": "application/json"}),
     "provider_unavailable"),
])
def test_transient_failure_keeps_connection_and_backs_off(app, stub, user_id, expired, failure, code):
    stub.state.failure = failure
    with app.app_context():
        with pytest.raises(ProviderUnavailable) as info:
            get_access_token(user_id, "stub")
        assert info.value.retry_after >= (120 if failure[0] == 429 else 5)
        with pytest.raises(ProviderUnavailable, match="failed recently"):
            get_access_token(user_id, "stub")  # inside the cooldown: no second attempt
    assert stub.state.refresh_calls == 1
    row = _row(app, user_id)
    assert (row.status, row.failure_count, row.last_error_code) == ("active", 1, code)
    assert row.cooldown_until > clock.now() and row.lease_owner is None
    assert _stored_refresh(app, user_id) == expired


def test_timeout_is_transient(app, stub, user_id, expired):
    stub.state.delay = 3  # PROVIDER_READ_TIMEOUT is 2 s in these tests
    with app.app_context():
        with pytest.raises(ProviderUnavailable, match="timed out"):
            get_access_token(user_id, "stub")
    assert _row(app, user_id).status == "active" and _stored_refresh(app, user_id) == expired


def test_backoff_doubles_and_recovers_after_cooldown(app, stub, user_id, expired, monkeypatch):
    stub.state.failure = (503, "down", {})
    start = clock.now()
    for n, expected in enumerate((5, 10, 20)):
        monkeypatch.setattr(clock, "now", lambda n=n: start + timedelta(hours=n))
        with app.app_context(), pytest.raises(ProviderUnavailable) as info:
            get_access_token(user_id, "stub")
        assert info.value.retry_after == expected
    stub.state.failure = None
    monkeypatch.setattr(clock, "now", lambda: start + timedelta(hours=5))
    with app.app_context():
        assert get_access_token(user_id, "stub").token
    row = _row(app, user_id)
    assert (row.failure_count, row.cooldown_until, row.last_error_code) == (0, None, None)


def test_expired_lease_of_a_dead_holder_is_taken_over(app, stub, user_id, expired):
    from app.runtime import runtime

    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        # Past its expiry and past the holder's storing window (VAULT_STORE_DEADLINE + margin).
        row.lease_owner = "dead-process"
        row.lease_expires_at = clock.now() - runtime().vault.takeover_after - timedelta(seconds=1)
        db.session.commit()
        assert get_access_token(user_id, "stub").token
    assert _row(app, user_id).lease_owner is None and stub.state.refresh_calls == 1


def test_an_expired_lease_is_not_taken_over_while_its_holder_may_still_be_storing(app, user_id, expired):
    """12.1/12.2: a holder that has the provider's answer keeps trying to store it for
    VAULT_STORE_DEADLINE; taking the lease over before that would refresh with the old token."""
    from app.runtime import runtime
    from app.vault import _try_lease

    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        settings = runtime().vault
        row.lease_owner = "storing-holder"
        row.lease_expires_at = clock.now() - settings.takeover_after + timedelta(seconds=2)
        db.session.commit()
        assert not _try_lease(row.id, "another-caller", settings)
        row.lease_expires_at = clock.now() - settings.takeover_after - timedelta(seconds=1)
        db.session.commit()
        assert _try_lease(row.id, "another-caller", settings)


def test_missing_and_revoked_connections(app, user_id):
    make_connection(app, user_id, "stub")
    with app.app_context():
        with pytest.raises(NotFound):
            get_access_token("auth0|nobody", "stub")
        row = db.session.scalars(select(Connection)).one()
        row.status = "revoked"
        db.session.commit()
        with pytest.raises(ReauthorizationRequired, match="revoked"):
            get_access_token(user_id, "stub")


def test_non_expiring_token_without_refresh_is_returned(app, user_id):
    make_connection(app, user_id, "github", access="gho_x", refresh=None, expires_in=None)
    with app.app_context():
        assert get_access_token(user_id, "github").token == "gho_x"


def test_connect_of_another_user_completes_while_refresh_waits_on_slow_provider(app, stub, user_id, expired):
    from tests.connect.conftest import ConnectDriver

    stub.state.delay = 1.5
    done = {}

    def refresh():
        with app.app_context():
            done["token"] = get_access_token(user_id, "stub")
            done["at"] = time.monotonic()

    worker = threading.Thread(target=refresh)
    worker.start()
    assert stub.state.refresh_started.wait(10), "the refresh never reached the provider"
    assert _row(app, user_id).lease_owner is not None
    connect = ConnectDriver(app.test_client(), app.test_auth0, app.test_http)
    started = time.monotonic()
    response = connect.connect("spotify", token=app.test_auth0.token("auth0|someone-else"))
    finished = time.monotonic()
    worker.join(10)
    assert response.status_code == 303 and "connector_status=connected" in response.headers["Location"]
    assert finished < done["at"], "the connect had to wait for the refresh"
    assert finished - started < 1.0


def _during_refresh(app, stub, user_id, change, *, failure=None):
    """Run a refresh against a provider that answers after 1 s; ``change`` the row meanwhile."""
    stub.state.delay, stub.state.failure = 1.0, failure
    outcome = {}

    def refresh():
        with app.app_context():
            try:
                outcome["token"] = get_access_token(user_id, "stub")
            except Exception as exc:  # noqa: BLE001 (the test looks at it)
                outcome["error"] = exc

    worker = threading.Thread(target=refresh)
    worker.start()
    stub.state.refresh_started.wait(5)
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        change(row)
        db.session.commit()
    worker.join(10)
    assert not worker.is_alive()
    return outcome


def _take_over(row):
    row.lease_owner, row.lease_expires_at = "another-refresher", clock.now() + timedelta(seconds=30)


def test_a_refresh_whose_lease_was_taken_over_does_not_store_its_result(app, stub, user_id, expired):
    outcome = _during_refresh(app, stub, user_id, _take_over)
    assert isinstance(outcome.get("error"), ProviderUnavailable) and "took over" in str(outcome["error"])
    row = _row(app, user_id)
    assert (row.status, row.lease_owner, row.last_refreshed_at) == ("active", "another-refresher", None)
    assert _stored_refresh(app, user_id) == expired  # the taker-over's write is the one that counts


def test_an_invalid_grant_after_losing_the_lease_does_not_mark_needs_reauth(app, stub, user_id, expired):
    # Typical of rotation: the grant died because the other refresher used the same refresh token.
    failure = (400, '{"error": "invalid_grant"}', {"Content-Type": "application/json"})
    outcome = _during_refresh(app, stub, user_id, _take_over, failure=failure)
    assert isinstance(outcome.get("error"), ProviderUnavailable)
    row = _row(app, user_id)
    assert (row.status, row.last_error_code, row.failure_count) == ("active", None, 0)


def test_a_revoke_during_a_refresh_wins(app, stub, user_id, expired):
    def revoke(row):
        row.status, row.lease_owner, row.lease_expires_at = "revoked", None, None
        row.access_token_enc = row.refresh_token_enc = None

    outcome = _during_refresh(app, stub, user_id, revoke)
    assert isinstance(outcome.get("error"), ReauthorizationRequired) and "revoked" in str(outcome["error"])
    row = _row(app, user_id)
    assert (row.status, row.access_token_enc, row.refresh_token_enc) == ("revoked", None, None)


def test_a_failure_during_a_revoke_leaves_the_row_revoked(app, stub, user_id, expired):
    def revoke(row):
        row.status, row.lease_owner, row.lease_expires_at = "revoked", None, None

    outcome = _during_refresh(app, stub, user_id, revoke, failure=(503, "down", {}))
    assert isinstance(outcome.get("error"), ReauthorizationRequired)
    row = _row(app, user_id)
    assert (row.status, row.failure_count, row.cooldown_until) == ("revoked", 0, None)


def test_the_lease_is_not_taken_during_a_cooldown(app, user_id):
    from app.runtime import runtime
    from app.vault import _try_lease

    make_connection(app, user_id, "stub", expires_in=-10)
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        row.cooldown_until = clock.now() + timedelta(seconds=30)
        db.session.commit()
        # The cooldown is part of the lease statement: a caller that read the row before another
        # caller's failure was recorded still cannot start a second attempt.
        assert not _try_lease(row.id, "late-caller", runtime().vault)
        row.cooldown_until = clock.now() - timedelta(seconds=1)
        db.session.commit()
        assert _try_lease(row.id, "late-caller", runtime().vault)


def test_a_failed_write_of_rotated_tokens_is_tried_again(app, stub, user_id, expired, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app import vault

    real_store, calls = vault.TokenStore.store_refreshed, []

    def busy_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # as a commit that hits SQLite's busy timeout would
            raise OperationalError("UPDATE connections ...", {}, Exception("database is locked"))
        return real_store(*args, **kwargs)

    monkeypatch.setattr(vault.TokenStore, "store_refreshed", busy_once)
    with app.app_context():
        token = get_access_token(user_id, "stub")
    assert len(calls) == 2 and stub.state.refresh_calls == 1
    new_refresh = _stored_refresh(app, user_id)
    assert new_refresh != expired and stub.state.refresh_tokens[new_refresh]  # the rotated one was kept
    row = _row(app, user_id)
    assert row.lease_owner is None and token.token in stub.state.access_tokens


def test_a_store_on_sqlite_gives_its_connection_back_with_the_usual_busy_timeout(app, stub, user_id, expired,
                                                                                    database_url):
    """The store waits for SQLite's write lock a bounded time per attempt; the pooled connection
    it used must not keep that shorter timeout."""
    from sqlalchemy import text

    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    with app.app_context():
        get_access_token(user_id, "stub")
        db.session.remove()
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 15000
    assert stub.state.refresh_calls == 1


def test_longest_refresh_covers_waiting_calling_and_storing():
    from app.vault import longest_refresh_seconds

    config = {"PROVIDER_CONNECT_TIMEOUT": 3.05, "PROVIDER_READ_TIMEOUT": 10.0, "VAULT_STORE_DEADLINE": 120.0}
    # wait for another refresh (lease + 5) + own lease (connect + read + 5) + storing window + margin
    assert longest_refresh_seconds(config) == pytest.approx(23.05 + 18.05 + 120 + 5)


def test_a_caller_that_waited_out_an_expired_lease_is_told_when_it_may_be_taken_over(app, user_id, expired):
    """A lease past its expiry but inside its holder's storing window: 503 with a Retry-After
    that says when the takeover becomes possible, not 1 s."""
    import dataclasses

    rt = app.extensions["connector"]
    rt.vault = dataclasses.replace(rt.vault, wait=timedelta(0))
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        row.lease_owner, row.lease_expires_at = "storing-holder", clock.now() - timedelta(seconds=1)
        db.session.commit()
        with pytest.raises(ProviderUnavailable) as caught:
            get_access_token(user_id, "stub")
    window = rt.vault.takeover_after.total_seconds()
    assert window - 5 < caught.value.retry_after <= window - 1


class TestTemplatedProvider:
    """Refresh at the connection's own token URL, with the entry's quirks."""

    @pytest.fixture
    def env(self, recorder, tmp_path):
        from tests.conftest import providers_env
        from tests.zen_provider import CREDENTIALS, zen_toml

        toml = zen_toml(recorder.url, refresh_sends_redirect_uri=True,
                        error_shape={"field": "error", "success_flag": "ok"},
                        reauth_error_codes=["invalid_grant", "token_revoked"])
        return providers_env(tmp_path, toml, **CREDENTIALS)

    def test_refresh_goes_to_the_connections_token_url_with_the_redirect_uri(self, app, recorder, user_id):
        make_connection(app, user_id, "zen", access="a-0", refresh="r-0", expires_in=-10, params={"subdomain": "acme"})
        recorder.answer("/acme/oauth/tokens", json_body={"ok": True, "access_token": "a-1", "expires_in": 60})
        with app.app_context():
            assert get_access_token(user_id, "zen").token == "a-1"
        sent = recorder.at("/acme/oauth/tokens")[0].form()
        assert sent["refresh_token"] == "r-0" and sent["client_secret"] == "zen-secret"
        assert sent["redirect_uri"] == "https://connector.test/connect/callback/zen"

    def test_a_refresh_error_listed_in_reauth_error_codes_needs_a_reconnect(self, app, recorder, user_id):
        make_connection(app, user_id, "zen", access="a-0", refresh="r-0", expires_in=-10, params={"subdomain": "acme"})
        recorder.answer("/acme/oauth/tokens", json_body={"ok": False, "error": "token_revoked"})  # HTTP 200
        with app.app_context(), pytest.raises(ReauthorizationRequired):
            get_access_token(user_id, "zen")
        with app.app_context():
            row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
            assert (row.status, row.last_error_code) == ("needs_reauth", "token_revoked")

    def test_a_refresh_error_not_listed_is_a_failure_to_retry(self, app, recorder, user_id):
        make_connection(app, user_id, "zen", access="a-0", refresh="r-0", expires_in=-10, params={"subdomain": "acme"})
        recorder.answer("/acme/oauth/tokens", json_body={"ok": False, "error": "ratelimited"})
        with app.app_context(), pytest.raises(ProviderUnavailable):
            get_access_token(user_id, "zen")
        with app.app_context():
            row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
            assert (row.status, row.last_error_code) == ("active", "ratelimited")
def test_a_cached_token_is_one_select_without_the_session(app, user_id):
    """The cached case: one indexed SELECT through Core; no ORM session (no unit of work, no
    transaction to end) is opened for it."""
    from sqlalchemy import event

    make_connection(app, user_id, "spotify", access="cached-access", expires_in=3600)
    sent: list[str] = []

    def before(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", before)
        try:
            token = get_access_token(user_id, "spotify")
        finally:
            event.remove(db.engine, "before_cursor_execute", before)
        assert not db.session.registry.has()
    assert token.token == "cached-access"
    assert len(sent) == 1 and sent[0].lstrip().upper().startswith("SELECT")


def test_a_revoked_connection_is_refused_at_the_next_read(app, user_id):
    """The decrypted token a process keeps is keyed by the row's ciphertext: the next read sees the revoked row."""
    make_connection(app, user_id, "spotify", expires_in=3600)
    with app.app_context():
        assert get_access_token(user_id, "spotify").token == "access-0"
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        row.status, row.access_token_enc, row.refresh_token_enc = "revoked", None, None
        db.session.commit()
        with pytest.raises(ReauthorizationRequired):
            get_access_token(user_id, "spotify")


def test_a_token_replaced_in_the_row_is_answered_at_the_next_read(app, user_id):
    """The row is read on every call; a new ciphertext (refresh, reconnect, key rotation) is a new answer."""
    make_connection(app, user_id, "spotify", access="first-access", expires_in=3600)
    with app.app_context():
        assert get_access_token(user_id, "spotify").token == "first-access"
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        row.access_token_enc = app.extensions["connector"].keyring.encrypt("second-access", row.aad("access_token"))
        db.session.commit()
        assert get_access_token(user_id, "spotify").token == "second-access"
        row.scopes = "read write"
        db.session.commit()
        assert get_access_token(user_id, "spotify").scopes == ("read", "write")


def test_a_ciphertext_that_does_not_open_is_refused_every_time(app, user_id):
    """A failed decryption is not remembered as an answer: each read tries, and fails, again."""
    from app.errors import DecryptionError

    make_connection(app, user_id, "spotify", expires_in=3600)
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        # another row's ciphertext: a valid token, but its associated data names another connection
        row.access_token_enc = app.extensions["connector"].keyring.encrypt("x", b"another-row")
        db.session.commit()
        for _ in range(2):
            with pytest.raises(DecryptionError):
                get_access_token(user_id, "spotify")
