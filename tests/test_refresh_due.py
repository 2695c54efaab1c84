import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Connection
from tests.conftest import make_connection, stub_env


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path)


def _seed(app, stub, count, expires_in):
    for n in range(count):
        access, refresh = stub.issue()
        make_connection(app, f"auth0|user{n}", "stub", access=access, refresh=refresh, expires_in=expires_in)


def _statuses(app):
    with app.app_context():
        return sorted(r.status for r in db.session.scalars(select(Connection)))



def _sweep_watching(app, before) -> dict:
    """One ``refresh-due`` pass (one worker) with ``before`` listening to every statement it sends."""
    from sqlalchemy import event

    from app.refresh_due import refresh_due

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        return refresh_due(app, timedelta(minutes=10), workers=1)
    finally:
        event.remove(engine, "before_cursor_execute", before)

def test_refresh_due_refreshes_only_due_connections(app, runner, stub):
    _seed(app, stub, 6, expires_in=60)
    make_connection(app, "auth0|later", "stub", expires_in=7200)
    result = runner.invoke(args=["connector", "refresh-due", "--within", "10m", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert "done: refreshed 6, needs_reauth 0, unavailable 0, failed 0, skipped 0" in result.output
    assert stub.state.refresh_calls == 6
    again = runner.invoke(args=["connector", "refresh-due", "--within", "10m"])
    assert "done: refreshed 0" in again.output


def test_refresh_due_reports_failures(app, runner, stub):
    _seed(app, stub, 2, expires_in=-1)
    stub.state.failure = (400, '{"error": "invalid_grant"}', {"Content-Type": "application/json"})
    result = runner.invoke(args=["connector", "refresh-due"])
    assert "refreshed 0, needs_reauth 2" in result.output
    assert _statuses(app) == ["needs_reauth", "needs_reauth"]


def test_refresh_due_unavailable_backs_off(app, runner, stub):
    _seed(app, stub, 2, expires_in=-1)
    stub.state.failure = (503, "down", {})
    assert "unavailable 2" in runner.invoke(args=["connector", "refresh-due"]).output
    assert "done: refreshed 0, needs_reauth 0, unavailable 0" in runner.invoke(args=["connector", "refresh-due"]).output
    assert stub.state.refresh_calls == 2


def test_a_row_that_cannot_be_refreshed_is_parked_and_the_run_goes_on(app, runner, stub):
    _seed(app, stub, 3, expires_in=-1)
    make_connection(app, "auth0|orphan", "retired", expires_in=-7200)  # a provider since removed
    result = runner.invoke(args=["connector", "refresh-due"])
    assert result.exit_code == 0, result.output
    assert "done: refreshed 3, needs_reauth 0, unavailable 0, failed 1, skipped 0" in result.output
    with app.app_context():
        orphan = db.session.scalar(select(Connection).where(Connection.user_id == "auth0|orphan"))
        assert orphan.status == "active" and orphan.last_error_code == "unknown_provider"
        assert orphan.cooldown_until is not None and orphan.lease_owner is None
    again = runner.invoke(args=["connector", "refresh-due"])
    assert "done: refreshed 0, needs_reauth 0, unavailable 0, failed 0" in again.output  # parked, not retried


def test_a_claimed_row_is_refreshed_only_while_its_lease_is_still_ours(app, stub):
    """A batch is leased at once; by the time a worker reaches a row its lease may have run out."""
    from app import clock
    from app.refresh_due import _claim
    from app.vault import refresh_claimed

    _seed(app, stub, 2, expires_in=-1)
    with app.app_context():
        ids = _claim("batch", timedelta(minutes=10), clock.now(), 10)
        first, second = (db.session.get(Connection, i) for i in ids)
        expired = clock.now() - timedelta(seconds=1)
        first.lease_expires_at = expired  # ran out, nobody took it: renewed and refreshed
        second.lease_owner, second.lease_expires_at = "a-caller", clock.now() + timedelta(seconds=30)  # taken over
        db.session.commit()
        assert [refresh_claimed(i, "batch") for i in ids] == ["refreshed", "skipped"]
    assert stub.state.refresh_calls == 1 and not stub.state.revoked


def test_concurrent_copies_refresh_each_connection_once(app, stub):
    from app.refresh_due import refresh_due

    _seed(app, stub, 20, expires_in=-1)
    stub.state.delay = 0.05
    results = []

    def run():
        results.append(refresh_due(app, timedelta(minutes=10), workers=3))

    copies = [threading.Thread(target=run) for _ in range(3)]
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join(60)
    assert sum(r["refreshed"] for r in results) == 20
    assert stub.state.refresh_calls == 20 and not stub.state.revoked


def test_refresh_due_rejects_bad_duration(runner):
    result = runner.invoke(args=["connector", "refresh-due", "--within", "soon"])
    assert result.exit_code != 0 and "like 10m" in result.output


def test_token_command_hides_token_unless_asked(app, runner, stub):
    access, refresh = stub.issue()
    make_connection(app, "auth0|op", "stub", access=access, refresh=refresh, expires_in=3600)
    result = runner.invoke(args=["connector", "token", "auth0|op", "stub"])
    assert result.exit_code == 0 and "expires at:" in result.output and access not in result.output
    shown = runner.invoke(args=["connector", "token", "auth0|op", "stub", "--show"])
    assert access in shown.output
    missing = runner.invoke(args=["connector", "token", "auth0|nobody", "stub"])
    assert missing.exit_code == 1 and "not_found" in missing.output


def test_a_row_refreshed_by_a_job_between_the_claims_select_and_update_is_not_claimed(app, stub):
    """12.6: on SQLite the claim's SELECT takes no lock; a job that refreshes a selected row before
    the UPDATE takes the leases must not see its row claimed (and refreshed) a second time."""

    from app.vault import get_access_token

    _seed(app, stub, 3, expires_in=-1)
    jobs, errors = [], []

    def job() -> None:
        try:
            with app.app_context():
                get_access_token("auth0|user0", "stub")
        except Exception as exc:  # asserted below
            errors.append(exc)

    def before(conn, cursor, statement, *args) -> None:
        if "UPDATE CONNECTIONS SET LEASE_OWNER" in " ".join(statement.split()).upper() and not jobs:
            jobs.append(threading.Thread(target=job))
            jobs[0].start()
            if conn.dialect.name == "sqlite":  # PostgreSQL: the job waits for the row lock of the SELECT
                jobs[0].join(30)

    counts = _sweep_watching(app, before)
    jobs[0].join(30)
    assert errors == [] and stub.state.refresh_calls == 3 and not stub.state.revoked
    assert counts["refreshed"] + counts["skipped"] in (2, 3)


def test_concurrent_sweeps_and_jobs_refresh_each_connection_exactly_once(app, stub):
    from app.refresh_due import refresh_due
    from app.vault import get_access_token

    count = 12
    _seed(app, stub, count, expires_in=-1)
    stub.state.delay = 0.02
    go, errors = threading.Event(), []

    def sweep() -> None:
        go.wait(30)
        try:
            refresh_due(app, timedelta(minutes=10), workers=2)
        except Exception as exc:  # asserted below
            errors.append(exc)

    def jobs(order) -> None:
        go.wait(30)
        for n in order:
            try:
                with app.app_context():
                    get_access_token(f"auth0|user{n}", "stub")
            except Exception as exc:  # asserted below
                errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    threads += [threading.Thread(target=jobs, args=(range(count),)),
                threading.Thread(target=jobs, args=(range(count - 1, -1, -1),))]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert stub.state.refresh_calls == count and not stub.state.revoked


def test_a_batch_is_claimed_in_one_statement_and_each_refresh_is_stored_with_one_update(app, stub):
    """Per batch one UPDATE ... RETURNING takes the leases; per connection the result is one conditional
    UPDATE (with its refresh observation); the claimed rows are not read again."""


    _seed(app, stub, 3, expires_in=-1)
    sent: list[str] = []

    def before(conn, cursor, statement, *args) -> None:
        sent.append(" ".join(statement.split()).upper())

    counts = _sweep_watching(app, before)
    assert counts["refreshed"] == 3 and stub.state.refresh_calls == 3
    touching = [s for s in sent if "CONNECTIONS" in s.split(" WHERE ")[0] and not s.startswith("PRAGMA")]
    claims = [s for s in touching if s.startswith(("UPDATE CONNECTIONS SET LEASE_OWNER", "WITH CHOSEN AS"))
              and "UPDATE CONNECTIONS SET LEASE_OWNER" in s]
    stores = [s for s in touching if s.startswith("UPDATE CONNECTIONS SET") and s not in claims]
    assert len(claims) == 2 and all("RETURNING" in s for s in claims)  # the batch, then the empty claim
    assert len(stores) == 3 and all("REFRESH_TOKEN_ENC = " in s.split(" WHERE ")[1] for s in stores)
    assert [s for s in touching if s.startswith("SELECT")] == []
    assert len([s for s in sent if s.startswith("INSERT INTO REFRESH_OBSERVATIONS")]) == 3


def test_a_claim_leases_at_most_its_batch_size(app, stub):
    """The claim's LIMIT holds whatever plan the database picks: PostgreSQL, planning a just-filled table
    without statistics, ran the limited subquery again for every row of a semi-join and leased every due
    row in one claim (a lease that could not cover them all, and nothing left for a second copy)."""
    from app import clock
    from app.refresh_due import _claim_rows

    _seed(app, stub, 30, expires_in=-1)
    with app.app_context():
        rows = _claim_rows("batch", timedelta(minutes=10), clock.now(), 8)
        leased = db.session.scalars(select(Connection.id).where(Connection.lease_owner == "batch")).all()
    assert len(rows) == 8 and sorted(leased) == sorted(row.id for row in rows)
