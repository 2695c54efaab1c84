"""Orchestration: ``python -m bench [--smoke] [--only NAME ...] [--out FILE] [--json FILE]``.

One run shares an issuer, a stub provider, migrated databases and lazily started gunicorns; each
benchmark module adds figures and a markdown section; the report goes to ``--out``."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import common
from .common import Figure, Gunicorn, Issuer

MODULES = {"token": "token_endpoint", "connect": "connect_start", "callback": "callback",
           "singleflight": "singleflight", "sweep": "sweep", "memory": "memory", "profile": "profiling",
           "scale": "scale"}
BENCHMARKS = tuple(MODULES)


@dataclass
class Settings:
    smoke: bool
    duration: float  # seconds of HTTP load per measurement
    max_requests: int  # cap per measurement
    threads: int  # load-generator threads (keep-alive connections)
    reps: int  # alternating ours/baseline measurements; the best of each is reported
    inprocess_seconds: float
    sf_processes: int
    sf_threads: int
    provider_delay: float  # the stub's answer time during the single-flight refresh
    profile_requests: int
    scale_rows: int
    scale_due: int  # due connections for refresh-due (BENCH_SCALE_DUE)
    sweep_rows: int  # due connections for the refresh-due CPU figure on every database

    @classmethod
    def make(cls, smoke: bool) -> Settings:
        if smoke:
            return cls(True, 0.7, 2000, 4, 1, 0.3, 2, 5, 0.1, 20, 0, 0, 150)
        return cls(False, 5.0, 50_000, 8, 2, 3.0, 4, 25, 0.1, 300, int(os.environ.get("BENCH_SCALE_ROWS", "1000000")),
                   int(os.environ.get("BENCH_SCALE_DUE", "30000")), 1000)


@dataclass
class Context:
    settings: Settings
    workdir: Path
    databases: dict[str, str]  # name -> SQLAlchemy URL; the first is where the HTTP benchmarks run
    issuer: Issuer
    stub: object  # tests.stub_provider.StubProvider
    figures: list[Figure] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)  # measurements one module hands to its report
    ratios: list[tuple[str, str, str, str, bool | None]] = field(default_factory=list)  # the issue's table
    _servers: dict[str, Gunicorn] = field(default_factory=dict)
    _apps: dict[str, object] = field(default_factory=dict)
    _migrated: set[str] = field(default_factory=set)

    @property
    def primary_db(self) -> str:
        return next(iter(self.databases))

    def env(self, db: str, provider: object | None = None, **extra: str) -> dict[str, str]:
        """The service's environment on ``db`` with ``provider`` (default: the stub) as provider ``stub``."""
        provider = provider or self.stub
        path = self.workdir / f"providers-{id(provider)}.toml"
        providers = common.write_providers_file(path, provider.catalog_entry())
        return common.service_env(self.issuer, self.databases[db], providers, **extra)

    def ensure_schema(self, db: str) -> None:
        if db not in self._migrated:
            common.migrate(self.env(db))
            self._migrated.add(db)

    def app(self, db: str):
        """The service's Flask app in this process, on ``db`` (for seeding and in-process figures)."""
        if db not in self._apps:
            from app import create_app

            self.ensure_schema(db)
            self._apps[db] = create_app(env=self.env(db))
        return self._apps[db]

    def seed(self, db: str, user_id: str, *, expires_in: int, access: str | None = None) -> tuple[str, str]:
        """A stored connection to the stub, as a completed connect leaves it; returns (access, refresh)."""
        from app import clock
        from app.connections import upsert_connection
        from app.extensions import db as sqla
        from app.oauth_client import TokenResponse

        issued_access, refresh = self.stub.issue()
        access = access or issued_access
        app = self.app(db)
        token = TokenResponse(access_token=access, refresh_token=refresh, token_type="Bearer",
                              expires_at=clock.now() + timedelta(seconds=expires_in), scopes=("read",))
        with app.app_context():
            upsert_connection(user_id, "stub", token, app.extensions["connector"].keyring, "ext-1")
            sqla.session.commit()
            sqla.session.remove()
        return access, refresh

    def service(self, db: str | None = None) -> Gunicorn:
        """The service under gunicorn on ``db`` (default: the run's first database)."""
        db = db or self.primary_db
        key = f"service-{db}"
        if key not in self._servers:
            self.ensure_schema(db)
            port = common.free_port()
            env = self.env(db, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
            self._servers[key] = Gunicorn("wsgi:app", env, port).start(self.workdir)
        return self._servers[key]

    def baseline(self) -> Gunicorn:
        if "baseline" not in self._servers:
            env = self.env(self.primary_db)
            self._servers["baseline"] = Gunicorn("bench.baseline_app:app", env).start(self.workdir)
        return self._servers["baseline"]

    def stop_servers(self) -> None:
        for server in self._servers.values():
            server.stop()
        self._servers.clear()

    def forget_app(self, db: str) -> None:
        app = self._apps.pop(db, None)
        if app is not None:
            from app.extensions import db as sqla

            with app.app_context():
                sqla.session.remove()
                sqla.engine.dispose()
        self._migrated.discard(db)

    def load(self, url: str, *, expect: int, headers: dict[str, str] | None = None, body: str = "", **extra) -> dict:
        """``extra``: ``method``, ``requests`` (see common.run_load)."""
        s = self.settings
        return common.run_load(url, duration=s.duration, max_requests=s.max_requests, threads=s.threads,
                               expect=expect, headers=headers, body=body, **extra)

    def load_on(self, server: Gunicorn, url: str, **kwargs) -> dict:
        """``load`` plus the server's CPU time per request (all workers, /proc), which other load on a
        shared box disturbs much less than req/s."""
        cpu0 = server.cpu_seconds()
        result = self.load(url, **kwargs)
        result["server_cpu_ms"] = (server.cpu_seconds() - cpu0) * 1000 / max(result["requests"], 1)
        return result

    def compare(self, ours: tuple[Gunicorn, str, dict], base: tuple[Gunicorn, str, dict]) -> tuple[dict, dict]:
        """Alternate ours/baseline ``reps`` times (less drift from other load on the box); best of each."""
        best_ours = best_base = None
        for _ in range(self.settings.reps):
            a = self.load_on(*ours[:2], **ours[2])
            b = self.load_on(*base[:2], **base[2])
            if best_ours is None or a["req_per_s"] > best_ours["req_per_s"]:
                best_ours = a
            if best_base is None or b["req_per_s"] > best_base["req_per_s"]:
                best_base = b
        return best_ours, best_base

    def ratio(self, figure: str, db: str, value: str, goal: str, met: bool | None) -> None:
        """One row of the summary of the issue's figures (printed at the end, and in the report)."""
        self.ratios.append((figure, db, value, goal, met))

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def section(self, text: str) -> None:
        self.sections.append(text.strip() + "\n")


def _machine_facts(settings: Settings, databases: dict[str, str]) -> str:
    import flask
    import sqlalchemy

    pg = common.pg_version() if "postgresql" in databases else "not used (--databases, or smoke: SQLite only)"
    return "\n".join([
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC",
        f"- CPU: {os.cpu_count()} × {common.cpu_model()} (shared with other processes on this host)",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, Flask {flask.__version__}, SQLAlchemy {sqlalchemy.__version__}",
        f"- PostgreSQL: {pg}",
        f"- gunicorn: {common.GUNICORN_WORKERS} workers × {common.GUNICORN_THREADS} threads, gthread "
        "(the service and every baseline app alike)",
        f"- mode: {'smoke' if settings.smoke else 'full'}; HTTP load: {settings.threads} keep-alive client threads "
        f"in one separate process, {settings.duration:g} s or {settings.max_requests:,} requests per measurement, "
        f"best of {settings.reps} alternating runs",
    ])


def _ratios_table(rows: list[tuple[str, str, str, str, bool | None]]) -> str:
    lines = ["| figure | database | measured | goal | met |", "|---|---|---:|---|:---:|"]
    marks = {True: "yes", False: "**no**"}
    for figure, db, value, goal, met in rows:
        lines.append(f"| {figure} | {db} | {value} | {goal} | {marks.get(met, '—')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, SQLite only, no scale benchmark")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)")
    parser.add_argument("--out", type=Path, default=common.ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument("--databases", default=None,
                        help="comma-separated, from postgresql,sqlite (default: both; smoke: sqlite)")
    args = parser.parse_args(argv)
    settings = Settings.make(args.smoke)
    selected = [name for name in BENCHMARKS if not args.only or name in args.only]
    if settings.smoke and "scale" in selected:
        selected.remove("scale")
    started = time.monotonic()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the loopback issuer's and stub's request lines

    from tests.stub_provider import StubProvider

    with tempfile.TemporaryDirectory(prefix="connector-bench-") as tmp:
        workdir = Path(tmp)
        names = (args.databases or ("sqlite" if settings.smoke else "postgresql,sqlite")).split(",")
        unknown = set(names) - {"postgresql", "sqlite"}
        if unknown or not names:
            parser.error(f"--databases: unknown {', '.join(sorted(unknown)) or 'empty list'}")
        databases = {}
        for name in names:
            if name == "postgresql":
                common.recreate_pg_database()
                databases["postgresql"] = common.PG_URL
            else:
                databases["sqlite"] = f"sqlite:///{workdir}/bench.db"
        issuer = Issuer()
        failures: list[str] = []
        with StubProvider() as stub:
            ctx = Context(settings, workdir, databases, issuer, stub)
            try:
                for name in selected:
                    module = importlib.import_module(f"bench.{MODULES[name]}")
                    t0 = time.monotonic()
                    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
                    try:
                        module.run(ctx)
                    except Exception:  # noqa: BLE001 (one broken benchmark must not hide the others)
                        failures.append(name)
                        ctx.section(f"## {name}: FAILED\n\n```\n{traceback.format_exc()[-3000:]}\n```")
                        traceback.print_exc()
                    ctx.timings[name] = time.monotonic() - t0
                    print(f"[bench] {name} done in {ctx.timings[name]:.1f} s", file=sys.stderr, flush=True)
            finally:
                ctx.stop_servers()
                for db in list(ctx._apps):
                    ctx.forget_app(db)
                issuer.close()
        facts = _machine_facts(settings, databases)

    given = sys.argv[1:] if argv is None else argv
    command = "bench/run" + (" " + shlex.join(given) if given else "")
    elapsed = time.monotonic() - started
    timings = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in ctx.timings.items())
    report = "\n".join([
        "# Benchmark results", "",
        "Generated by `bench/run`; every baseline was measured in the same run, on the same machine. "
        "Not a CI gate (CI runs `tests/bench/test_smoke.py`, the smoke mode).", "",
        "## Machine", "", facts, "",
        "## Command", "", f"```sh\n{command}\n```", "",
        f"Whole run: {elapsed:.0f} s ({timings}).", "",
        "## Summary", "", common.figures_table(ctx.figures), "",
        "## The figures of issue 14", "", _ratios_table(ctx.ratios), "",
        *ctx.sections,
    ])
    args.out.write_text(report)
    print(_ratios_table(ctx.ratios), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"figures": [f.as_json() for f in ctx.figures], "failures": failures,
                                         "rss_mb": ctx.rss, "seconds": elapsed}, indent=2))
    print(f"[bench] wrote {args.out} in {elapsed:.0f} s", file=sys.stderr)
    return 1 if failures else 0
