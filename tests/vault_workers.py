"""Code run in child processes by the vault concurrency tests (importable under spawn)."""
from __future__ import annotations

import os
import threading
import time


def _app(env: dict, database_url: str):
    from app import create_app

    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url}, env=env)


def fetch_tokens(env: dict, database_url: str, user_id: str, threads: int, go, results, ready=None) -> None:
    """Start ``threads`` callers at once (after ``go`` is set) and report (token, wait) or an error."""
    from app.vault import get_access_token

    app = _app(env, database_url)

    def call() -> None:
        go.wait(30)
        started = time.monotonic()
        try:
            with app.app_context():
                token = get_access_token(user_id, "stub")
            results.put(("ok", token.token, time.monotonic() - started))
        except Exception as exc:  # reported to the parent, which fails the test
            results.put(("error", f"{type(exc).__name__}: {exc}", time.monotonic() - started))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    if ready is not None:
        ready.put(os.getpid())  # built and waiting for the starting gun
    for worker in workers:
        worker.join(60)


def hang_while_holding_lease(env: dict, database_url: str, user_id: str) -> None:
    """Take the refresh lease, then hang before the provider sees anything (killed by the test)."""
    from app import oauth_client
    from app.vault import get_access_token

    def hang(*args, **kwargs):
        time.sleep(600)

    oauth_client.refresh = hang
    app = _app(env, database_url)
    with app.app_context():
        get_access_token(user_id, "stub")


def _forward_vault_log(events) -> None:
    import logging

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.put(("log", record.getMessage()))

    logger = logging.getLogger("app.vault")
    logger.addHandler(Forward(logging.WARNING))
    logger.setLevel(logging.WARNING)


def refresh_reporting(env: dict, database_url: str, user_id: str, events) -> None:
    """One caller that refreshes; reports the vault's warnings (store attempts) and the outcome."""
    from app.vault import get_access_token

    _forward_vault_log(events)
    app = _app(env, database_url)
    try:
        with app.app_context():
            token = get_access_token(user_id, "stub")
        events.put(("ok", token.token))
    except Exception as exc:  # reported to the parent, which fails the test
        events.put(("error", f"{type(exc).__name__}: {exc}"))


def die_before_storing(env: dict, database_url: str, user_id: str, events) -> None:
    """Refresh, and hang once the provider has answered, before storing (killed by the test)."""
    from app import token_store
    from app.vault import get_access_token

    def hang(*args, **kwargs):
        events.put(("storing",))
        time.sleep(600)

    token_store.TokenStore.store_refreshed = hang
    app = _app(env, database_url)
    with app.app_context():
        get_access_token(user_id, "stub")
