"""Benchmark 7: ``GET /connect/callback/stub`` — the whole callback of a connect (open the sealed state
and cookie, record the attempt as used, exchange the code at a provider that answers at once, store the
encrypted connection, its audit row and event) — vs the bare app's ``GET /redirect`` (a 303 and nothing
else) sent the same query and cookie, on every database of the run, plus a short in-process profile.

Each callback needs an attempt of its own (single use): they are made beforehand with the service's own
code and key (``start_connect``), one user each, and each load run sends each one once. The provider is
``bench/fast_stub.py`` (any code gets a token pair at once), served from this process. A callback that
answers 303 but not ``connected`` would count as done in req/s, so the run also counts the connections
that were stored."""
from __future__ import annotations

import itertools
import logging
from urllib.parse import parse_qs, urlsplit

from .common import RETURN_URL, Figure, Gunicorn, fmt, free_port, load_table

PATH = "/connect/callback/stub"
_runs = itertools.count()


def _maker(ctx, db: str, env: dict[str, str]):
    """A function making ``n`` fresh attempts: (path with query, headers with the binding cookie)."""
    from app import create_app
    from app.connect.flow import start_connect
    from app.identity import Principal

    app = create_app(env=env)  # the service's configuration: same key, same cookie names
    rt = app.extensions["connector"]
    spec = rt.registry.get("stub")

    def make(n: int) -> list[tuple[str, dict[str, str]]]:
        run = next(_runs)
        made = []
        with app.app_context():
            for i in range(n):
                principal = Principal(sub=f"auth0|bench-callback-{run}-{i}", is_machine=False)
                started = start_connect(rt.connect, principal, spec, RETURN_URL)
                state = parse_qs(urlsplit(started.authorize_url).query)["state"][0]
                made.append((f"{PATH}?code=bench-code-{run}-{i}&state={state}",
                             {"Cookie": f"{started.cookie_name}={started.cookie_value}"}))
        return made

    return make


def _connected(ctx, db: str, prefix: str = "auth0|bench-callback-") -> int:
    from sqlalchemy import func, select

    from app.extensions import db as sqla
    from app.models import Connection

    app = ctx.app(db)
    with app.app_context():
        count = sqla.session.scalar(select(func.count()).select_from(Connection)
                                    .where(Connection.user_id.like(prefix + "%"), Connection.status == "active"))
        sqla.session.remove()
    return count


def _profile(env: dict[str, str], make, n: int) -> str:
    from app import create_app

    from .profiling import _profile as profile

    app = create_app(env=env)
    client = app.test_client(use_cookies=False)
    audit = logging.getLogger("app.audit")
    level = audit.level
    audit.setLevel(logging.WARNING)  # one INFO line per connect: not what is measured
    attempts = iter(make(n + 5))

    def callback() -> None:
        path, headers = next(attempts)
        response = client.get(path, headers=headers)
        assert response.status_code == 303 and "connector_status=connected" in response.headers["Location"]

    try:
        return profile(f"GET {PATH} (in-process, fast stub provider)", callback, n)
    finally:
        from app.extensions import db as sqla

        audit.setLevel(level)
        with app.app_context():
            sqla.engine.dispose()


def run(ctx) -> None:
    from .fast_stub import FastStub

    s = ctx.settings
    per_run = 150 if s.smoke else min(s.max_requests, 3000)
    bare = ctx.baseline()
    fast = FastStub()
    try:
        for db in ctx.databases:
            ctx.ensure_schema(db)
            port = free_port()
            env = ctx.env(db, provider=fast, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
            service = Gunicorn("wsgi:app", env, port).start(ctx.workdir)
            ctx._servers[f"callback-{db}"] = service  # stopped with the others, whatever happens
            make = _maker(ctx, db, env)
            ctx.load(service.url + PATH, expect=303, method="GET", requests=make(48))  # warm every worker
            before, calls_before = _connected(ctx, db), fast.calls
            ours = base = None
            sent = 0
            for _ in range(s.reps):
                attempts = make(per_run)
                a = ctx.load_on(service, service.url + PATH, expect=303, method="GET", requests=attempts)
                b = ctx.load_on(bare, bare.url + "/redirect", expect=303, method="GET",
                                requests=[("/redirect?" + path.partition("?")[2], headers)
                                          for path, headers in attempts])
                sent += a["requests"]
                ours = a if ours is None or a["req_per_s"] > ours["req_per_s"] else ours
                base = b if base is None or b["req_per_s"] > base["req_per_s"] else base
            connected = _connected(ctx, db) - before
            exchanges = fast.calls - calls_before
            ratio = ours["req_per_s"] / base["req_per_s"] if base["req_per_s"] else 0.0
            ctx.add(
                Figure("7 callback", f"req/s, {db}", ours["req_per_s"], "req/s", base["req_per_s"], "bare Flask 303",
                       "measured", None),
                Figure("7 callback", f"p50 latency, {db}", ours["p50_ms"], "ms", base["p50_ms"], "bare Flask 303",
                       higher_is_better=False),
                Figure("7 callback", f"worker CPU per request, {db}", ours["server_cpu_ms"], "ms",
                       base["server_cpu_ms"], "bare Flask 303", higher_is_better=False),
                Figure("7 callback", f"connections stored of callbacks sent, {db}", connected, "calls", sent,
                       "callbacks sent", "all", connected == sent),
            )
            profile = _profile(env, make, max(10, s.profile_requests // 3)) if db == ctx.primary_db else ""
            service.stop()
            ctx._servers.pop(f"callback-{db}", None)
            ctx.section(f"""## 7. Connect callback (HTTP, {db})

`GET {PATH}?code&state` with the attempt's binding cookie: open the sealed state and cookie, check the
attempt is unused (`SELECT`), record it used (unique `INSERT`, commit), exchange the code at a provider
that answers at once (`bench/fast_stub.py`, in the bench process: its CPU is not the worker's), store the
encrypted connection with its audit row and event (commit), answer 303 to the app. Baseline: a bare Flask
endpoint answering 303 to the same query and cookie. {per_run} fresh attempts per measurement (one user
each), best of {s.reps}.

{load_table(ours, base)}

Ratio: **{ratio:.0%}** of the bare 303 (no goal: measured and reported). Connections stored: {connected}
of {sent} callbacks sent; code exchanges at the provider: {exchanges}; worker CPU per callback
{fmt(ours['server_cpu_ms'], 2)} ms.

{profile}""")
    finally:
        fast.close()
