import dataclasses
import time

import pytest

from tests.conftest import make_connection


@pytest.fixture
def connected(app, stub):
    access, refresh = stub.issue()
    make_connection(app, "auth0|alice", "stub", access=access, refresh=refresh, expires_in=3600)
    return access


def _auth(auth0, **headers):
    return {"Authorization": f"Bearer {auth0.token('auth0|alice')}", **headers}


def test_proxy_forwards_with_provider_token_and_filters_headers(client, auth0, stub, connected):
    response = client.get("/api/proxy/stub/user/repos?per_page=5",
                          headers=_auth(auth0, Cookie="session=abc", Accept="application/json",
                                        **{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Host": "evil.test"}))
    assert response.status_code == 200 and response.json == {"ok": True, "path": "/api/user/repos"}
    seen = stub.state.api_requests[-1]
    assert seen["path"] == "/api/user/repos?per_page=5"
    assert seen["headers"]["Authorization"] == f"Bearer {connected}"
    assert seen["headers"]["Accept"] == "application/json"
    for header in ("Cookie", "X-Forwarded-For", "X-Forwarded-Host"):
        assert header not in seen["headers"]
    assert seen["headers"]["Host"] == stub.url.removeprefix("http://")
    assert "Set-Cookie" not in response.headers and "X-Internal" not in response.headers
    assert response.headers["ETag"] == '"v1"'


def test_proxy_forwards_body(client, auth0, stub, connected):
    response = client.post("/api/proxy/stub/items", data=b'{"a": 1}',
                           headers=_auth(auth0, **{"Content-Type": "application/json"}))
    assert response.status_code == 200 and stub.state.api_requests[-1]["body"] == b'{"a": 1}'


@pytest.mark.parametrize("path", [
    "/api/proxy/stub/../token",
    "/api/proxy/stub/a/../../token",
    "/api/proxy/stub/%2e%2e/token",
    "/api/proxy/stub/%252e%252e/token",
    "/api/proxy/stub//evil.test/x",
    "/api/proxy/stub/http://evil.test/x",
    "/api/proxy/stub/a%2F..%2F..%2Ftoken",
    "/api/proxy/stub/a%5c..%5ctoken",
    "/api/proxy/stub/a/..;/..;/token",
    "/api/proxy/stub/%2e%2e;x=1/token",
])
def test_proxy_refuses_paths_that_leave_the_api(client, auth0, stub, connected, path):
    response = client.get(path, headers=_auth(auth0))
    assert response.status_code in (400, 404), response.get_data(as_text=True)
    assert stub.state.api_requests == []
    assert stub.state.refresh_calls == 0


def test_proxy_does_not_follow_redirects(client, auth0, stub, connected):
    response = client.get("/api/proxy/stub/redirect", headers=_auth(auth0))
    assert (response.status_code, response.json["code"]) == (502, "upstream_redirect")
    assert "169.254" not in response.get_data(as_text=True)


def test_proxy_limits_request_and_response_size(client, auth0, stub, connected):
    big = b"x" * (1024 * 1024 + 1)
    response = client.post("/api/proxy/stub/items", data=big, headers=_auth(auth0))
    assert response.status_code == 413 and stub.state.api_requests == []
    response = client.get("/api/proxy/stub/big", headers=_auth(auth0))
    assert (response.status_code, response.json["code"]) == (502, "upstream_too_large")


def test_proxy_refreshes_once_on_401_and_retries(client, app, auth0, stub):
    _, refresh = stub.issue()
    make_connection(app, "auth0|alice", "stub", access="revoked-early", refresh=refresh, expires_in=3600)
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert response.status_code == 200 and stub.state.refresh_calls == 1
    assert len(stub.state.api_requests) == 2


def test_proxy_passes_persistent_401_without_looping(client, app, auth0, stub, connected):
    stub.state.api_always_401 = True
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert response.status_code == 401 and stub.state.refresh_calls == 1 and len(stub.state.api_requests) == 2


def test_proxy_without_connection_is_404(client, auth0):
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert (response.status_code, response.json["code"]) == (404, "not_found")


def test_proxy_refuses_machine_tokens(client, auth0, stub, connected):
    response = client.get("/api/proxy/stub/me", headers={"Authorization": f"Bearer {auth0.m2m_token()}"})
    assert response.status_code == 403 and stub.state.api_requests == []


def test_proxy_upstream_down_is_503(client, app, auth0, connected):
    registry = app.extensions["connector"].registry
    registry._specs["stub"] = dataclasses.replace(registry._specs["stub"], api_base_url="http://127.0.0.1:9/api/")
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert (response.status_code, response.json["code"]) == (503, "upstream_unreachable")


def test_proxy_bounds_the_whole_upstream_answer_not_each_read(client, app, auth0, connected):
    from tests.drip_server import DripServer

    registry = app.extensions["connector"].registry
    with DripServer(body_bytes=400, interval=0.05) as drip:  # 20 s in all, one byte per 50 ms
        registry._specs["stub"] = dataclasses.replace(registry._specs["stub"], api_base_url=drip.url)
        started = time.monotonic()
        response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert (response.status_code, response.json["code"]) == (503, "upstream_timeout")
    assert time.monotonic() - started < 10  # connect + read timeouts in all, not per byte
