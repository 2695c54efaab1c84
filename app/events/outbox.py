"""Writing events: in the caller's transaction, next to the state change they report.

``emit_event`` adds an ``Event`` row to the current session; the caller commits it with the
change, so an event is announced exactly when its change happened. The per-connection
``sequence`` is max+1 taken under the connection row's write lock (an UPDATE of the row, which
PostgreSQL holds as a row lock and SQLite as its one writer lock until the commit), so two
transactions never pick the same number; a unique constraint backs that up.

The ``on_*`` functions are the hooks the state-change call sites call (connect flow, vault,
revocation). Payloads carry ids, status and error codes only, never token material.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, current_app, has_app_context
from sqlalchemy import func, select, text, update

from .. import clock
from ..extensions import db
from ..models import NEEDS_REAUTH, Connection
from .model import PENDING, SKIPPED, Event

CREATED = "connection.created"
RECONNECTED = "connection.reconnected"
NEEDS_REAUTH_EVENT = "connection.needs_reauth"
REFRESH_FAILING = "connection.refresh_failing"
RECOVERED = "connection.recovered"
REVOKED_EVENT = "connection.revoked"
REMOTE_REVOCATION_FINISHED = "connection.remote_revocation_finished"
REFRESH_TOKEN_EXPIRING = "connection.refresh_token_expiring"
EVENT_TYPES = (CREATED, RECONNECTED, NEEDS_REAUTH_EVENT, REFRESH_FAILING, RECOVERED, REVOKED_EVENT,
               REMOTE_REVOCATION_FINISHED, REFRESH_TOKEN_EXPIRING)
# The events that start or end a "failing" streak: refresh_failing is announced once per streak.
_HEALTH_TYPES = (CREATED, RECONNECTED, NEEDS_REAUTH_EVENT, REFRESH_FAILING, RECOVERED)

ReconnectUrl = Callable[[str, str], "str | None"]
_RECONNECT_URL_KEY = "connector.reconnect_url"


def set_reconnect_url_builder(app: Flask, builder: ReconnectUrl | None) -> None:
    """Install ``builder(user_id, provider) -> url | None`` for the ``reconnect_url`` of needs_reauth
    events (the reconnect links); without one (links not configured) the field is ``null``."""
    app.extensions[_RECONNECT_URL_KEY] = builder


def reconnect_url(user_id: str, provider: str) -> str | None:
    builder = current_app.extensions.get(_RECONNECT_URL_KEY) if has_app_context() else None
    return builder(user_id, provider) if builder else None


def rfc3339(value: datetime) -> str:
    """A naive UTC datetime (``app.clock``) as RFC 3339 with a ``Z``."""
    return value.isoformat(timespec="milliseconds") + "Z"


def _lock_connection(connection_id: str) -> None:
    """Hold the connection row's write lock until the commit (a no-op UPDATE)."""
    db.session.execute(text("UPDATE connections SET id = id WHERE id = :id"), {"id": connection_id})


def emit_event(connection: Connection, event_type: str, *, reason: str | None = None, **extra) -> Event:
    """Add a ``event_type`` event about ``connection`` to the current transaction; the caller commits.

    ``data`` holds connection_id, user_id, provider, status, sequence, ``reason`` (an error code)
    when given, ``reconnect_url`` for needs_reauth, and ``extra`` (JSON values; never tokens).
    """
    db.session.flush()  # the state change reaches the database first (and a failing one fails here)
    _lock_connection(connection.id)
    last = db.session.scalar(select(func.max(Event.sequence)).where(Event.connection_id == connection.id))
    now = clock.now()
    data: dict = {"connection_id": connection.id, "user_id": connection.user_id, "provider": connection.provider,
                  "status": connection.status, "sequence": (last or 0) + 1}
    if reason is not None:
        data["reason"] = reason
    if event_type == NEEDS_REAUTH_EVENT:
        data["reconnect_url"] = reconnect_url(connection.user_id, connection.provider)
    data.update(extra)
    public_id = "evt_" + uuid.uuid4().hex
    body = json.dumps({"type": event_type, "timestamp": rfc3339(now), "data": data}, separators=(",", ":"))
    webhooks_on = bool(current_app.config.get("WEBHOOK_URL"))
    event = Event(public_id=public_id, type=event_type, connection_id=connection.id, user_id=connection.user_id,
                  provider=connection.provider, sequence=data["sequence"], body=body, created_at=now,
                  delivery_status=PENDING if webhooks_on else SKIPPED, attempts=0,
                  next_attempt_at=now if webhooks_on else None)
    db.session.add(event)
    return event


