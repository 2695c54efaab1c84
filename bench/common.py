"""Shared pieces of the benchmarks: a loopback Auth0 stand-in, the service environment, databases,
gunicorn on a free port, the bounded load generator (run in its own process), percentiles, RSS."""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
AUDIENCE = "https://connector.bench/api"
APP_ORIGIN = "http://localhost:3000"
RETURN_URL = f"{APP_ORIGIN}/settings/integrations"
BENCH_KEY = "bench:" + base64.b64encode(b"b" * 32).decode()
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# BENCH_PG_DATABASE: another name, so that runs sharing one server do not drop each other's database.
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", "connector_bench")
if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", PG_DATABASE):
    raise SystemExit(f"BENCH_PG_DATABASE: {PG_DATABASE!r} is not a plain lower-case identifier")
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"
# Same gunicorn configuration for the service and for every baseline app.
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Issuer:
    """An RS256 Auth0 stand-in on a loopback port: discovery + JWKS over HTTP, tokens signed here."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "bench-1", "alg": "RS256", "use": "sig"})
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _app(self, environ, start_response):
        path = Request(environ).path
        if path == "/.well-known/openid-configuration":
            body = {"issuer": self.url, "jwks_uri": self.url + ".well-known/jwks.json"}
        elif path == "/.well-known/jwks.json":
            body = KeySet([self.key]).as_dict(private=False)
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def token(self, sub: str, **claims) -> str:
        now = int(time.time())
        payload = {"iss": self.url, "aud": [AUDIENCE], "sub": sub, "iat": now, "exp": now + 7200,
                   "scope": "openid profile", **claims}
        return jwt.encode({"alg": "RS256", "kid": "bench-1"}, payload, self.key)

    def m2m_token(self) -> str:
        return self.token("bench-job@clients", gty="client-credentials", scope="read:tokens read:connections",
                          azp="bench-job")

    def close(self) -> None:
        self._server.shutdown()


def service_env(issuer: Issuer, database_url: str, providers_file: Path, *, base_url: str = "http://127.0.0.1:5000",
                **extra: str) -> dict[str, str]:
    """The connector's whole configuration, as environment variables (nothing else is read)."""
    from tests.stub_provider import CLIENT_ID, CLIENT_SECRET

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update({
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-" + "x" * 32,
        "PUBLIC_BASE_URL": base_url,
        "AUTH0_ISSUER": issuer.url,
        "AUTH0_AUDIENCE": AUDIENCE,
        "TOKEN_ENCRYPTION_KEYS": BENCH_KEY,
        "CONNECT_ALLOWED_RETURN_URLS": RETURN_URL,
        "CONNECTOR_PROVIDERS_FILE": str(providers_file),
        "STUB_CLIENT_ID": CLIENT_ID,
        "STUB_CLIENT_SECRET": CLIENT_SECRET,
        "PROVIDER_CONNECT_TIMEOUT": "1",
        "PROVIDER_READ_TIMEOUT": "5",
        "PYTHONPATH": str(ROOT),
    })
    env.update(extra)
    return env


