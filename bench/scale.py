"""Benchmark 5 (PostgreSQL only, not in smoke mode): a million connections.

A fresh ``connector_bench`` migrated by ``flask --app wsgi db upgrade``, bulk-loaded (generate_series for
the bulk, COPY for the due rows whose tokens must really decrypt; secondary indexes dropped during the load
and rebuilt from their own definitions). Then the admin console's queries (``app.admin.queries``) in-process,
50 repetitions each, vs the same SQL as text through the same session; then ``flask connector refresh-due``
over the due rows against a fast stub: its process CPU per refresh and its wall time with 2 workers."""
from __future__ import annotations

import os
import subprocess
import threading
import time

from .common import PG_URL, ROOT, VENV_BIN, Figure, fmt, percentile, recreate_pg_database
from .fast_stub import FastStub

REPS = 50
QUERY_GOAL_MS = 50.0
REFRESH_CPU_GOAL_MS = 2.0
REFRESH_TIMEOUT = 420  # seconds, for the default 30,000 due; scaled up for larger BENCH_SCALE_DUE


def _bulk_load(rows: int, due: int, keyring) -> dict[str, float]:
    import psycopg

    from app.crypto import associated_data

    timings: dict[str, float] = {}
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.monotonic()
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'connections' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)").fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        bulk = rows - due
        conn.execute("""
            INSERT INTO connections (id, user_id, provider, status, external_account_id, scopes, token_type,
                access_token_enc, refresh_token_enc, key_id, access_token_expires_at, connected_at,
                failure_count, created_at, updated_at)
            SELECT md5('c' || i), 'auth0|u' || (i / 3), (ARRAY['github','google','spotify'])[i %% 3 + 1],
                CASE WHEN i %% 50 = 0 THEN 'needs_reauth' WHEN i %% 97 = 0 THEN 'revoked' ELSE 'active' END,
                'ext-' || i, 'read', 'Bearer', 'bench.' || md5('a' || i), 'bench.' || md5('r' || i), 'bench',
                (now() AT TIME ZONE 'utc') + interval '30 days' + make_interval(secs => i), ts, 0, ts, ts
            FROM generate_series(1, %s) AS i,
                 LATERAL (SELECT (now() AT TIME ZONE 'utc') - make_interval(secs => i) AS ts) AS t
        """, (bulk,))
        timings["generate_series insert"] = time.monotonic() - t0
        t1 = time.monotonic()
        now = conn.execute("SELECT now() AT TIME ZONE 'utc'").fetchone()[0]
        with conn.cursor().copy(
                "COPY connections (id, user_id, provider, status, scopes, token_type, access_token_enc, "
                "refresh_token_enc, key_id, access_token_expires_at, connected_at, failure_count, created_at, "
                "updated_at) FROM STDIN") as copy:
            for j in range(due):
                row_id, user = f"{j:032x}", f"auth0|due{j}"
                aad = lambda field, row_id=row_id, user=user: associated_data(  # noqa: E731
                    "connection", row_id, user, "stub", field)
                stamp = now.replace(microsecond=j % 1_000_000)
                copy.write_row((row_id, user, "stub", "active", "read", "Bearer",
                                keyring.encrypt(f"old-access-{j}", aad("access_token")),
                                keyring.encrypt(f"old-refresh-{j}", aad("refresh_token")), keyring.primary_id,
                                stamp, stamp, 0, stamp, stamp))
        timings["COPY of due rows (encrypting)"] = time.monotonic() - t1
        t2 = time.monotonic()
        for _, definition in indexes:
            conn.execute(definition)
        timings["rebuilding indexes"] = time.monotonic() - t2
        t3 = time.monotonic()
        conn.execute("VACUUM ANALYZE connections")
        timings["VACUUM ANALYZE"] = time.monotonic() - t3
    return timings


