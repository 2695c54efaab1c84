"""Opening a reconnect link: Auth0 sign-in as the link's user, then the ordinary connect flow."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.models import NEEDS_REAUTH, AdminSession, AuditEvent, Connection
from tests.conftest import BASE_URL, RETURN_URL, make_connection
from tests.connect.conftest import PROVIDER_MOCKS, binding_cookies, connection_rows
from tests.links.conftest import ADMIN_SUB, bearer, query_of

USER = "auth0|alice"


def _dead_connection(app, user_id: str = USER, provider: str = "spotify") -> str:
    connection_id = make_connection(app, user_id, provider)
    with app.app_context():
        db.session.get(Connection, connection_id).status = NEEDS_REAUTH
        db.session.commit()
    return connection_id


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _finish_at_provider(client, http, authorize_response, provider: str = "spotify"):
    """The provider sends the browser back to /connect/callback with a code."""
    assert authorize_response.status_code == 303, authorize_response.text
    location = authorize_response.headers["Location"]
    mock = PROVIDER_MOCKS[provider]
    assert location.startswith("https://accounts.spotify.com/authorize")
    http.post(mock["token_url"], json=mock["token"])
    http.get(mock["userinfo"][0], json=mock["userinfo"][1])
    return client.get(f"/connect/callback/{provider}", base_url=BASE_URL,
                      query_string={"code": "CODE", "state": query_of(location)["state"]})


def test_the_links_user_reconnects_the_same_connection(app, client, links, mocked_http):
    connection_id = _dead_connection(app)
    opened = links.open(links.url(USER))
    assert opened.status_code == 302
    auth0_params = query_of(opened.headers["Location"])
    assert auth0_params["redirect_uri"] == BASE_URL + "/link/callback"
    assert auth0_params["code_challenge_method"] == "S256" and auth0_params["nonce"]
    to_provider = links.sign_in(opened, USER)
    done = _finish_at_provider(client, mocked_http, to_provider)
    assert done.status_code == 303
    assert done.headers["Location"].startswith(RETURN_URL)
    assert query_of(done.headers["Location"]) == {"connector_status": "connected", "provider": "spotify"}
    with app.app_context():
        connection = db.session.scalars(select(Connection)).one()
        assert (connection.id, connection.status, connection.user_id) == (connection_id, "active", USER)
        outcomes = [e.outcome for e in db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "connect_link").order_by(AuditEvent.id))]
        assert outcomes == ["created", "opened"]
    assert _count(app, AdminSession) == 0


def test_link_opened_by_another_auth0_user_changes_nothing(app, client, links):
    _dead_connection(app)
    url = links.url(USER)
    before = connection_rows(app)
    response = links.sign_in(links.open(url), "auth0|mallory")
    assert response.status_code == 403
    assert "another account" in response.text and "Nothing was changed" in response.text
    assert "Location" not in response.headers
    assert connection_rows(app) == before
    assert binding_cookies(response) == [] and _count(app, AdminSession) == 0
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).one()
        assert (event.actor_id, event.user_id, event.detail) == ("auth0|mallory", USER, {"reason": "other_user"})


def test_signing_in_for_a_link_never_makes_an_admin(app, client, links):
    response = links.sign_in(links.open(links.url(ADMIN_SUB)), ADMIN_SUB)
    assert response.status_code == 303  # on to the provider, as any user
    assert _count(app, AdminSession) == 0
    page = client.get("/admin/connections", base_url=BASE_URL)
    assert page.status_code == 302 and page.headers["Location"].endswith("/admin/login")


def test_expired_link_is_a_plain_page(app, client, links, monkeypatch):
    url = links.url(USER)
    later = clock.now() + timedelta(days=7, seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = client.get(url.removeprefix(BASE_URL), base_url=BASE_URL, headers={"Accept": "text/html"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "expired" in response.text
    assert "Location" not in response.headers


def test_link_expiring_during_sign_in_changes_nothing(app, client, links, monkeypatch):
    _dead_connection(app)
    opened = links.open(links.url(USER))
    before = connection_rows(app)
    later = clock.now() + timedelta(days=8)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = links.sign_in(opened, USER)
    assert response.status_code == 400 and "expired" in response.text
    assert connection_rows(app) == before and binding_cookies(response) == []


@pytest.mark.parametrize("token", ["garbage", "k1.AAAA", "k9.abc", "x" * 5000, "k1.%00"])
def test_malformed_link_is_a_plain_page(client, token):
    response = client.get("/link/" + quote(token, safe=""), base_url=BASE_URL, headers={"Accept": "text/html"})
    assert response.status_code in (400, 404)
    assert response.mimetype == "text/html" and "Location" not in response.headers


def test_tampered_link_is_refused(client, links):
    url = links.url(USER)
    token = url.rsplit("/", 1)[1]
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    response = client.get("/link/" + tampered, base_url=BASE_URL, headers={"Accept": "text/html"})
    assert response.status_code == 400 and "not valid" in response.text


def test_callback_without_a_link_in_progress_is_refused(app, client, links):
    response = client.get("/link/callback", query_string={"code": "c", "state": "s"}, base_url=BASE_URL)
    assert response.status_code == 400 and binding_cookies(response) == []


def test_admin_sign_in_state_cannot_finish_a_link(app, client, links, mocked_http):
    """A sign-in started for the admin console (its redirect_uri) is not accepted at the link callback."""
    links.open(links.url(USER))  # a link is in progress in this browser
    admin_start = client.get("/admin/login/start", base_url=BASE_URL)
    response = links.sign_in(admin_start, USER)
    assert response.status_code == 400 and "not started for a link" in response.text
    assert binding_cookies(response) == []


def test_409_from_the_token_endpoint_carries_a_reconnect_url(app, client, auth0, links, openapi):
    _dead_connection(app)
    response = client.post(f"/api/users/{quote(USER, safe='')}/connections/spotify/token",
                           headers=bearer(auth0.m2m_token("read:tokens")))
    assert response.status_code == 409 and response.json["code"] == "reauthorization_required"
    openapi.check(response, "/api/users/{user_id}/connections/{provider}/token", "post")
    url = response.json["reconnect_url"]
    assert url.startswith(BASE_URL + "/link/")
    to_provider = links.sign_in(links.open(url), USER)  # the link works, for this user and provider
    assert to_provider.status_code == 303 and "accounts.spotify.com" in to_provider.headers["Location"]


def test_dead_connection_in_the_users_list_carries_a_reconnect_url(app, client, auth0, openapi):
    _dead_connection(app, provider="spotify")
    make_connection(app, USER, "google")
    response = client.get("/api/connections", headers=bearer(auth0.token(USER)))
    assert response.status_code == 200
    openapi.check(response, "/api/connections", "get")
    entries = {c["provider"]: c for c in response.json["connections"]}
    assert entries["spotify"]["reconnect_url"].startswith(BASE_URL + "/link/")
    assert "reconnect_url" not in entries["google"]


class TestLinksNotConfigured:
    @pytest.fixture
    def env(self):
        from tests.conftest import base_env

        return base_env()

    def test_no_reconnect_url_anywhere(self, app, client, auth0):
        _dead_connection(app)
        token = client.post(f"/api/users/{quote(USER, safe='')}/connections/spotify/token",
                            headers=bearer(auth0.m2m_token("read:tokens")))
        assert token.status_code == 409 and "reconnect_url" not in token.json
        listing = client.get("/api/connections", headers=bearer(auth0.token(USER)))
        assert "reconnect_url" not in listing.json["connections"][0]


class TestTemplatedProvider:
    """A reconnect link goes back to the tenant the connection was made with."""

    @pytest.fixture
    def env(self, recorder, tmp_path):
        from tests.conftest import providers_env
        from tests.links.conftest import ADMIN_CLIENT_ID
        from tests.zen_provider import CREDENTIALS, zen_toml

        return providers_env(tmp_path, zen_toml(recorder.url), ADMIN_CLIENT_ID=ADMIN_CLIENT_ID,
                             ADMIN_CLIENT_SECRET="admin-console-secret", ADMIN_SUBS=ADMIN_SUB,
                             CONNECT_LINK_DEFAULT_RETURN_URL=RETURN_URL, **CREDENTIALS)

    def test_the_link_reconnects_at_the_connections_own_subdomain(self, app, client, links, recorder):
        _dead_connection(app, provider="zen")
        with app.app_context():
            db.session.scalars(select(Connection)).one().params = {"subdomain": "acme"}
            db.session.commit()
        to_provider = links.sign_in(links.open(links.url(USER, "zen")), USER)
        assert to_provider.status_code == 303
        assert to_provider.headers["Location"].startswith(f"{recorder.url}/acme/oauth/authorizations/new?")
def test_insufficient_scope_carries_a_reconnect_url_that_asks_for_the_missing_scopes(app, client, auth0, links,
                                                                                      openapi):
    make_connection(app, USER, "spotify", scopes=("user-read-email", "user-read-private"))
    response = client.post(f"/api/users/{quote(USER, safe='')}/connections/spotify/token",
                           query_string={"required_scopes": "streaming user-read-email"},
                           headers=bearer(auth0.m2m_token("read:tokens")))
    assert response.status_code == 409 and response.json["code"] == "insufficient_scope", response.json
    openapi.check(response, "/api/users/{user_id}/connections/{provider}/token", "post")
    assert response.json["missing_scopes"] == ["streaming"]
    assert "streaming" not in response.json["reconnect_url"]  # sealed, like the user id
    to_provider = links.sign_in(links.open(response.json["reconnect_url"]), USER)
    assert to_provider.status_code == 303
    assert query_of(to_provider.headers["Location"])["scope"] == "user-read-email user-read-private streaming"
