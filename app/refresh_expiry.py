"""When a connection's refresh token dies, and what the worker does about it.

Two deadlines, kept apart because they call for different actions:

- ``refresh_token_expires_at``, absolute: the provider said so (``refresh_token_expires_in`` with
  the refresh token it issued) or the spec's ``refresh_token_absolute_lifetime`` runs from the
  grant. Refreshing does not move it; the user must connect again, so it is announced
  (``connection.refresh_token_expiring``) ``REFRESH_TOKEN_EXPIRY_WARNING`` seconds before, once.
- ``refresh_token_idle_expires_at``: the spec's ``refresh_token_idle_lifetime`` from the last use.
  Any refresh moves it, so the keep-alive refreshes a grant once half that lifetime went unused.

``keep_alive_idle_grants`` and ``announce_expiring_refresh_tokens`` are the worker's periodic jobs;
both need an application context, are bounded per call and are safe to run as several copies.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from . import clock
from .extensions import db
from .models import ACTIVE, Connection, record_audit
from .oauth_client import TokenResponse, _seconds
from .providers.spec import ProviderSpec

log = logging.getLogger(__name__)

EXPIRING_EVENT = "connection.refresh_token_expiring"
DEFAULT_LIMIT = 100


def note_refresh_token_expiry(connection: Connection, spec: ProviderSpec | None, token: TokenResponse, *,
                              new_grant: bool, now: datetime | None = None) -> None:
    """Record the refresh token's deadlines after ``token`` was stored in ``connection`` (caller commits)."""
    for column, value in refresh_token_deadlines(connection, spec, token, new_grant=new_grant, now=now).items():
        setattr(connection, column, value)


def refresh_token_deadlines(connection: Connection, spec: ProviderSpec | None, token: TokenResponse, *,
                            new_grant: bool, now: datetime | None = None) -> dict:
    """The deadline columns for ``connection`` once ``token`` is stored in it: a dict of column values,
    so that the vault can write them in the same conditional UPDATE as the tokens themselves."""
    now = now or clock.now()
    values: dict = {}
    if new_grant:
        values["refresh_token_expiry_warned_at"] = None
    if connection.refresh_token_enc is None:
        return {**values, "refresh_token_expires_at": None, "refresh_token_idle_expires_at": None}
    previous = connection.refresh_token_expires_at
    candidates: list[datetime] = []
    if token.refresh_token is not None:  # a new refresh token: what the provider says about it
        # Read at the entry's token_response.refresh_token_expires_in path by the token client.
        reported = token.refresh_token_expires_in
        if reported is None:
            reported = _seconds(token.raw.get("refresh_token_expires_in"))
        if reported is not None:
            candidates.append(now + timedelta(seconds=reported))
    elif previous is not None and not new_grant:  # the old refresh token stays in use, and so does its deadline
        candidates.append(previous)
    if spec is not None and spec.refresh_token_absolute_lifetime:
        granted = now if new_grant else (connection.connected_at or now)
        candidates.append(granted + timedelta(seconds=spec.refresh_token_absolute_lifetime))
    deadline = min(candidates) if candidates else None
    if previous is not None and (deadline is None or deadline > previous):
        values["refresh_token_expiry_warned_at"] = None  # a later deadline is announced again, once
    values["refresh_token_expires_at"] = deadline
    idle = spec.refresh_token_idle_lifetime if spec is not None else None
    values["refresh_token_idle_expires_at"] = now + timedelta(seconds=idle) if idle else None
    return values


