"""The demo SPA and the admin console as a person uses them, in Chromium, on a desktop and on a
390 px phone: display names, error codes as sentences, a confirmed disconnect that says
"Disconnected", the console's prefix search, in-page filter errors, and no horizontal scrolling.

The demo app runs in-process on a loopback port (as ``scripts/demo`` serves it, on SQLite).
Screenshots go to test-artifacts/pages/ (gitignored) for a person to look at.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import Connection

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pages"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WIDTHS = {"desktop": DESKTOP, "phone": PHONE}
# Other users' rows, for the console's tables: long ids wrap instead of widening the page.
OTHER_USERS = ["google-oauth2|112233445566778899001", "auth0|64f1c0ffee0123456789abcd", "demo|bob"]


def _seed() -> None:
    db.session.add_all(Connection(user_id=u, provider="sandbox", external_account_id=f"acct-{i}",
                                  status="needs_reauth" if i == 1 else "active")
                       for i, u in enumerate(OTHER_USERS))


@pytest.fixture
def live_demo(serve_demo):
    return serve_demo(_seed)


@pytest.fixture
def open_page(browser):
    """A page in a fresh context of the given viewport; closed after the test."""
    contexts = []

    def make(viewport: dict) -> Page:
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def _fits(page: Page, viewport: dict, name: str) -> None:
    """Screenshot, then: nothing wider than the screen (a 390 px phone scrolls only vertically)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport['width']}.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"{name}: {width} px wide on a {viewport['width']} px screen"


def _sign_in(page: Page, base_url: str, user: str = "alice") -> None:
    page.goto(base_url + "/demo/spa")
    page.click("#sign-in")
    page.click(f"#user-{user}")
    expect(page.locator("#user")).to_contain_text(f"demo|{user}")


def _connect(page: Page, base_url: str, decision: str = "allow") -> None:
    page.click("#connect-sandbox")
    page.fill("#account", "sam-from-the-sandbox")
    page.click(f"#{decision}")
    expect(page).to_have_url(base_url + "/demo/spa")


@pytest.mark.parametrize("screen", WIDTHS)
def test_spa_connect_and_confirmed_disconnect(live_demo, open_page, screen):
    viewport = WIDTHS[screen]
    page = open_page(viewport)
    _sign_in(page, live_demo)
    expect(page.locator("#status-sandbox")).to_have_text("Not connected")
    _fits(page, viewport, "spa-signed-in")

    _connect(page, live_demo)
    expect(page.locator("#outcome")).to_have_text("Connected to Sandbox (demo).")  # the display name
    expect(page.locator("#status-sandbox")).to_have_text("Connected")
    page.click("#call-api")
    expect(page.locator("#api-result")).to_contain_text('"id": "sam-from-the-sandbox"')
    _fits(page, viewport, "spa-connected")

    # Disconnect asks first; Cancel changes nothing.
    page.click("#disconnect-sandbox")
    dialog = page.locator("#confirm-disconnect")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text("Disconnect Sandbox (demo)?")
    expect(page.locator("#confirm-no")).to_be_focused()
    _fits(page, viewport, "spa-confirm-disconnect")
    page.click("#confirm-no")
    expect(dialog).to_be_hidden()
    expect(page.locator("#status-sandbox")).to_have_text("Connected")
    expect(page.locator("#api-result")).to_contain_text("sam-from-the-sandbox")

    # Escape cancels too.
    page.click("#disconnect-sandbox")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#status-sandbox")).to_have_text("Connected")

    page.click("#disconnect-sandbox")
    page.click("#confirm-yes")
    outcome = page.locator("#outcome")
    expect(outcome).to_have_text("Disconnected from Sandbox (demo).")
    expect(outcome).not_to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#status-sandbox")).to_have_text("Disconnected")  # not a red "revoked"
    expect(page.locator("#api-result")).to_be_hidden()  # the old account's data is gone
    expect(page.locator("#api-result")).to_have_text("")
    expect(page.locator("#connected-sandbox")).to_have_text("—")
    expect(page.locator("#disconnect-sandbox")).to_have_count(0)
    expect(page.locator("#connect-sandbox")).to_be_focused()
    _fits(page, viewport, "spa-disconnected")


SENTENCES = {
    "access_denied": "Sandbox (demo) was not connected: access was not allowed on Sandbox (demo)'s page.",
    "expired": "Connecting Sandbox (demo) took too long and the attempt expired. Please press Connect again.",
    "already_used": "That Sandbox (demo) approval was already used (perhaps after pressing Back).",
    "provider_unavailable": "Sandbox (demo) could not be reached just now",
    "login_required": "Your sign-in here expired before Sandbox (demo) was connected. Please sign in again",
    "invalid_request": "The request to connect Sandbox (demo) was not valid",
    "server_error": "Connecting Sandbox (demo) did not work. Please try again; if it keeps failing, contact support.",
    "<b>x</b>": "Connecting Sandbox (demo) did not work.",
}


