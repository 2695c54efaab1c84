"""A small OAuth provider on a loopback port, for vault and proxy tests that need real HTTP
and real concurrency. It rotates refresh tokens, treats reuse as a revoked grant, counts
refresh calls, and can be told to be slow or broken."""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID, CLIENT_SECRET = "stub-client", "stub-secret"


@dataclass
class StubState:
    refresh_tokens: dict[str, bool] = field(default_factory=dict)  # token -> still valid
    access_tokens: set[str] = field(default_factory=set)
    refresh_calls: int = 0
    delay: float = 0.0
    failure: tuple[int, str, dict] | None = None  # (status, body, headers) answered instead
    api_requests: list[dict] = field(default_factory=list)
    revoked: bool = False
    api_always_401: bool = False
    refresh_started: threading.Event = field(default_factory=threading.Event)  # set at the first refresh
    granted_scope: str | None = "read"  # the refresh answer's scope (None: no scope member)


class StubProvider:
    def __init__(self, access_ttl: int = 3600):
        self.state = StubState()
        self.access_ttl = access_ttl
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()

    def issue(self) -> tuple[str, str]:
        """A fresh (access, refresh) pair, as a completed connect would have stored."""
        with self._lock:
            access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            self.state.access_tokens.add(access)
            self.state.refresh_tokens[refresh] = True
            return access, refresh

    def catalog_entry(self) -> dict:
        return {"display_name": "Stub", "authorize_url": f"{self.url}/authorize", "token_url": f"{self.url}/token",
                "api_base_url": f"{self.url}/api/", "scopes": ["read"], "client_auth": "client_secret_basic"}

    def _app(self, environ, start_response):
        request = Request(environ)
        if request.path == "/token":
            response = self._token(request)
        elif request.path.startswith("/api/"):
            response = self._api(request)
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    def _token(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return _json({"error": "invalid_client"}, 401)
        if request.form.get("grant_type") != "refresh_token":
            return _json({"error": "unsupported_grant_type"}, 400)
        with self._lock:
            self.state.refresh_calls += 1
            self.state.refresh_started.set()
            delay, failure = self.state.delay, self.state.failure
        time.sleep(delay)
        if failure:
            status, body, headers = failure
            return Response(body, status=status, headers=headers)
        with self._lock:
            old = request.form.get("refresh_token", "")
            if not self.state.refresh_tokens.get(old):
                # Reuse of a rotated token: the whole grant dies, as rotating providers do.
                self.state.refresh_tokens = dict.fromkeys(self.state.refresh_tokens, False)
                self.state.revoked = True
                return _json({"error": "invalid_grant", "error_description": "refresh token reused"}, 400)
            self.state.refresh_tokens[old] = False
            access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            self.state.access_tokens.add(access)
            self.state.refresh_tokens[refresh] = True
        body = {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": self.access_ttl}
        if self.state.granted_scope is not None:
            body["scope"] = self.state.granted_scope
        return _json(body)

    def _api(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            self.state.api_requests.append({"path": request.full_path, "method": request.method,
                                            "headers": dict(request.headers), "body": request.get_data()})
            valid = token in self.state.access_tokens and not self.state.api_always_401
        if request.path == "/api/redirect":
            return Response("", status=302, headers={"Location": "http://169.254.169.254/latest"})
        if request.path == "/api/big":
            return Response(b"x" * (2 * 1024 * 1024), mimetype="application/octet-stream")
        if not valid:
            return _json({"message": "bad credentials"}, 401)
        return Response(json.dumps({"ok": True, "path": request.path}), mimetype="application/json",
                        headers={"Set-Cookie": "tracker=1", "ETag": '"v1"', "X-Internal": "secret"})


def _json(data: dict, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})
