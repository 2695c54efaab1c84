"""Admin sign-in throttling per client address, kept in the database so every worker agrees.

The client address is the TCP peer unless TRUSTED_PROXY_HOPS says how many proxies to
believe (ProxyFix in create_app), so a forged X-Forwarded-For cannot reset the count.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select

from .. import clock
from ..errors import TooManyAttempts
from ..extensions import db
from ..models import AdminLoginAttempt

STARTED, SUCCEEDED, FAILED = "started", "succeeded", "failed"


@dataclass(frozen=True)
class LoginThrottle:
    max_failures: int
    window: timedelta = timedelta(minutes=15)

    @property
    def max_starts(self) -> int:
        return self.max_failures * 3

    def check(self, client: str) -> None:
        """Raise TooManyAttempts when the client used up its failures or sign-in starts."""
        since = clock.now() - self.window
        rows = db.session.execute(
            select(AdminLoginAttempt.outcome, func.count())
            .where(AdminLoginAttempt.client == client[:64], AdminLoginAttempt.at >= since)
            .group_by(AdminLoginAttempt.outcome)
        ).all()
        counts = dict(rows)
        if counts.get(FAILED, 0) >= self.max_failures or counts.get(STARTED, 0) >= self.max_starts:
            raise TooManyAttempts("too many sign-in attempts from this address; try again later",
                                  retry_after=self.window.total_seconds())

    def record(self, client: str, outcome: str) -> None:
        now = clock.now()
        db.session.add(AdminLoginAttempt(client=client[:64], at=now, outcome=outcome))
        db.session.execute(delete(AdminLoginAttempt).where(AdminLoginAttempt.client == client[:64],
                                                           AdminLoginAttempt.at < now - self.window))
        db.session.commit()
