"""Reconnect links end to end: a job asks for a link, the user opens it in a fresh browser, signs in
at the Auth0 stand-in, consents at the real provider and lands on the SPA with the same connection
id; a link opened by another Auth0 user changes nothing; a malformed link is a plain page."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Page, expect

try:
    from . import flows
except ImportError:
    import flows

pytestmark = pytest.mark.e2e


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _connected_then_revoked(page: Page, spa, auth0, provider, service, db, username: str) -> dict:
    """The user connects through the SPA; a job then revokes the connection (a dead connection)."""
    flows.sign_in(page, spa, auth0, username)
    got = flows.connect(page, spa, provider, username)
    assert got == {"connector_status": "connected", "provider": provider.connector_name}, got
    user_id = f"auth0|{username}"
    r = requests.delete(service.url(f"/api/users/{quote(user_id, safe='')}/connections/{provider.connector_name}"),
                        headers=_bearer(auth0.m2m_token("delete:connections")), timeout=15)
    assert r.status_code == 200, r.text
    row = db.connection(user_id)
    assert row["status"] == "revoked"
    return row


def _link(service, auth0, user_id: str, provider, spa) -> str:
    r = requests.post(service.url(f"/api/users/{quote(user_id, safe='')}/connect-links"),
                      json={"provider": provider.connector_name, "return_to": spa.return_url},
                      headers=_bearer(auth0.m2m_token("create:connect_links")), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith(service.url("/link/"))
    return r.json()["url"]


def _sign_in_at_auth0(page: Page, auth0, username: str) -> None:
    page.wait_for_url(auth0.base_url + "/interaction/**")
    page.wait_for_selector("#username, #allow")
    if page.locator("#username").count():
        flows.log_in_at_party(page, auth0, username)


def test_link_reconnects_the_same_connection(page, new_context, spa, auth0, provider, service, db, username,
                                             webhooks):
    before = _connected_then_revoked(page, spa, auth0, provider, service, db, username)
    url = _link(service, auth0, before["user_id"], provider, spa)

    # Opened later, from an email, in a browser with no session anywhere.
    browser_page = new_context().new_page()
    browser_page.goto(url)
    _sign_in_at_auth0(browser_page, auth0, username)
    browser_page.wait_for_url(provider.base_url + "/interaction/**")
    browser_page.wait_for_selector("#username, #allow")
    if browser_page.locator("#username").count():
        flows.log_in_at_party(browser_page, provider, username)
    browser_page.wait_for_selector("#allow")
    browser_page.click("#allow")
    browser_page.wait_for_url(spa.return_url + "?*")
    assert flows.query(browser_page.url) == {"connector_status": "connected", "provider": provider.connector_name}

    after = db.connection(before["user_id"])
    assert (after["id"], after["status"]) == (before["id"], "active")
    actions = [(a["action"], a["outcome"]) for a in db.audit(before["user_id"])]
    assert ("connect_link", "opened") in actions and actions[-1] == ("connect", "success")
    # The new grant works offline.
    r = requests.post(service.url(f"/api/users/{quote(before['user_id'], safe='')}/connections/"
                                  f"{provider.connector_name}/token"),
                      headers=_bearer(auth0.m2m_token("read:tokens")), timeout=15)
    assert r.status_code == 200, r.text
    # The worker delivers the reconnect to the company's webhook receiver, signed (Standard Webhooks).
    service.flask("connector", "worker", "--once", timeout=120)
    mine = [e for e in webhooks.events() if e["data"]["connection_id"] == before["id"]]
    assert [e["type"] for e in mine][-1] == "connection.reconnected", [e["type"] for e in mine]
    assert [e["type"] for e in mine][:2] == ["connection.created", "connection.revoked"]
    assert [e["data"]["sequence"] for e in mine] == sorted(e["data"]["sequence"] for e in mine)
    assert all("token" not in key for e in mine for key in e["data"])


def test_link_opened_by_another_user_changes_nothing(page, new_context, spa, auth0, provider, service, db,
                                                     username):
    before = _connected_then_revoked(page, spa, auth0, provider, service, db, username)
    url = _link(service, auth0, before["user_id"], provider, spa)

    intruder = new_context().new_page()
    intruder.goto(url)
    _sign_in_at_auth0(intruder, auth0, username + "-intruder")
    intruder.wait_for_url(service.url("/link/callback") + "?*")
    expect(intruder.locator("body")).to_contain_text("another account")
    assert db.connection(before["user_id"]) == before
    assert flows.binding_cookies(intruder.context) == []  # no connect was started for the intruder
    assert db.connections(f"auth0|{username}-intruder") == []


def test_malformed_link_is_a_plain_page(page, service):
    response = page.goto(service.url("/link/e2e.bm90LWEtbGluaw"))
    assert response.status == 400
    expect(page.locator("body")).to_contain_text("not valid")
