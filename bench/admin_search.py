"""The admin console's user search at a realistic size: EXPLAIN ANALYZE and timings on PostgreSQL.

    .venv/bin/python -m bench.admin_search [--rows 1000000] [--reps 30] [--keep]

Loads ``--rows`` connections (default a million; ids like ``auth0|…``, ``google-oauth2|…``,
``samlp|Acme|…`` in mixed case) into a schema of its own (``bench_admin_search``) in the
database of ``BENCH_DATABASE_URL`` (default: the local ``h7`` database), migrated by this
repository's Alembic migrations, then runs ``app.admin.queries.search_connections`` for
prefixes from "matches one user" to "matches a third of the table" (first and later pages), and
prints for each the plan PostgreSQL chose (EXPLAIN ANALYZE of the exact SQL and parameters the app sent) and the
p50/p95 of the whole call. The schema is dropped at the end unless ``--keep``.

A script, not a test: figures depend on the machine; the plan is what must hold (an index
range of the (lower(user_id), id) index read in order: no sort, no sequential scan).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from urllib.parse import quote

SCHEMA = "bench_admin_search"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/h7"
PREFIXES = [
    ("one user, exact id", "auth0|User0000777"),
    ("one user, typed in lower case", "auth0|user0000777"),
    ("10 users, typed in upper case", "AUTH0|USER000077"),
    ("1,000 users", "auth0|user0007"),
    ("100,000 users (a tenth of the table)", "auth0|user01"),
    ("a third of the table", "google-oauth2|"),
    ("nothing matches", "alice"),
    ("LIKE wildcards are literal", "auth0|user_%"),
]


def _url(base: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={SCHEMA}')}"


def _load(conn, rows: int) -> float:
    t0 = time.monotonic()
    # The search index as migration 0006 made it, dropped for the load and rebuilt from its own definition.
    definition = conn.exec_driver_sql(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_connections_user_id_lower'").scalar_one()
    conn.exec_driver_sql("DROP INDEX ix_connections_user_id_lower")
    conn.exec_driver_sql("""
        INSERT INTO connections (id, user_id, provider, status, external_account_id, scopes, token_type,
            access_token_enc, refresh_token_enc, key_id, connected_at, failure_count, created_at, updated_at)
        SELECT md5('c' || i),
               CASE i %% 3 WHEN 0 THEN 'auth0|User' || lpad((i / 3)::text, 7, '0')
                          WHEN 1 THEN 'google-oauth2|' || (100000000000000000000 + i)::text
                          ELSE 'samlp|Acme|' || md5('u' || i) END,
               (ARRAY['github','google','spotify'])[i %% 3 + 1],
               CASE WHEN i %% 50 = 0 THEN 'needs_reauth' WHEN i %% 97 = 0 THEN 'revoked' ELSE 'active' END,
               'ext-' || i, 'read', 'Bearer', 'bench.a', 'bench.r', 'bench',
               ts, 0, ts, ts
        FROM generate_series(1, %(rows)s) AS i,
             LATERAL (SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => i) AS ts) AS t
    """, {"rows": int(rows)})
    conn.exec_driver_sql(definition.replace("%", "%%"))
    conn.commit()
    conn.exec_driver_sql("ANALYZE connections")
    conn.commit()
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the schema (and its rows) afterwards")
    args = parser.parse_args(argv)

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, event, text

    from app import create_app
    from app.admin.queries import ConnectionQuery, search_connections
    from app.extensions import db
    from tests.conftest import base_env

    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    admin = create_engine(base)
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
        conn.commit()
    app = create_app(test_config={"SQLALCHEMY_DATABASE_URI": _url(base)}, env=base_env())
    try:
        with app.app_context():
            upgrade(directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"))
            with db.engine.connect() as conn:
                loaded = _load(conn, args.rows)
            version = db.session.scalar(text("SHOW server_version"))
            print(f"PostgreSQL {version}; {args.rows:,} connections loaded and analyzed in {loaded:.1f} s;"
                  f" {args.reps} calls per prefix after 3 warm-ups\n")
            print("index:", db.session.scalar(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_connections_user_id_lower'")))
            print("\n| prefix | matches (first page) | plan | p50 ms | p95 ms |\n|---|---:|---|---:|---:|")
            plans = []
            cases = [(label, prefix, None) for label, prefix in PREFIXES]
            for label, prefix in (("a tenth, page 2 (keyset)", "auth0|user01"), ("a third, page 2", "google-oauth2|")):
                first = search_connections(ConnectionQuery(user_id=prefix))
                db.session.rollback()
                cases.append((label, prefix, first.next_cursor))
            for label, prefix, after in cases:
                sent: list = []

                def grab(conn, cursor, statement, parameters, context, executemany, sent=sent) -> None:
                    sent.append((statement, parameters))

                event.listen(db.engine, "before_cursor_execute", grab)
                try:
                    page = search_connections(ConnectionQuery(user_id=prefix), after=after)
                finally:
                    event.remove(db.engine, "before_cursor_execute", grab)
                db.session.rollback()
                samples = []
                for i in range(args.reps + 3):
                    t0 = time.perf_counter()
                    search_connections(ConnectionQuery(user_id=prefix), after=after)
                    if i >= 3:
                        samples.append((time.perf_counter() - t0) * 1000)
                    db.session.rollback()
                    db.session.expunge_all()
                sql, params = sent[-1]
                plan = [r[0] for r in db.session.connection().exec_driver_sql("EXPLAIN ANALYZE " + sql, params)]
                db.session.rollback()
                scans = [line.strip() for line in plan if "Scan" in line]
                assert not any("Seq Scan" in line for line in scans) and not any("Sort" in line for line in plan), plan
                short = "; ".join(s.split("  (")[0].removeprefix("->  ") for s in scans)
                p95 = statistics.quantiles(samples, n=20)[-1]
                print(f"| {label}: `{prefix}` | {len(page.items)}{'+' if page.next_cursor else ''} | {short} "
                      f"| {statistics.median(samples):.2f} | {p95:.2f} |")
                where = sql[sql.index("WHERE"):].replace("\n", " ")
                plans.append(f"-- {label}: {prefix!r}\n{where % {k: repr(v) for k, v in params.items()}}\n"
                             + "\n".join(plan))
            print("\n" + "\n\n".join(plans))
            db.session.remove()
            db.engine.dispose()
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
                conn.commit()
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
