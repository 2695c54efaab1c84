"""Bounded HTTP load generator, run as its own process (``python -m bench.load`` reading a JSON spec on
stdin). Threads POST over keep-alive connections until ``duration`` seconds pass or ``max_requests``
are sent; prints one JSON object: requests, errors, req/s, latency percentiles."""
from __future__ import annotations

import http.client
import json
import resource
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def main() -> None:
    spec = json.loads(sys.stdin.read())
    parts = urlsplit(spec["url"])
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    body = spec["body"].encode()
    headers = {"Content-Length": str(len(body)), **spec["headers"]}
    lock = threading.Lock()
    budget = [spec["max_requests"]]
    latencies: list[float] = []
    statuses: Counter = Counter()
    go = threading.Event()
    deadline = [0.0]

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        seen: Counter = Counter()
        go.wait()
        while time.monotonic() < deadline[0] and take():
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                status = 0
            mine.append(time.perf_counter() - started)
            seen[status] += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    threads = [threading.Thread(target=worker) for _ in range(spec["threads"])]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline[0] = started + spec["duration"]
    go.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    total = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(total - 1, int(q / 100 * total))] * 1000 if total else float("nan")

    errors = total - statuses.get(spec["expect"], 0)
    print(json.dumps({"requests": total, "errors": errors, "seconds": round(elapsed, 3),
                      "req_per_s": total / elapsed if elapsed else 0.0, "p50_ms": pct(50), "p99_ms": pct(99),
                      "statuses": {str(k): v for k, v in statuses.items()},
                      "client_cpu_s": usage.ru_utime + usage.ru_stime}))


if __name__ == "__main__":
    main()
