"""Request bodies past the limit are refused (413) whatever their framing, and nothing acts on them:
in the test client with the environ a de-chunking server builds, and over HTTP against real gunicorn."""
from __future__ import annotations

import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from app.request_body import BoundedStream
from tests.api.proxy_upstream import ScriptedUpstream
from tests.conftest import APP_ORIGIN, RETURN_URL, make_connection, stub_env

ROOT = Path(__file__).resolve().parents[1]
FORM_LIMIT = 64 * 1024  # MAX_CONTENT_LENGTH


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path)


@pytest.fixture
def connected(app, stub):
    access, refresh = stub.issue()
    make_connection(app, "auth0|alice", "stub", access=access, refresh=refresh, expires_in=3600)
    return access


def _chunked(client, path: str, body: bytes, *, terminated: bool = True, **headers):
    """POST ``body`` without a Content-Length, as gunicorn hands a chunked body to the app."""
    overrides = {"wsgi.input_terminated": True} if terminated else {}
    return client.post(path, input_stream=io.BytesIO(body), environ_overrides=overrides,
                       headers={"Transfer-Encoding": "chunked", **headers})


def _connect_form(auth0, padding: int) -> bytes:
    fields = {"access_token": auth0.token("auth0|alice"), "provider": "stub", "return_to": RETURN_URL}
    return (urlencode(fields) + "&pad=" + "x" * padding).encode()


@pytest.mark.parametrize("size", [0, 1, 999, 1000])
def test_a_bounded_stream_reads_a_body_up_to_the_limit(size):
    assert BoundedStream(io.BytesIO(b"a" * size), 1000).read() == b"a" * size


@pytest.mark.parametrize("size", [1001, 1002, 100_000])
def test_a_bounded_stream_refuses_a_body_past_the_limit(size):
    stream = BoundedStream(io.BytesIO(b"a" * size), 1000)
    with pytest.raises(RequestEntityTooLarge):
        while stream.read(300):
            pass


def test_a_chunked_proxy_body_past_the_limit_is_413_and_not_forwarded(app, client, auth0, stub, connected):
    app.config["PROXY_MAX_BODY_BYTES"] = 1000
    bearer = {"Authorization": f"Bearer {auth0.token('auth0|alice')}"}
    response = _chunked(client, "/api/proxy/stub/items", b"x" * 1001, **bearer)
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert stub.state.api_requests == [] and stub.state.refresh_calls == 0

    response = _chunked(client, "/api/proxy/stub/items", b"y" * 1000, **bearer)
    assert response.status_code == 200 and stub.state.api_requests[-1]["body"] == b"y" * 1000


def test_the_proxy_takes_bodies_up_to_its_own_limit_not_the_forms(app, client, auth0, stub, connected):
    body = b"a=" + b"x" * (2 * FORM_LIMIT)  # a form-encoded body, over 64 KiB, under PROXY_MAX_BODY_BYTES
    headers = {"Authorization": f"Bearer {auth0.token('auth0|alice')}",
               "Content-Type": "application/x-www-form-urlencoded"}
    response = _chunked(client, "/api/proxy/stub/items", body, **headers)
    assert response.status_code == 200 and stub.state.api_requests[-1]["body"] == body


def test_a_chunked_connect_form_past_the_limit_is_413_not_cut(client, auth0):
    headers = {"Origin": APP_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}
    response = _chunked(client, "/connect/start", _connect_form(auth0, FORM_LIMIT), **headers)
    assert response.status_code == 413  # not the first 64 KiB read as the whole form, and a connect started
    response = _chunked(client, "/connect/start", _connect_form(auth0, 10), **headers)
    assert response.status_code == 303


def test_a_chunked_body_the_server_did_not_dechunk_is_411_not_read_as_empty(app, client, auth0, stub, connected):
    bearer = {"Authorization": f"Bearer {auth0.token('auth0|alice')}"}
    response = _chunked(client, "/api/proxy/stub/items", b"5\r\nhello\r\n0\r\n\r\n", terminated=False, **bearer)
    assert response.status_code == 411 and stub.state.api_requests == []


