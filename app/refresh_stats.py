"""Refresh outcomes and durations for the admin dashboard, cheap at any traffic.

The vault calls ``start(provider)`` just before asking the provider and ``finish(outcome)`` just
before committing the outcome: ``finish`` adds one ``RefreshObservation`` row to that same
transaction (an INSERT into an append-only table: no row that every refresh updates, so no lock
contention between concurrent refreshes). ``rollup_refresh_stats(now)``, run by the worker and by
``flask --app wsgi connector rollup-stats``, deletes the observations and adds them to hourly
``RefreshRollup`` counters per provider, outcome and duration bucket: a histogram, like a
Prometheus one, so p50/p95 over any run of hours is a merge of buckets. Deleting with RETURNING
makes concurrent rollups count each observation exactly once.

Percentiles are estimated inside a bucket by linear interpolation (``histogram_quantile``'s rule);
a quantile in the last, open bucket is reported as that bucket's lower bound.
"""
from __future__ import annotations

import contextvars
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.sql.dml import Insert

from . import clock
from .extensions import db
from .models import Connection, ConnectionCount, RefreshObservation, RefreshRollup

# Upper bounds (ms) of the duration buckets; UNBOUNDED is the open last bucket, UNTIMED a refresh
# that never reached the provider (its provider was disabled, its key dropped).
BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
UNBOUNDED = 2_147_483_647
UNTIMED = -1
RETENTION = timedelta(days=35)
_LOWER = dict(zip(BOUNDS_MS + (UNBOUNDED,), (0,) + BOUNDS_MS, strict=True))  # a bucket's lower bound
BATCH = 20_000
COUNT_EVERY = timedelta(minutes=5)

# inline(): no RETURNING of the new id on PostgreSQL, and nothing read back: nobody needs it.
_OBSERVE = RefreshObservation.__table__.insert().inline()
_started: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar("refresh_started", default=None)


def start(provider: str) -> None:
    """The refresh of one of ``provider``'s connections is about to ask the provider."""
    _started.set((provider, time.monotonic()))


def finish(provider: str, outcome: str) -> None:
    """Record the refresh's outcome in the current session (the caller commits it with the outcome)."""
    started = _started.get()
    _started.set(None)
    duration_ms = None
    if started is not None and started[0] == provider:
        duration_ms = max(0, round((time.monotonic() - started[1]) * 1000))
    # A Core INSERT in the session's transaction: no unit-of-work flush for an object never read back.
    db.session.connection().execute(_OBSERVE, {"at": clock.now(), "provider": provider, "outcome": outcome,
                                               "duration_ms": duration_ms})


