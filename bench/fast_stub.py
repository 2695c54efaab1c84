"""A minimal token endpoint for batch refresh: accepts any refresh token, answers a new pair at once,
counts calls. Runs on a loopback port in the bench process (its CPU is not the refresher's)."""
from __future__ import annotations

import itertools
import json
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class _KeepAlive(WSGIRequestHandler):
    """HTTP/1.1, so the refresher's pooled connections are kept alive as a provider's would be (the
    development server's default, HTTP/1.0, closes every connection: a TCP handshake per refresh)."""

    protocol_version = "HTTP/1.1"


class FastStub:
    def __init__(self) -> None:
        self.calls = 0
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_KeepAlive)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def catalog_entry(self) -> dict:
        return {"display_name": "Fast stub", "authorize_url": f"{self.url}/authorize",
                "token_url": f"{self.url}/token", "api_base_url": f"{self.url}/api/", "scopes": ["read"],
                "client_auth": "client_secret_basic"}

    def _app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        if environ.get("PATH_INFO") != "/token":
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
            return [b"not found"]
        with self._lock:
            self.calls += 1
            n = next(self._ids)
        body = json.dumps({"access_token": f"fast-access-{n}", "refresh_token": f"fast-refresh-{n}",
                           "token_type": "Bearer", "expires_in": 3600, "scope": "read"}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [body]

    def close(self) -> None:
        self._server.shutdown()
