"""Each event type from the real code path, written in the state change's own transaction."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.errors import ProviderUnavailable, ReauthorizationRequired
from app.events import outbox
from app.events.model import Event
from app.extensions import db
from app.models import Connection
from app.vault import get_access_token
from tests.conftest import make_connection
from tests.connect.conftest import ConnectDriver
from tests.events.conftest import stored_events

GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
DATA_KEYS = {"connection_id", "user_id", "provider", "status", "sequence"}


@pytest.fixture
def connect(client, auth0, mocked_http):
    return ConnectDriver(client, auth0, mocked_http)


@pytest.fixture
def expired(app, stub, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-10)
    return access, refresh


def _types(app, **where):
    return [e["type"] for e in stored_events(app, **where)]


def _set(app, user_id, **values):
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()


def test_first_connect_is_created_and_a_new_grant_is_reconnected(app, connect):
    assert connect.connect("spotify").status_code == 303
    assert connect.connect("spotify").status_code == 303
    created, reconnected = stored_events(app)
    assert (created["type"], reconnected["type"]) == ("connection.created", "connection.reconnected")
    first, second = created["payload"], reconnected["payload"]
    assert set(first) == {"type", "timestamp", "data"} and first["timestamp"].endswith("Z")
    assert DATA_KEYS <= set(first["data"])
    assert first["data"]["connection_id"] == second["data"]["connection_id"]  # stable across reconnects
    assert (first["data"]["sequence"], second["data"]["sequence"]) == (1, 2)
    assert (first["data"]["user_id"], first["data"]["provider"], first["data"]["status"]) == (
        "auth0|alice", "spotify", "active")
    for event in (created, reconnected):
        assert "SECRET" not in str(event["payload"])  # the mocked tokens all contain SECRET


def test_reconnecting_a_dead_connection_is_reconnected_and_recovered(app, connect):
    connect.connect("spotify")
    _set(app, "auth0|alice", status="needs_reauth")
    connect.connect("spotify")
    types = _types(app)
    assert types == ["connection.created", "connection.reconnected", "connection.recovered"]
    assert stored_events(app)[1]["payload"]["data"]["previous_status"] == "needs_reauth"


@pytest.mark.parametrize("links", [True, False])
def test_invalid_grant_emits_needs_reauth_with_reconnect_url(app, stub, user_id, expired, links):
    if links:
        outbox.set_reconnect_url_builder(app, lambda user, provider: f"https://connector.test/l/{provider}?u={user}")
    stub.state.failure = (400, '{"error": "invalid_grant"}', {"Content-Type": "application/json"})
    with app.app_context(), pytest.raises(ReauthorizationRequired):
        get_access_token(user_id, "stub")
    [event] = stored_events(app)
    data = event["payload"]["data"]
    assert event["type"] == "connection.needs_reauth" and data["status"] == "needs_reauth"
    assert data["reason"] == "invalid_grant" and data["sequence"] == 1
    assert data["reconnect_url"] == (f"https://connector.test/l/stub?u={user_id}" if links else None)
    assert not any(token in str(event["payload"]) for token in expired)


def test_refresh_failing_is_announced_once_per_streak_then_recovered(app, stub, user_id, expired):
    stub.state.failure = (503, "down", {})
    for _ in range(3):  # REFRESH_FAILING_AFTER is 2 here
        with app.app_context(), pytest.raises(ProviderUnavailable):
            get_access_token(user_id, "stub")
        _set(app, user_id, cooldown_until=None)  # the cooldown passes
    assert _types(app) == ["connection.refresh_failing"]
    failing = stored_events(app)[0]["payload"]["data"]
    assert (failing["status"], failing["reason"], failing["failures"]) == ("active", "provider_unavailable", 2)
    stub.state.failure = None
    with app.app_context():
        assert get_access_token(user_id, "stub").token
        assert get_access_token(user_id, "stub", force_refresh=True).token  # no second recovered
    assert _types(app) == ["connection.refresh_failing", "connection.recovered"]
    assert stored_events(app)[1]["payload"]["data"]["sequence"] == 2


def test_reaching_the_longest_cooldown_is_refresh_failing(app, stub, user_id, expired):
    stub.state.failure = (429, "slow down", {"Retry-After": "100000"})  # capped at REFRESH_BACKOFF_MAX
    with app.app_context(), pytest.raises(ProviderUnavailable):
        get_access_token(user_id, "stub")
    assert _types(app) == ["connection.refresh_failing"]


def test_a_transient_failure_below_the_threshold_is_no_event(app, stub, user_id, expired):
    stub.state.failure = (500, "boom", {})
    with app.app_context(), pytest.raises(ProviderUnavailable):
        get_access_token(user_id, "stub")
    stub.state.failure = None
    _set(app, user_id, cooldown_until=None)
    with app.app_context():
        get_access_token(user_id, "stub")
    assert _types(app) == []


def test_revocation_emits_revoked_with_actor_and_remote_outcome(app, client, auth0, mocked_http):
    make_connection(app, "auth0|alice", "google")
    make_connection(app, "auth0|alice", "spotify")
    mocked_http.post(GOOGLE_REVOKE, status=200)
    headers = {"Authorization": f"Bearer {auth0.token('auth0|alice')}"}
    assert client.delete("/api/connections/google", headers=headers).status_code == 200
    m2m = {"Authorization": f"Bearer {auth0.m2m_token('delete:connections')}"}
    assert client.delete("/api/users/auth0%7Calice/connections/spotify", headers=m2m).status_code == 200
    google = [e["payload"] for e in stored_events(app, provider="google")]
    assert [e["type"] for e in google] == ["connection.revoked", "connection.remote_revocation_finished"]
    assert google[0]["data"] | {"connection_id": None} == {
        "connection_id": None, "user_id": "auth0|alice", "provider": "google", "status": "revoked", "sequence": 1,
        "actor_type": "user", "remote_revocation": "pending"}
    assert (google[1]["data"]["remote_revocation"], google[1]["data"]["sequence"]) == ("done", 2)
    [spotify] = [e["payload"]["data"] for e in stored_events(app, provider="spotify")]
    assert (spotify["actor_type"], spotify["remote_revocation"]) == ("m2m", "not_supported")


def test_a_failure_after_the_flush_rolls_back_the_change_and_its_event(app, client, auth0, monkeypatch):
    make_connection(app, "auth0|alice", "spotify")

    def broken_audit(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("app.revocation.record_audit", broken_audit)  # runs after the event was added
    response = client.delete("/api/connections/spotify",
                             headers={"Authorization": f"Bearer {auth0.token('auth0|alice')}"})
    assert response.status_code == 500
    with app.app_context():
        assert db.session.scalars(select(Connection.status)).one() == "active"
    assert stored_events(app) == []


def test_a_failure_inside_the_event_write_rolls_back_the_state_change(app, stub, user_id, expired):
    def broken(user, provider):
        raise RuntimeError("link service down")

    outbox.set_reconnect_url_builder(app, broken)  # called after the status change was flushed
    stub.state.failure = (400, '{"error": "invalid_grant"}', {"Content-Type": "application/json"})
    with app.app_context():
        with pytest.raises(RuntimeError):
            get_access_token(user_id, "stub")
        db.session.rollback()
        assert db.session.scalars(select(Connection.status)).one() == "active"
    assert stored_events(app) == []


def test_sequences_are_unique_and_gapless_under_concurrent_writers(app, user_id):
    connection_id = make_connection(app, user_id, "spotify")
    go = threading.Barrier(6)
    errors = []

    def emit() -> None:
        try:
            go.wait(10)
            for _ in range(4):
                with app.app_context():
                    row = db.session.get(Connection, connection_id)
                    outbox.emit_event(row, outbox.REFRESH_TOKEN_EXPIRING,
                                      expires_at=outbox.rfc3339(clock.now() + timedelta(days=1)))
                    db.session.commit()
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=emit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        sequences = sorted(db.session.scalars(select(Event.sequence)))
    assert sequences == list(range(1, 25))
