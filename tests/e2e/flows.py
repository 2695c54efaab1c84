"""Browser steps shared by the e2e scenarios (and the admin-console e2e): the SPA page,
the Auth0 stand-in's and the provider's login and consent pages. Every wait is bounded
by the context's default timeouts (see conftest.new_context)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urljoin, urlsplit

from playwright.sync_api import Page, expect

try:
    from . import parties
except ImportError:
    import parties


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def log_in_at_party(page: Page, party, username: str) -> None:
    """Fill a party's login page (any username, the shared password)."""
    page.wait_for_url(party.base_url + "/interaction/**")
    page.fill("#username", username)
    page.fill("#password", parties.PASSWORD)
    page.click("#login")


def sign_in(page: Page, spa, auth0, username: str) -> str:
    """Sign in on the SPA page at the Auth0 stand-in (code + PKCE in the browser).

    Leaves the page on the SPA's settings page, signed in; returns the user's access token.
    """
    page.goto(spa.origin + "/")
    page.click("#sign-in")
    log_in_at_party(page, auth0, username)  # the stand-in skips consent, like a first-party app
    expect(page.locator("#user")).to_have_text(f"auth0|{username}")
    expect(page).to_have_url(spa.return_url)
    return page.evaluate("sessionStorage.getItem('access_token')")


def open_settings(page: Page, spa) -> None:
    page.goto(spa.return_url)
    page.wait_for_selector("body[data-ready='1']")


def connect(page: Page, spa, provider, username: str, *, decision: str = "allow",
            provider_name: str | None = None, before_decision: Callable[[], None] | None = None,
            params: dict[str, str] | None = None, fields: dict[str, str] | None = None) -> dict[str, str]:
    """Press Connect on the SPA page (or connect `provider_name`, sending its per-connection `params`
    and more form `fields`, e.g. scopes), log in and allow/deny at the provider (calling
    `before_decision` just before the click, while the attempt is pending).

    Returns the query the service sent the browser back to the SPA with.
    """
    extra = {**(params or {}), **(fields or {})}
    if provider_name is None and not extra:
        page.click("#connect")
    else:
        page.evaluate("([provider, fields]) => window.spa.connect({ provider, fields })",
                      [provider_name or provider.connector_name, extra])
    page.wait_for_url(provider.base_url + "/interaction/**")
    page.wait_for_selector("#username, #allow")
    if page.locator("#username").count():  # no session at the provider yet in this browser
        log_in_at_party(page, provider, username)
    page.wait_for_selector("#allow")
    assert page.text_content("#account") == username
    if before_decision is not None:
        before_decision()
    page.click("#" + decision)
    page.wait_for_url(spa.return_url + "?*")
    page.wait_for_selector("body[data-ready='1']")
    return query(page.url)


def back_at_app(page: Page, spa) -> dict[str, str]:
    """Wait until the service has sent the browser back to the SPA; the query it came back with."""
    page.wait_for_url(spa.return_url + "?*")
    page.wait_for_selector("body[data-ready='1']")
    return query(page.url)


def outcome(page: Page) -> dict[str, str]:
    """What the SPA page shows about the last connect."""
    return {key: page.text_content("#" + key) for key in ("status", "provider", "error")}


def binding_cookies(context) -> list[str]:
    """The names of the connect attempts' binding cookies the browser holds (one per attempt started)."""
    return [c["name"] for c in context.cookies() if "connector_bind_" in c["name"]]


def callback_url_caught(page: Page, provider, service, username: str) -> str:
    """Press Connect and allow at the provider, but catch the provider's redirect to the service's
    callback instead of delivering it (the consent form is submitted with the page's own cookies,
    redirects not followed); returns the callback URL, never used."""
    page.click("#connect")
    page.wait_for_url(provider.base_url + "/interaction/**")
    page.wait_for_selector("#username, #allow")
    if page.locator("#username").count():
        log_in_at_party(page, provider, username)
    page.wait_for_selector("#allow")
    action = urljoin(page.url, page.get_attribute("form", "action"))
    response = page.context.request.post(action, form={"decision": "allow"}, max_redirects=0)
    for _ in range(5):  # bounded: consent -> resume -> redirect to the service's callback
        assert response.status in (302, 303), response.status
        location = urljoin(response.url, response.headers["location"])
        if location.startswith(service.url(f"/connect/callback/{provider.connector_name}?")):
            return location
        response = page.context.request.get(location, max_redirects=0)
    raise AssertionError(f"the provider did not redirect to the callback: {urlsplit(location).path}")
