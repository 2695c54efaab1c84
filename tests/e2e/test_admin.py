"""The admin console end to end: an operator signs in at the Auth0 stand-in, finds a user's
connection, revokes it (locally and at the real provider) and reads the audit trail; a
non-admin is turned away; a cross-site form cannot revoke; nobody unauthenticated gets in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

try:
    from . import flows
except ImportError:
    import flows

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _connect_user(page: Page, spa, auth0, provider, username: str) -> str:
    """The user signs in on the SPA and connects the provider; returns their user id (Auth0 sub)."""
    flows.sign_in(page, spa, auth0, username)
    got = flows.connect(page, spa, provider, username)
    assert got == {"connector_status": "connected", "provider": provider.connector_name}, got
    return f"auth0|{username}"


def _start_admin_login(page: Page, service, auth0, username: str) -> None:
    """Press "Sign in with Auth0" on the console's login page; log in at the stand-in if it asks.

    The stand-in skips consent (first-party application), so the browser comes straight back to
    /admin/callback; a browser that already has a session at the stand-in is not asked to log in.
    """
    page.goto(service.url("/admin/login"))
    page.click("#login-auth0")
    page.wait_for_url(lambda url: url.startswith((auth0.base_url + "/interaction/", service.url("/admin/"))))
    if page.url.startswith(auth0.base_url + "/interaction/"):
        page.wait_for_selector("#username, #allow")
        if page.locator("#username").count():
            flows.log_in_at_party(page, auth0, username)


def _admin_sign_in(page: Page, service, auth0) -> None:
    _start_admin_login(page, service, auth0, auth0.admin_username)
    expect(page).to_have_url(service.url("/admin/connections"))
    expect(page.locator("#logout")).to_be_visible()


def test_admin_revokes_connection(page, new_context, spa, auth0, provider, service, db, username):
    user_id = _connect_user(page, spa, auth0, provider, username)
    row = db.connection(user_id)
    assert row["status"] == "active" and row["refresh_token_enc"]
    # The refresh token the provider issued for this grant (the service holds it encrypted).
    [live_refresh] = provider.issued_tokens(username)["refresh_token"]
    revocations = provider.stats()["revocation"]

    # The operator, in another browser (no cookies shared with the user's).
    admin = new_context().new_page()
    _admin_sign_in(admin, service, auth0)
    admin.fill("#filter-user", user_id)
    admin.click("#search")
    expect(admin).to_have_url(re.compile(r"/admin/connections\?user="))
    rows = admin.locator("#connections tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td")).to_have_text(
        [user_id, provider.connector_name, "active", username, row["scopes"],  # the granted scopes
         re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"), "—", "—"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin.screenshot(path=str(ARTIFACTS / "connections.png"), full_page=True)

    rows.first.get_by_role("link", name=user_id).click()
    expect(admin).to_have_url(service.url(f"/admin/connections/{row['id']}"))
    expect(admin.locator("h1")).to_have_text(f"{provider.connector_name} for {user_id}")
    expect(admin.locator("#status")).to_have_text("active")
    admin.screenshot(path=str(ARTIFACTS / "connection.png"), full_page=True)

    admin.click("#revoke")
    expect(admin).to_have_url(service.url(f"/admin/connections/{row['id']}/revoke"))
    expect(admin.locator("#to-revoke")).to_have_text(f"{provider.connector_name} for {user_id} (active)")
    admin.click("#confirm-revoke")

    # Back on the detail page (POST-redirect-GET), which shows the revocation.
    expect(admin).to_have_url(service.url(f"/admin/connections/{row['id']}"))
    expect(admin.locator(".flash")).to_have_text(
        f"Revoked {provider.connector_name} for {user_id}; at the provider: done.")
    expect(admin.locator("#status")).to_have_text("revoked")
    expect(admin.locator("#remote")).to_have_text("done")
    expect(admin.locator("#revoke")).to_have_count(0)
    expect(admin.locator("table.events")).to_contain_text("admin: auth0|" + auth0.admin_username)
    admin.screenshot(path=str(ARTIFACTS / "connection-revoked.png"), full_page=True)

    # The database: revoked, no token ciphertext left.
    row = db.connection(user_id)
    assert row["status"] == "revoked" and row["revoked_at"] is not None
    assert row["access_token_enc"] is None and row["refresh_token_enc"] is None
    assert row["remote_revocation"] == "done"
    assert db.rows("SELECT count(*) AS n FROM revocation_tasks WHERE connection_id = :c", c=row["id"])[0]["n"] == 0

    # The provider: one revocation call, and the grant is dead.
    assert provider.stats()["revocation"] == revocations + 1
    client = provider.client
    dead = requests.post(provider.discovery()["token_endpoint"], timeout=10,
                         auth=(client["client_id"], client["client_secret"]),
                         data={"grant_type": "refresh_token", "refresh_token": live_refresh})
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant", dead.status_code

    # The audit log page, filtered by the user, names the admin as the actor of the revoke.
    admin.get_by_role("link", name="Audit log").click()
    expect(admin).to_have_url(service.url("/admin/audit"))
    admin.fill("input[name=user]", user_id)
    admin.get_by_role("button", name="Filter").click()
    expect(admin).to_have_url(re.compile(r"/admin/audit\?user="))
    revoke_rows = admin.locator("#audit tbody tr").filter(
        has=admin.locator("td:nth-child(2)", has_text=re.compile(r"^revoke$")))
    expect(revoke_rows).to_have_count(1)
    expect(revoke_rows.locator("td")).to_have_text(
        [re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "revoke", "revoked", f"admin: auth0|{auth0.admin_username}",
         user_id, provider.connector_name, re.compile(r"remote=pending")])
    remote_rows = admin.locator("#audit tbody tr").filter(
        has=admin.locator("td:nth-child(2)", has_text="revoke_remote"))
    expect(remote_rows).to_have_count(1)
    expect(remote_rows.locator("td").nth(2)).to_have_text("done")
    # Every row on the filtered page is this user's.
    expect(admin.locator("#audit tbody tr td:nth-child(5)")).to_have_text(
        [user_id] * admin.locator("#audit tbody tr").count())

    events = [(e["action"], e["outcome"], e["actor_type"], e["actor_id"]) for e in db.audit(user_id)]
    assert ("revoke", "revoked", "admin", f"auth0|{auth0.admin_username}") in events
    assert ("revoke_remote", "done", "admin", f"auth0|{auth0.admin_username}") in events
    # No token material reached the audit trail or the service log.
    dump = db.dump("audit_events") + db.dump("connections") + service.log_text()
    for value in provider.issued_tokens(username)["access_token"] + [live_refresh]:
        assert value not in dump


def test_non_admin_is_refused(page, spa, auth0, service, db, username):
    # A normal user, signed in at the stand-in (SPA), tries the console with the same browser.
    flows.sign_in(page, spa, auth0, username)
    sub = f"auth0|{username}"
    with page.expect_response(lambda r: r.url.startswith(service.url("/admin/callback"))) as callback:
        _start_admin_login(page, service, auth0, username)
    assert callback.value.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("#detail")).to_have_text(f"{sub} is not an administrator of this console")
    expect(page.locator("#code")).to_have_text("forbidden")

    # No admin session came of it: the console sends them back to its login page.
    response = page.goto(service.url("/admin/connections"))
    assert response.url == service.url("/admin/login")
    assert response.request.redirected_from is not None
    assert response.request.redirected_from.url == service.url("/admin/connections")
    expect(page.locator("#login-auth0")).to_be_visible()
    expect(page.locator("#logout")).to_have_count(0)

    failed = db.rows("SELECT action, outcome, actor_id, detail FROM audit_events "
                     "WHERE action = 'admin_login' AND actor_id = :s", s=sub)
    # (detail is a JSON column: raw SQL gives a dict on PostgreSQL, text on SQLite)
    assert [(e["outcome"], _json(e["detail"])) for e in failed] == [("failed", {"reason": "not_admin"})]
    assert db.rows("SELECT count(*) AS n FROM admin_sessions WHERE sub = :s", s=sub)[0]["n"] == 0


def test_cross_site_revoke_without_csrf_token_is_refused(page, new_context, spa, auth0, provider, service, db,
                                                         attacker, username):
    user_id = _connect_user(page, spa, auth0, provider, username)
    before = db.connection(user_id)
    revocations = provider.stats()["revocation"]
    revoke_url = service.url(f"/admin/connections/{before['id']}/revoke")

    admin = new_context().new_page()
    _admin_sign_in(admin, service, auth0)

    # The signed-in admin visits a page on another origin, which posts the revoke form (no token).
    admin.goto(attacker.origin + "/prize")  # any page of the attacker's origin runs their script
    assert admin.evaluate("location.origin") == attacker.origin
    with admin.expect_response(lambda r: r.url == revoke_url and r.request.method == "POST") as posted:
        admin.evaluate("""(action) => {
            const form = Object.assign(document.createElement('form'), { method: 'POST', action });
            const field = { type: 'hidden', name: 'confirm', value: '1' };
            form.append(Object.assign(document.createElement('input'), field));
            document.body.append(form);
            form.submit();
        }""", revoke_url)
    response = posted.value
    assert response.request.header_value("origin") == attacker.origin
    # Other origin, same site (127.0.0.1, another port): the SameSite=Lax session cookie goes
    # along, so it is the CSRF check, not a missing session, that refuses the POST.
    assert "connector_admin=" in (response.request.all_headers().get("cookie") or "")
    assert response.status == 400
    expect(admin.locator("#code")).to_have_text("csrf_failed")
    expect(admin.locator("#detail")).to_contain_text("The CSRF token is missing.")  # the session's is there

    # Nothing happened: the connection, its tokens and the provider's grant are as they were.
    after = db.connection(user_id)
    assert after["status"] == "active" and after["revoked_at"] is None and after["remote_revocation"] is None
    assert after["access_token_enc"] == before["access_token_enc"]
    assert after["refresh_token_enc"] == before["refresh_token_enc"]
    assert provider.stats()["revocation"] == revocations
    assert not [e for e in db.audit(user_id) if e["action"].startswith("revoke")]

    # The admin's session is intact and the console still shows the connection active.
    admin.goto(service.url(f"/admin/connections/{before['id']}"))
    expect(admin.locator("#status")).to_have_text("active")
    expect(admin.locator("#revoke")).to_be_visible()


def test_unauthenticated_is_sent_to_login(page, service):
    r = requests.get(service.url("/admin/connections"), allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["Location"] in ("/admin/login", service.url("/admin/login"))
    assert "connector_admin" not in r.headers.get("Set-Cookie", "")  # no session is started

    # The same in a browser: the login page, nothing of the console.
    response = page.goto(service.url("/admin/connections?user=auth0%7Csomeone"))
    assert response.status == 200 and response.url == service.url("/admin/login")
    expect(page.locator("h1")).to_have_text("Sign in")
    expect(page.locator("#login-auth0")).to_be_visible()
    expect(page.locator("nav")).to_have_count(0)
