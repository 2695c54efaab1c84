"""A provider API on a loopback port whose answers a test chooses: for the proxy's pass-through
cases (304, the provider's own 404) that the stub provider does not make."""
from __future__ import annotations

import threading
from collections.abc import Callable

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class ScriptedUpstream:
    def __init__(self, answer: Callable[[Request], Response]):
        self.answer = answer
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests.append({"path": request.full_path, "method": request.method,
                                  "headers": dict(request.headers), "body": request.get_data()})
        return self.answer(request)(environ, start_response)