def bucket(duration_ms: int | None) -> int:
    if duration_ms is None:
        return UNTIMED
    index = bisect_left(BOUNDS_MS, duration_ms)
    return BOUNDS_MS[index] if index < len(BOUNDS_MS) else UNBOUNDED


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _dialect_insert(model) -> Insert:
    """The database's own INSERT (with ``on_conflict_do_update``). Only that dialect's module is imported:
    the other one (PostgreSQL's is about 2 MB) never enters a worker."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def _upsert(counts: Counter) -> None:
    if not counts:
        return
    rows = [{"hour": hour, "provider": provider, "outcome": outcome, "le_ms": le_ms, "count": n}
            for (hour, provider, outcome, le_ms), n in counts.items()]
    stmt = _dialect_insert(RefreshRollup)
    stmt = stmt.on_conflict_do_update(index_elements=["hour", "provider", "outcome", "le_ms"],
                                      set_={"count": RefreshRollup.count + stmt.excluded["count"]})
    db.session.execute(stmt, rows)


def count_connections(now: datetime | None = None, *, max_age: timedelta | None = None) -> bool:
    """Store the connections per provider and status (``ConnectionCount``) unless a count younger than
    ``max_age`` exists; returns whether it counted. One GROUP BY over the whole table: about a second at
    a million rows, which is why the worker does it every few minutes and the dashboard reads the result."""
    now = now or clock.now()
    if max_age is not None:
        latest = db.session.scalar(select(func.max(ConnectionCount.counted_at)))
        if latest is not None and now - latest < max_age:
            return False
    counts = db.session.execute(select(Connection.provider, Connection.status, func.count())
                                .group_by(Connection.provider, Connection.status)).all()
    rows = [{"provider": p, "status": s, "count": n, "counted_at": now} for p, s, n in counts]
    if rows:
        stmt = _dialect_insert(ConnectionCount)
        db.session.execute(stmt.on_conflict_do_update(
            index_elements=["provider", "status"],
            set_={"count": stmt.excluded["count"], "counted_at": stmt.excluded["counted_at"]}), rows)
    db.session.execute(delete(ConnectionCount).where(ConnectionCount.counted_at < now))  # pairs now gone
    db.session.commit()
    return True


def rollup_refresh_stats(now: datetime | None = None, *, max_batches: int = 100) -> int:
    """Fold pending observations into the hourly rollup (each batch in one transaction), drop rollup
    rows older than ``RETENTION``, and recount the connections if the last count is older than
    ``COUNT_EVERY``; returns how many observations were folded."""
    now = now or clock.now()
    count_connections(now, max_age=COUNT_EVERY)
    total = 0
    for _ in range(max_batches):
        ids = select(RefreshObservation.id).order_by(RefreshObservation.id).limit(BATCH).scalar_subquery()
        taken = db.session.execute(
            delete(RefreshObservation).where(RefreshObservation.id.in_(ids))
            .returning(RefreshObservation.at, RefreshObservation.provider, RefreshObservation.outcome,
                       RefreshObservation.duration_ms)).all()
        counts = Counter((_hour(at), provider, outcome, bucket(ms)) for at, provider, outcome, ms in taken)
        _upsert(counts)
        db.session.commit()
        total += len(taken)
        if len(taken) < BATCH:
            break
    db.session.execute(delete(RefreshRollup).where(RefreshRollup.hour < _hour(now - RETENTION)))
    db.session.commit()
    return total


# --- reading -------------------------------------------------------------------------------------

PENDING_SCAN_LIMIT = 200_000


@dataclass
class ProviderRefreshStats:
    """One provider's refreshes in a window: outcome totals, a duration histogram, and per-slot series."""

    provider: str
    outcomes: Counter
    histogram: Counter  # le_ms -> count (timed refreshes of every outcome)
    slots: list[Counter]  # per slot: outcome -> count
    slot_histograms: list[Counter]  # per slot: le_ms -> count

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failures(self) -> int:
        return self.total - self.outcomes.get("ok", 0)

    def quantile(self, q: float) -> float | None:
        return quantile(self.histogram, q)

    def slot_quantiles(self, q: float) -> list[float | None]:
        return [quantile(h, q) for h in self.slot_histograms]


@dataclass
class RefreshWindow:
    start: datetime
    slot: timedelta
    slot_count: int
    providers: list[ProviderRefreshStats]
    pending_truncated: bool  # more observations wait for the rollup than were read: is the worker running?
    oldest_pending: datetime | None  # when the oldest observation not rolled up yet was made


def quantile(histogram: Counter, q: float) -> float | None:
    """The ``q`` quantile (0..1) in ms of a bucketed histogram, or None when it is empty."""
    timed = sorted((le, n) for le, n in histogram.items() if le != UNTIMED and n > 0)
    total = sum(n for _, n in timed)
    if not total:
        return None
    rank, seen = q * total, 0
    for le, n in timed:
        lower = _LOWER.get(le, 0)
        if seen + n >= rank:
            if le == UNBOUNDED:
                return float(lower)
            return lower + (le - lower) * ((rank - seen) / n)
        seen += n
    return float(timed[-1][0])


