"""Batch refresh of connections whose access tokens expire soon (``flask connector refresh-due``).

Copies may run at once: each claims a batch by taking the rows' leases in one statement
(PostgreSQL skips rows another copy has locked), which returns what the refreshes need; then
refreshes them with bounded concurrency through the shared HTTP pool, each result stored with one
conditional UPDATE (``app.vault.refresh_claimed_row``).
"""
from __future__ import annotations

import time
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
from .vault import CLAIMED_COLUMNS, Claimed, lease_free, lease_owner, refresh_claimed_row


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


def _claim_rows(owner: str, within: timedelta, started: datetime, limit: int) -> list[Claimed] | None:
    """Lease up to ``limit`` due connections in one statement; None when nothing is due any more.

    ``WITH chosen AS MATERIALIZED (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... WHERE id IN
    (SELECT id FROM chosen) RETURNING``: on PostgreSQL the subquery skips rows another copy has locked
    and re-checks the conditions of rows changed since the snapshot; on SQLite the statement runs
    under the write lock. The conditions are checked again on the rows updated, so only rows still due
    are leased, and exactly those are returned.

    MATERIALIZED: the ids are chosen once. As a plain ``IN (subquery)``, PostgreSQL may plan a
    semi-join that runs the limited, locking subquery again for every candidate row (it did, on a
    table without statistics yet), each run skipping what the last one locked: every due row leased."""
    now = clock.now()
    chosen = (select(Connection.id).where(_due(now, within, started)).order_by(Connection.access_token_expires_at)
              .limit(limit).with_for_update(skip_locked=True)
              .cte("chosen").prefix_with("MATERIALIZED", dialect="postgresql"))
    rows = db.session.execute(
        update(Connection.__table__)
        .where(Connection.id.in_(select(chosen.c.id)), _due(now, within, started))
        .values(lease_owner=owner, lease_expires_at=now + runtime().vault.lease)
        .returning(*CLAIMED_COLUMNS)
    ).all()
    db.session.commit()
    return [Claimed._make(row) for row in rows] or None


def _claim(owner: str, within: timedelta, started: datetime, limit: int) -> list[str] | None:
    """The ids of ``_claim_rows``."""
    rows = _claim_rows(owner, within, started, limit)
    return None if rows is None else [row.id for row in rows]


def refresh_due(app: Flask, within: timedelta, workers: int, limit: int | None = None,
                progress: Callable[[Counter], None] | None = None) -> Counter:
    """Refresh every due connection once; returns counts by outcome."""
    counts: Counter = Counter()
    started = clock.now()
    owner = lease_owner()
    batch = max(workers * 4, 8)

    def work(claimed: Claimed) -> str:
        with app.app_context():
            return refresh_claimed_row(claimed, owner, leased_at)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        while limit is None or sum(counts.values()) < limit:
            size = batch if limit is None else min(batch, limit - sum(counts.values()))
            leased_at = time.monotonic()  # before the claim: its lease ends no earlier than this + lease
            with app.app_context():
                rows = _claim_rows(owner, within, started, size)
            if rows is None:
                break
            counts.update(pool.map(work, rows))
            if progress:
                progress(counts)
    return counts
