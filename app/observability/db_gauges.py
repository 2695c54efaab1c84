"""The database-derived gauges, queried once per scrape.

``connection_counts`` is one ``GROUP BY provider, status`` that PostgreSQL answers from the
``ix_connections_provider_status`` index (an index-only scan: no table rows are read);
``oldest_due_refresh_age`` reads the first entry of ``ix_connections_refresh_due``.
"""
from __future__ import annotations

from sqlalchemy import func, select

from .. import clock
from ..extensions import db
from ..models import ACTIVE, Connection

CONNECTION_COUNTS = (select(Connection.provider, Connection.status, func.count())
                     .group_by(Connection.provider, Connection.status))


def connection_counts() -> list[tuple[str, str, int]]:
    rows = db.session.execute(CONNECTION_COUNTS).all()
    return [(provider, status, count) for provider, status, count in rows]


def oldest_due_refresh_age() -> float:
    now = clock.now()
    oldest = db.session.scalar(
        select(func.min(Connection.access_token_expires_at))
        .where(Connection.status == ACTIVE, Connection.access_token_expires_at < now,
               Connection.refresh_token_enc.is_not(None))
    )
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