def refresh_window(now: datetime, span: timedelta, slot: timedelta) -> RefreshWindow:
    """Refresh outcomes and durations per provider over ``span`` up to ``now``, in slots of ``slot``
    (a whole number of hours), the last slot ending with the current hour.

    Everything is summed per slot in the database, so what comes back is at most slots × providers ×
    (outcomes + buckets) rows, whatever the traffic: the rollup (one PK range) and the observations not
    rolled up yet (the newest ``PENDING_SCAN_LIMIT`` of them, one PK range: if the worker has stopped
    rolling up, older ones are left out and the page says so)."""
    slot_count = int(span / slot)
    start = _hour(now) + timedelta(hours=1) - slot * slot_count
    connection = db.session.connection()  # Core rows: no ORM work per row
    # A row's slot, computed by the database: a CASE over the slots' start times (the same SQL on every
    # database, no date arithmetic).
    rollup_slot = _slot_case(RefreshRollup.hour, start, slot, slot_count)
    outcome_rows: list[tuple[int, str, str, int]] = []
    bucket_rows: list[tuple[int, str, int, int]] = []
    for index, provider, outcome, le_ms, count in connection.execute(
            select(rollup_slot, RefreshRollup.provider, RefreshRollup.outcome, RefreshRollup.le_ms,
                   func.sum(RefreshRollup.count))
            .where(RefreshRollup.hour >= start)
            .group_by(rollup_slot, RefreshRollup.provider, RefreshRollup.outcome, RefreshRollup.le_ms)).all():
        outcome_rows.append((index, provider, outcome, count))
        if le_ms != UNTIMED:
            bucket_rows.append((index, provider, le_ms, count))

    oldest_id, newest_id, oldest_at = connection.execute(
        select(func.min(RefreshObservation.id), func.max(RefreshObservation.id),
               select(RefreshObservation.at).order_by(RefreshObservation.id).limit(1).scalar_subquery())).one()
    truncated = False
    if newest_id is not None:
        floor = newest_id - PENDING_SCAN_LIMIT
        truncated = oldest_id <= floor
        pending_slot = _slot_case(RefreshObservation.at, start, slot, slot_count)
        ms = RefreshObservation.duration_ms
        pending_bucket = case((ms.is_(None), UNTIMED), *((ms <= bound, bound) for bound in BOUNDS_MS),
                              else_=UNBOUNDED)
        for index, provider, outcome, le_ms, count in connection.execute(
                select(pending_slot, RefreshObservation.provider, RefreshObservation.outcome, pending_bucket,
                       func.count())
                .where(RefreshObservation.id > floor, RefreshObservation.at >= start)
                .group_by(pending_slot, RefreshObservation.provider, RefreshObservation.outcome, pending_bucket)
                ).all():
            outcome_rows.append((index, provider, outcome, count))
            if le_ms != UNTIMED:
                bucket_rows.append((index, provider, le_ms, count))
    providers = _by_provider(outcome_rows, bucket_rows, slot_count)
    return RefreshWindow(start, slot, slot_count, providers, truncated, oldest_at)


def _slot_case(column, start: datetime, slot: timedelta, slot_count: int):
    return case(*((column >= start + slot * i, i) for i in reversed(range(slot_count))), else_=-1)


def _by_provider(outcome_rows: Iterable[tuple[int, str, str, int]], bucket_rows: Iterable[tuple[int, str, int, int]],
                 slot_count: int) -> list[ProviderRefreshStats]:
    stats: dict[str, ProviderRefreshStats] = {}

    def entry(provider: str) -> ProviderRefreshStats:
        found = stats.get(provider)
        if found is None:
            found = stats[provider] = ProviderRefreshStats(provider, Counter(), Counter(),
                                                           [Counter() for _ in range(slot_count)],
                                                           [Counter() for _ in range(slot_count)])
        return found

    for index, provider, outcome, count in outcome_rows:
        if 0 <= index < slot_count:
            found = entry(provider)
            found.outcomes[outcome] += count
            found.slots[index][outcome] += count
    for index, provider, le_ms, count in bucket_rows:
        if 0 <= index < slot_count:
            found = entry(provider)
            found.histogram[le_ms] += count
            found.slot_histograms[index][le_ms] += count
    return [stats[name] for name in sorted(stats)]
