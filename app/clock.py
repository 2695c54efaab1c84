"""The one time source. Naive UTC datetimes, the same on SQLite and PostgreSQL.

Tests replace ``clock.now`` (e.g. with monkeypatch) to move time.
"""
from __future__ import annotations

from datetime import UTC, datetime

_combine = datetime.combine


def now() -> datetime:
    # The naive twin of the aware UTC time (``time()`` drops the zone): a third of what
    # ``replace(tzinfo=None)`` costs, and ``now`` is read several times per request.
    aware = datetime.now(UTC)
    return _combine(aware.date(), aware.time())
