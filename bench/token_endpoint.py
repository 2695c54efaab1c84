"""Benchmark 1: a token for a job.

HTTP: ``POST /api/users/{id}/connections/stub/token`` with an M2M token and a fresh cached access token,
vs the bare app's ``POST /verify`` (the same JWT, the same ``app.identity`` verifier, a JSON answer) on
the same gunicorn configuration. In-process: ``get_access_token`` on a cached token, one thread, vs a
bare ``SELECT`` of the row by primary key through the same SQLAlchemy session."""
from __future__ import annotations

import time
from urllib.parse import quote

from .common import Figure, fmt, http_figures, load_table

USER = "auth0|bench-token"
HTTP_GOAL = 0.60
INPROCESS_GOAL = 5000.0


def http(ctx) -> None:
    ctx.seed(ctx.primary_db, USER, expires_in=7200)
    service, bare = ctx.service(), ctx.baseline()
    headers = {"Authorization": f"Bearer {ctx.issuer.m2m_token()}"}
    path = f"/api/users/{quote(USER, safe='')}/connections/stub/token"
    service.warm(path, headers=headers)
    bare.warm("/verify", headers=headers)
    ours, base = ctx.compare((service, service.url + path, {"expect": 200, "headers": headers}),
                             (bare, bare.url + "/verify", {"expect": 200, "headers": headers}))
    ctx.rss["service after token load"] = service.worker_rss_mb()
    ctx.rss["bare app after verify load"] = bare.worker_rss_mb()
    ratio, figures = http_figures("1 token (HTTP)", ctx.primary_db, ours, base, "JWT verify only", HTTP_GOAL)
    ctx.add(*figures)
    ctx.section(f"""## 1. Token for a job (HTTP, {ctx.primary_db})

`POST /api/users/{{id}}/connections/stub/token`, M2M token, cached fresh access token (no refresh), vs the bare
app's `POST /verify` (same JWT, same `app.identity.AccessTokenVerifier`, JSON answer).

{load_table(ours, base)}

Ratio: **{ratio:.0%}** (goal ≥ {HTTP_GOAL:.0%}).""")


def _rate(fn, seconds: float) -> tuple[float, float, int]:
    """(calls per wall second, calls per CPU second, calls) of ``fn`` in a tight loop."""
    for _ in range(20):
        fn()
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    end = wall0 + seconds
    while True:
        fn()
        calls += 1
        if calls % 50 == 0 and time.perf_counter() >= end:
            break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return calls / wall, calls / cpu if cpu else float("nan"), calls


def inprocess(ctx, db_name: str) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Connection
    from app.vault import get_access_token

    user = f"{USER}-inproc"
    ctx.seed(db_name, user, expires_in=7200)
    app = ctx.app(db_name)
    with app.app_context():
        row_id = db.session.scalar(select(Connection.id).where(Connection.user_id == user))

        def ours() -> None:
            get_access_token(user, "stub")

        def bare() -> None:
            db.session.expire_all()  # as the vault does: read the row as it is now
            db.session.scalar(select(Connection).where(Connection.id == row_id))

        seconds = ctx.settings.inprocess_seconds
        ours_wall, ours_cpu, ours_n = _rate(ours, seconds)
        base_wall, base_cpu, base_n = _rate(bare, seconds)
        db.session.remove()
    ctx.add(Figure("1 token (in-process)", f"get_access_token calls/s, {db_name}", ours_wall, "calls/s", base_wall,
                   "SELECT row by PK", f"≥ {INPROCESS_GOAL:,.0f}/s", ours_wall >= INPROCESS_GOAL))
    ctx.section(f"""### 1b. `get_access_token` in-process, cached token ({db_name}, one thread)

| | calls/s (wall) | calls per CPU-second | calls |
|---|---:|---:|---:|
| `get_access_token(user, "stub")` | {fmt(ours_wall)} | {fmt(ours_cpu)} | {ours_n} |
| baseline: `expire_all()` + `SELECT` by primary key, same session | {fmt(base_wall)} | {fmt(base_cpu)} | {base_n} |

Ratio {ours_wall / base_wall:.0%}; per call {1e6 / ours_wall:.0f} µs vs {1e6 / base_wall:.0f} µs: the difference is
the vault's own work (lookup by user+provider instead of PK, status checks, AES-GCM decrypt, result object).""")


def run(ctx) -> None:
    http(ctx)
    for db_name in ctx.databases:
        inprocess(ctx, db_name)