def _idle_due(spec: ProviderSpec, now: datetime):
    """Rows of ``spec``'s provider whose grant went unused for half its idle lifetime."""
    half = timedelta(seconds=spec.refresh_token_idle_lifetime / 2)
    last_use = func.coalesce(Connection.last_refreshed_at, Connection.connected_at)
    return and_(
        Connection.provider == spec.name, Connection.status == ACTIVE, Connection.refresh_token_enc.is_not(None),
        or_(Connection.refresh_token_idle_expires_at < now + half,
            # stored before the deadline was recorded: judged by the last use
            and_(Connection.refresh_token_idle_expires_at.is_(None), last_use < now - half)),
        or_(Connection.cooldown_until.is_(None), Connection.cooldown_until <= now),
        or_(Connection.lease_owner.is_(None), Connection.lease_expires_at < now),
    )


def _claim(condition, owner: str, lease: timedelta, now: datetime, limit: int) -> list[str]:
    """Lease up to ``limit`` rows matching ``condition``; only rows leased here are returned."""
    ids = db.session.scalars(select(Connection.id).where(condition).order_by(Connection.id).limit(limit)
                             .with_for_update(skip_locked=True)).all()
    if not ids:
        db.session.commit()
        return []
    db.session.execute(
        update(Connection)
        .where(Connection.id.in_(ids))
        .where(or_(Connection.lease_owner.is_(None), Connection.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return list(db.session.scalars(select(Connection.id).where(Connection.id.in_(ids),
                                                                Connection.lease_owner == owner)))


def keep_alive_idle_grants(runtime, now: datetime | None = None, *, limit: int = DEFAULT_LIMIT) -> Counter:
    """Refresh grants that would lapse from disuse (at most ``limit`` per provider); counts by outcome."""
    from .vault import lease_owner, refresh_claimed

    now = now or clock.now()
    counts: Counter = Counter()
    owner = lease_owner()
    for spec in runtime.registry.enabled():
        if not spec.refresh_token_idle_lifetime:
            continue
        for connection_id in _claim(_idle_due(spec, now), owner, runtime.vault.lease, now, limit):
            counts[refresh_claimed(connection_id, owner)] += 1
    return counts


def _emit(connection: Connection, type_: str, **data) -> None:
    """The events outbox, in this transaction."""
    from .events.outbox import emit_event

    emit_event(connection, type_, **data)


def announce_expiring_refresh_tokens(runtime, now: datetime | None = None, *, limit: int = DEFAULT_LIMIT) -> int:
    """Announce, once each, refresh tokens whose absolute deadline is within REFRESH_TOKEN_EXPIRY_WARNING."""
    from .links import reconnect_url_for

    now = now or clock.now()
    warning = timedelta(seconds=current_app.config["REFRESH_TOKEN_EXPIRY_WARNING"])
    ids = db.session.scalars(
        select(Connection.id)
        .where(Connection.status == ACTIVE, Connection.refresh_token_enc.is_not(None),
               Connection.refresh_token_expires_at.is_not(None), Connection.refresh_token_expires_at <= now + warning,
               Connection.refresh_token_expiry_warned_at.is_(None))
        .order_by(Connection.refresh_token_expires_at).limit(limit)
    ).all()
    db.session.commit()
    announced = 0
    for connection_id in ids:
        # The claim and the event commit together: a copy that lost the race announces nothing.
        claimed = db.session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.refresh_token_expiry_warned_at.is_(None),
                   Connection.status == ACTIVE)
            .values(refresh_token_expiry_warned_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if not claimed:
            db.session.rollback()
            continue
        connection = db.session.get(Connection, connection_id)
        db.session.refresh(connection)
        expires_at = connection.refresh_token_expires_at.replace(microsecond=0).isoformat() + "Z"
        data = {"refresh_token_expires_at": expires_at}
        url = reconnect_url_for(connection.user_id, connection.provider)
        if url:
            data["reconnect_url"] = url
        record_audit("refresh_token_expiring", "announced", actor_type="system", user_id=connection.user_id,
                     provider=connection.provider, expires_at=expires_at)
        _emit(connection, EXPIRING_EVENT, **data)
        db.session.commit()
        announced += 1
        log.info("refresh token of %s/%s expires at %s: announced", connection.provider, connection.id, expires_at)
    return announced
