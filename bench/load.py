"""Bounded HTTP load generator, run as its own process (``python -m bench.load`` reading a JSON spec on
stdin). Threads POST (or ``method``) over keep-alive connections until ``duration`` seconds pass or
``max_requests`` are sent; with ``requests`` (a list of [path, headers]) each one is sent once, in order,
and the run also stops when they are used up. Prints one JSON object: requests, errors, req/s, latency
percentiles."""
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
    method = spec.get("method") or "POST"
    headers = {**({"Content-Length": str(len(body))} if method == "POST" else {}), **spec["headers"]}
    planned = spec.get("requests")
    lock = threading.Lock()
    budget = [min(spec["max_requests"], len(planned)) if planned else spec["max_requests"]]
    sent = [0]
    latencies: list[float] = []
    statuses: Counter = Counter()
    go = threading.Event()
    deadline = [0.0]

    def take() -> tuple[str, dict[str, str]] | None:
        """The next request's path and headers, or None when the budget is spent."""
        with lock:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            n, sent[0] = sent[0], sent[0] + 1
        if planned:
            return planned[n][0], {**headers, **planned[n][1]}
        return path, headers

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        seen: Counter = Counter()
        go.wait()
        while time.monotonic() < deadline[0] and (next_request := take()) is not None:
            target, target_headers = next_request
            started = time.perf_counter()
            try:
                conn.request(method, target, body=body if method == "POST" else None, headers=target_headers)
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
