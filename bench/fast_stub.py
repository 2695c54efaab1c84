"""A minimal token endpoint for batch refresh: accepts any refresh token, answers a new pair at once,
counts calls. Runs on a loopback port in the bench process (its CPU is not the refresher's).

The standard library's HTTP/1.1 server, not Werkzeug's: Werkzeug's development server closes every
connection (``Connection: close``), so each refresh would pay a TCP handshake that a real provider's
kept-alive connection, reused from the shared pool (``app.http``), does not."""
from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FastStub:
    def __init__(self) -> None:
        self.calls = 0
        self._ids = itertools.count()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = stub._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # one line per request would flood the bench's output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def catalog_entry(self) -> dict:
        return {"display_name": "Fast stub", "authorize_url": f"{self.url}/authorize",
                "token_url": f"{self.url}/token", "api_base_url": f"{self.url}/api/", "scopes": ["read"],
                "client_auth": "client_secret_basic"}

    def _answer(self, path: str) -> tuple[int, bytes]:
        if path != "/token":
            return 404, b'{"error": "not_found"}'
        with self._lock:
            self.calls += 1
            n = next(self._ids)
        return 200, json.dumps({"access_token": f"fast-access-{n}", "refresh_token": f"fast-refresh-{n}",
                                "token_type": "Bearer", "expires_in": 3600, "scope": "read"}).encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
