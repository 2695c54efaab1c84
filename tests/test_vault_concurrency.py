"""Single-flight refresh across processes and threads, and recovery from a killed refresher."""
import multiprocessing
import os
import signal
import statistics
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Connection
from tests import vault_workers
from tests.conftest import make_connection, stub_env

PROCESSES, THREADS = 4, 25


@pytest.fixture
def env(stub, tmp_path):
    # Short timeouts make the lease (connect + read + 5 s) short, so the takeover test stays quick.
    # A short VAULT_STORE_DEADLINE: a dead holder's lease is taken over after lease + deadline + 5 s.
    return stub_env(stub, tmp_path, PROVIDER_CONNECT_TIMEOUT="0.5", PROVIDER_READ_TIMEOUT="1",
                    VAULT_STORE_DEADLINE="1")


def _stored(app, user_id):
    with app.app_context():
        row = db.session.scalars(select(Connection).where(Connection.user_id == user_id)).one()
        keyring = app.extensions["connector"].keyring
        return row, keyring.decrypt(row.refresh_token_enc, row.aad("refresh_token"))


def test_hundred_concurrent_callers_cause_exactly_one_refresh(app, stub, env, database_url, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    stub.state.delay = 0.3  # a realistic provider round trip, so the callers really overlap
    ctx = multiprocessing.get_context("spawn")
    go, results, ready = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=vault_workers.fetch_tokens,
                         args=(env, database_url, user_id, THREADS, go, results, ready))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for _ in procs:  # every process has imported and built its app: now the starting gun
        ready.get(timeout=60)
    go.set()
    outcomes = [results.get(timeout=60) for _ in range(PROCESSES * THREADS)]
    for proc in procs:
        proc.join(30)
    errors = [o for o in outcomes if o[0] != "ok"]
    assert errors == []
    assert stub.state.refresh_calls == 1 and not stub.state.revoked
    tokens = {o[1] for o in outcomes}
    assert len(tokens) == 1 and tokens <= stub.state.access_tokens and access not in tokens
    row, stored_refresh = _stored(app, user_id)
    assert stub.state.refresh_tokens[stored_refresh] and stored_refresh != refresh
    assert row.lease_owner is None
    waits = sorted(o[2] for o in outcomes)
    print(f"waits p50={statistics.median(waits):.3f}s p99={waits[int(len(waits) * 0.99) - 1]:.3f}s")


def test_killed_lease_holder_does_not_lose_the_connection(app, stub, env, database_url, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=vault_workers.hang_while_holding_lease, args=(env, database_url, user_id))
    proc.start()
    deadline = time.monotonic() + 30
    while _stored(app, user_id)[0].lease_owner is None:
        assert time.monotonic() < deadline, "the child never took the lease"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    from app.errors import ProviderUnavailable
    from app.vault import get_access_token

    started = time.monotonic()
    token = None
    for _ in range(5):  # callers get 503 until the holder's lease and storing window are over
        try:
            with app.app_context():
                token = get_access_token(user_id, "stub")
            break
        except ProviderUnavailable as exc:
            assert exc.retry_after
    assert token is not None and time.monotonic() - started < 30
    row, stored_refresh = _stored(app, user_id)
    assert row.status == "active" and row.lease_owner is None
    assert token.token in stub.state.access_tokens and stub.state.refresh_calls == 1
    assert stub.state.refresh_tokens[stored_refresh]


def test_short_lived_tokens_still_cause_one_refresh_for_all_waiters(app, stub, database_url, user_id):
    """Tokens that live less than VAULT_MIN_TTL (60 s): waiters take the token refreshed for them."""
    import threading

    from app.vault import get_access_token

    stub.access_ttl = 30
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-5)
    stub.state.delay = 0.3
    go, tokens, errors = threading.Event(), [], []

    def call() -> None:
        go.wait(10)
        try:
            with app.app_context():
                tokens.append(get_access_token(user_id, "stub").token)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=call) for _ in range(8)]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(30)
    assert errors == [] and len(tokens) == 8
    assert stub.state.refresh_calls == 1 and len(set(tokens)) == 1 and access not in tokens
