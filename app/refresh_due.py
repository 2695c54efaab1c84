"""Batch refresh of connections whose access tokens expire soon (``flask connector refresh-due``).

Copies may run at once: each claims a batch by taking the rows' leases in one short
transaction (PostgreSQL skips rows another copy has locked), then refreshes them with
bounded concurrency.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import and_, or_, select, update

from . import clock
from .extensions import db
from .models import ACTIVE, Connection
from .runtime import runtime
from .vault import lease_free, lease_owner, refresh_claimed


def _due(now: datetime, within: timedelta, started: datetime):
    """A connection this run should refresh now: every condition, for the SELECT and again for the
    UPDATE that takes the leases."""
    return and_(
        Connection.status == ACTIVE, Connection.refresh_token_enc.is_not(None),
        Connection.access_token_expires_at < now + within,
        or_(Connection.cooldown_until.is_(None), Connection.cooldown_until <= now),
        lease_free(now, runtime().vault),
        # Each connection at most once per run, even if its new token is again due within the window.
        or_(Connection.last_refreshed_at.is_(None), Connection.last_refreshed_at < started),
    )


def _claim(owner: str, within: timedelta, started: datetime, limit: int) -> list[str] | None:
    """Lease up to ``limit`` due connections; None when nothing is due any more."""
    now = clock.now()
    ids = db.session.scalars(
        select(Connection.id).where(_due(now, within, started))
        .order_by(Connection.access_token_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        db.session.commit()
        return None
    # Every condition again: where SKIP LOCKED is not available (SQLite), another copy or a job
    # may have refreshed or leased some of these rows since the SELECT; only rows leased here,
    # still due, are ours.
    db.session.execute(
        update(Connection)
        .where(Connection.id.in_(ids), _due(now, within, started))
        .values(lease_owner=owner, lease_expires_at=now + runtime().vault.lease)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    mine = list(db.session.scalars(select(Connection.id).where(Connection.id.in_(ids),
                                                                Connection.lease_owner == owner)))
    db.session.commit()
    return mine


def refresh_due(app: Flask, within: timedelta, workers: int, limit: int | None = None,
                progress: Callable[[Counter], None] | None = None) -> Counter:
    """Refresh every due connection once; returns counts by outcome."""
    counts: Counter = Counter()
    started = clock.now()
    owner = lease_owner()
    batch = max(workers * 4, 8)

    def work(connection_id: str) -> str:
        with app.app_context():
            return refresh_claimed(connection_id, owner)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        while limit is None or sum(counts.values()) < limit:
            size = batch if limit is None else min(batch, limit - sum(counts.values()))
            with app.app_context():
                ids = _claim(owner, within, started, size)
            if ids is None:
                break
            counts.update(pool.map(work, ids))
            if progress:
                progress(counts)
    return counts
