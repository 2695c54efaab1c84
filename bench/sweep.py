"""Benchmark 3b: ``flask connector refresh-due`` CPU per refresh, on every database of the run.

``settings.sweep_rows`` due connections (besides whatever earlier benchmarks left due) are refreshed by
the CLI, as operators run it, against a loopback provider that answers at once (``FastStub``, in this
process: its CPU is not the refresher's). The refresher's own CPU (user + system, from ``wait4``) net of
the same command with nothing due (start-up, app creation, one empty claim), per provider call."""
from __future__ import annotations

import resource
import subprocess
import time
from datetime import timedelta

from .common import ROOT, VENV_BIN, Figure
from .fast_stub import FastStub

GOAL_MS = 1.5
TIMEOUT = 300


def _seed(ctx, db_name: str, rows: int) -> None:
    from app import clock
    from app.connections import upsert_connection
    from app.extensions import db
    from app.oauth_client import TokenResponse

    app = ctx.app(db_name)
    keyring = app.extensions["connector"].keyring
    with app.app_context():
        for n in range(rows):
            token = TokenResponse(access_token=f"sweep-access-{n}", refresh_token=f"sweep-refresh-{n}",
                                  token_type="Bearer", expires_at=clock.now() + timedelta(seconds=60), scopes=("read",))
            upsert_connection(f"auth0|bench-sweep-{n}", "stub", token, keyring, f"sweep-{n}")
        db.session.commit()
        db.session.remove()


def _run(ctx, db_name: str, stub: FastStub) -> dict:
    env = ctx.env(db_name, provider=stub)
    command = [str(VENV_BIN / "flask"), "--app", "wsgi", "connector", "refresh-due", "--within", "10m",
               "--workers", "2"]
    calls0, t0 = stub.calls, time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CLI is the only child reaped meanwhile
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,  # noqa: S603 (our own CLI)
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"refresh-due exited with {proc.returncode}:\n{err[-2000:]}")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {"wall": time.monotonic() - t0, "cpu": user + system, "user": user, "sys": system,
            "calls": stub.calls - calls0, "out": " ".join(out.strip().splitlines()[-1:])}


def run(ctx) -> None:
    rows_md = []
    stub = FastStub()
    try:
        for db_name in ctx.databases:
            _seed(ctx, db_name, ctx.settings.sweep_rows)
            run_ = _run(ctx, db_name, stub)
            noop = _run(ctx, db_name, stub)
            calls = run_["calls"]
            per = (run_["cpu"] - noop["cpu"]) / calls * 1000 if calls else float("nan")
            met = calls >= ctx.settings.sweep_rows and noop["calls"] == 0 and per < GOAL_MS
            ctx.add(Figure("3b refresh-due", f"own CPU per refresh, {db_name}", per, "ms", None, "",
                           f"< {GOAL_MS} ms", met, higher_is_better=False),
                    Figure("3b refresh-due", f"refreshes per second (2 workers), {db_name}",
                           calls / run_["wall"] if run_["wall"] else 0.0, "refresh/s"))
            ctx.ratio("refresh-due own CPU per refresh (instant provider)", db_name, f"{per:.2f} ms", f"< {GOAL_MS} ms",
                      met)
            for label, r in (("refresh", run_), ("nothing due", noop)):
                rows_md.append(f"| {db_name} | {label} | {r['wall']:.2f} | {r['cpu']:.2f} ({r['user']:.2f} + "
                               f"{r['sys']:.2f}) | {r['calls']} | `{r['out']}` |")
    finally:
        stub.close()
    ctx.section(f"""## 3b. `refresh-due`: own CPU per refresh (every database)

`flask --app wsgi connector refresh-due --within 10m --workers 2` over {ctx.settings.sweep_rows} due connections
(plus any an earlier benchmark left due), against a loopback provider answering at once (HTTP/1.1 keep-alive).
CPU is the CLI process's own (user + system), net of the same command with nothing due, per provider call.
The database server's CPU is not in it.

| database | run | wall s | CPU s (user + sys) | provider calls | output |
|---|---|---:|---:|---:|---|
{chr(10).join(rows_md)}

Goal < {GOAL_MS} ms per refresh. Where it goes: see the sweep's profile in section 6.""")
