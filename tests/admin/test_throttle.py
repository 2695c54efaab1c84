"""Behind a configured proxy, the client address comes from X-Forwarded-For (and only then)."""
from __future__ import annotations

import pytest

from tests.admin.conftest import ADMIN_CLIENT_ID, ADMIN_SUB, csrf_token
from tests.conftest import base_env


@pytest.fixture
def env():
    return base_env(ADMIN_CLIENT_ID=ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET="s", ADMIN_SUBS="auth0|operator",
                    ADMIN_LOGIN_MAX_FAILURES="2", TRUSTED_PROXY_HOPS="1")


def _fail(admin_login, address: str):
    params = admin_login.start(HTTP_X_FORWARDED_FOR=address)
    return admin_login.complete(params, state="forged", environ={"HTTP_X_FORWARDED_FOR": address})


def test_trusted_proxy_counts_each_forwarded_client_separately(admin_login):
    for _ in range(2):
        assert _fail(admin_login, "203.0.113.7").status_code == 400
    blocked = admin_login.client.get("/admin/login/start", environ_base={"HTTP_X_FORWARDED_FOR": "203.0.113.7"})
    assert blocked.status_code == 429
    other = admin_login.client.get("/admin/login/start", environ_base={"HTTP_X_FORWARDED_FOR": "198.51.100.1"})
    assert other.status_code == 302


class TestBehindAnUnconfiguredProxy:
    """TRUSTED_PROXY_HOPS=0 behind a proxy: every client has the proxy's address (here 127.0.0.1)."""

    @pytest.fixture
    def env(self):
        return base_env(ADMIN_CLIENT_ID=ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET="s", ADMIN_SUBS=ADMIN_SUB,
                        ADMIN_LOGIN_MAX_FAILURES="2")

    @staticmethod
    def _strangers_lock_the_address(app, admin_login) -> None:
        for _ in range(2):
            stranger = app.test_client()
            stranger.get("/admin/callback", query_string={"code": "c", "state": "guessed"})
        assert app.test_client().get("/admin/login/start").status_code == 429
        for _ in range(10):  # more strangers, more noise: still only the address's count
            assert app.test_client().get("/admin/login/start").status_code == 429

    def test_strangers_cannot_lock_out_an_admin_who_signed_in_here_before(self, app, admin_login):
        admin = admin_login.client
        assert admin_login.sign_in().status_code == 302
        cookie = admin.get_cookie("__Host-connector_admin_device")
        assert cookie is not None and cookie.http_only and cookie.secure and cookie.same_site == "Lax"
        admin.post("/admin/logout", data={"csrf_token": csrf_token(admin)})
        self._strangers_lock_the_address(app, admin_login)
        response = admin_login.sign_in()  # same address, but this browser is known
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/connections")

    def test_a_forged_device_cookie_counts_as_the_address(self, app, admin_login):
        self._strangers_lock_the_address(app, admin_login)
        forger = app.test_client()
        forger.set_cookie("__Host-connector_admin_device", "forged.value.here", domain="localhost")
        assert forger.get("/admin/login/start").status_code == 429

    def test_a_sign_in_in_progress_completes_despite_a_flood(self, app, admin_login):
        params = admin_login.start()  # a first-time admin, no device cookie, now at Auth0
        self._strangers_lock_the_address(app, admin_login)
        assert admin_login.complete(params).status_code == 302

    def test_a_device_cookie_is_counted_on_its_own(self, app, admin_login):
        assert admin_login.sign_in().status_code == 302
        for _ in range(2):  # failures in the known browser lock that browser ...
            admin_login.complete(admin_login.start(), state="forged")
        assert admin_login.client.get("/admin/login/start").status_code == 429
        assert app.test_client().get("/admin/login/start").status_code == 302  # ... not the address

    def test_forwarded_for_without_trusted_hops_is_warned_about_once(self, app, caplog, monkeypatch):
        from app.admin import throttle

        monkeypatch.setattr(throttle, "_proxy_warning_given", False)
        for _ in range(2):
            app.test_client().get("/admin/login/start", environ_base={"HTTP_X_FORWARDED_FOR": "203.0.113.7"})
        warnings = [r for r in caplog.records if "TRUSTED_PROXY_HOPS" in r.getMessage()]
        assert len(warnings) == 1
