import dataclasses
import posixpath
import time
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Response

from app import clock, create_app
from app.api.proxy import NotModified, target_url
from app.errors import InvalidRequest
from app.extensions import db
from tests.api.proxy_upstream import ScriptedUpstream
from tests.conftest import make_connection

PROXY_PATH = "/api/proxy/{provider}/{path}"
UPSTREAM = "Connector-Upstream"


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
    "/api/proxy/stub/me/..%252f..%252foauth%252ftoken",
    "/api/proxy/stub/me/..%255c..%255coauth%255ctoken",
    "/api/proxy/stub/%2e%2e%252ftoken",
    "/api/proxy/stub/%252E%252E/token",
    "/api/proxy/stub/me/..%25252f..%25252ftoken",
])
def test_proxy_refuses_paths_that_leave_the_api(client, auth0, stub, connected, path):
    response = client.get(path, headers=_auth(auth0))
    assert response.status_code in (400, 404), response.get_data(as_text=True)
    assert stub.state.api_requests == []
    assert stub.state.refresh_calls == 0


BASE = "https://api.provider.test/v2/"
SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_~", min_size=1, max_size=8)


def _encoded(char: str, depth: int, upper: bool) -> str:
    """``char`` percent-encoded ``depth`` times ("/" twice: %252f)."""
    text = f"%{ord(char):02x}"
    for _ in range(depth - 1):
        text = "%25" + text[1:]
    return text.upper() if upper else text


@settings(max_examples=300, deadline=None)
@given(before=st.lists(SAFE, max_size=3), after=st.lists(SAFE, max_size=3), prefix=st.sampled_from(["", "..", "a"]),
       char=st.sampled_from(["/", "\\", ".", "?", "#"]), depth=st.integers(2, 5), upper=st.booleans())
def test_any_multiply_encoded_separator_or_dot_is_refused(before, after, prefix, char, depth, upper):
    segment = prefix + _encoded(char, depth, upper) + "x"
    with pytest.raises(InvalidRequest):
        target_url(BASE, "/".join([*before, segment, *after]), b"")


def _decoded_repeatedly(text: str) -> str:
    for _ in range(10):
        text, previous = unquote(text), text
        if text == previous:
            break
    return text


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="abc./\\%25fFeEcC;?#", max_size=24))
def test_an_accepted_path_stays_below_the_api_however_often_it_is_decoded(raw):
    try:
        url = target_url(BASE, raw, b"")
    except InvalidRequest:
        return
    path = _decoded_repeatedly(urlsplit(url).path)
    assert "\\" not in path and "?" not in path and "#" not in path
    assert posixpath.normpath(path).startswith("/v2") and ".." not in path.split("/")


def test_plain_paths_and_single_encoded_characters_pass():
    assert target_url(BASE, "repos/o/r/contents/a%2ejson", b"ref=main") == BASE + "repos/o/r/contents/a%2ejson?ref=main"
    assert target_url(BASE, "search/a%20b", b"") == BASE + "search/a%20b"


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


def test_proxy_answers_a_persistent_provider_401_as_a_documented_502(client, app, auth0, stub, connected, openapi):
    stub.state.api_always_401 = True
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert (response.status_code, response.json["code"]) == (502, "provider_unauthorized")
    assert "WWW-Authenticate" not in response.headers  # a 401 from us only ever means "your Auth0 token"
    assert UPSTREAM not in response.headers
    assert stub.state.refresh_calls == 1 and len(stub.state.api_requests) == 2
    openapi.check(response, PROXY_PATH, "get")


def test_proxy_forces_at_most_one_refresh_per_connection_per_minute(client, app, auth0, stub, connected,
                                                                     monkeypatch, env, database_url):
    stub.state.api_always_401 = True
    for _ in range(4):
        response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
        assert (response.status_code, response.json["code"]) == (502, "provider_unauthorized")
    assert stub.state.refresh_calls == 1  # not one grant per call
    assert len(stub.state.api_requests) == 2 + 3  # the later calls try the current token once, no retry

    # Another worker (its own app, the same database) sees the same record.
    other = create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}, env=env)
    try:
        response = other.test_client().get("/api/proxy/stub/me", headers=_auth(auth0))
        assert (response.status_code, response.json["code"]) == (502, "provider_unauthorized")
        assert stub.state.refresh_calls == 1
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()

    later = clock.now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert response.status_code == 502 and stub.state.refresh_calls == 2


def test_proxy_retries_with_a_token_that_replaced_the_refused_one_without_refreshing(client, app, auth0, stub,
                                                                                    monkeypatch):
    """Another request renewed the token while ours was at the provider: use its token, no second refresh."""
    from app.api import proxy as proxy_module

    _, refresh = stub.issue()
    make_connection(app, "auth0|alice", "stub", access="revoked-early", refresh=refresh, expires_in=3600)
    real_send, calls = proxy_module._send, []

    def send_while_another_request_refreshes(*args):
        calls.append(args[-1])
        if len(calls) == 1:  # the provider refuses our token; meanwhile another request renews it
            proxy_module.get_access_token("auth0|alice", "stub", force_refresh=True)
        return real_send(*args)

    monkeypatch.setattr(proxy_module, "_send", send_while_another_request_refreshes)
    response = client.get("/api/proxy/stub/me", headers=_auth(auth0))
    assert response.status_code == 200 and stub.state.refresh_calls == 1
    assert calls[0] == "revoked-early" and calls[1] != "revoked-early"


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


