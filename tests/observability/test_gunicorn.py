"""Through real gunicorn with two workers: metrics summed across processes (and the CLI worker),
the scrape refused without the token, JSON log lines that carry the request id."""
from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from app import create_app
from app.extensions import db
from tests.conftest import make_connection, stub_env
from tests.observability.conftest import METRICS_TOKEN, parse, sample

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60


class Gunicorn:
    """gunicorn on an ephemeral loopback port; its stderr lines are collected as they come."""

    def __init__(self, env: dict, config: Path):
        self.lines: list[str] = []
        self._new = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(config), "--workers", "2", "--threads", "2",
             "--bind", "127.0.0.1:0", "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = "http://127.0.0.1:" + self.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        for _ in range(2):
            self.wait_for(r"Booting worker")

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def wait_for(self, pattern: str) -> re.Match:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            match = re.search(pattern, json.loads(line).get("message", "") if line.startswith("{") else line)
            if match:
                return match
        raise AssertionError(f"gunicorn never logged {pattern!r}:\n" + "\n".join(self.lines[-30:]))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def service(tmp_path, stub, mocked_http):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    database_url = f"sqlite:///{tmp_path}/service.db"
    env = {**os.environ, **stub_env(stub, tmp_path, METRICS_TOKEN=METRICS_TOKEN, LOG_FORMAT="json",
                                    DATABASE_URL=database_url, PROMETHEUS_MULTIPROC_DIR=str(multiproc),
                                    AUTH0_JWKS_URL="http://127.0.0.1:9/jwks.json")}  # nothing listens on 9
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    # What gunicorn.conf.py adds for LOG_FORMAT: gunicorn's own lines in the same format.
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("import os\nfrom app.observability.logs import gunicorn_logconfig\n"
                      "logconfig_dict = gunicorn_logconfig(os.environ.get('LOG_FORMAT', 'text'))\n")
    server = Gunicorn(env, config)
    try:
        yield server, env, multiproc
    finally:
        server.stop()


def _scrape(url: str) -> dict:
    response = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def test_metrics_logs_and_request_ids_under_gunicorn(service, stub, tmp_path, auth0):
    server, env, multiproc = service
    assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
    assert requests.get(server.url + "/metrics", headers={"Authorization": "Bearer wrong"},
                        timeout=10).status_code == 401

    # Until both workers have answered (each keeps its own counter file), bounded.
    sent = 0
    while sent < 400 and len({p.name.split("_")[-1] for p in multiproc.glob("counter_*.db")}) < 2:
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200  # a new connection each
        sent += 1
    assert len(list(multiproc.glob("counter_*.db"))) >= 2, "one worker answered every request"
    samples = _scrape(server.url)
    assert sample(samples, "connector_http_requests_total", endpoint="health.healthz", method="GET",
                  status="200") == sent
    assert sample(samples, "connector_http_requests_total", endpoint="observability_metrics.metrics",
                  method="GET", status="401") == 2

    # The CLI worker's counters land on the same /metrics.
    access, refresh = stub.issue()
    app = create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"]},
                     env={k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
    make_connection(app, "auth0|alice", "stub", access=access, refresh=refresh, expires_in=-30)
    with app.app_context():
        db.engine.dispose()
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "connector", "refresh-due"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert "refreshed 1" in result.stdout, result.stderr
    samples = _scrape(server.url)
    assert sample(samples, "connector_refreshes_total", provider="stub", outcome="ok") == 1
    assert sample(samples, "connector_refresh_duration_seconds_count", provider="stub") == 1
    assert sample(samples, "connector_connections", provider="stub", status="active") == 1

    # An application log line inside a request (the signing keys cannot be fetched) carries its request id.
    response = requests.get(server.url + "/api/connections", timeout=30,
                            headers={"Authorization": f"Bearer {auth0.token()}"})
    assert response.status_code == 503
    request_id = response.headers["X-Request-ID"]
    requests.get(server.url + "/connect/callback?code=SECRETCODE&state=SECRETSTATE", timeout=10)
    server.wait_for(r"GET /connect/callback")  # the access line of the last request
    records = [json.loads(line) for line in server.lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    jwks = [r for r in records if r["logger"] == "app.identity" and "JWKS" in r["message"]]
    assert jwks and jwks[0]["request_id"] == request_id and jwks[0]["level"] == "WARNING"
    assert any(r["logger"] == "gunicorn.access" for r in records)
    assert "SECRETCODE" not in "\n".join(server.lines) and "SECRETSTATE" not in "\n".join(server.lines)
