"""The one time source. Naive UTC datetimes, the same on SQLite and PostgreSQL.

Tests replace ``clock.now`` (e.g. with monkeypatch) to move time.
"""
from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
