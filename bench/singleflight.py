"""Benchmark 3: single-flight refresh at scale.

100 callers (4 processes × 25 threads, spawned, each with its own app) ask at once for the token of one
connection whose access token has expired; the stub provider counts refresh calls (exactly 1 is the
requirement) and rotates refresh tokens (a second refresh with the old token would revoke the grant).
Baseline: the same callers on a fresh token (no refresh). Run on every database of the run."""
from __future__ import annotations

import multiprocessing
import time

from .common import Figure, fmt, median, percentile


def callers(env: dict, user_id: str, threads: int, ready, go, results) -> None:
    """Child process: ``threads`` callers of ``get_access_token`` released together by ``go``."""
    import threading

    from app import create_app
    from app.vault import get_access_token

    app = create_app(env=env)

    def call() -> None:
        go.wait(60)
        started = time.monotonic()
        try:
            with app.app_context():
                token = get_access_token(user_id, "stub")
            results.put(("ok", token.token, time.monotonic() - started))
        except Exception as exc:  # noqa: BLE001 (reported to the parent, which counts it)
            results.put(("error", f"{type(exc).__name__}: {exc}", time.monotonic() - started))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.put(True)
    for worker in workers:
        worker.join(90)


def _scenario(ctx, db_name: str, user_id: str) -> list[tuple]:
    s = ctx.settings
    spawn = multiprocessing.get_context("spawn")
    ready, go, results = spawn.Queue(), spawn.Event(), spawn.Queue()
    env = ctx.env(db_name)
    procs = [spawn.Process(target=callers, args=(env, user_id, s.sf_threads, ready, go, results))
             for _ in range(s.sf_processes)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)  # every process has built its app and started its threads
    time.sleep(0.2)
    go.set()
    outcomes = [results.get(timeout=90) for _ in range(s.sf_processes * s.sf_threads)]
    for proc in procs:
        proc.join(30)
    return outcomes


def run(ctx) -> None:
    s = ctx.settings
    stub = ctx.stub
    callers_n = s.sf_processes * s.sf_threads
    rows = []
    for db_name in ctx.databases:
        ctx.app(db_name)  # schema
        # Baseline: the same callers on a fresh token.
        ctx.seed(db_name, f"auth0|bench-sf-fresh-{db_name}", expires_in=7200)
        before = stub.state.refresh_calls
        fresh = _scenario(ctx, db_name, f"auth0|bench-sf-fresh-{db_name}")
        fresh_refreshes = stub.state.refresh_calls - before
        # The real thing: one expired connection, a provider that takes ``provider_delay`` to answer.
        user = f"auth0|bench-sf-expired-{db_name}"
        old_access, _ = ctx.seed(db_name, user, expires_in=-5)
        stub.state.delay = s.provider_delay
        before = stub.state.refresh_calls
        try:
            expired = _scenario(ctx, db_name, user)
        finally:
            stub.state.delay = 0.0
        refreshes = stub.state.refresh_calls - before
        errors = [o for o in expired + fresh if o[0] != "ok"]
        tokens = {o[1] for o in expired if o[0] == "ok"}
        one_token = len(tokens) == 1 and old_access not in tokens and tokens <= stub.state.access_tokens
        exact = refreshes == 1 and fresh_refreshes == 0 and not errors and one_token and not stub.state.revoked
        waits = [o[2] * 1000 for o in expired]
        base_waits = [o[2] * 1000 for o in fresh]
        p50, p99, b50, b99 = median(waits), percentile(waits, 99), median(base_waits), percentile(base_waits, 99)
        ctx.add(Figure("3 single-flight", f"refresh calls, {callers_n} callers, {db_name}", refreshes, "calls",
                       fresh_refreshes, "fresh token", "exactly 1", exact),
                Figure("3 single-flight", f"callers' p50 wait, {db_name}", p50, "ms", b50, "fresh token",
                       higher_is_better=False),
                Figure("3 single-flight", f"callers' p99 wait, {db_name}", p99, "ms", b99, "fresh token",
                       higher_is_better=False))
        rows.append(f"| {db_name} | {refreshes} | {len(errors)} | {len(tokens)} | {fmt(p50)} | {fmt(p99)} "
                    f"| {fmt(b50)} | {fmt(b99)} | {'yes' if exact else '**no**'} |")
        if errors:
            rows.append(f"| | first error: `{errors[0][1][:150]}` | | | | | | | |")
    ctx.section(f"""## 3. Single-flight refresh at scale

{callers_n} callers ({s.sf_processes} spawned processes × {s.sf_threads} threads, released together) ask for one
connection's token. Expired: the stub provider answers the refresh after {s.provider_delay * 1000:.0f} ms. Baseline:
the same callers on a fresh token. Waits are each caller's `get_access_token` time.

| database | refresh calls | errors | distinct tokens | p50 ms | p99 ms | fresh p50 ms | fresh p99 ms | exactly 1 |
|---|---:|---:|---:|---:|---:|---:|---:|:---:|
{chr(10).join(rows)}

The p50/p99 of waiters include the provider's {s.provider_delay * 1000:.0f} ms and the lease-poll backoff (10 ms
doubling to 100 ms, with jitter): a waiter learns of the new token only at its next poll.""")
