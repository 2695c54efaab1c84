"""Benchmark 4: resident memory (VmRSS) of one gunicorn worker after the loads of benchmarks 1 and 2,
vs the bare app's worker after the same loads. Runs those loads first when they were not selected."""
from __future__ import annotations

from .common import Figure, fmt

GOAL_MB = 100.0


def run(ctx) -> None:
    if "service after token load" not in ctx.rss:
        from . import token_endpoint

        token_endpoint.http(ctx)
    if "service after connect load" not in ctx.rss:
        from . import connect_start

        connect_start.run(ctx)
    pairs = [(f"after token load ({db})", f"service after token load ({db})", "bare app after verify load")
             for db in ctx.databases if f"service after token load ({db})" in ctx.rss]
    pairs.append(("after connect-start load", "service after connect load", "bare app after redirect load"))
    rows = []
    for label, ours_key, base_key in pairs:
        ours, base = ctx.rss[ours_key], ctx.rss[base_key]
        ctx.add(Figure("4 memory", f"worker RSS {label}", ours, "MB", base, "bare app's worker",
                       f"≤ {GOAL_MB:.0f} MB", ours <= GOAL_MB, higher_is_better=False))
        ctx.ratio(f"worker RSS {label}", "—", f"{ours:.0f} MB", f"≤ {GOAL_MB:.0f} MB", ours <= GOAL_MB)
        rows.append(f"| {label} | {fmt(ours)} | {fmt(base)} |")
    ctx.section(f"""## 4. Memory

VmRSS (from `/proc/<pid>/status`) of the largest gunicorn worker right after each load, in MB.

| | service worker | bare app worker |
|---|---:|---:|
{chr(10).join(rows)}

Goal ≤ {GOAL_MB:.0f} MB per worker. Both include the interpreter, Flask, SQLAlchemy, joserfc and cryptography;
the service adds its blueprints, Authlib, pydantic with the validated provider catalog, and a database pool
(psycopg on PostgreSQL). Neither imports Alembic: `flask db` does (README, "Worker memory").""")
