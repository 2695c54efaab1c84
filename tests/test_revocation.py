import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from sqlalchemy import select

from app import clock
from app.errors import ReauthorizationRequired
from app.extensions import db
from app.models import AuditEvent, Connection, RevocationTask
from app.revocation import MAX_ATTEMPTS, Actor, retry_revocations, revoke_connection, revoke_user_connections
from app.vault import get_access_token
from tests.conftest import make_connection

GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
GITHUB_GRANT = "https://api.github.com/applications/gh-client/grant"
ADMIN = Actor("admin", "auth0|admin")


def _revoke(app, user_id, provider, actor=ADMIN):
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id,
                                                          Connection.provider == provider)).one()
        return revoke_connection(row, actor)


def _state(app, user_id, provider):
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id,
                                                          Connection.provider == provider)).one()
        tasks = db.session.scalars(select(RevocationTask)).all()
        events = [(e.action, e.outcome, e.actor_type, e.detail) for e in db.session.scalars(
            select(AuditEvent).order_by(AuditEvent.id))]
        return row, tasks, events


def _assert_wiped(row):
    assert row.status == "revoked" and row.revoked_at is not None
    assert row.access_token_enc is None and row.refresh_token_enc is None


def test_rfc7009_revokes_refresh_token_at_provider(app, mocked_http, user_id):
    make_connection(app, user_id, "google", access="ya29.A", refresh="1//R")
    mocked_http.post(GOOGLE_REVOKE, status=200)
    assert _revoke(app, user_id, "google").remote == "done"
    call = [c for c in mocked_http.calls if c.request.url == GOOGLE_REVOKE][0]
    body = parse_qs(call.request.body)
    assert body["token"] == ["1//R"] and body["token_type_hint"] == ["refresh_token"]
    assert body["client_id"] == ["google-client"] and body["client_secret"] == ["google-secret-value"]
    row, tasks, events = _state(app, user_id, "google")
    _assert_wiped(row)
    assert row.remote_revocation == "done" and tasks == []
    assert [(a, o, t) for a, o, t, _ in events] == [("revoke", "revoked", "admin"), ("revoke_remote", "done", "admin")]
    assert "1//R" not in repr(events) and "ya29.A" not in repr(events)


def test_github_grant_api_revokes_with_basic_auth(app, mocked_http, user_id):
    make_connection(app, user_id, "github", access="gho_A", refresh=None, expires_in=None)
    mocked_http.delete(GITHUB_GRANT, status=204)
    assert _revoke(app, user_id, "github").remote == "done"
    call = [c for c in mocked_http.calls if c.request.url == GITHUB_GRANT][0]
    assert json.loads(call.request.body) == {"access_token": "gho_A"}
    expected = "Basic " + base64.b64encode(b"gh-client:gh-secret-value").decode()
    assert call.request.headers["Authorization"] == expected


def test_provider_without_revocation_revokes_locally_and_says_so(app, mocked_http, user_id):
    make_connection(app, user_id, "spotify", expires_in=1800)
    assert _revoke(app, user_id, "spotify").remote == "not_supported"
    row, tasks, events = _state(app, user_id, "spotify")
    _assert_wiped(row)
    assert row.remote_revocation == "not_supported" and tasks == []
    detail = events[0][3]
    assert detail["remote"] == "not_supported" and "access_token_valid_until" in detail


@pytest.mark.parametrize("failure", [{"status": 503}, {"status": 500}, {"body": requests.ConnectTimeout("slow")},
                                     {"body": requests.ConnectionError("down")}])
def test_provider_failure_revokes_locally_and_retries_later(app, mocked_http, user_id, failure, monkeypatch):
    make_connection(app, user_id, "google", access="ya29.A", refresh="1//R")
    mocked_http.post(GOOGLE_REVOKE, **failure)
    assert _revoke(app, user_id, "google").remote == "pending"
    row, tasks, events = _state(app, user_id, "google")
    _assert_wiped(row)
    assert row.remote_revocation == "pending" and len(tasks) == 1
    assert "1//R" not in tasks[0].token_enc and tasks[0].attempts == 1
    assert events[-1][1] == "pending" and events[-1][3]["error"]
    with app.app_context():
        with pytest.raises(ReauthorizationRequired):  # nothing usable is left for the vault
            get_access_token(user_id, "google")
        assert retry_revocations() == {"done": 0, "pending": 0, "failed": 0}  # not due yet
    mocked_http.replace(responses.POST, GOOGLE_REVOKE, status=200)
    later = clock.now() + timedelta(minutes=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context():
        assert retry_revocations() == {"done": 1, "pending": 0, "failed": 0}
    row, tasks, _ = _state(app, user_id, "google")
    assert row.remote_revocation == "done" and tasks == []


def test_retries_are_bounded(app, mocked_http, user_id, monkeypatch):
    make_connection(app, user_id, "google")
    mocked_http.post(GOOGLE_REVOKE, status=503)
    _revoke(app, user_id, "google")
    now = clock.now()
    for attempt in range(2, MAX_ATTEMPTS + 1):
        now += timedelta(days=1)
        monkeypatch.setattr(clock, "now", lambda now=now: now)
        with app.app_context():
            outcome = retry_revocations()
        assert outcome == ({"done": 0, "pending": 0, "failed": 1} if attempt == MAX_ATTEMPTS
                           else {"done": 0, "pending": 1, "failed": 0})
    row, tasks, events = _state(app, user_id, "google")
    assert row.remote_revocation == "failed" and tasks == []
    assert events[-1][:2] == ("revoke_remote", "failed")


def test_retry_command(app, runner, mocked_http, user_id):
    make_connection(app, user_id, "google")
    mocked_http.post(GOOGLE_REVOKE, status=503)
    _revoke(app, user_id, "google")
    result = runner.invoke(args=["connector", "retry-revocations"])
    assert result.exit_code == 0 and "done: done 0, pending 0, failed 0" in result.output


def test_revoke_all_of_a_users_connections(app, mocked_http, user_id):
    mocked_http.post(GOOGLE_REVOKE, status=200)
    make_connection(app, user_id, "google")
    make_connection(app, user_id, "spotify")
    make_connection(app, "auth0|other", "spotify")
    with app.app_context():
        results = revoke_user_connections(user_id, Actor("m2m", "client-1"))
    assert [(r.provider, r.remote) for r in results] == [("google", "done"), ("spotify", "not_supported")]
    assert _state(app, "auth0|other", "spotify")[0].status == "active"


def test_reconnect_after_revoke_is_active_again(app, mocked_http, user_id):
    make_connection(app, user_id, "spotify")
    _revoke(app, user_id, "spotify")
    make_connection(app, user_id, "spotify", access="new")
    row = _state(app, user_id, "spotify")[0]
    assert (row.status, row.revoked_at, row.remote_revocation) == ("active", None, None)
