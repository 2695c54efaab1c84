"""A loopback HTTP server that records every request it gets and answers from a script: for tests
where the shape of what we send (body format, headers, client authentication, method) matters."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def json(self) -> object:
        return json.loads(self.body)


class Recorder:
    def __init__(self):
        self.requests: list[Recorded] = []
        self._answers: dict[str, tuple[int, bytes, str]] = {}
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()

    def answer(self, path: str, *, status: int = 200, json_body: object = None, body: bytes | str | None = None,
               content_type: str = "application/json") -> None:
        """What ``path`` answers from now on (any method)."""
        data = body if body is not None else json.dumps(json_body)
        self._answers[path] = (status, data.encode() if isinstance(data, str) else data, content_type)

    def at(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def _app(self, environ, start_response):
        request = Request(environ)
        recorded = Recorded(request.method, request.path, dict(request.headers), request.get_data())
        with self._lock:
            self.requests.append(recorded)
        status, body, content_type = self._answers.get(request.path, (404, b'{"error": "not_found"}',
                                                                      "application/json"))
        return Response(body, status=status, content_type=content_type)(environ, start_response)
