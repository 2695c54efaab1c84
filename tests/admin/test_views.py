"""Admin pages: search, detail with audit trail, confirmed revocation, audit log; never token material."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import REVOKED, AuditEvent, Connection
from tests.admin.conftest import ADMIN_SUB, csrf_token
from tests.conftest import make_connection


def test_list_shows_connections_and_filters_by_user_provider_status(app, client, signed_in):
    make_connection(app, "auth0|alice", "spotify", access="alice-access-secret", refresh="alice-refresh-secret")
    make_connection(app, "auth0|alice", "github", access="alice-gh-secret", refresh=None, expires_in=None)
    make_connection(app, "auth0|bob", "spotify", access="bob-access-secret")
    page = client.get("/admin/connections").text
    assert page.count("<tr>") == 4  # header + 3 rows
    assert "secret" not in page
    only_alice = client.get("/admin/connections", query_string={"user": "auth0|alice"}).text
    assert "auth0|bob" not in only_alice and only_alice.count("<tr>") == 3
    assert "Revoke every connection of auth0|alice" in only_alice
    spotify = client.get("/admin/connections", query_string={"provider": "spotify"}).text
    assert spotify.count("<tr>") == 3
    none_revoked = client.get("/admin/connections", query_string={"status": "revoked"}).text
    assert 'id="empty"' in none_revoked


def _in_console(response) -> bool:
    """The console's own page (its navigation and sign-out), not the bare error page."""
    return 'id="logout"' in response.text and "Audit log</a>" in response.text


def test_bad_filter_values_are_shown_inside_the_console_page(client, signed_in):
    bad = client.get("/admin/connections", query_string={"status": "deleted", "user": "auth0|a"})
    assert (bad.status_code, bad.mimetype) == (400, "text/html") and _in_console(bad)
    assert 'id="filter-error"' in bad.text and "Status</span>: not a status: choose one of active" in bad.text
    assert 'value="auth0|a"' in bad.text  # the form keeps what was typed
    long = client.get("/admin/connections", query_string={"user": "x" * 300})
    assert long.status_code == 400 and _in_console(long) and "at most 255" in long.text
    cursor = client.get("/admin/connections", query_string={"after": "!!not-a-cursor!!"})
    assert cursor.status_code == 400 and _in_console(cursor) and "invalid page cursor" in cursor.text
    provider = client.get("/admin/connections", query_string={"provider": "myspace"})
    assert provider.status_code == 400 and _in_console(provider) and "not an enabled provider" in provider.text
    for args in ({"since": "yesterday"}, {"until": "2026-13-01"}, {"since": "2026-11-26", "until": "2026-11-25"},
                 {"before": "wrI"}):
        audit = client.get("/admin/audit", query_string=args)
        assert audit.status_code == 400 and _in_console(audit) and 'id="filter-error"' in audit.text, args