def _timed(fn) -> list[float]:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def _admin_queries(ctx) -> list[str]:
    from sqlalchemy import event, text

    from app.admin import queries
    from app.admin.queries import ConnectionQuery, search_connections
    from app.extensions import db

    app = ctx.app("postgresql")
    rows = []
    with app.app_context():
        deep_at, deep_id = db.session.execute(text(
            "SELECT created_at, id FROM connections ORDER BY created_at DESC, id DESC OFFSET :n LIMIT 1"),
            {"n": int(ctx.settings.scale_rows * 0.9)}).one()
        cursor = queries._encode(f"{deep_at.isoformat()}|{deep_id}")  # the format the console issues
        user = f"auth0|u{(ctx.settings.scale_rows - ctx.settings.scale_due) // 6}"  # a user mid-table
        cases = [
            ("admin list, first page", lambda: search_connections(ConnectionQuery())),
            ("search by user id", lambda: search_connections(ConnectionQuery(user_id=user))),
            ("deep keyset page (90 % in)", lambda: search_connections(ConnectionQuery(), after=cursor)),
            ("provider + status filter, first page",
             lambda: search_connections(ConnectionQuery(provider="spotify", status="needs_reauth"))),
        ]
        plans = {}
        for label, call in cases:
            # The baseline replays the very SQL the app sends (captured here), as text, without the ORM.
            sent: list[tuple] = []

            def grab(conn, cursor_, statement, parameters, context, executemany, sent=sent) -> None:
                sent.append((statement, parameters))

            event.listen(db.engine, "before_cursor_execute", grab)
            try:
                call()
            finally:
                event.remove(db.engine, "before_cursor_execute", grab)
                db.session.rollback()
            sql, params = sent[-1]

            def ours(call=call) -> None:
                page = call()
                assert page.items
                db.session.rollback()
                db.session.expunge_all()

            def bare(sql=sql, params=params) -> None:
                assert db.session.connection().exec_driver_sql(sql, params).all()
                db.session.rollback()

            mine, base = _timed(ours), _timed(bare)
            plan = [r[0] for r in db.session.connection().exec_driver_sql("EXPLAIN ANALYZE " + sql, params)]
            db.session.rollback()
            plans[label] = [line.strip() for line in plan if any(
                k in line for k in ("Scan", "Index Cond", "Filter", "Rows Removed", "Execution Time"))]
            p95, b95 = percentile(mine, 95), percentile(base, 95)
            ctx.add(Figure(f"5 scale ({ctx.settings.scale_rows:,} rows)", f"{label}, p95", p95, "ms", b95,
                           "the same SQL as text", f"< {QUERY_GOAL_MS:.0f} ms", p95 < QUERY_GOAL_MS,
                           higher_is_better=False))
            rows.append(f"| {label} | {fmt(percentile(mine, 50), 2)} | {fmt(p95, 2)} | {fmt(percentile(base, 50), 2)} "
                        f"| {fmt(b95, 2)} |")
        ctx.notes["plans"] = plans
        db.session.remove()
    return rows


def _refresh_due(ctx, stub: FastStub) -> tuple[dict, dict, str]:
    env = ctx.env("postgresql", provider=stub)
    command = [str(VENV_BIN / "flask"), "--app", "wsgi", "connector", "refresh-due", "--within", "10m",
               "--workers", "2"]

    def once() -> dict:
        calls0 = stub.calls
        t0 = time.monotonic()
        err_path = ctx.workdir / "refresh-due.err"
        with open(err_path, "w", encoding="utf-8") as err:
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,  # noqa: S603
                                    stderr=err, text=True)
        timer = threading.Timer(max(REFRESH_TIMEOUT, ctx.settings.scale_due / 50), proc.kill)  # ≥ 50 refresh/s
        timer.start()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
        if proc.returncode != 0:
            raise RuntimeError(f"refresh-due exited with {proc.returncode}:\n{err_path.read_text()[-2000:]}")
        return {"wall": time.monotonic() - t0, "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime,
                "sys": usage.ru_stime, "calls": stub.calls - calls0, "out": out.strip().splitlines()[-1:],
                "rc": proc.returncode, "maxrss_mb": usage.ru_maxrss / 1024}

    run = once()
    noop = once()  # nothing is due any more: start-up, app creation and one empty claim
    return run, noop, " ".join(command[1:])


def _run_row(label: str, r: dict) -> str:
    return (f"| {label} | {r['wall']:.1f} | {r['cpu']:.1f} ({r['user']:.1f} + {r['sys']:.1f}) | {r['calls']:,} "
            f"| `{' '.join(r['out'])}` |")


