"""Attacks on the connect flow, in a real browser against real parties: denied consent,
replayed and stolen callbacks, connect-CSRF from another origin, off-allowlist return URLs."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

try:
    from . import flows
except ImportError:
    import flows

pytestmark = pytest.mark.e2e


def _record_requests(page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_consent_denied_at_provider(page, spa, auth0, provider, db, username):
    flows.sign_in(page, spa, auth0, username)
    used = db.used_attempts()
    got = flows.connect(page, spa, provider, username, decision="deny")
    assert got == {"connector_status": "error", "provider": provider.connector_name, "error": "access_denied"}
    assert flows.outcome(page) == {"status": "error", "provider": provider.connector_name, "error": "access_denied"}

    user_id = f"auth0|{username}"
    assert db.connections(user_id) == []
    assert len(db.used_attempts() - used) == 1  # consumed: the error response cannot be replayed into a success
    assert [(e["action"], e["outcome"]) for e in db.audit(user_id)] == [("connect", "error")]
    assert provider.issued_tokens(username) == {"access_token": [], "refresh_token": []}


def test_replayed_callback_is_refused(page, new_context, spa, auth0, provider, service, db, username):
    callbacks: list[str] = []
    prefix = service.url(f"/connect/callback/{provider.connector_name}?")
    page.on("request", lambda r: callbacks.append(r.url) if r.url.startswith(prefix) else None)
    flows.sign_in(page, spa, auth0, username)
    assert flows.connect(page, spa, provider, username)["connector_status"] == "connected"
    [callback_url] = callbacks
    assert "code=" in callback_url and "state=" in callback_url

    user_id = f"auth0|{username}"
    stored = db.connection(user_id)
    code_exchanges = provider.stats()["token"]["authorization_code"]

    # The same browser delivers the response again (Back, then Allow again): back at the app with a
    # stable code, as for a denied consent, and the SPA shows it.
    page.goto(callback_url)
    refused = {"connector_status": "error", "provider": provider.connector_name, "error": "already_used"}
    assert flows.back_at_app(page, spa) == refused
    assert flows.outcome(page) == {"status": "error", "provider": provider.connector_name, "error": "already_used"}

    # Another browser (the URL leaked, e.g. from history or a log): refused as well.
    other = new_context().new_page()
    other.goto(callback_url)
    assert flows.back_at_app(other, spa) == refused
    rejected = [(e["action"], e["outcome"]) for e in db.audit(user_id) if e["outcome"] == "rejected"]
    assert rejected == [("connect", "rejected")] * 2  # recorded for the operator (13.8)

    assert db.connection(user_id) == stored  # nothing changed, not even updated_at
    assert provider.stats()["token"]["authorization_code"] == code_exchanges  # the code was never sent again


def test_callback_is_bound_to_the_browser_that_started(new_context, spa, auth0, provider, service, db, username):
    """A callback intercepted before it arrives (never used) only works in the browser that started."""
    victim = new_context()
    page = victim.new_page()
    flows.sign_in(page, spa, auth0, username)

    # The victim's browser never delivers the callback: it is caught on the way.
    used = db.used_attempts()
    callback_url = flows.callback_url_caught(page, provider, service, username)

    attacker_page = new_context().new_page()
    attacker_page.goto(callback_url)
    assert flows.back_at_app(attacker_page, spa)["error"] == "other_browser"
    user_id = f"auth0|{username}"
    assert db.connection(user_id) is None
    assert db.used_attempts() == used  # the attempt was not burned

    # Mix-up: the same response claiming another issuer (RFC 9207) is refused, even in the right browser.
    forged = callback_url.replace(quote(provider.issuer, safe=""), quote(auth0.issuer, safe=""))
    assert forged != callback_url
    page.goto(forged)
    assert flows.back_at_app(page, spa)["error"] == "invalid_callback"

    # Mix-up by path (RFC 9700 4.4.2): the response delivered to another provider's redirect URI is
    # refused before the code goes to any token endpoint.
    exchanges = provider.stats()["token"].get("authorization_code", 0)
    other_path = callback_url.replace(f"/connect/callback/{provider.connector_name}?",
                                      f"/connect/callback/{provider.post_connector_name}?")
    page.goto(other_path)
    assert flows.back_at_app(page, spa) == {"connector_status": "error", "provider": provider.connector_name,
                                            "error": "invalid_callback"}
    assert provider.stats()["token"].get("authorization_code", 0) == exchanges
    assert db.used_attempts() == used
    reasons = [e["detail"] for e in db.audit(user_id) if e["outcome"] == "rejected"]
    assert len(reasons) == 3 and all("other_browser" in str(r) or "invalid_callback" in str(r) for r in reasons)

    # The browser that started it can still finish.
    page.goto(callback_url)
    page.wait_for_url(spa.return_url + "?*")
    assert flows.query(page.url)["connector_status"] == "connected"
    assert db.connection(user_id)["status"] == "active"


def test_connect_csrf_from_another_origin_is_refused(page, spa, attacker, auth0, provider, service, db,
                                                     username, user_token):
    """A page on another origin auto-submits the start form with the attacker's own token,
    hoping to link the victim's provider account to the attacker's Auth0 user."""
    attacker_name = username + "-mallory"
    attacker_token = user_token(attacker_name)
    flows.sign_in(page, spa, auth0, username)  # the victim is signed in at the SPA, too
    seen = _record_requests(page)

    fragment = urlencode({"action": service.url("/connect/start"), "access_token": attacker_token,
                          "provider": provider.connector_name, "return_to": spa.return_url})
    with page.expect_response(lambda r: r.url == service.url("/connect/start")) as info:
        page.goto(f"{attacker.origin}/#{fragment}")
    response = info.value
    assert response.status == 403
    assert response.request.headers.get("origin") == attacker.origin

    assert not [url for url in seen if url.startswith(provider.base_url)]  # never sent to the provider
    for user in (f"auth0|{attacker_name}", f"auth0|{username}"):
        assert db.connections(user) == []
    assert flows.binding_cookies(page.context) == []  # no attempt was started


@pytest.mark.parametrize("where", ["other_origin", "sibling_path", "dot_segments", "other_scheme"])
def test_return_url_off_the_allowlist_is_refused(page, spa, attacker, auth0, provider, service, db, username,
                                                 where):
    return_to = {
        "other_origin": attacker.origin + "/settings",
        "sibling_path": spa.origin + "/settings-evil",
        "dot_segments": spa.origin + "/settings/%2e%2e/admin",
        "other_scheme": spa.return_url.replace("http://", "https://"),
    }[where]
    flows.sign_in(page, spa, auth0, username)
    seen = _record_requests(page)

    with page.expect_response(lambda r: r.url == service.url("/connect/start")) as info:
        page.evaluate("(returnTo) => window.spa.connect({ returnTo })", return_to)
    response = info.value
    assert response.status == 400
    assert "return URL" in response.text()
    page.wait_for_load_state()

    assert not [url for url in seen if url.startswith(provider.base_url)]  # refused before any redirect
    assert flows.binding_cookies(page.context) == []
    assert db.connections(f"auth0|{username}") == []
