import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import requests
import responses
from sqlalchemy import select

from app import clock, create_app
from app.crypto import Keyring
from app.errors import ProviderUnavailable, ReauthorizationRequired
from app.extensions import db
from app.models import AuditEvent, Connection, RevocationTask
from app.revocation import MAX_ATTEMPTS, Actor, retry_revocations, revoke_connection, revoke_user_connections
from app.vault import get_access_token
from tests.conftest import base_env, make_connection

GOOGLE_REVOKE = "https://oauth2.googleapis.com/revoke"
GITHUB_GRANT = "https://api.github.com/applications/gh-client/grant"
ADMIN = Actor("admin", "auth0|admin")
LOST_KEY = Keyring([("k0", b"0" * 32)])  # a key that is not (or no longer) in TOKEN_ENCRYPTION_KEYS


def _counts(**nonzero):
    return {"done": 0, "pending": 0, "failed": 0, "not_supported": 0, **nonzero}


def _later(monkeypatch, minutes=5):
    later = clock.now() + timedelta(minutes=minutes)
    monkeypatch.setattr(clock, "now", lambda: later)


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


@pytest.mark.parametrize("failure", [{"status": 422}, {"status": 502}, {"body": requests.ReadTimeout("slow")}])
def test_github_grant_api_failure_is_retried(app, mocked_http, user_id, failure, monkeypatch):
    # 422 is GitHub's "validation failed, or the endpoint has been spammed": no proof the grant is gone.
    make_connection(app, user_id, "github", access="gho_A", refresh=None, expires_in=None)
    mocked_http.delete(GITHUB_GRANT, **failure)
    assert _revoke(app, user_id, "github").remote == "pending"
    row, tasks, _ = _state(app, user_id, "github")
    _assert_wiped(row)
    assert len(tasks) == 1 and tasks[0].token_type_hint == "access_token"
    mocked_http.replace(responses.DELETE, GITHUB_GRANT, status=404)  # gone by now: done
    later = clock.now() + timedelta(minutes=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context():
        assert retry_revocations() == _counts(done=1)


def test_retry_takes_each_due_task_once(app, mocked_http, monkeypatch):
    for n in range(3):
        make_connection(app, f"auth0|u{n}", "google")
    mocked_http.post(GOOGLE_REVOKE, status=503)
    for n in range(3):
        _revoke(app, f"auth0|u{n}", "google")
    later = clock.now() + timedelta(minutes=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context():
        assert retry_revocations(limit=2) == _counts(pending=2)  # bounded by the limit
        assert retry_revocations() == _counts(pending=1)  # the rescheduled two are not due again
    assert len([c for c in mocked_http.calls if c.request.url == GOOGLE_REVOKE]) == 6


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
        assert retry_revocations() == _counts()  # not due yet
    mocked_http.replace(responses.POST, GOOGLE_REVOKE, status=200)
    later = clock.now() + timedelta(minutes=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    with app.app_context():
        assert retry_revocations() == _counts(done=1)
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
        assert outcome == (_counts(failed=1) if attempt == MAX_ATTEMPTS else _counts(pending=1))
    row, tasks, events = _state(app, user_id, "google")
    assert row.remote_revocation == "failed" and tasks == []
    assert events[-1][:2] == ("revoke_remote", "failed")


def test_retry_command(app, runner, mocked_http, user_id):
    make_connection(app, user_id, "google")
    mocked_http.post(GOOGLE_REVOKE, status=503)
    _revoke(app, user_id, "google")
    result = runner.invoke(args=["connector", "retry-revocations"])
    assert result.exit_code == 0 and "done: done 0, pending 0, failed 0, not_supported 0" in result.output


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


IDP_DISCOVERY = "https://idp.test/.well-known/openid-configuration"


class TestProviderWhoseRevocationTurnsOutUnsupported:
    """An OIDC provider by discovery: down at revoke time (so RFC 7009 is assumed), and its metadata,
    once it answers, names no revocation endpoint."""

    @pytest.fixture
    def env(self, tmp_path):
        path = tmp_path / "providers.toml"
        path.write_text('[idp]\nissuer = "https://idp.test"\nscopes = ["openid", "offline_access"]\n')
        return base_env(CONNECTOR_PROVIDERS_FILE=str(path), IDP_CLIENT_ID="idp-id", IDP_CLIENT_SECRET="idp-secret")

    def test_retry_counts_not_supported_and_finishes_the_task(self, app, runner, mocked_http, user_id,
                                                               monkeypatch):
        make_connection(app, user_id, "idp")
        mocked_http.get(IDP_DISCOVERY, status=503)
        assert _revoke(app, user_id, "idp").remote == "pending"
        mocked_http.replace(responses.GET, IDP_DISCOVERY, json={
            "issuer": "https://idp.test", "authorization_endpoint": "https://idp.test/auth",
            "token_endpoint": "https://idp.test/token", "userinfo_endpoint": "https://idp.test/me"})
        _later(monkeypatch)
        result = runner.invoke(args=["connector", "retry-revocations"])
        assert result.exit_code == 0, result.output
        assert "done: done 0, pending 0, failed 0, not_supported 1" in result.output
        row, tasks, events = _state(app, user_id, "idp")
        assert row.remote_revocation == "not_supported" and tasks == []
        action, outcome, _, detail = events[-1]
        assert (action, outcome) == ("revoke_remote", "not_supported")
        assert detail["reason"] == "the provider offers no revocation"
        with app.app_context():  # finished: nothing is tried again
            _later(monkeypatch, minutes=60 * 24)
            assert retry_revocations() == _counts()


def _pending_revocations(app, mocked_http, *user_ids):
    mocked_http.post(GOOGLE_REVOKE, status=503)
    for user in user_ids:
        make_connection(app, user, "google", refresh=f"1//R-{user}")
        assert _revoke(app, user, "google").remote == "pending"
    mocked_http.replace(responses.POST, GOOGLE_REVOKE, status=200)


def test_undecryptable_task_fails_for_good_and_the_run_goes_on(app, mocked_http, monkeypatch):
    _pending_revocations(app, mocked_http, "auth0|broken", "auth0|fine")
    with app.app_context():  # the key that sealed the first task's token was removed
        task = db.session.scalars(select(RevocationTask).where(RevocationTask.user_id == "auth0|broken")).one()
        task.token_enc = LOST_KEY.encrypt("1//R-auth0|broken", task.aad())
        db.session.commit()
    _later(monkeypatch)
    with app.app_context():
        assert retry_revocations() == _counts(done=1, failed=1)
    broken, tasks, events = _state(app, "auth0|broken", "google")
    assert broken.remote_revocation == "failed" and tasks == []
    assert _state(app, "auth0|fine", "google")[0].remote_revocation == "done"
    failed = [e for e in events if e[:2] == ("revoke_remote", "failed")]
    assert len(failed) == 1 and failed[0][3]["error"] == "decryption_failed"


def test_task_of_a_provider_removed_from_config_fails_for_good(app, mocked_http, user_id, database_url,
                                                                monkeypatch):
    _pending_revocations(app, mocked_http, user_id)
    without_google = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url},
                                env=base_env(GOOGLE_CLIENT_ID="", GOOGLE_CLIENT_SECRET=""))
    _later(monkeypatch)
    with without_google.app_context():
        assert retry_revocations() == _counts(failed=1)
        db.session.remove()
    row, tasks, events = _state(app, user_id, "google")
    assert row.remote_revocation == "failed" and tasks == []
    assert events[-1][:2] == ("revoke_remote", "failed") and events[-1][3]["error"] == "unknown_provider"


def _fields(row):
    return (row.status, row.revoked_at, row.remote_revocation, row.access_token_enc, row.refresh_token_enc,
            row.key_id, row.last_error_code)


def test_pending_revocation_from_before_a_reconnect_leaves_the_new_connection_alone(app, mocked_http, user_id,
                                                                                   monkeypatch):
    make_connection(app, user_id, "google", access="ya29.OLD", refresh="1//OLD")
    mocked_http.post(GOOGLE_REVOKE, status=503)
    assert _revoke(app, user_id, "google").remote == "pending"
    make_connection(app, user_id, "google", access="ya29.NEW", refresh="1//NEW")  # the user connects again
    before = _fields(_state(app, user_id, "google")[0])
    assert before[:3] == ("active", None, None)
    mocked_http.replace(responses.POST, GOOGLE_REVOKE, status=200)
    _later(monkeypatch)
    with app.app_context():
        assert retry_revocations() == _counts(done=1)
        assert get_access_token(user_id, "google").token == "ya29.NEW"
    row, tasks, events = _state(app, user_id, "google")
    assert _fields(row) == before and tasks == []
    sent = [parse_qs(c.request.body)["token"] for c in mocked_http.calls if c.request.url == GOOGLE_REVOKE]
    assert sent[-1] == ["1//OLD"]  # the old grant is still revoked at the provider, as the user asked
    assert events[-1][:2] == ("revoke_remote", "done")


def test_stale_task_does_not_overwrite_a_later_revocations_status(app, mocked_http, user_id, monkeypatch):
    make_connection(app, user_id, "google", refresh="1//OLD")
    mocked_http.post(GOOGLE_REVOKE, status=503)
    _revoke(app, user_id, "google")  # first revocation: its task stays pending
    _later(monkeypatch, minutes=2)
    make_connection(app, user_id, "google", refresh="1//NEW")
    mocked_http.replace(responses.POST, GOOGLE_REVOKE, status=200)
    assert _revoke(app, user_id, "google").remote == "done"  # second revocation: done at once
    mocked_http.replace(responses.POST, GOOGLE_REVOKE, status=503)
    with app.app_context():
        assert retry_revocations() == _counts(pending=1)  # the first task, still failing
    row, tasks, _ = _state(app, user_id, "google")
    assert (row.status, row.remote_revocation) == ("revoked", "done") and len(tasks) == 1


def _lose_key(app, user_id, provider):
    """Re-seal a connection's tokens with a key that is not configured (as if it was removed)."""
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id,
                                                          Connection.provider == provider)).one()
        row.access_token_enc = LOST_KEY.encrypt("lost-access", row.aad("access_token"))
        row.refresh_token_enc = LOST_KEY.encrypt("lost-refresh", row.aad("refresh_token"))
        row.key_id = "k0"
        db.session.commit()