def test_other_errors_of_a_signed_in_operator_stay_in_the_console(client, signed_in):
    missing = client.get("/admin/connections/nope")
    assert (missing.status_code, missing.mimetype) == (404, "text/html") and _in_console(missing)
    assert "no such connection" in missing.text and "Back to connections" in missing.text
    control = client.get("/admin/connections?user=a%01")
    assert control.status_code == 400 and _in_console(control) and "control character" in control.text
    # An API client asking for JSON still gets problem+json.
    as_json = client.get("/admin/connections/nope", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and as_json.mimetype == "application/problem+json"


def test_user_search_is_a_case_insensitive_prefix(app, client, signed_in):
    for user in ("auth0|alice", "auth0|Alice2", "auth0|bob"):
        make_connection(app, user, "spotify")
    found = client.get("/admin/connections", query_string={"user": "AUTH0|ALI"}).text
    assert "auth0|alice" in found and "auth0|Alice2" in found and "auth0|bob" not in found
    # Two users match: no revoke-all button (it would have to guess which), a hint instead.
    assert 'id="revoke-user"' not in found and 'id="several-users"' in found


def test_revoke_all_is_offered_only_for_the_one_user_found(app, client, signed_in):
    make_connection(app, "auth0|alice", "spotify")
    make_connection(app, "auth0|alice", "github", access="gh", refresh=None, expires_in=None)
    nothing = client.get("/admin/connections", query_string={"user": "alice"})
    assert nothing.status_code == 200 and 'id="empty"' in nothing.text
    assert "Revoke every connection" not in nothing.text and "no user id starts with" in nothing.text
    one = client.get("/admin/connections", query_string={"user": "AUTH0|alice"}).text
    # The button names (and links to) the exact user id found, not the text typed.
    assert "Revoke every connection of auth0|alice…" in one
    assert 'href="/admin/users/revoke?user=auth0%7Calice"' in one
    revoked = client.get("/admin/connections", query_string={"user": "auth0|alice", "status": "revoked"}).text
    assert "Revoke every connection" not in revoked


def test_provider_filter_is_a_dropdown_of_enabled_providers(app, client, signed_in):
    page = client.get("/admin/connections").text
    assert '<select name="provider" id="filter-provider"' in page
    assert '<option value="spotify" >Spotify (spotify)</option>' in page
    assert 'list="providers"' not in page


def test_audit_date_range_is_inclusive_whole_days(app, client, signed_in):
    from datetime import datetime

    from app.models import record_audit
    with app.app_context():
        for stamp, user in ((datetime(2026, 11, 24, 23, 59, 59), "before"), (datetime(2026, 11, 25, 0, 0), "first"),
                            (datetime(2026, 11, 26, 23, 59, 59), "last"), (datetime(2026, 11, 27, 0, 0), "after")):
            record_audit("refresh", "succeeded", actor_type="system", user_id=f"u-{user}").at = stamp
        db.session.commit()
    page = client.get("/admin/audit", query_string={"since": "2026-11-25", "until": "2026-11-26",
                                                    "action": "refresh"}).text
    assert "u-first" in page and "u-last" in page and "u-before" not in page and "u-after" not in page
    one_day = client.get("/admin/audit", query_string={"since": "2026-11-26", "until": "2026-11-26",
                                                       "action": "refresh"}).text
    assert "u-last" in one_day and "u-first" not in one_day
    form = client.get("/admin/audit").text
    assert 'type="date" name="since"' in form and 'type="date" name="until"' in form
    assert "placeholder=" not in form


def test_detail_shows_metadata_and_audit_trail_without_token_material(app, client, signed_in):
    connection_id = make_connection(app, "auth0|alice", "spotify", access="plain-access-1", refresh="plain-refresh-1")
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        ciphertexts = (row.access_token_enc, row.refresh_token_enc)
    page = client.get(f"/admin/connections/{connection_id}").text
    assert "auth0|alice" in page and "spotify" in page and "Audit trail" in page
    for secret in ("plain-access-1", "plain-refresh-1", *ciphertexts):
        assert secret not in page
    assert client.get("/admin/connections/nope").status_code == 404


def test_revoke_needs_confirmation_and_csrf_then_revokes_and_audits(app, client, signed_in):
    connection_id = make_connection(app, "auth0|alice", "spotify")
    confirm = client.get(f"/admin/connections/{connection_id}/revoke")
    assert confirm.status_code == 200 and "Yes, revoke" in confirm.text
    with app.app_context():
        assert db.session.get(Connection, connection_id).status != REVOKED  # GET changed nothing
    forged = client.post(f"/admin/connections/{connection_id}/revoke")
    assert forged.status_code == 400 and "CSRF" in forged.text
    with app.app_context():
        assert db.session.get(Connection, connection_id).status != REVOKED
    done = client.post(f"/admin/connections/{connection_id}/revoke", data={"csrf_token": csrf_token(client)},
                       follow_redirects=True)
    assert done.status_code == 200 and "Revoked spotify for auth0|alice" in done.text
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        assert row.status == REVOKED and row.refresh_token_enc is None and row.access_token_enc is None
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "revoke")).one()
        assert (event.actor_type, event.actor_id, event.user_id) == ("admin", ADMIN_SUB, "auth0|alice")