@contextmanager
def scripted_api(app, answer):
    """The stub provider's API replaced by one whose answers the test chooses."""
    registry = app.extensions["connector"].registry
    with ScriptedUpstream(answer) as upstream:
        registry._specs["stub"] = dataclasses.replace(registry._specs["stub"], api_base_url=upstream.url)
        yield upstream


def test_proxy_passes_304_through_with_its_validators_and_caching_headers(client, app, auth0, connected, openapi):
    cache_headers = {"ETag": '"v7"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT",
                     "Cache-Control": "private, max-age=60", "Expires": "Tue, 01 Dec 2026 10:01:00 GMT",
                     "Vary": "Accept, Authorization", "Content-Location": "/api/user"}

    def answer(request):
        if request.headers.get("If-None-Match") == '"v7"':
            return NotModified(status=304, headers={**cache_headers, "Set-Cookie": "tracker=1", "X-Internal": "x"})
        return Response("{}", mimetype="application/json", headers={"ETag": '"v7"'})

    with scripted_api(app, answer) as upstream:
        response = client.get("/api/proxy/stub/user", headers=_auth(auth0, **{"If-None-Match": '"v7"'}))
    assert response.status_code == 304 and response.data == b""
    for name, value in cache_headers.items():
        if name == "Vary":  # Flask may add its own (Cookie) to the provider's
            assert {"Accept", "Authorization"} <= {v.strip() for v in response.headers[name].split(",")}
        else:
            assert response.headers[name] == value
    assert response.headers[UPSTREAM] == "provider"
    assert "Set-Cookie" not in response.headers and "X-Internal" not in response.headers
    assert upstream.requests[-1]["headers"]["If-None-Match"] == '"v7"'
    _documented_as_the_providers(openapi, response, "get")


def test_proxy_marks_the_providers_own_answers_apart_from_ours(client, app, auth0, connected, openapi):
    def answer(request):
        return Response('{"message": "Not Found"}', status=404, mimetype="application/json")

    with scripted_api(app, answer):
        theirs = client.get("/api/proxy/stub/repos/none", headers=_auth(auth0))
        ok = client.get("/api/proxy/stub/me", headers=_auth(auth0, Origin="https://app.test"))
    assert theirs.status_code == 404 and theirs.headers[UPSTREAM] == "provider"
    assert theirs.json == {"message": "Not Found"}
    assert ok.headers[UPSTREAM] == "provider"
    assert UPSTREAM in ok.headers["Access-Control-Expose-Headers"]  # the SPA can read it cross-origin
    _documented_as_the_providers(openapi, theirs, "get")

    ours = client.get("/api/proxy/github/user", headers=_auth(auth0))  # no github connection
    assert (ours.status_code, ours.json["code"]) == (404, "not_found") and UPSTREAM not in ours.headers
    assert ours.mimetype == "application/problem+json"
    openapi.check(ours, PROXY_PATH, "get")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_proxy_documents_and_forwards_every_method(client, auth0, stub, connected, openapi, method):
    response = getattr(client, method)("/api/proxy/stub/items", data=b"{}",
                                       headers=_auth(auth0, **{"Content-Type": "application/json"}))
    assert response.status_code == 200 and stub.state.api_requests[-1]["method"] == method.upper()
    _documented_as_the_providers(openapi, response, method)
    operation = openapi.document["paths"][PROXY_PATH][method]
    assert set(operation["responses"]) == set(openapi.document["paths"][PROXY_PATH]["get"]["responses"])
    no_connection = getattr(client, method)("/api/proxy/github/x", headers=_auth(auth0))
    openapi.check(no_connection, PROXY_PATH, method)


def _documented_as_the_providers(openapi, response, method: str) -> None:
    """The document says this status may be the provider's own answer, marked with the header."""
    assert response.headers[UPSTREAM] == "provider"
    responses = openapi.document["paths"][PROXY_PATH][method]["responses"]
    spec = responses.get(str(response.status_code)) or responses["default"]
    assert spec["headers"][UPSTREAM]["schema"]["enum"] == ["provider"]
    assert response.status_code == 304 or "*/*" in spec["content"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_proxy_answers_conform_to_the_document(app, auth0, stub, connected, openapi, method):
    """Schemathesis, bounded: generated paths, queries, headers and bodies against a real connection."""
    import schemathesis
    from hypothesis import HealthCheck
    from schemathesis import checks

    operation = schemathesis.openapi.from_dict(openapi.document)[PROXY_PATH][method]
    token = auth0.token("auth0|alice")
    conformance = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                   checks.response_headers_conformance, checks.response_schema_conformance]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def conforms(case):
        case.path_parameters["provider"] = "stub"
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        case.validate_response(case.call(app=app), checks=conformance)

    conforms()