def test_revoking_undecryptable_tokens_still_wipes_them_and_says_remote_failed(app, mocked_http, user_id):
    make_connection(app, user_id, "google")
    _lose_key(app, user_id, "google")
    assert _revoke(app, user_id, "google").remote == "failed"
    row, tasks, events = _state(app, user_id, "google")
    _assert_wiped(row)
    assert row.remote_revocation == "failed" and tasks == []  # no token left to send to the provider
    assert events == [("revoke", "revoked", "admin", {"remote": "failed", "error": "decryption_failed"})]
    assert not [c for c in mocked_http.calls if c.request.url == GOOGLE_REVOKE]


def test_offboarding_goes_past_a_connection_with_undecryptable_tokens(app, mocked_http, user_id):
    mocked_http.post(GOOGLE_REVOKE, status=200)
    make_connection(app, user_id, "github", expires_in=None)
    make_connection(app, user_id, "google")
    make_connection(app, user_id, "spotify")
    _lose_key(app, user_id, "github")
    with app.app_context():
        results = revoke_user_connections(user_id, Actor("m2m", "client-1"))
    assert [(r.provider, r.remote) for r in results] == [("github", "failed"), ("google", "done"),
                                                         ("spotify", "not_supported")]
    for provider in ("github", "google", "spotify"):
        _assert_wiped(_state(app, user_id, provider)[0])


