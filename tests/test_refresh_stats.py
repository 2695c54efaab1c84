"""Refresh observations from the real vault paths, their hourly rollup, and the percentiles read back."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from app import refresh_stats
from app.errors import ProviderUnavailable, ReauthorizationRequired
from app.extensions import db
from app.models import RefreshObservation, RefreshRollup
from app.refresh_stats import UNBOUNDED, quantile, refresh_window, rollup_refresh_stats
from app.vault import get_access_token
from tests.conftest import make_connection, stub_env

NOW = datetime(2026, 12, 1, 12, 30)


@pytest.fixture
def env(stub, tmp_path):
    return stub_env(stub, tmp_path)


def _expired(app, stub, user_id):
    access, refresh = stub.issue()
    make_connection(app, user_id, "stub", access=access, refresh=refresh, expires_in=-10)


def _observations(app) -> list[tuple[str, str, int | None]]:
    with app.app_context():
        rows = db.session.execute(select(RefreshObservation.provider, RefreshObservation.outcome,
                                         RefreshObservation.duration_ms).order_by(RefreshObservation.id))
        return [tuple(r) for r in rows]


def test_each_vault_outcome_records_one_timed_observation(app, stub):
    _expired(app, stub, "auth0|ok")
    _expired(app, stub, "auth0|dead")
    _expired(app, stub, "auth0|flaky")
    with app.app_context():
        get_access_token("auth0|ok", "stub")
        stub.state.failure = (400, '{"error": "invalid_grant"}', {"Content-Type": "application/json"})
        with pytest.raises(ReauthorizationRequired):
            get_access_token("auth0|dead", "stub")
        stub.state.failure = (500, "boom", {})
        with pytest.raises(ProviderUnavailable):
            get_access_token("auth0|flaky", "stub")
        with pytest.raises(ProviderUnavailable):
            get_access_token("auth0|flaky", "stub")  # inside the cooldown: no provider call, no observation
    observed = _observations(app)
    assert [(p, o) for p, o, _ in observed] == [("stub", "ok"), ("stub", "needs_reauth"), ("stub", "unavailable")]
    assert all(isinstance(ms, int) and ms >= 0 for _, _, ms in observed)


def _observe(app, rows):
    with app.app_context():
        db.session.add_all(RefreshObservation(at=at, provider=p, outcome=o, duration_ms=ms) for at, p, o, ms in rows)
        db.session.commit()


def test_rollup_folds_observations_once_into_hourly_buckets(app):
    hour = NOW.replace(minute=0)
    _observe(app, [(hour + timedelta(minutes=1), "github", "ok", 40), (hour + timedelta(minutes=2), "github", "ok", 45),
                   (hour - timedelta(minutes=5), "github", "ok", 700), (hour, "google", "unavailable", 12000),
                   (hour, "google", "failed", None)])
    with app.app_context():
        assert rollup_refresh_stats(NOW) == 5
        assert rollup_refresh_stats(NOW) == 0  # nothing left: a second run adds nothing
        _observe(app, [(hour + timedelta(minutes=3), "github", "ok", 30)])
        assert rollup_refresh_stats(NOW) == 1  # adds onto the existing row
        rows = {(r.hour, r.provider, r.outcome, r.le_ms): r.count for r in db.session.scalars(select(RefreshRollup))}
        assert db.session.scalar(select(func.count()).select_from(RefreshObservation)) == 0
    assert rows == {(hour, "github", "ok", 50): 3, (hour - timedelta(hours=1), "github", "ok", 1000): 1,
                    (hour, "google", "unavailable", 30000): 1, (hour, "google", "failed", -1): 1}


def test_rollup_drops_rows_past_retention(app):
    _observe(app, [(NOW - timedelta(days=40), "github", "ok", 10), (NOW - timedelta(days=3), "github", "ok", 10)])
    with app.app_context():
        rollup_refresh_stats(NOW)
        hours = list(db.session.scalars(select(RefreshRollup.hour)))
    assert hours == [(NOW - timedelta(days=3)).replace(minute=0)]


def test_window_merges_rollup_and_pending_observations_per_slot(app):
    hour = NOW.replace(minute=0)
    _observe(app, [(hour - timedelta(hours=2), "github", "ok", 80)] * 9 + [(hour - timedelta(hours=2), "github",
                                                                            "needs_reauth", 900)])
    with app.app_context():
        rollup_refresh_stats(NOW)
    _observe(app, [(hour + timedelta(minutes=5), "github", "unavailable", 20000),
                   (hour - timedelta(days=2), "github", "ok", 10)])  # pending; the second is outside 24 h
    with app.app_context():
        window = refresh_window(NOW, timedelta(hours=24), timedelta(hours=1))
    (github,) = window.providers
    assert github.outcomes == Counter(ok=9, needs_reauth=1, unavailable=1) and github.failures == 2
    assert window.slot_count == 24 and sum(github.slots[21].values()) == 10 and github.slots[23] == {"unavailable": 1}
    assert 50 < github.quantile(0.5) <= 100 and github.slot_quantiles(0.5)[23] == 20000.0
    assert not window.pending_truncated


def test_quantile_interpolates_inside_a_bucket():
    assert quantile(Counter(), 0.5) is None
    assert quantile(Counter({100: 10}), 0.5) == pytest.approx(75.0)  # halfway between 50 and 100
    assert quantile(Counter({50: 50, 250: 50}), 0.95) == pytest.approx(100 + 150 * 0.9)
    assert quantile(Counter({UNBOUNDED: 3, refresh_stats.UNTIMED: 7}), 0.5) == 30000.0


def test_rollup_stats_command(app, runner):
    _observe(app, [(NOW, "github", "ok", 10), (NOW, "github", "ok", 20)])
    result = runner.invoke(args=["connector", "rollup-stats"])
    assert result.exit_code == 0 and result.output == "rolled up 2 refresh observations\n"
    with app.app_context():
        assert db.session.scalar(select(func.sum(RefreshRollup.count))) == 2


def test_concurrent_rollups_count_each_observation_once(app, monkeypatch):
    monkeypatch.setattr(refresh_stats, "BATCH", 50)
    _observe(app, [(NOW - timedelta(minutes=i % 90), "github", "ok", i % 700) for i in range(1000)])
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                results.append(rollup_refresh_stats(NOW))
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and sum(results) == 1000
    with app.app_context():
        assert db.session.scalar(select(func.sum(RefreshRollup.count))) == 1000


def test_window_reads_only_the_newest_pending_observations(app, monkeypatch):
    monkeypatch.setattr(refresh_stats, "PENDING_SCAN_LIMIT", 3)
    _observe(app, [(NOW, "github", "ok", 10)] * 5)
    with app.app_context():
        window = refresh_window(NOW, timedelta(hours=24), timedelta(hours=1))
    assert window.pending_truncated and window.providers[0].total == 3 and window.oldest_pending == NOW
