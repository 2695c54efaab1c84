"""The console's first page: connection counts, refresh outcomes and durations, webhook backlog,
refresh tokens that expire soonest.

Every query here is bounded whatever the table sizes: one GROUP BY over the connections'
(provider, status) index, the refresh rollup's last 7 days (a few thousand rows, see
``app.refresh_stats``), a LIMIT-ed index range for expiring tokens. Panels whose data this
deployment does not have (no ``events`` table, no refresh-token expiry column) say so instead.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import render_template, request
from sqlalchemy import func, literal, select

from .. import clock
from ..extensions import db
from ..models import ACTIVE, NEEDS_REAUTH, REVOKED, Connection, ConnectionCount
from ..refresh_stats import ProviderRefreshStats, refresh_window
from . import charts
from .blueprint import bp
from .views import Filters

STATUSES = (ACTIVE, NEEDS_REAUTH, REVOKED)
WINDOWS = ("24h", "7d")
EXPIRING_LIMIT = 10
# Observations older than this not rolled up yet: the worker (or the rollup timer) is not running.
ROLLUP_LATE = timedelta(minutes=10)
# Outbox rows in these states are done; anything else is waiting or has failed.


@dataclass
class CountRow:
    provider: str
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def connection_counts() -> tuple[list[CountRow], datetime | None]:
    """Connections per provider and status, and when they were counted (None: counted just now).

    The worker's count (``refresh_stats.count_connections``, every few minutes) when there is one;
    otherwise a live GROUP BY, fine for a small deployment whose worker has not run yet."""
    rows = db.session.execute(select(ConnectionCount.provider, ConnectionCount.status, ConnectionCount.count,
                                     ConnectionCount.counted_at)).all()
    counted_at = max((row[3] for row in rows), default=None)
    if counted_at is None:
        rows = db.session.execute(select(Connection.provider, Connection.status, func.count(), literal(None))
                                  .group_by(Connection.provider, Connection.status)).all()
    table: dict[str, dict[str, int]] = {}
    for provider, status, count, _ in rows:
        table.setdefault(provider, {})[status] = count
    return [CountRow(provider, table[provider]) for provider in sorted(table)], counted_at


def expiring_refresh_tokens(limit: int = EXPIRING_LIMIT) -> list:
    """Active connections whose refresh token expires soonest (an index on refresh_token_expires_at)."""
    column = Connection.refresh_token_expires_at
    stmt = (select(Connection.id, Connection.user_id, Connection.provider, column.label("expires_at"))
            .where(column.is_not(None), Connection.status == ACTIVE).order_by(column).limit(limit))
    return list(db.session.execute(stmt))


@dataclass
class WebhookStats:
    by_state: dict[str, int]  # undelivered rows per state (delivered ones are not counted)
    backlog: int
    failed: int
    oldest_pending: datetime | None


def webhook_backlog() -> WebhookStats | None:
    """Events waiting for delivery and events that gave up (dead letters), or None while webhooks are
    off (``WEBHOOK_URL`` unset: events are only kept for the feed). Both counts read the
    (delivery_status, next_attempt_at) index, never the delivered rows."""
    from flask import current_app

    from ..events.model import FAILED, PENDING, Event

    if not current_app.config.get("WEBHOOK_URL"):
        return None
    counts = {state: n for state, n in db.session.execute(
        select(Event.delivery_status, func.count()).where(Event.delivery_status.in_((PENDING, FAILED)))
        .group_by(Event.delivery_status))}
    oldest = db.session.scalar(select(func.min(Event.created_at)).where(Event.delivery_status == PENDING))
    return WebhookStats(counts, counts.get(PENDING, 0), counts.get(FAILED, 0), oldest)


@dataclass
class ProviderPanel:
    provider: str
    day: ProviderRefreshStats | None
    week: ProviderRefreshStats | None
    outcomes_svg: str
    durations_svg: str


def refresh_panels(now: datetime, window: str) -> tuple[list[ProviderPanel], bool, datetime]:
    """One panel per provider with refreshes in the last 7 days; charts for ``window`` (24h or 7d)."""
    day = refresh_window(now, timedelta(hours=24), timedelta(hours=1))
    week = refresh_window(now, timedelta(days=7), timedelta(hours=6))
    shown_window = day if window == "24h" else week
    days = {s.provider: s for s in day.providers}
    panels = []
    for stats in week.providers:
        shown = days.get(stats.provider) if window == "24h" else stats
        slots = shown.slots if shown else [Counter() for _ in range(shown_window.slot_count)]
        what = f"{stats.provider}, last {window}"
        panels.append(ProviderPanel(
            stats.provider, days.get(stats.provider), stats,
            charts.outcome_bars(slots, shown_window.start, shown_window.slot, f"Refresh outcomes, {what}"),
            charts.duration_lines(shown.slot_quantiles(0.5) if shown else [None] * len(slots),
                                  shown.slot_quantiles(0.95) if shown else [None] * len(slots),
                                  shown_window.start, shown_window.slot, f"Refresh duration p50 and p95, {what}")))
    behind = week.pending_truncated or bool(week.oldest_pending and now - week.oldest_pending > ROLLUP_LATE)
    return panels, behind, shown_window.start


@bp.get("/")
def index() -> tuple[str, int]:
    filters = Filters()
    window = filters.choice("window", WINDOWS, "a window") or "24h"
    now = clock.now()
    panels, behind, chart_start = refresh_panels(now, window)
    counts, counted_at = connection_counts()
    behind = behind or bool(counted_at and now - counted_at > ROLLUP_LATE)
    totals = {s: sum(r.by_status.get(s, 0) for r in counts) for s in STATUSES}
    return render_template(
        "admin/dashboard.html", now=now, window=window, windows=WINDOWS, errors=filters.errors,
        typed=request.args, counts=counts, counted_at=counted_at, statuses=STATUSES, totals=totals, panels=panels,
        chart_start=chart_start, rollup_behind=behind,
        expiring=expiring_refresh_tokens(), webhooks=webhook_backlog(), format_ms=charts.format_ms,
        outcome_labels=charts.OUTCOME_LABELS,
    ), 400 if filters.errors else 200