# ---------------------------------------------------------------- over HTTP, against real gunicorn


@pytest.fixture
def gunicorn(app, env, database_url, auth0, tmp_path):
    """The service under gunicorn (gthread, as deployed) on the test's database, its JWKS served on loopback."""
    jwks = ScriptedUpstream(lambda request: Response(json.dumps(auth0.jwks), mimetype="application/json"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    log_path = tmp_path / "gunicorn.log"
    with jwks, open(log_path, "wb") as log:
        process_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1",
                       **env, "AUTH0_JWKS_URL": jwks.url + "jwks.json", "DATABASE_URL": database_url,
                       "PROXY_MAX_BODY_BYTES": "4096"}
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "2", "--worker-class", "gthread",
             "--bind", f"fd://{listener.fileno()}", "--no-control-socket", "--error-logfile", "-", "wsgi:app"],
            cwd=ROOT, env=process_env, pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT)
        listener.close()
        try:
            _wait_until_healthy(process, port, log_path)
            yield SimpleNamespace(port=port, log=log_path)
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_until_healthy(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        try:
            process.wait(timeout=0.2)  # between probes; returns at once if gunicorn dies
        except subprocess.TimeoutExpired:
            pass
    pytest.fail(f"gunicorn did not answer /healthz:\n{log_path.read_text()[-3000:]}")


def _send(port: int, path: str, headers: dict, chunks: list[bytes] | None = None, body: bytes | None = None):
    """One request over a real socket: chunked Transfer-Encoding from ``chunks``, or a Content-Length body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunks is not None:
            connection.request("POST", path, body=iter(chunks), encode_chunked=True,
                               headers={**headers, "Transfer-Encoding": "chunked"})
        else:
            connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_under_gunicorn_an_oversized_chunked_body_is_413_and_nothing_is_forwarded(gunicorn, auth0, stub,
                                                                                  connected):
    port = gunicorn.port
    bearer = {"Authorization": f"Bearer {auth0.token('auth0|alice')}", "Content-Type": "application/octet-stream"}

    status, content_type, _ = _send(port, "/api/proxy/stub/items", bearer, chunks=[b"a" * 1500] * 3)
    assert (status, content_type) == (413, "application/problem+json")  # 4500 bytes, limit 4096
    status, _, _ = _send(port, "/api/proxy/stub/items", bearer, body=b"a" * 4500)  # the same with a length
    assert status == 413
    assert stub.state.api_requests == [] and stub.state.refresh_calls == 0

    status, _, _ = _send(port, "/api/proxy/stub/items", bearer, chunks=[b"b" * 2048, b"c" * 2048])
    assert status == 200  # exactly the limit: forwarded whole
    assert [r["body"] for r in stub.state.api_requests] == [b"b" * 2048 + b"c" * 2048]

    form = _connect_form(auth0, FORM_LIMIT)
    status, _, _ = _send(port, "/connect/start",
                         {"Origin": APP_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"},
                         chunks=[form[i:i + 8192] for i in range(0, len(form), 8192)])
    assert status == 413
    log = gunicorn.log.read_text()
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]


def test_every_route_that_takes_a_body_refuses_an_oversized_chunked_one(app, client):
    """Not only the proxy and /connect/start: whatever reads a body (forms, Flask-WTF, JSON) reads it bounded."""
    routes = [rule for rule in app.url_map.iter_rules()
              if rule.methods & {"POST", "PUT", "PATCH", "DELETE"} and not rule.rule.startswith("/api/proxy/")]
    assert any(rule.rule == "/connect/start" for rule in routes)
    for rule in routes:
        path = re.sub(r"<[^>]+>", "x", rule.rule)  # any value: the body is refused before it matters
        method = sorted(rule.methods & {"POST", "PUT", "PATCH", "DELETE"})[0]
        response = client.open(path, method=method, input_stream=io.BytesIO(b"a=" + b"x" * FORM_LIMIT),
                               environ_overrides={"wsgi.input_terminated": True},
                               headers={"Transfer-Encoding": "chunked", "Origin": APP_ORIGIN,
                                        "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413, (method, rule.rule, response.status_code)