def test_remote_revocation_uses_the_one_http_client(app):
    """11.18: revocation went through its own OAuth2Session: no whole-exchange deadline, no shared
    pool, no User-Agent. A provider that drips its answer is cut at connect + read timeout."""
    from app.errors import ProviderUnavailable as Unavailable
    from app.http import USER_AGENT
    from app.providers.spec import ProviderSpec
    from app.revocation import revoke_remote
    from tests.drip_server import DripServer
    from tests.faults import GatedStub

    with GatedStub() as provider:
        spec = ProviderSpec(name="stub", display_name="Stub", revocation_style="rfc7009",
                            revocation_url=f"{provider.url}/revoke", client_id="id", client_secret="secret")
        revoke_remote(spec, "refresh-1", "refresh_token", (1, 2))
        assert provider.revoked_tokens == ["refresh-1"]
        assert provider.revocation_headers[0]["User-Agent"] == USER_AGENT
    with DripServer(body_bytes=200, interval=0.1) as server:  # 20 s in all, each byte quick
        spec = ProviderSpec(name="drip", display_name="Drip", revocation_style="rfc7009", revocation_url=server.url,
                            client_id="id", client_secret="secret")
        with pytest.raises(Unavailable) as caught:
            revoke_remote(spec, "refresh-1", "refresh_token", (0.5, 0.5))
        assert caught.value.code == "timeout"


