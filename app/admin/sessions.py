"""Server-side admin sessions: the cookie holds a random id, the database holds its hash.

Logging out deletes the row, so the cookie (and any stolen copy of it) stops working at once.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import delete

from .. import clock
from ..extensions import db
from ..models import AdminSession

DEMO_ADMIN_SUB = "demo|admin"


class AdminUser(UserMixin):
    """What Flask-Login calls the user: one live admin session."""

    def __init__(self, token: str, row: AdminSession):
        self.token = token
        self.sub = row.sub
        self.name = row.name or row.sub

    def get_id(self) -> str:
        return self.token


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(sub: str, name: str | None, lifetime: timedelta) -> AdminUser:
    token = secrets.token_urlsafe(32)
    now = clock.now()
    row = AdminSession(id_hash=_hash(token), sub=sub, name=(name or "")[:255] or None,
                       created_at=now, expires_at=now + lifetime)
    db.session.add(row)
    # Expired sessions of anyone are dropped here, so the table stays small without a cron job.
    db.session.execute(delete(AdminSession).where(AdminSession.expires_at < now))
    db.session.commit()
    return AdminUser(token, row)


def load_session(token: str) -> AdminUser | None:
    if not token or len(token) > 128:
        return None
    row = db.session.get(AdminSession, _hash(token))
    if row is None or row.expires_at <= clock.now() or not _may_stay(row.sub):
        return None
    return AdminUser(token, row)


def _may_stay(sub: str) -> bool:
    """Does the configuration still let ``sub`` in? A ``sub`` removed from ADMIN_SUBS (or demo
    login turned off) loses its live sessions at once, not when they expire. Admins by role are
    re-checked only at their next sign-in (the role lives in Auth0); end their sessions with
    ``flask connector end-admin-sessions``."""
    config = current_app.config
    if sub == DEMO_ADMIN_SUB:
        return bool(config["ADMIN_DEMO_LOGIN"])
    return sub in config["ADMIN_SUBS"] or bool(config["ADMIN_ROLE_CLAIM"])


def end_session(token: str) -> None:
    db.session.execute(delete(AdminSession).where(AdminSession.id_hash == _hash(token)))
    db.session.commit()


def end_sessions(sub: str | None = None) -> int:
    """End every live admin session (of ``sub`` only, when given); returns how many."""
    statement = delete(AdminSession)
    if sub is not None:
        statement = statement.where(AdminSession.sub == sub)
    count = db.session.execute(statement).rowcount
    db.session.commit()
    return count
