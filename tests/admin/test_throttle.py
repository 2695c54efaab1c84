"""Behind a configured proxy, the client address comes from X-Forwarded-For (and only then)."""
from __future__ import annotations

import pytest

from tests.admin.conftest import ADMIN_CLIENT_ID
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