def _last_health_event(connection_id: str) -> str | None:
    return db.session.scalar(
        select(Event.type).where(Event.connection_id == connection_id, Event.type.in_(_HEALTH_TYPES))
        .order_by(Event.sequence.desc()).limit(1)
    )


def status_before_connect(user_id: str, provider: str) -> str | None:
    """The (user, provider) connection's status before a connect stores it; None when there is none."""
    return db.session.scalar(
        select(Connection.status).where(Connection.user_id == user_id, Connection.provider == provider)
    )


def on_connected(connection: Connection, previous_status: str | None) -> None:
    """After a successful connect (``previous_status`` from ``status_before_connect``)."""
    if previous_status is None:
        emit_event(connection, CREATED)
        return
    # The row (and so the connection id and its sequence) is kept across reconnects.
    emit_event(connection, RECONNECTED, previous_status=previous_status)
    if previous_status == NEEDS_REAUTH or _last_health_event(connection.id) == REFRESH_FAILING:
        emit_event(connection, RECOVERED, previous_status=previous_status)


def on_needs_reauth(connection: Connection, code: str) -> None:
    emit_event(connection, NEEDS_REAUTH_EVENT, reason=code)


def on_refresh_failure(connection: Connection, wait: float, backoff_max: float) -> None:
    """After a transient refresh failure was counted: announce the streak once, when it reaches
    REFRESH_FAILING_AFTER failures in a row or the cooldown's maximum."""
    failures = connection.failure_count or 0
    threshold = current_app.config.get("REFRESH_FAILING_AFTER", 3)
    if failures < threshold and wait < backoff_max:
        return
    if _last_health_event(connection.id) == REFRESH_FAILING:
        return  # this streak was announced already
    emit_event(connection, REFRESH_FAILING, reason=connection.last_error_code, failures=failures,
               next_attempt_at=rfc3339(clock.now() + timedelta(seconds=wait)))


def on_refresh_succeeded(connection: Connection) -> None:
    """Before a successful refresh resets the failure count (call only when it was > 0)."""
    if _last_health_event(connection.id) == REFRESH_FAILING:
        emit_event(connection, RECOVERED, previous_status="refresh_failing")


def on_revoked(connection: Connection, actor_type: str, remote_revocation: str) -> None:
    emit_event(connection, REVOKED_EVENT, actor_type=actor_type, remote_revocation=remote_revocation)


def on_remote_revocation_finished(connection: Connection, outcome: str, error: str | None) -> None:
    """A remote revocation that was pending ended (done, failed or not_supported)."""
    emit_event(connection, REMOTE_REVOCATION_FINISHED, reason=error, remote_revocation=outcome)


def publish_to_feed(batch: int = 1000) -> int:
    """Give committed events that have none a feed position, in id order; returns how many.

    One publisher at a time (a transaction-scoped advisory lock on PostgreSQL, SQLite's writer
    lock), and only committed rows are seen, so a position is never given to an event that then
    rolls back, and an event committed late gets a position after every one already given: a
    reader's cursor never skips one. The caller commits.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(1515001)"))
    else:
        db.session.execute(update(Event).where(Event.id == -1).values(feed_position=None)
                           .execution_options(synchronize_session=False))
    top = db.session.scalar(select(func.max(Event.feed_position))) or 0
    ids = db.session.scalars(select(Event.id).where(Event.feed_position.is_(None)).order_by(Event.id)
                             .limit(batch)).all()
    if ids:
        db.session.execute(update(Event), [{"id": event_id, "feed_position": top + n}
                                           for n, event_id in enumerate(ids, 1)])
    return len(ids)
