"""POST /api/users/{user_id}/connect-links: permission, provider, return URL, configuration."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app import clock
from app.extensions import db
from app.models import AuditEvent
from tests.conftest import BASE_URL, base_env
from tests.links.conftest import LINKS_PATH, bearer


def test_link_is_created_with_the_permission(app, links, openapi):
    before = clock.now()
    response = links.create("auth0|alice")
    assert response.status_code == 200, response.json
    openapi.check(response, LINKS_PATH, "post")
    assert response.json["url"].startswith(BASE_URL + "/link/")
    assert "alice" not in response.json["url"]  # sealed: the user id is not readable in the URL
    expires_at = response.json["expires_at"]
    assert expires_at.endswith("Z")
    from datetime import datetime

    lifetime = datetime.fromisoformat(expires_at.removesuffix("Z")) - before
    assert timedelta(days=7) - timedelta(seconds=5) <= lifetime <= timedelta(days=7) + timedelta(seconds=5)
    with app.app_context():
        event = db.session.query(AuditEvent).filter_by(action="connect_link").one()
        assert (event.outcome, event.user_id, event.provider) == ("created", "auth0|alice", "spotify")


def test_link_lifetime_is_configurable(app, links):
    app.config["CONNECT_LINK_TTL"] = 3600.0
    response = links.create("auth0|alice")
    from datetime import datetime

    expires_at = datetime.fromisoformat(response.json["expires_at"].removesuffix("Z"))
    assert expires_at - clock.now() <= timedelta(seconds=3601)


@pytest.mark.parametrize("scope", ["read:tokens", "read:connections delete:connections"])
def test_link_needs_the_create_permission(links, scope, openapi):
    response = links.create("auth0|alice", scope=scope)
    assert response.status_code == 403 and response.json["code"] == "insufficient_scope"
    openapi.check(response, LINKS_PATH, "post")


def test_user_token_cannot_create_links(client, auth0):
    response = client.post(LINKS_PATH.format(user_id="auth0%7Calice"), json={"provider": "spotify",
                           "return_to": "https://app.test/settings/integrations"}, headers=bearer(auth0.token()))
    assert response.status_code == 403


def test_unknown_provider_is_400(links, openapi):
    response = links.create("auth0|alice", provider="nope")
    assert response.status_code == 400 and response.json["code"] == "unknown_provider"
    openapi.check(response, LINKS_PATH, "post")


@pytest.mark.parametrize("return_to", ["https://evil.test/settings/integrations", "https://app.test/other",
                                       "javascript:alert(1)", ""])
def test_return_to_off_the_allowlist_is_400(links, return_to):
    response = links.create("auth0|alice", return_to=return_to)
    assert response.status_code == 400 and response.json["code"] == "invalid_return_url"


@pytest.mark.parametrize("body", [None, [], {"provider": "spotify"}, {"provider": 1, "return_to": "x"}])
def test_malformed_body_is_400(client, auth0, body):
    response = client.post(LINKS_PATH.format(user_id="auth0%7Calice"), json=body,
                           headers=bearer(auth0.m2m_token("create:connect_links")))
    assert response.status_code == 400 and response.json["code"] == "invalid_request"


class TestNotConfigured:
    @pytest.fixture
    def env(self):
        return base_env()  # no ADMIN_CLIENT_ID, no CONNECT_LINK_DEFAULT_RETURN_URL

    def test_creating_a_link_is_404(self, links):
        response = links.create("auth0|alice")
        assert response.status_code == 404 and response.json["code"] == "links_not_configured"

    def test_link_page_is_404(self, client):
        assert client.get("/link/k1.abc", base_url=BASE_URL).status_code == 404


def test_default_return_url_off_the_allowlist_stops_start_up(database_url):
    from app import create_app
    from config import ConfigError

    env = base_env(ADMIN_CLIENT_ID="c", ADMIN_CLIENT_SECRET="s", ADMIN_SUBS="x",
                   CONNECT_LINK_DEFAULT_RETURN_URL="https://elsewhere.test/")
    with pytest.raises(ConfigError, match="CONNECT_LINK_DEFAULT_RETURN_URL"):
        create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}, env=env)
