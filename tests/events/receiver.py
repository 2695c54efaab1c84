"""A webhook receiver on a loopback port: records every request, answers from a script."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """``script`` holds the answers to the next requests, in order: a status code, a
    (status, headers) pair, or "hang" (wait for ``release``, then 200); afterwards 204."""

    def __init__(self):
        self.received: list[Received] = []
        self.script: list = []
        self.release = threading.Event()
        self._cond = threading.Condition()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/connector"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()

    def wait_for(self, count: int, timeout: float = 30) -> bool:
        """Until ``count`` requests have arrived (False after ``timeout`` seconds)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    def ids(self) -> list[str]:
        with self._cond:
            return [r.headers["webhook-id"] for r in self.received]

    def _app(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        with self._cond:
            self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
            action = self.script.pop(0) if self.script else 204
            self._cond.notify_all()
        headers: dict = {}
        if action == "hang":
            self.release.wait(60)
            action = 200
        if isinstance(action, tuple):
            action, headers = action
        return Response("", status=action, headers=headers)(environ, start_response)
