"""Admin sign-in: OIDC code flow with PKCE and nonce, who is an admin, sessions, throttling."""
from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import AdminSession, AuditEvent
from tests.admin.conftest import ADMIN_SUB, csrf_token


def _sessions(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AdminSession))


def test_pages_redirect_to_sign_in_when_signed_out(client):
    for path in ("/admin/", "/admin/connections", "/admin/audit", "/admin/connections/abc"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/login"), path


def test_sign_in_request_carries_pkce_nonce_and_state(admin_login):
    params = admin_login.start()
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) >= 43
    assert params["nonce"] and params["state"] and "openid" in params["scope"].split()
    assert params["redirect_uri"] == "https://connector.test/admin/callback"


def test_admin_in_allowlist_signs_in_with_a_server_side_session(app, admin_login):
    response = admin_login.sign_in()
    assert response.status_code == 302
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-connector_admin="))
    assert cookie.startswith("__Host-connector_admin=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/" in cookie
    assert admin_login.client.get("/admin/connections").status_code == 200
    assert _sessions(app) == 1


def test_admin_by_role_claim_signs_in(admin_login):
    response = admin_login.sign_in("auth0|someone-else", **{"https://connector.test/roles": ["connector-admin"]})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/connections")


def test_non_admin_gets_403_and_no_session(app, admin_login):
    response = admin_login.sign_in("auth0|mallory", **{"https://connector.test/roles": ["viewer"]})
    assert response.status_code == 403
    assert "not an administrator" in response.text
    assert _sessions(app) == 0
    assert admin_login.client.get("/admin/connections").status_code == 302
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "admin_login")).one()
        assert (event.outcome, event.actor_id, event.detail) == ("failed", "auth0|mallory", {"reason": "not_admin"})


def test_wrong_nonce_is_refused(app, admin_login):
    response = admin_login.complete(admin_login.start(), nonce="not-the-nonce")
    assert response.status_code == 400 and "sign-in failed" in response.text
    assert _sessions(app) == 0


def test_forged_state_is_refused(app, admin_login):
    response = admin_login.complete(admin_login.start(), state="forged")
    assert response.status_code == 400 and "sign-in failed" in response.text
    assert _sessions(app) == 0


def test_id_token_signed_by_another_key_is_refused(app, admin_login):
    from joserfc.jwk import RSAKey

    other = RSAKey.generate_key(2048, parameters={"kid": "kid-1"})
    params = admin_login.start()
    token = admin_login.auth0.token(ADMIN_SUB, aud="admin-console", nonce=params["nonce"], key=other)
    admin_login.http.replace("POST", "https://tenant.test/oauth/token",
                             json={"access_token": "x", "token_type": "Bearer", "id_token": token})
    response = admin_login.client.get("/admin/callback", query_string={"code": "c", "state": params["state"]})
    assert response.status_code == 400
    assert _sessions(app) == 0


def test_denied_at_the_tenant_is_a_clear_error(admin_login):
    params = admin_login.start()
    response = admin_login.client.get("/admin/callback", query_string={"error": "access_denied",
                                                                       "state": params["state"]})
    assert response.status_code == 400 and "access_denied" in response.text


def test_logout_kills_the_session_even_for_a_copied_cookie(app, client, signed_in):
    stolen = client.get_cookie("__Host-connector_admin").value
    response = client.post("/admin/logout", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/login")
    assert _sessions(app) == 0
    thief = app.test_client()
    thief.set_cookie("__Host-connector_admin", stolen, domain="localhost")
    assert thief.get("/admin/connections").status_code == 302


def test_logout_without_csrf_token_is_refused(app, client, signed_in):
    response = client.post("/admin/logout")
    assert response.status_code == 400 and "CSRF" in response.text
    assert _sessions(app) == 1


def test_failed_sign_ins_are_throttled_and_forged_forwarded_for_does_not_reset(admin_login):
    for i in range(3):
        params = admin_login.start(HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        admin_login.complete(params, state="forged", environ={"HTTP_X_FORWARDED_FOR": f"10.0.0.{i}"})
    response = admin_login.client.get("/admin/login/start", environ_base={"HTTP_X_FORWARDED_FOR": "10.9.9.9"})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    callback = admin_login.client.get("/admin/callback", query_string={"code": "c", "state": "s"})
    assert callback.status_code == 429


def test_demo_login_is_absent_outside_demo_mode(client, signed_in):
    response = client.post("/admin/demo-login", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 404


def test_demo_login_button_only_in_demo_mode(client):
    page = client.get("/admin/login").text
    assert "login-auth0" in page and "login-demo" not in page


def test_admin_pages_send_strict_security_headers(client, signed_in):
    for path in ("/admin/login", "/admin/connections", "/admin/audit"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "'unsafe-inline'" not in csp
        assert "default-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"


def test_an_admin_removed_from_the_allowlist_loses_live_sessions(app, client, signed_in):
    assert client.get("/admin/connections").status_code == 200
    app.config["ADMIN_ROLE_CLAIM"] = None  # admins by allowlist only: the list is checked on every request
    app.config["ADMIN_SUBS"] = ["auth0|someone-else"]
    assert client.get("/admin/connections").status_code == 302
    app.config["ADMIN_SUBS"] = [ADMIN_SUB]
    assert client.get("/admin/connections").status_code == 200  # the session row itself was not deleted


def test_end_admin_sessions_signs_everyone_out(app, client, signed_in):
    runner = app.test_cli_runner()
    assert "ended 0 admin session(s)" in runner.invoke(args=["connector", "end-admin-sessions", "--sub", "x"]).output
    assert client.get("/admin/connections").status_code == 200
    assert "ended 1 admin session(s)" in runner.invoke(args=["connector", "end-admin-sessions"]).output
    assert client.get("/admin/connections").status_code == 302 and _sessions(app) == 0


def test_sign_in_state_is_kept_server_side_and_encrypted(app, admin_login):
    import base64
    import zlib

    from app.models import AdminSignInState

    params = admin_login.start()
    cookie = admin_login.client.get_cookie("__Host-connector_admin").value  # Flask: [.]payload.time.signature
    payload = cookie.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    session_text = (zlib.decompress(raw) if cookie.startswith(".") else raw).decode()
    assert params["nonce"] not in session_text and "code_verifier" not in session_text
    with app.app_context():
        rows = db.session.scalars(select(AdminSignInState)).all()
        assert len(rows) == 1 and params["nonce"] not in rows[0].value_enc  # sealed, not plain JSON
    assert admin_login.complete(params).status_code == 302  # the callback finds it ...
    with app.app_context():
        assert db.session.scalars(select(AdminSignInState)).all() == []  # ... and it is used once


def test_a_foreign_callback_with_the_admins_state_does_not_cancel_the_sign_in(app, admin_login):
    params = admin_login.start()  # the admin's browser, now at Auth0
    stranger = app.test_client()  # another browser that learnt the admin's state
    foreign = stranger.get("/admin/callback", query_string={"code": "attacker-code", "state": params["state"]})
    assert foreign.status_code == 400
    assert not any(call.request.url.startswith("https://tenant.test/oauth/token") for call in admin_login.http.calls)
    response = admin_login.complete(params)  # the admin's own, genuine callback
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/connections")
    assert _sessions(app) == 1
    replay = admin_login.complete(params)  # consumed by its own browser: once only
    assert replay.status_code == 400
