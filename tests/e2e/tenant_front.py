"""Per-tenant URLs in front of the e2e provider, the shape of ``https://{subdomain}.zendesk.com`` on one
loopback port: ``/<tenant>/<path>`` of a known tenant reaches the provider's ``/<path>`` (its authorize
endpoint by a redirect, as a browser would be sent on; every other path forwarded as it came), and any
other tenant is a 404. Records every request, so a test can show that a refused parameter never got here.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class TenantFront:
    def __init__(self, upstream: str, authorize_path: str, tenants: tuple[str, ...] = ("acme",)):
        self.upstream, self.authorize_path, self.tenants = upstream.rstrip("/"), authorize_path, tenants
        self.hits: list[tuple[str, str]] = []  # (method, path with query)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                front._handle(self)

            do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="tenant-front", daemon=True).start()

    def paths(self) -> list[str]:
        return [urlsplit(path).path for _, path in self.hits]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.hits.append((handler.command, handler.path))
        parts = urlsplit(handler.path)
        _, tenant, rest = (parts.path.split("/", 2) + ["", ""])[:3]
        if tenant not in self.tenants:
            return self._reply(handler, 404, {"Content-Type": "application/json"}, b'{"error": "no_such_tenant"}')
        target = f"{self.upstream}/{rest}" + (f"?{parts.query}" if parts.query else "")
        if handler.command == "GET" and "/" + rest == self.authorize_path:
            return self._reply(handler, 302, {"Location": target}, b"")
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = requests.request(handler.command, target, headers=headers, data=body, allow_redirects=False,
                                  timeout=10)
        out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        self._reply(handler, answer.status_code, out, answer.content)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict, body: bytes) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