def run(ctx) -> None:
    s = ctx.settings
    if "postgresql" not in ctx.databases:
        ctx.section("## 5. Scale\n\nSkipped: PostgreSQL only (not in smoke mode).")
        return
    ctx.stop_servers()
    ctx.forget_app("postgresql")
    recreate_pg_database()
    ctx.ensure_schema("postgresql")
    keyring = ctx.app("postgresql").extensions["connector"].keyring
    t0 = time.monotonic()
    load = _bulk_load(s.scale_rows, s.scale_due, keyring)
    load_total = time.monotonic() - t0
    query_rows = _admin_queries(ctx)
    stub = FastStub()
    try:
        run_, noop, command = _refresh_due(ctx, stub)
    finally:
        stub.close()
    refreshed = run_["calls"]
    net_cpu = max(run_["cpu"] - noop["cpu"], 0.0)
    per_refresh = net_cpu / refreshed * 1000 if refreshed else float("nan")
    gross = run_["cpu"] / refreshed * 1000 if refreshed else float("nan")
    ok = refreshed == s.scale_due and run_["rc"] == 0 and noop["calls"] == 0
    ctx.add(Figure("5 refresh-due", f"CPU per refresh ({refreshed:,} due, net of start-up)", per_refresh, "ms",
                   None, "", f"< {REFRESH_CPU_GOAL_MS:.0f} ms", ok and per_refresh < REFRESH_CPU_GOAL_MS,
                   higher_is_better=False),
            Figure("5 refresh-due", "refreshes per second, 2 workers", refreshed / run_["wall"] if run_["wall"] else 0,
                   "refresh/s", None, "", "", None),
            Figure("5 refresh-due", "wall time of the whole run", run_["wall"], "s", noop["wall"],
                   "same command, nothing due", "", None, higher_is_better=False))
    plans = "\n".join(f"-- {name}\n" + "\n".join(lines) for name, lines in ctx.notes.get("plans", {}).items())
    load_lines = "\n".join(f"| {k} | {v:.1f} |" for k, v in load.items())
    ctx.section(f"""## 5. Scale: {s.scale_rows:,} connections (PostgreSQL)

Bulk load into a freshly migrated `connector_bench` ({load_total:.0f} s in all):

| step | seconds |
|---|---:|
{load_lines}

Users own 3 connections each (github/google/spotify); 2 % `needs_reauth`, ~1 % `revoked`; one row per second of
`created_at`. {s.scale_due:,} more rows are due `stub` connections with real ciphertexts.

### Admin console queries (`app.admin.queries.search_connections`, in-process, {REPS} repetitions after 3 warm-ups)

| query | p50 ms | p95 ms | same SQL as text: p50 ms | p95 ms |
|---|---:|---:|---:|---:|
{chr(10).join(query_rows)}

The baseline replays the exact SQL and parameters the app sent (captured with a `before_cursor_execute` hook)
through the same session's connection, without the ORM: the difference is SQLAlchemy's statement building and
object loading for 51 rows; the baseline's own time is the database's.

Plans of the app's queries (EXPLAIN ANALYZE of the captured SQL, this run):

```
{plans}
```

### `refresh-due` over {s.scale_due:,} due connections

{"Fewer than the 100,000 the issue asks for, to keep the whole run under 15 minutes on 2 shared cores (set "
 "`BENCH_SCALE_DUE=100000` for the full count; the per-refresh figures do not depend on it)."
 if s.scale_due < 100_000 else ""}

`{command}` against a loopback stub that answers at once.

| run | wall s | CPU s (user + sys) | provider calls | output |
|---|---:|---:|---:|---|
{_run_row("refresh", run_)}
{_run_row("baseline: same command, nothing due", noop)}

CPU per refresh: **{per_refresh:.2f} ms** net of start-up ({gross:.2f} ms gross), goal < {REFRESH_CPU_GOAL_MS:.0f} ms;
{refreshed / run_['wall'] if run_['wall'] else 0:.0f} refreshes/s with 2 workers. PostgreSQL's own CPU and the stub's
are not in these figures (other processes); the box has 2 cores for refresher, stub and database together.""")