def test_revoke_all_of_a_user(app, client, signed_in, mocked_http):
    mocked_http.post("https://oauth2.googleapis.com/revoke", status=200)
    make_connection(app, "auth0|alice", "spotify")
    make_connection(app, "auth0|alice", "google")
    keep = make_connection(app, "auth0|bob", "spotify")
    confirm = client.get("/admin/users/revoke", query_string={"user": "auth0|alice"})
    assert confirm.status_code == 200 and confirm.text.count("<li>") == 2
    done = client.post("/admin/users/revoke", data={"user": "auth0|alice", "csrf_token": csrf_token(client)},
                       follow_redirects=True)
    assert "Revoked every connection of auth0|alice" in done.text
    assert "google (provider: done)" in done.text and "spotify (provider: not_supported)" in done.text
    with app.app_context():
        statuses = dict(db.session.execute(select(Connection.user_id + Connection.provider, Connection.status)).all())
        assert statuses["auth0|alicespotify"] == statuses["auth0|alicegoogle"] == REVOKED
        assert db.session.get(Connection, keep).status == "active"


def test_revoke_user_requires_a_user(client, signed_in):
    response = client.post("/admin/users/revoke", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 400 and "user:" in response.text


def test_audit_log_filters_by_action_actor_and_time(app, client, signed_in):
    connection_id = make_connection(app, "auth0|alice", "spotify")
    client.post(f"/admin/connections/{connection_id}/revoke", data={"csrf_token": csrf_token(client)})
    revokes = client.get("/admin/audit", query_string={"action": "revoke"}).text
    assert revokes.count("<tr>") == 2 and "admin: auth0|operator" in revokes
    by_actor = client.get("/admin/audit", query_string={"actor": ADMIN_SUB}).text
    assert "admin_login" in by_actor and "revoke" in by_actor
    future = client.get("/admin/audit", query_string={"since": "2999-01-01"}).text
    assert "No events." in future
    bad = client.get("/admin/audit", query_string={"since": "yesterday"})
    assert bad.status_code == 400 and "From</span>: expected a date" in bad.text


def test_audit_log_rejects_unicode_digit_cursor(client, signed_in):
    # "wrI" decodes to "²", which str.isdigit() accepts but int() refuses: once a 500.
    response = client.get("/admin/audit", query_string={"before": "wrI"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "invalid page cursor" in response.text


def test_control_characters_in_admin_requests_are_a_400_page(app, client, signed_in):
    connection_id = make_connection(app, "auth0|alice", "spotify")
    for path in ("/admin/connections?user=a%00b", "/admin/connections?provider=%00",
                 "/admin/audit?actor=x%01", "/admin/connections/" + connection_id[:8] + "%00"):
        response = client.get(path)
        assert (response.status_code, response.mimetype) == (400, "text/html"), path
        assert "control character" in response.text
    response = client.post("/admin/users/revoke", data={"csrf_token": csrf_token(client), "user": "auth0|alice\x00"})
    assert response.status_code == 400 and "control character" in response.text
    with app.app_context():
        assert db.session.get(Connection, connection_id).status == "active"


def test_refresh_token_expiry_is_shown_per_connection(app, client, signed_in):
    from datetime import datetime

    connection_id = make_connection(app, "auth0|alice", "spotify")
    make_connection(app, "auth0|bob", "spotify")
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        row.refresh_token_expires_at = datetime(2031, 5, 6, 7, 8, 9)
        row.refresh_token_idle_expires_at = datetime(2030, 1, 2, 3, 4, 5)
        row.refresh_token_expiry_warned_at = datetime(2031, 4, 29, 7, 8)
        db.session.commit()
    page = client.get(f"/admin/connections/{connection_id}").text
    assert "2031-05-06 07:08:09 UTC (announced 2031-04-29 07:08 UTC)" in page
    assert "2030-01-02 03:04:05 UTC (kept alive by the worker)" in page
    listing = client.get("/admin/connections").text
    assert "Refresh token expires (UTC)" in listing and "2031-05-06 07:08" in listing


def test_granted_scopes_are_shown_in_the_list_and_the_detail(app, client, signed_in):
    connection_id = make_connection(app, "auth0|alice", "spotify", scopes=("user-read-email", "<b>playlist</b>"))
    make_connection(app, "auth0|bob", "spotify", scopes=())
    listing = client.get("/admin/connections", query_string={"provider": "spotify"}).text
    assert '<td data-label="Scopes" class="scopes">user-read-email &lt;b&gt;playlist&lt;/b&gt;</td>' in listing
    assert '<td data-label="Scopes" class="scopes">—</td>' in listing
    detail = client.get(f"/admin/connections/{connection_id}").text
    assert ('<dd id="scopes"><code>user-read-email</code> <code>&lt;b&gt;playlist&lt;/b&gt;</code></dd>'
            in detail)