def write_providers_file(path: Path, entry: dict) -> Path:
    lines = ["[stub]"] + [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- databases ---------------------------------------------------------------------------------

def recreate_pg_database() -> None:
    """Drop and create ``PG_DATABASE`` (only ours: never the test suites' database)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")


def pg_version() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            return conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
    except psycopg.Error:
        return "unavailable"


def migrate(env: dict[str, str]) -> None:
    """The schema as operators make it: ``flask --app wsgi db upgrade``."""
    subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,  # noqa: S603
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)


# --- gunicorn ----------------------------------------------------------------------------------

@dataclass
class Gunicorn:
    target: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return [str(VENV_BIN / "gunicorn"), "--workers", str(GUNICORN_WORKERS), "--threads", str(GUNICORN_THREADS),
                "--worker-class", "gthread", "--bind", f"127.0.0.1:{self.port}", "--timeout", "30",
                "--graceful-timeout", "5", "--log-level", "warning", "--no-control-socket", self.target]

    def start(self, log_dir: Path, health_path: str = "/healthz") -> Gunicorn:
        self.log_path = log_dir / f"gunicorn-{self.target.replace(':', '_')}-{self.port}.log"
        log = open(self.log_path, "w", encoding="utf-8")  # the child keeps its own descriptor
        self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env,  # noqa: S603 (our own gunicorn)
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {self.target} exited:\n{self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + health_path, timeout=2).status_code == 200 and len(self.workers()) == \
                        GUNICORN_WORKERS:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn {self.target} did not become healthy")
            time.sleep(0.1)

    def workers(self) -> list[int]:
        try:
            raw = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in raw.split()]

    def warm(self, path: str, **kwargs) -> None:
        """Touch every worker (JWKS fetch, first DB connection) before measuring."""
        with requests.Session() as session:
            for _ in range(GUNICORN_WORKERS * GUNICORN_THREADS * 3):
                session.post(self.url + path, timeout=10, allow_redirects=False, **kwargs)

    def worker_rss_mb(self) -> float:
        """The largest VmRSS among the workers, in MB."""
        return max((rss_mb(pid) for pid in self.workers()), default=float("nan"))

    def cpu_seconds(self) -> float:
        """User + system CPU time of all workers so far (from /proc/<pid>/stat)."""
        return sum(cpu_seconds(pid) for pid in self.workers())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- load --------------------------------------------------------------------------------------

def run_load(url: str, *, duration: float, max_requests: int, threads: int, expect: int,
             headers: dict[str, str] | None = None, body: str = "", method: str = "POST",
             requests: list[tuple[str, dict[str, str]]] | None = None) -> dict:
    """POST (or ``method``) ``url`` from a separate process (bench/load.py) for ``duration`` s or
    ``max_requests``. With ``requests`` (path with query, extra headers), each request is sent once, in
    order, to ``url``'s host (a single-use callback per request); the run stops when they are used up."""
    spec = {"url": url, "duration": duration, "max_requests": max_requests, "threads": threads, "expect": expect,
            "headers": headers or {}, "body": body, "method": method,
            "requests": [list(r) for r in requests] if requests else None}
    out = subprocess.run([PYTHON, "-m", "bench.load"], cwd=ROOT, input=json.dumps(spec),  # noqa: S603
                         capture_output=True, text=True, check=True, timeout=duration + 60)
    return json.loads(out.stdout)


def load_table(ours: dict, base: dict) -> str:
    """Markdown rows comparing two load results."""
    rows = ["| | req/s | p50 ms | p99 ms | requests | errors | server CPU ms/request | load generator CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, r in (("service", ours), ("baseline", base)):
        rows.append(f"| {label} | {fmt(r['req_per_s'])} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} "
                    f"| {r['requests']} | {r['errors']} | {fmt(r.get('server_cpu_ms'), 2)} "
                    f"| {r['client_cpu_s'] / r['seconds']:.0%} of a core |")
    return "\n".join(rows)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# --- results -----------------------------------------------------------------------------------

@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline or self.value != self.value:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict:
        return {"section": self.section, "name": self.name, "value": self.value, "unit": self.unit,
                "baseline": self.baseline, "baseline_name": self.baseline_name, "ratio": self.ratio,
                "goal": self.goal, "met": self.met}


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if value != value:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if digits else f"{value:.0f}"


def figures_table(figures: list[Figure]) -> str:
    rows = ["| benchmark | figure | ours | baseline (same run) | ratio | goal | met |",
            "|---|---|---:|---|---:|---|:---:|"]
    for f in figures:
        digits = 0 if f.unit == "calls" else 2
        baseline = f"{fmt(f.baseline, digits)} {f.unit} — {f.baseline_name}" if f.baseline is not None else "—"
        ratio = f"{f.ratio * 100:.0f} %" if f.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[f.met]
        rows.append(f"| {f.section} | {f.name} | {fmt(f.value, digits)} {f.unit} | {baseline} | {ratio} "
                    f"| {f.goal or '—'} "
                    f"| {met} |")
    return "\n".join(rows)


def http_figures(bench: str, db: str, ours: dict, base: dict, baseline: str, goal: float) -> tuple[float, list]:
    """The ratio of req/s to the baseline's, and the three figures every HTTP comparison reports."""
    ratio = ours["req_per_s"] / base["req_per_s"] if base["req_per_s"] else 0.0
    return ratio, [
        Figure(bench, f"req/s, {db}", ours["req_per_s"], "req/s", base["req_per_s"], baseline,
               f"≥ {goal:.0%} of baseline", ratio >= goal and ours["errors"] == 0),
        Figure(bench, f"p50 latency, {db}", ours["p50_ms"], "ms", base["p50_ms"], baseline, higher_is_better=False),
        Figure(bench, f"worker CPU per request, {db}", ours["server_cpu_ms"], "ms", base["server_cpu_ms"], baseline,
               higher_is_better=False),
    ]
