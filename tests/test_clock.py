"""The time source: naive UTC, to the microsecond."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app import clock


def test_now_is_naive_utc_and_current():
    before = datetime.now(UTC).replace(tzinfo=None)
    value = clock.now()
    after = datetime.now(UTC).replace(tzinfo=None)
    assert value.tzinfo is None
    assert before <= value <= after
    assert after - before < timedelta(seconds=1)


def test_now_keeps_microseconds():
    assert any(clock.now().microsecond for _ in range(100))
