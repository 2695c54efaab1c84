"""``flask connector worker``: every periodic job in one process, on intervals, until SIGTERM.

Jobs: webhook delivery, ``refresh-due``, ``retry-revocations``, the refresh-token keep-alive and
expiry announcements (``app.refresh_expiry``), the dashboard's rollup (``app.refresh_stats``) and
purges of expired rows. Each
runs when its interval has passed (``WORKER_INTERVAL`` seconds by default), inside its own app
context; one job's failure is logged and does not stop the others. Several copies may run at
once: every job claims its rows with SKIP LOCKED (PostgreSQL) or leases (SQLite), as the
commands do. Other modules add jobs with ``register_job``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import delete

from . import clock
from .extensions import db

log = logging.getLogger(__name__)

REFRESH_WITHIN = timedelta(minutes=10)
REFRESH_WORKERS = 4
PURGE_EVERY = 300.0
ROLLUP_EVERY = 60.0  # the dashboard's refresh figures (app.refresh_stats)
KEEP_ALIVE_EVERY = 60.0  # refresh-token deadlines are hours to months away: once a minute is plenty
LOGIN_ATTEMPTS_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[Flask, threading.Event], object]  # (app, stop) -> a summary to log; in an app context
    every: float | None = None  # seconds; None: WORKER_INTERVAL


_JOBS: list[Job] = []


def register_job(name: str, run: Callable[[Flask, threading.Event], object], every: float | None = None) -> None:
    """Add a periodic job (replacing one of the same name)."""
    _JOBS[:] = [job for job in _JOBS if job.name != name]
    _JOBS.append(Job(name, run, every))


def jobs() -> list[Job]:
    return list(_JOBS)


def _deliver_events(app: Flask, stop: threading.Event):
    from .events.webhooks import deliver_due

    return dict(deliver_due(stop=stop))


def _refresh_due(app: Flask, stop: threading.Event):
    from .refresh_due import refresh_due

    return dict(refresh_due(app, REFRESH_WITHIN, REFRESH_WORKERS))


def _retry_revocations(app: Flask, stop: threading.Event):
    from .revocation import retry_revocations

    return {k: v for k, v in retry_revocations().items() if v}


def _keep_alive(app: Flask, stop: threading.Event):
    from .refresh_expiry import keep_alive_idle_grants

    return {k: v for k, v in keep_alive_idle_grants(app.extensions["connector"]).items() if v}


def _announce_expiring(app: Flask, stop: threading.Event):
    from .refresh_expiry import announce_expiring_refresh_tokens

    announced = announce_expiring_refresh_tokens(app.extensions["connector"])
    return {"announced": announced} if announced else None


def _rollup_stats(app: Flask, stop: threading.Event):
    from .refresh_stats import rollup_refresh_stats

    return rollup_refresh_stats()


def _purge(app: Flask, stop: threading.Event):
    from .connect.flow import purge_used_attempts_statement
    from .models import AdminLoginAttempt, AdminSession, AdminSignInState

    now = clock.now()
    counts = {}
    for name, statement in (
        ("connect_attempts_used", purge_used_attempts_statement(now)),
        ("admin_sessions", delete(AdminSession).where(AdminSession.expires_at < now)),
        ("admin_sign_in_states", delete(AdminSignInState).where(AdminSignInState.expires_at < now)),
        ("admin_login_attempts", delete(AdminLoginAttempt).where(AdminLoginAttempt.at < now - LOGIN_ATTEMPTS_KEPT)),
    ):
        counts[name] = db.session.execute(statement).rowcount
        db.session.commit()
    return {k: v for k, v in counts.items() if v}


register_job("deliver-events", _deliver_events)
register_job("refresh-due", _refresh_due)
register_job("retry-revocations", _retry_revocations)
register_job("keep-alive", _keep_alive, every=KEEP_ALIVE_EVERY)
register_job("announce-expiring", _announce_expiring, every=KEEP_ALIVE_EVERY)
register_job("rollup-stats", _rollup_stats, every=ROLLUP_EVERY)
register_job("purge", _purge, every=PURGE_EVERY)


def run_job(app: Flask, job: Job, stop: threading.Event) -> bool:
    """Run one job in its own app context; False (logged) when it raised."""
    with app.app_context():
        try:
            summary = job.run(app, stop)
            if summary:
                log.info("%s: %s", job.name, summary)
            return True
        except Exception:
            log.exception("worker job %s failed", job.name)
            db.session.rollback()
            return False
        finally:
            db.session.remove()


def run_worker(app: Flask, stop: threading.Event, *, once: bool = False) -> None:
    """Run every job when due until ``stop`` is set (or one round with ``once``)."""
    interval = app.config.get("WORKER_INTERVAL", 5.0)
    due = {job.name: 0.0 for job in jobs()}
    while not stop.is_set():
        for job in jobs():
            if stop.is_set():
                break
            if time.monotonic() >= due.get(job.name, 0.0):
                run_job(app, job, stop)
                due[job.name] = time.monotonic() + (job.every or interval)
        if once:
            break
        stop.wait(max(0.0, min(interval, min(due.values(), default=0) - time.monotonic())))