# --- issue 17: revocation styles, authentication, the token sent, per-connection URLs ----------------

from app.providers.spec import ErrorShape, ProviderSpec  # noqa: E402
from app.revocation import revoke_remote  # noqa: E402
from tests.conftest import providers_env  # noqa: E402

BASIC = "Basic " + base64.b64encode(b"cid:csecret").decode()


def _revoke_at(recorder, path="/revoke", token="tok-1", hint="refresh_token", params=None, **values):
    spec = ProviderSpec(name="p", display_name="P", revocation_url=f"{recorder.url}{path}", client_id="cid",
                        client_secret="csecret", **values)
    revoke_remote(spec, token, hint, (1, 2), params=params)
    return recorder.requests[-1]


@pytest.mark.parametrize("auth, form, header", [
    ("client_secret_basic", {}, BASIC),
    ("client_secret_post", {"client_id": "cid", "client_secret": "csecret"}, None),
    ("client_id_post", {"client_id": "cid"}, None),
    ("none", {}, None),
])
def test_rfc7009_client_authentication_follows_revocation_auth(recorder, auth, form, header):
    recorder.answer("/revoke", body="")
    sent = _revoke_at(recorder, revocation_style="rfc7009", revocation_auth=auth, client_auth="client_secret_post")
    assert sent.method == "POST"
    assert sent.form() == {"token": "tok-1", "token_type_hint": "refresh_token", **form}
    assert sent.headers.get("Authorization") == header


def test_rfc7009_authentication_defaults_to_the_token_endpoints(recorder):
    recorder.answer("/revoke", body="")
    sent = _revoke_at(recorder, revocation_style="rfc7009", client_auth="client_secret_basic")
    assert sent.headers["Authorization"] == BASIC and "client_secret" not in sent.form()


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_bearer_style_sends_the_token_as_bearer_with_no_body(recorder, method):
    recorder.answer("/revoke", status=204, body="")
    sent = _revoke_at(recorder, revocation_style="bearer", revocation_method=method, hint="access_token")
    assert (sent.method, sent.headers["Authorization"], sent.body) == (method, "Bearer tok-1", b"")


def test_bearer_style_takes_a_401_as_the_token_already_dead(recorder):
    recorder.answer("/revoke", status=401, json_body={"error": "invalid_token"})
    _revoke_at(recorder, revocation_style="bearer")  # no ProviderUnavailable: nothing left to revoke


@pytest.mark.parametrize("auth, fields, header", [
    ("client_secret_basic", {}, BASIC),
    ("client_secret_post", {"client_id": "cid", "client_secret": "csecret"}, None),
    ("none", {}, None),
])
def test_json_token_style_posts_the_token_as_json(recorder, auth, fields, header):
    recorder.answer("/revoke", json_body={})
    sent = _revoke_at(recorder, revocation_style="json_token", revocation_auth=auth)
    assert sent.content_type == "application/json" and sent.json() == {"token": "tok-1", **fields}
    assert sent.headers.get("Authorization") == header


@pytest.mark.parametrize("status", [204, 404])
def test_delete_token_url_style_deletes_the_url_naming_the_token(recorder, status):
    recorder.answer("/tokens/a%2Fb%3Fc", status=status, body="")
    sent = _revoke_at(recorder, path="/tokens/{token}", token="a/b?c", revocation_style="delete_token_url")
    assert sent.method == "DELETE" and sent.body == b"" and "Authorization" not in sent.headers
    assert recorder.requests[-1].path in ("/tokens/a%2Fb%3Fc", "/tokens/a/b?c")  # werkzeug may decode