def test_spa_turns_error_codes_into_sentences(live_demo, open_page):
    page = open_page(DESKTOP)
    _sign_in(page, live_demo)
    # A real refusal at the provider comes back as access_denied.
    _connect(page, live_demo, decision="deny")
    expect(page.locator("#outcome")).to_contain_text(SENTENCES["access_denied"])
    expect(page.locator("#outcome")).to_have_class(re.compile(r"\berror\b"))
    for code, sentence in SENTENCES.items():
        page.goto(f"{live_demo}/demo/spa?connector_status=error&provider=sandbox&error={code}")
        outcome = page.locator("#outcome")
        expect(outcome).to_contain_text(sentence)
        expect(outcome.locator("small")).to_have_count(1 if re.fullmatch(r"[a-z_]+", code) else 0)
        expect(page).to_have_url(f"{live_demo}/demo/spa")  # a reload does not show it again
        assert "<b>" not in outcome.inner_html()
    _fits(page, DESKTOP, "spa-error")


def test_spa_error_after_sign_out_still_uses_the_display_name(live_demo, open_page):
    page = open_page(PHONE)
    _sign_in(page, live_demo)
    expect(page.locator("#status-sandbox")).to_have_text("Not connected")
    page.click("#sign-out")
    page.goto(f"{live_demo}/demo/spa?connector_status=error&provider=sandbox&error=login_required")
    expect(page.locator("#outcome")).to_contain_text(SENTENCES["login_required"])
    expect(page.locator("#sign-in")).to_be_visible()
    _fits(page, PHONE, "spa-login-required")


@pytest.mark.parametrize("screen", WIDTHS)
def test_admin_console_search_and_pages_fit(live_demo, open_page, screen):
    viewport = WIDTHS[screen]
    page = open_page(viewport)
    _sign_in(page, live_demo)
    _connect(page, live_demo)
    page.goto(live_demo + "/admin/")
    page.click("#login-demo")
    expect(page.locator("#connections tbody tr")).to_have_count(4)
    _fits(page, viewport, "admin-connections")

    # "alice" is not the beginning of "demo|alice": nothing found, and nothing offered to revoke.
    page.fill("#filter-user", "alice")
    page.click("#search")
    expect(page.locator("#empty")).to_contain_text("no user id starts with “alice”")
    expect(page.locator("#revoke-user")).to_have_count(0)
    # Any case, a prefix: one user found, and the button names that user's exact id.
    page.fill("#filter-user", "DEMO|AL")
    page.click("#search")
    expect(page.locator("#connections tbody tr")).to_have_count(1)
    expect(page.locator("#revoke-user")).to_have_text("Revoke every connection of demo|alice…")
    _fits(page, viewport, "admin-search")
    page.fill("#filter-user", "demo|")
    page.click("#search")
    expect(page.locator("#connections tbody tr")).to_have_count(2)
    expect(page.locator("#revoke-user")).to_have_count(0)
    expect(page.locator("#several-users")).to_be_visible()

    # The provider filter is a dropdown of the enabled providers.
    page.fill("#filter-user", "")
    page.select_option("#filter-provider", label="Sandbox (demo) (sandbox)")
    page.select_option("#filter-status", "needs_reauth")
    page.click("#search")
    expect(page.locator("#connections tbody tr")).to_have_count(1)

    # A bad value typed into the URL: the console page says what is wrong, with its form.
    response = page.goto(live_demo + "/admin/connections?status=deleted&user=demo%7C")
    assert response.status == 400
    expect(page.locator("#filter-error")).to_contain_text("Status: not a status")
    expect(page.locator("#filter-user")).to_have_value("demo|")
    expect(page.locator("#logout")).to_be_visible()
    _fits(page, viewport, "admin-filter-error")

    page.goto(live_demo + "/admin/connections?user=demo%7Calice")
    page.locator("#connections tbody tr a").first.click()
    expect(page.locator("#status")).to_have_text("active")
    _fits(page, viewport, "admin-connection")
    page.click("#revoke")
    expect(page.locator("#confirm-revoke")).to_be_visible()
    _fits(page, viewport, "admin-confirm")
    page.click("#confirm-revoke")
    expect(page.locator("#status")).to_have_text("revoked")

    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#audit-since")).to_have_attribute("type", "date")
    expect(page.locator("#audit-since")).not_to_have_attribute("placeholder", re.compile(".*"))
    expect(page.locator("#audit tbody tr").first).to_be_visible()
    _fits(page, viewport, "admin-audit")
    response = page.goto(live_demo + "/admin/audit?since=2026-11-26&until=2026-11-25")
    assert response.status == 400
    expect(page.locator("#filter-error")).to_contain_text("To: the To date is before the From date")
    response = page.goto(live_demo + "/admin/connections/nope")
    assert response.status == 404
    expect(page.locator("#detail")).to_have_text("no such connection")
    expect(page.locator("#logout")).to_be_visible()
    _fits(page, viewport, "admin-not-found")
