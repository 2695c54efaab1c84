"""Benchmark 6: where the time goes, with pyinstrument, in-process through Flask's test client on the
run's first database: the two HTTP paths measured against baselines (token for a job, connect start) and
the vault's refresh (the per-connection path of ``refresh-due``). Reports the top frames by own time and,
separately, our code (``app/``) by inclusive time."""
from __future__ import annotations

import time
from collections import defaultdict
from urllib.parse import quote, urlencode

from .common import APP_ORIGIN, RETURN_URL, ROOT

TOP = 12
OURS = str(ROOT / "app") + "/"


def _key(frame) -> str:
    path = frame.file_path or "?"
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(ROOT) + "/"):
        path = path[len(str(ROOT)) + 1:]
    elif "/lib/python" in path:
        path = "stdlib/" + path.split("/lib/python", 1)[1].split("/", 1)[-1]
    return f"`{frame.function}` {path}:{frame.line_no}"


def _aggregate(root) -> tuple[dict[str, float], dict[str, float], float]:
    own: dict[str, float] = defaultdict(float)
    ours: dict[str, float] = defaultdict(float)

    def walk(frame, stack: frozenset) -> None:
        if frame.is_synthetic:
            return
        key = _key(frame)
        children = [c for c in frame.children if not c.is_synthetic]
        own[key] += frame.time - sum(c.time for c in children)
        if (frame.file_path or "").startswith(OURS) and key not in stack:
            ours[key] += frame.time
        for child in children:
            walk(child, stack | {key})

    walk(root, frozenset())
    return own, ours, root.time


def _profile(label: str, call, n: int) -> str:
    from pyinstrument import Profiler

    for _ in range(5):
        call()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(n):
        call()
    session = profiler.stop()
    own, ours, total = _aggregate(session.root_frame())
    per_call = total / n * 1000

    def table(data: dict[str, float], title: str) -> str:
        rows = [f"| {title} | ms per request | share |", "|---|---:|---:|"]
        for key, seconds in sorted(data.items(), key=lambda kv: -kv[1])[:TOP]:
            rows.append(f"| {key} | {seconds / n * 1000:.3f} | {seconds / total:.0%} |")
        return "\n".join(rows)

    return (f"### {label}: {n} requests, {per_call:.2f} ms each under the profiler\n\n"
            f"{table(own, 'own time (any code)')}\n\n{table(ours, 'our code (app/), inclusive')}\n")


def _sweep_profile(ctx, db_name: str, rows: int) -> str:
    """The sweep's per-connection path (``refresh_claimed_row``) in this thread, over claimed rows, against
    the instant ``FastStub`` (an app of its own whose ``stub`` provider is that stub)."""
    from datetime import timedelta

    from app import clock, create_app
    from app.extensions import db
    from app.refresh_due import _claim_rows
    from app.vault import lease_owner, refresh_claimed_row

    from .fast_stub import FastStub
    from .sweep import _seed

    stub = FastStub()
    try:
        ctx.app(db_name)  # schema
        app = create_app(env=ctx.env(db_name, provider=stub))
        _seed(ctx, db_name, rows + 5)
        owner = lease_owner()
        with app.app_context():
            claimed = []
            while True:
                leased_at = time.monotonic()
                batch = _claim_rows(owner, timedelta(minutes=10), clock.now(), 50)
                if batch is None:
                    break
                claimed += [(row, leased_at) for row in batch]
            pending = iter(claimed)

            def one() -> None:
                row, leased_at = next(pending)
                refresh_claimed_row(row, owner, leased_at)

            text = _profile("refresh-due, per connection (refresh_claimed_row, instant provider)", one,
                            min(rows, len(claimed) - 5))
            for row, leased_at in pending:  # the rest: no lease left behind for later benchmarks
                refresh_claimed_row(row, owner, leased_at)
            db.session.remove()
        return text
    finally:
        stub.close()


def run(ctx) -> None:
    db_name = ctx.primary_db
    user = "auth0|bench-profile"
    ctx.seed(db_name, user, expires_in=7200)
    app = ctx.app(db_name)
    client = app.test_client(use_cookies=False)  # no jar: each start sets a new binding cookie
    m2m = {"Authorization": f"Bearer {ctx.issuer.m2m_token()}"}
    token_path = f"/api/users/{quote(user, safe='')}/connections/stub/token"
    form = {"access_token": ctx.issuer.token(user), "provider": "stub", "return_to": RETURN_URL}

    def token() -> None:
        assert client.post(token_path, headers=m2m).status_code == 200

    def connect() -> None:
        response = client.post("/connect/start", data=urlencode(form), headers={
            "Origin": APP_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 303

    refresh_user = "auth0|bench-profile-refresh"
    ctx.seed(db_name, refresh_user, expires_in=-5)

    def refresh() -> None:
        from app.vault import get_access_token

        with app.app_context():  # the path refresh-due takes per connection: lease, decrypt, POST, seal, commit
            get_access_token(refresh_user, "stub", force_refresh=True)

    n = ctx.settings.profile_requests
    parts = [_profile("POST /api/users/{id}/connections/stub/token", token, n),
             _profile("POST /connect/start", connect, n),
             _profile("vault refresh (get_access_token force_refresh, loopback stub provider)", refresh,
                      max(10, n // 3)),
             _sweep_profile(ctx, db_name, max(20, n))]
    ctx.section(f"""## 6. Profile (pyinstrument, in-process test client, {db_name})

Flask's test client calls the app directly (no gunicorn, no socket), so these are the service's own costs.

{chr(10).join(parts)}""")