def test_a_failed_style_request_is_retried_later(recorder):
    recorder.answer("/revoke", status=503, body="")
    with pytest.raises(ProviderUnavailable) as caught:
        _revoke_at(recorder, revocation_style="json_token")
    assert caught.value.code == "http_503"


def test_templated_revocation_url_uses_the_params_and_refuses_hostile_ones(recorder):
    from app.providers.spec import ConnectionParam
    from app.providers.templates import InvalidConnectionParam

    recorder.answer("/acme/revoke", status=204, body="")
    declared = (ConnectionParam("subdomain", "[a-z0-9-]{1,63}"),)
    spec = ProviderSpec(name="p", display_name="P", revocation_url=f"{recorder.url}/{{subdomain}}/revoke",
                        revocation_style="bearer", client_id="cid", client_secret="csecret", params=declared)
    revoke_remote(spec, "tok-1", "access_token", (1, 2), params={"subdomain": "acme"})
    assert [r.path for r in recorder.requests] == ["/acme/revoke"]
    with pytest.raises(InvalidConnectionParam):
        revoke_remote(spec, "tok-1", "access_token", (1, 2), params={"subdomain": "evil.com/"})
    assert len(recorder.requests) == 1


class TestTemplatedProvider:
    """A provider whose revocation URL carries the connection's subdomain."""

    @pytest.fixture
    def env(self, recorder, tmp_path):
        from tests.zen_provider import CREDENTIALS, zen_toml

        return providers_env(tmp_path, zen_toml(recorder.url), **CREDENTIALS)

    def test_revocation_and_its_retry_go_to_the_connections_own_url(self, app, recorder, user_id, monkeypatch):
        make_connection(app, user_id, "zen", access="zen-A", refresh="zen-R", params={"subdomain": "acme"})
        recorder.answer("/acme/api/v2/oauth/tokens/current.json", status=503, body="")
        assert _revoke(app, user_id, "zen").remote == "pending"
        with app.app_context():
            assert [t.params for t in db.session.scalars(select(RevocationTask))] == [{"subdomain": "acme"}]
        recorder.answer("/acme/api/v2/oauth/tokens/current.json", status=204, body="")
        _later(monkeypatch)
        with app.app_context():
            assert retry_revocations() == _counts(done=1)
        sent = recorder.at("/acme/api/v2/oauth/tokens/current.json")
        assert [(r.method, r.headers["Authorization"]) for r in sent] == [("DELETE", "Bearer zen-A")] * 2

    def test_a_reconnect_to_another_subdomain_revokes_the_old_grant_at_its_own_url(self, app, recorder, user_id):
        recorder.answer("/old/api/v2/oauth/tokens/current.json", status=204, body="")
        make_connection(app, user_id, "zen", access="zen-old", refresh="r-old", params={"subdomain": "old"})
        make_connection(app, user_id, "zen", access="zen-new", refresh="r-new", params={"subdomain": "new"})
        with app.app_context():
            task = db.session.scalars(select(RevocationTask)).one()
            assert task.params == {"subdomain": "old"}
            row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
            assert row.params == {"subdomain": "new"}
            assert retry_revocations() == _counts(done=1)
        assert [r.headers["Authorization"] for r in recorder.at("/old/api/v2/oauth/tokens/current.json")] == \
            ["Bearer zen-old"]
        assert recorder.at("/new/api/v2/oauth/tokens/current.json") == []

    def test_stored_params_the_entry_no_longer_accepts_end_the_task_at_once(self, app, recorder, user_id):
        make_connection(app, user_id, "zen", access="zen-A", refresh="zen-R", params={"subdomain": "Not_Valid"})
        assert _revoke(app, user_id, "zen").remote == "failed"
        assert recorder.requests == []
        _assert_wiped(_state(app, user_id, "zen")[0])


# --- a revocation answered HTTP 200 with an error (the entry's error_shape) -----------------------------

SLACK_SHAPE = dict(revocation_style="rfc7009", revocation_auth="none",
                   error_shape=ErrorShape(field="error", success_flag="ok"))


