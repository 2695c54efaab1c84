"""A loopback HTTP server that answers slowly, one byte at a time: each read is quick, the whole
answer is not (what requests' per-read timeouts alone do not bound)."""
from __future__ import annotations

import socket
import threading
import time


class DripServer:
    def __init__(self, body_bytes: int = 200, interval: float = 0.1):
        self.body_bytes, self.interval = body_bytes, interval
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/"
        self._stop = threading.Event()

    def __enter__(self) -> DripServer:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % self.body_bytes)
                for _ in range(self.body_bytes):
                    if self._stop.is_set():
                        return
                    conn.sendall(b" ")
                    time.sleep(self.interval)
            except OSError:
                return
