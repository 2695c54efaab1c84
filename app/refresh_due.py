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
from functools import lru_cache

from flask import Flask
from sqlalchemy import and_, bindparam, or_, select, update

from . import clock
from .extensions import db
from .models import ACTIVE, Connection
from .runtime import runtime
from .vault import CLAIMED_COLUMNS, Claimed, lease_free_before, lease_owner, refresh_claimed_row


def _due():
    """A connection this run should refresh now: every condition, for the SELECT and again for the
    UPDATE that takes the leases (``_claim_statement``'s parameters)."""
    row = Connection.__table__.c
    return and_(
        row.status == ACTIVE, row.refresh_token_enc.is_not(None),
        row.access_token_expires_at < bindparam("due_before"),
        or_(row.cooldown_until.is_(None), row.cooldown_until <= bindparam("now")),
        lease_free_before(bindparam("taken_over_before"), row),
        # Each connection at most once per run, even if its new token is again due within the window.
        or_(row.last_refreshed_at.is_(None), row.last_refreshed_at < bindparam("started")),
    )


@lru_cache(maxsize=1)
def _claim_statement():
    """``_claim_rows``'s statement, with bound parameters only: built once, so SQLAlchemy neither builds
    it nor computes its cache key again for every batch (that cost more than the statement's execution).

    ``WITH chosen AS MATERIALIZED (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) UPDATE ... WHERE id IN
    (SELECT id FROM chosen) RETURNING``: on PostgreSQL the subquery skips rows another copy has locked
    and re-checks the conditions of rows changed since the snapshot; on SQLite the statement runs
    under the write lock. The conditions are checked again on the rows updated, so only rows still due
    are leased, and exactly those are returned.

    MATERIALIZED: the ids are chosen once. As a plain ``IN (subquery)``, PostgreSQL may plan a
    semi-join that runs the limited, locking subquery again for every candidate row (it did, on a
    table without statistics yet), each run skipping what the last one locked: every due row leased."""
    table = Connection.__table__
    chosen = (select(table.c.id).where(_due()).order_by(table.c.access_token_expires_at)
              .limit(bindparam("batch")).with_for_update(skip_locked=True)
              .cte("chosen").prefix_with("MATERIALIZED", dialect="postgresql"))
    return (update(table).where(table.c.id.in_(select(chosen.c.id)), _due())
            .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("lease_until"))
            .returning(*CLAIMED_COLUMNS))


def _claim_rows(owner: str, within: timedelta, started: datetime, limit: int) -> list[Claimed] | None:
    """Lease up to ``limit`` due connections in one statement (``_claim_statement``); None when nothing
    is due any more."""
    now = clock.now()
    settings = runtime().vault
    rows = db.session.connection().execute(_claim_statement(), {
        "due_before": now + within, "now": now, "taken_over_before": now - settings.takeover_after,
        "started": started, "batch": limit, "owner": owner, "lease_until": now + settings.lease}).all()
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