@pytest.mark.parametrize("body, code", [
    ({"ok": False, "error": "invalid_auth"}, "invalid_auth"),
    ({"ok": False}, "provider_error"),
    ({"revoked": True}, "provider_error"),  # no success flag is no success
    ({"ok": False, "error": "<b>tok-1</b>"}, "provider_error"),  # never echoed unless a plain code
])
def test_a_200_the_entrys_success_flag_calls_an_error_is_not_done(recorder, body, code):
    recorder.answer("/revoke", json_body=body)
    with pytest.raises(ProviderUnavailable) as caught:
        _revoke_at(recorder, **SLACK_SHAPE)
    assert caught.value.code == code and "tok-1" not in str(caught.value)


def test_a_200_with_the_success_flag_true_is_done(recorder):
    recorder.answer("/revoke", json_body={"ok": True, "revoked": True})
    _revoke_at(recorder, **SLACK_SHAPE)


def test_a_200_carrying_the_entrys_error_field_is_not_done_with_on_http_200(recorder):
    recorder.answer("/revoke", json_body={"error": "bad_verification_code"})
    with pytest.raises(ProviderUnavailable) as caught:
        _revoke_at(recorder, revocation_style="json_token", error_shape=ErrorShape(on_http_200=True))
    assert caught.value.code == "bad_verification_code"


@pytest.mark.parametrize("answer", [dict(status=204, body=""),
                                    dict(status=200, body="revoked", content_type="text/plain"),
                                    dict(status=200, json_body=[False])])
def test_an_empty_or_non_object_200_is_the_statuss_answer_even_with_a_success_flag(recorder, answer):
    recorder.answer("/revoke", **answer)
    _revoke_at(recorder, **SLACK_SHAPE)


def test_without_a_200_error_shape_a_200_body_is_not_read(recorder):
    """RFC 7009 (the default error_shape): 200 is done, whatever the body says."""
    recorder.answer("/revoke", json_body={"ok": False})
    _revoke_at(recorder, revocation_style="rfc7009")


class TestRevocationRefusedWith200:
    """Through revoke_connection and retry-revocations: a refusal answered 200 stays pending, then fails."""

    @pytest.fixture
    def env(self, recorder, tmp_path):
        toml = f"""
[slackish]
authorize_url = "{recorder.url}/authorize"
token_url = "{recorder.url}/token"
error_shape = {{ field = "error", success_flag = "ok" }}
revocation_url = "{recorder.url}/revoke"
revocation_style = "rfc7009"
revocation_auth = "none"
revocation_token = "access"
"""
        return providers_env(tmp_path, toml, SLACKISH_CLIENT_ID="cid", SLACKISH_CLIENT_SECRET="csecret")

    def test_refused_with_200_is_retried_then_failed(self, app, recorder, user_id, monkeypatch):
        recorder.answer("/revoke", json_body={"ok": False, "error": "invalid_auth"})
        make_connection(app, user_id, "slackish", access="xoxp-A", refresh="xoxe-R")
        assert _revoke(app, user_id, "slackish").remote == "pending"
        with app.app_context():
            assert [t.last_error for t in db.session.scalars(select(RevocationTask))] == ["invalid_auth"]
        for attempt in range(2, MAX_ATTEMPTS + 1):
            _later(monkeypatch, minutes=2 ** attempt)
            with app.app_context():
                expected = _counts(failed=1) if attempt == MAX_ATTEMPTS else _counts(pending=1)
                assert retry_revocations() == expected
        row, tasks, _ = _state(app, user_id, "slackish")
        assert (row.remote_revocation, tasks) == ("failed", [])
        assert len(recorder.at("/revoke")) == MAX_ATTEMPTS

    def test_accepted_on_a_retry_is_done(self, app, recorder, user_id, monkeypatch):
        recorder.answer("/revoke", json_body={"ok": False, "error": "ratelimited"})
        make_connection(app, user_id, "slackish", access="xoxp-A", refresh="xoxe-R")
        assert _revoke(app, user_id, "slackish").remote == "pending"
        recorder.answer("/revoke", json_body={"ok": True, "revoked": True})
        _later(monkeypatch)
        with app.app_context():
            assert retry_revocations() == _counts(done=1)
        assert _state(app, user_id, "slackish")[0].remote_revocation == "done"
