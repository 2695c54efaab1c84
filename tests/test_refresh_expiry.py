"""Refresh-token expiry: deadlines stored from the provider's answer and from the spec's lifetimes,
the keep-alive of idle-expiring grants, and the one-time announcement of an absolute expiry."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import NEEDS_REAUTH, AuditEvent, Connection
from app.oauth_client import TokenResponse
from app.providers.spec import ProviderSpec, SpecError, spec_from_mapping
from app.refresh_expiry import (
    EXPIRING_EVENT,
    announce_expiring_refresh_tokens,
    keep_alive_idle_grants,
    note_refresh_token_expiry,
)
from tests.conftest import base_env, make_connection
from tests.connect.conftest import PROVIDER_MOCKS, ConnectDriver

DAY = timedelta(days=1)
IDLE = 10 * 86400  # the stub provider's idle lifetime here


@pytest.fixture
def env(stub, tmp_path):
    from tests.stub_provider import CLIENT_ID, CLIENT_SECRET

    entry = {**stub.catalog_entry(), "refresh_token_idle_lifetime": IDLE}
    path = tmp_path / "providers.toml"
    path.write_text("[stub]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items()))
    return base_env(CONNECTOR_PROVIDERS_FILE=str(path), STUB_CLIENT_ID=CLIENT_ID, STUB_CLIENT_SECRET=CLIENT_SECRET,
                    PROVIDER_READ_TIMEOUT="2")


def _row(app, connection_id: str) -> Connection:
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        db.session.expunge(row)
        return row


def _token(refresh: str | None = "r", **raw) -> TokenResponse:
    return TokenResponse(access_token="a", refresh_token=refresh, token_type="Bearer", expires_at=None,
                         scopes=(), raw=raw)


# --- the spec ---------------------------------------------------------------------------------

def test_catalog_knows_google_idle_and_spotify_absolute_lifetimes(app):
    registry = app.extensions["connector"].registry
    assert registry.spec("google").refresh_token_idle_lifetime == 180 * 86400
    assert registry.spec("google").refresh_token_absolute_lifetime is None  # "Testing" apps: an operator setting
    assert registry.spec("spotify").refresh_token_absolute_lifetime == 180 * 86400
    assert registry.spec("github").refresh_token_absolute_lifetime is None


@pytest.mark.parametrize("value", [0, -5, "7d", True, 1.5])
def test_spec_refuses_a_lifetime_that_is_not_a_positive_number_of_seconds(value):
    with pytest.raises(SpecError, match="refresh_token_idle_lifetime"):
        spec_from_mapping("acme", {"authorize_url": "https://a.test/a", "token_url": "https://a.test/t",
                                   "refresh_token_idle_lifetime": value})


# --- what is stored ---------------------------------------------------------------------------

def test_expiry_stored_from_refresh_token_expires_in_at_connect(app, client, auth0, mocked_http):
    driver = ConnectDriver(client, auth0, mocked_http)
    params = driver.authorize_params(driver.start("spotify"))
    mock = PROVIDER_MOCKS["spotify"]
    mocked_http.post(mock["token_url"], json={**mock["token"], "refresh_token_expires_in": 3 * 86400})
    mocked_http.get(mock["userinfo"][0], json=mock["userinfo"][1])
    before = clock.now()
    assert driver.callback({"code": "C", "state": params["state"]}).status_code == 303
    with app.app_context():
        row = db.session.scalars(select(Connection)).one()
        # the provider's 3 days, sooner than Spotify's catalog lifetime of 180 days
        assert before + 3 * DAY <= row.refresh_token_expires_at <= clock.now() + 3 * DAY
        assert row.refresh_token_idle_expires_at is None


def test_expiry_from_spec_lifetimes():
    now = clock.now()
    spec = ProviderSpec("p", "P", refresh_token_absolute_lifetime=30 * 86400, refresh_token_idle_lifetime=86400)
    connection = Connection(refresh_token_enc="sealed", connected_at=now)
    note_refresh_token_expiry(connection, spec, _token(), new_grant=True, now=now)
    assert connection.refresh_token_expires_at == now + 30 * DAY
    assert connection.refresh_token_idle_expires_at == now + DAY
    # A refresh ten days later: the idle deadline moves, the absolute one runs from the grant.
    later = now + 10 * DAY
    note_refresh_token_expiry(connection, spec, _token(), new_grant=False, now=later)
    assert connection.refresh_token_expires_at == now + 30 * DAY
    assert connection.refresh_token_idle_expires_at == later + DAY


def test_expiry_from_the_entrys_refresh_token_expires_in_path():
    """Read by the token client at token_response.refresh_token_expires_in (a nested path, say)."""
    import dataclasses

    from app.oauth_client import _token_response
    from app.providers.spec import TokenPaths

    now = clock.now()
    spec = ProviderSpec("p", "P", token_response=TokenPaths(refresh_token_expires_in="grant.refresh_ttl"))
    body = {"access_token": "a", "refresh_token": "r", "grant": {"refresh_ttl": 7200},
            "refresh_token_expires_in": 999999}
    token = _token_response(spec, spec.token_response, body, ())
    connection = Connection(refresh_token_enc="sealed", connected_at=now)
    note_refresh_token_expiry(connection, spec, token, new_grant=True, now=now)
    assert connection.refresh_token_expires_at == now + timedelta(seconds=7200)
    note_refresh_token_expiry(connection, spec, dataclasses.replace(token, refresh_token_expires_in=None, raw={}),
                              new_grant=True, now=now)
    assert connection.refresh_token_expires_at is None


def test_refresh_without_a_new_refresh_token_keeps_the_reported_deadline():
    now = clock.now()
    spec = ProviderSpec("p", "P")
    connection = Connection(refresh_token_enc="sealed", connected_at=now)
    note_refresh_token_expiry(connection, spec, _token(refresh_token_expires_in=86400), new_grant=True, now=now)
    note_refresh_token_expiry(connection, spec, _token(refresh=None), new_grant=False, now=now + timedelta(hours=1))
    assert connection.refresh_token_expires_at == now + DAY
    # A rotated refresh token with its own lifetime: a later deadline, to be announced again.
    connection.refresh_token_expiry_warned_at = now
    note_refresh_token_expiry(connection, spec, _token(refresh_token_expires_in=86400), new_grant=False,
                              now=now + 2 * DAY)
    assert connection.refresh_token_expires_at == now + 3 * DAY
    assert connection.refresh_token_expiry_warned_at is None


def test_vault_refresh_moves_the_idle_deadline(app, stub):
    from app.vault import get_access_token

    access, refresh = stub.issue()
    connection_id = make_connection(app, "auth0|a", "stub", access=access, refresh=refresh, expires_in=-1)
    with app.app_context():
        get_access_token("auth0|a", "stub")
    row = _row(app, connection_id)
    assert abs(row.refresh_token_idle_expires_at - (row.last_refreshed_at + timedelta(seconds=IDLE))) < DAY / 1000


# --- keep-alive -------------------------------------------------------------------------------

def _idle_for(app, connection_id: str, idle: timedelta, **values) -> None:
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        row.last_refreshed_at = clock.now() - idle
        row.refresh_token_idle_expires_at = row.last_refreshed_at + timedelta(seconds=IDLE)
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()


def test_keep_alive_refreshes_only_grants_idle_for_half_their_lifetime(app, stub):
    ids = {}
    for name, idle, values in [("stale", 6 * DAY, {}), ("fresh", 2 * DAY, {}),
                               ("dead", 9 * DAY, {"status": NEEDS_REAUTH}),
                               ("cooling", 9 * DAY, {"cooldown_until": clock.now() + DAY}),
                               ("legacy", 7 * DAY, {"refresh_token_idle_expires_at": None})]:
        access, refresh = stub.issue()
        ids[name] = make_connection(app, f"auth0|{name}", "stub", access=access, refresh=refresh)
        _idle_for(app, ids[name], idle, **values)
    spotify = make_connection(app, "auth0|spotify", "spotify")  # no idle lifetime: never kept alive
    _idle_for(app, spotify, 300 * DAY, refresh_token_idle_expires_at=None)
    with app.app_context():
        counts = keep_alive_idle_grants(app.extensions["connector"], clock.now())
    assert counts == {"refreshed": 2} and stub.state.refresh_calls == 2
    refreshed = {name for name, cid in ids.items() if _row(app, cid).last_refreshed_at > clock.now() - DAY}
    assert refreshed == {"stale", "legacy"}
    with app.app_context():  # a second run finds nothing left to do
        assert keep_alive_idle_grants(app.extensions["connector"], clock.now()) == {}


# --- announcing an absolute expiry ------------------------------------------------------------

@pytest.fixture
def events(monkeypatch):
    """Records what is emitted through the real events outbox (which still writes its rows)."""
    from app.events import outbox

    emitted, real = [], outbox.emit_event

    def record(connection, type, **data):
        emitted.append((connection.id, type, data))
        return real(connection, type, **data)

    monkeypatch.setattr(outbox, "emit_event", record)
    return emitted


def _expiring(app, user: str, expires_in: timedelta) -> str:
    connection_id = make_connection(app, user, "spotify")
    with app.app_context():
        db.session.get(Connection, connection_id).refresh_token_expires_at = clock.now() + expires_in
        db.session.commit()
    return connection_id


def test_absolute_expiry_is_announced_once_within_the_warning(app, events):
    soon = _expiring(app, "auth0|soon", 3 * DAY)
    _expiring(app, "auth0|later", 30 * DAY)
    with app.app_context():
        assert announce_expiring_refresh_tokens(app.extensions["connector"], clock.now()) == 1
        assert announce_expiring_refresh_tokens(app.extensions["connector"], clock.now()) == 0
        audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "refresh_token_expiring")).one()
        assert audit.user_id == "auth0|soon"
    assert [(cid, kind) for cid, kind, _ in events] == [(soon, EXPIRING_EVENT)]
    assert set(events[0][2]) == {"refresh_token_expires_at"}  # no reconnect_url: links are not configured here
    assert _row(app, soon).refresh_token_expiry_warned_at is not None


def test_warning_time_is_configurable(app, events):
    _expiring(app, "auth0|a", 3 * DAY)
    app.config["REFRESH_TOKEN_EXPIRY_WARNING"] = 86400.0
    with app.app_context():
        assert announce_expiring_refresh_tokens(app.extensions["connector"], clock.now()) == 0


def test_reconnecting_rearms_the_announcement(app, events):
    connection_id = _expiring(app, "auth0|a", DAY)
    with app.app_context():
        assert announce_expiring_refresh_tokens(app.extensions["connector"], clock.now()) == 1
        connection = db.session.get(Connection, connection_id)
        note_refresh_token_expiry(connection, app.extensions["connector"].registry.spec("spotify"), _token(),
                                  new_grant=True)
        db.session.commit()
        assert connection.refresh_token_expiry_warned_at is None
        assert connection.refresh_token_expires_at > clock.now() + 170 * DAY  # Spotify's 180 days, again
        assert announce_expiring_refresh_tokens(app.extensions["connector"], clock.now() + 175 * DAY) == 1


def test_the_announcement_is_an_event_in_the_outbox(app):
    from app.events.model import Event

    connection_id = _expiring(app, "auth0|a", DAY)
    with app.app_context():
        assert announce_expiring_refresh_tokens(app.extensions["connector"], clock.now()) == 1
        rows = db.session.scalars(select(Event).where(Event.connection_id == connection_id)).all()
        assert [row.type for row in rows] == ["connection.refresh_token_expiring"]
        body = json.loads(rows[0].body)
        assert body["data"]["connection_id"] == connection_id and body["data"]["refresh_token_expires_at"]
