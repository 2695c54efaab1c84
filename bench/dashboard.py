"""The admin dashboard at scale (PostgreSQL): plans and timings of every query it makes.

    .venv/bin/python -m bench.dashboard --database-url postgresql+psycopg://postgres@127.0.0.1:5432/connector_dash \
        [--connections 1000000] [--audit 10000000] [--pending 17000] [--reps 30]

The database named in the URL is DROPPED and recreated (it must not be ``test`` or a database you
care about). Loads, with generate_series: ``--connections`` connections over 5 providers and 3
statuses; ``--audit`` audit events over 30 days (the dashboard must not read them: they are there to
show it does not); a fully populated refresh rollup for the last 7 days (every hour × provider ×
outcome × duration bucket: the worst case, about 6,300 rows whatever the traffic); ``--pending``
refresh observations not rolled up yet (a minute of refreshes at 1M connections with hourly tokens
is about 17,000). Then prints each query's EXPLAIN ANALYZE and its p50/p95 over ``--reps`` runs, the
whole page rendered in-process, and one ``rollup_refresh_stats`` over the pending rows.
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

PROVIDERS = ("github", "google", "spotify", "slack", "atlassian")


def _recreate(url: str) -> None:
    from sqlalchemy import create_engine, text

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if name in ("", "test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing to drop database {name!r}: name a database of its own")
    admin = create_engine(urlunsplit(parts._replace(path="/postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


PENDING_SQL = """
    INSERT INTO refresh_observations (at, provider, outcome, duration_ms)
    SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => i % 60), (CAST(:providers AS text[]))[i % 5 + 1],
           (ARRAY['ok','ok','ok','unavailable'])[i % 4 + 1], 20 + (i * 37) % 3000
    FROM generate_series(1, :n) AS i"""


def _fresh_pending(db, pending: int) -> None:
    """Replace the pending observations by ``pending`` new ones made in the last minute."""
    from sqlalchemy import text

    db.session.execute(text("DELETE FROM refresh_observations"))
    db.session.execute(text(PENDING_SQL), {"providers": list(PROVIDERS), "n": pending})
    db.session.commit()


def _load(db, connections: int, audit: int, pending: int) -> dict[str, float]:
    from sqlalchemy import text

    from app.refresh_stats import BOUNDS_MS, UNBOUNDED

    timings = {}
    conn = db.session.connection()
    indexes = [r for r in conn.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes i WHERE tablename IN ('connections', 'audit_events') "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"))]
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{name}"'))
    db.session.commit()
    steps = [
        ("connections", """
            INSERT INTO connections (id, user_id, provider, status, external_account_id, scopes, token_type,
                access_token_enc, refresh_token_enc, key_id, access_token_expires_at, connected_at,
                failure_count, created_at, updated_at)
            SELECT md5('c' || i), 'auth0|u' || (i / 5), (CAST(:providers AS text[]))[i % 5 + 1],
                CASE WHEN i % 50 = 0 THEN 'needs_reauth' WHEN i % 97 = 0 THEN 'revoked' ELSE 'active' END,
                'ext-' || i, 'read', 'Bearer', 'bench.' || md5('a' || i), 'bench.' || md5('r' || i), 'bench',
                now() AT TIME ZONE 'utc' + make_interval(secs => i % 3600), ts, 0, ts, ts
            FROM generate_series(1, :n) AS i,
                 LATERAL (SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => i) AS ts) AS t"""),
        ("audit_events", """
            INSERT INTO audit_events (at, actor_type, actor_id, action, user_id, provider, outcome, detail)
            SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => i::float8 * 30 * 86400 / :n),
                'system', NULL, (ARRAY['refresh','connect','revoke','refresh'])[i % 4 + 1], 'auth0|u' || (i % 200000),
                (CAST(:providers AS text[]))[i % 5 + 1], (ARRAY['unavailable','ok','ok','needs_reauth'])[i % 4 + 1],
                CAST('{"error": "provider_unavailable"}' AS json)
            FROM generate_series(1, :n) AS i"""),
        ("refresh_rollups (7 days, every combination)", """
            INSERT INTO refresh_rollups (hour, provider, outcome, le_ms, count)
            SELECT date_trunc('hour', now() AT TIME ZONE 'utc') - make_interval(hours => h), p, o, b,
                   1 + (h * 7 + length(p) * 13 + length(o) * 17 + b::bigint) % 400
            FROM generate_series(0, 24 * 7) AS h, unnest(CAST(:providers AS text[])) AS p,
                 unnest(ARRAY['ok','unavailable','needs_reauth','failed']) AS o,
                 unnest(CAST(:bounds AS int[])) AS b"""),
        ("refresh_observations (pending)", PENDING_SQL),
    ]
    sizes = {"connections": connections, "audit_events": max(audit, 1), "refresh_observations (pending)": pending}
    for label, sql in steps:
        t0 = time.monotonic()
        conn = db.session.connection()
        params = {"providers": list(PROVIDERS), "bounds": [*BOUNDS_MS, UNBOUNDED], "n": sizes.get(label, 0)}
        conn.execute(text(sql).bindparams(**{k: v for k, v in params.items() if f":{k}" in sql}))
        db.session.commit()
        timings[f"load {label}"] = time.monotonic() - t0
    t0 = time.monotonic()
    conn = db.session.connection()
    for _, definition in indexes:
        conn.execute(text(definition))
    db.session.commit()
    timings["rebuild indexes"] = time.monotonic() - t0
    t0 = time.monotonic()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as raw:
        raw.execute(text("VACUUM ANALYZE"))
    timings["VACUUM ANALYZE"] = time.monotonic() - t0
    return timings


def _timed(fn, reps: int) -> tuple[float, float]:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]


def _plans(db, fn) -> list[str]:
    """EXPLAIN ANALYZE of every statement ``fn`` sends."""
    from sqlalchemy import event

    sent: list[tuple] = []

    def grab(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
        db.session.rollback()
    lines = []
    for statement, parameters in sent:
        lines.append("    " + " ".join(statement.split())[:200])
        plan = db.session.connection().exec_driver_sql("EXPLAIN ANALYZE " + statement, parameters)
        lines.extend("      " + row[0] for row in plan)
        db.session.rollback()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--connections", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=10_000_000)
    parser.add_argument("--pending", type=int, default=17_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the database as a previous run loaded it")
    args = parser.parse_args(argv)

    from sqlalchemy import func, select, text

    from app import clock, create_app
    from app.admin import dashboard
    from app.extensions import db
    from app.models import Connection
    from app.refresh_stats import count_connections, refresh_window, rollup_refresh_stats
    from tests.conftest import base_env

    if not args.reuse:
        _recreate(args.database_url)
    app = create_app(test_config={"TESTING": True, "SQLALCHEMY_DATABASE_URI": args.database_url}, env=base_env())
    with app.app_context():
        print(f"# Dashboard at scale: {args.connections:,} connections, {args.audit:,} audit events, "
              f"{args.pending:,} pending refresh observations\n")
        if args.reuse:
            db.create_all()  # tables added since the load
            _fresh_pending(db, args.pending)
            sizes = db.session.execute(text(
                "SELECT (SELECT count(*) FROM connections), (SELECT count(*) FROM audit_events), "
                "(SELECT count(*) FROM refresh_rollups), (SELECT count(*) FROM refresh_observations)")).one()
            print("reusing: {:,} connections, {:,} audit events, {:,} rollup rows, {:,} pending".format(*sizes))
        else:
            db.create_all()
            for label, seconds in _load(db, args.connections, args.audit, args.pending).items():
                print(f"{label}: {seconds:.1f} s")
        t0 = time.perf_counter()
        count_connections(clock.now())
        print(f"\ncount_connections (the worker's job, every 5 minutes): {(time.perf_counter() - t0) * 1000:.0f} ms")
        now = clock.now()
        cases = [
            ("connection counts (the worker's count)", dashboard.connection_counts),
            ("refresh window, 24 h by hour (rollup + pending)",
             lambda: refresh_window(now, timedelta(hours=24), timedelta(hours=1))),
            ("refresh window, 7 days by 6 h (rollup + pending)",
             lambda: refresh_window(now, timedelta(days=7), timedelta(hours=6))),
            ("webhook backlog (no events table)", dashboard.webhook_backlog),
            ("expiring refresh tokens (not tracked)", dashboard.expiring_refresh_tokens),
        ]

        def page() -> None:
            with app.test_request_context("/admin/?window=7d"):
                body, status = dashboard.index()
                assert status == 200 and "svg" in body

        print("\n| query | p50 ms | p95 ms |\n|---|---:|---:|")
        results = []
        for label, fn in cases + [("whole page rendered in-process (window=7d)", page)]:
            p50, p95 = _timed(lambda fn=fn: (fn(), db.session.rollback()), args.reps)
            results.append(f"| {label} | {p50:.1f} | {p95:.1f} |")
            print(results[-1])
        print("\n## Plans\n")
        for label, fn in cases[:3] + [("count_connections", lambda: db.session.execute(
                select(Connection.provider, Connection.status, func.count())
                .group_by(Connection.provider, Connection.status)).all())]:
            print(f"- {label}")
            print("\n".join(_plans(db, fn)))
        t0 = time.perf_counter()
        folded = rollup_refresh_stats(clock.now())
        print(f"\nrollup_refresh_stats: folded {folded:,} observations in {(time.perf_counter() - t0) * 1000:.0f} ms")
        db.session.remove()
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
