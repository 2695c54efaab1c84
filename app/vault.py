"""The token vault: a fresh access token for a user's connection, for jobs and the API.

Refresh is single-flight across threads and processes through a short lease on the
connection row (owner + expiry, set and cleared in short transactions), so no
database lock is held while the provider answers. A lease whose holder died
expires and is taken over. The rotated refresh token is written in the same
transaction that releases the lease.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import DBAPIError

from . import clock, oauth_client
from .connections import seal_tokens
from .errors import (
    DecryptionError,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    ReauthorizationRequired,
    UnknownProvider,
)
from .extensions import db
from .models import ACTIVE, NEEDS_REAUTH, Connection, record_audit
from .observability import metrics
from .runtime import Runtime, VaultSettings, runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scopes: tuple[str, ...]

    def as_json(self) -> dict:
        expires_in = None
        if self.expires_at is not None:
            expires_in = max(0, int((self.expires_at - clock.now()).total_seconds()))
        return {"access_token": self.token, "token_type": self.token_type, "expires_in": expires_in,
                "expires_at": self.expires_at.isoformat() + "Z" if self.expires_at else None,
                "scopes": list(self.scopes)}


def lease_owner() -> str:
    """Unique per process and thread: a lease names exactly one refresher."""
    return f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def _load(user_id: str, provider: str) -> Connection:
    db.session.expire_all()  # always read the row as it is now, not as this session last saw it
    connection = db.session.scalar(
        select(Connection).where(Connection.user_id == user_id, Connection.provider == provider)
    )
    if connection is None:
        raise NotFound(f"user has no {provider!r} connection")
    if connection.status == NEEDS_REAUTH:
        raise ReauthorizationRequired(f"the {provider!r} connection needs the user to connect again")
    if connection.status != ACTIVE:
        raise ReauthorizationRequired(f"the {provider!r} connection was revoked; the user must connect again")
    return connection


def _fresh(connection: Connection, min_ttl: timedelta) -> bool:
    if connection.access_token_enc is None:
        return False
    expires = connection.access_token_expires_at
    return expires is None or expires - clock.now() > min_ttl


def _capped(connection: Connection, min_ttl: timedelta) -> timedelta:
    """``min_ttl``, but at most half the token's lifetime: a provider issuing 60 s tokens must not
    see a refresh on every call when VAULT_MIN_TTL is 60 s."""
    issued = connection.last_refreshed_at or connection.connected_at
    expires = connection.access_token_expires_at
    if issued is None or expires is None or expires <= issued:
        return min_ttl
    return min(min_ttl, (expires - issued) / 2)


def _access_token(rt: Runtime, connection: Connection) -> AccessToken:
    token = rt.keyring.decrypt(connection.access_token_enc, connection.aad("access_token"))
    return AccessToken(token, connection.token_type or "Bearer", connection.access_token_expires_at,
                       tuple(connection.scope_list))


def _try_lease(connection_id: str, owner: str, settings: VaultSettings) -> bool:
    now = clock.now()
    result = db.session.execute(
        update(Connection)
        .where(Connection.id == connection_id, Connection.status == ACTIVE)
        .where(or_(Connection.lease_owner.is_(None), Connection.lease_expires_at < now))
        # In the same statement, so two callers cannot both pass a cooldown check and both call.
        .where(or_(Connection.cooldown_until.is_(None), Connection.cooldown_until <= now))
        .values(lease_owner=owner, lease_expires_at=now + settings.lease)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _commit_keeping(connection: Connection) -> None:
    """Commit without expiring ``connection``: while we hold its lease no one else writes its tokens
    (a revoke or a reconnect takes the lease away, which ``_hold`` sees before we write), so the
    values we read stay good and need no second SELECT after the provider call."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def _release(connection: Connection, owner: str) -> None:
    if connection.lease_owner == owner:
        connection.lease_owner = None
        connection.lease_expires_at = None


def _hold(connection_id: str, owner: str, settings: VaultSettings) -> bool:
    """Renew our lease if we still hold it on an active row; in the transaction that then writes.

    The UPDATE also locks the row until that commit, so a revoke or a takeover cannot slip in
    between this check and our write. False: the row was revoked, or our lease expired and was
    taken over; what we got from the provider must not be stored."""
    result = db.session.execute(
        update(Connection)
        .where(Connection.id == connection_id, Connection.lease_owner == owner, Connection.status == ACTIVE)
        .values(lease_expires_at=clock.now() + settings.lease)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _lost(connection_id: str) -> Exception:
    """Why a refresh's result was dropped, as the caller's error (after a rollback)."""
    db.session.rollback()
    connection = db.session.get(Connection, connection_id)
    metrics.count_refresh(connection.provider if connection else None, "lost_lease")
    if connection is None or connection.status != ACTIVE:
        return ReauthorizationRequired("the connection was revoked or replaced while it was being refreshed")
    return ProviderUnavailable("another refresh of this connection took over; ask again", retry_after=1)


def _check_cooldown(connection: Connection) -> None:
    if connection.cooldown_until and connection.cooldown_until > clock.now():
        wait = (connection.cooldown_until - clock.now()).total_seconds()
        raise ProviderUnavailable(f"the provider failed recently; next attempt in {int(wait) + 1}s",
                                  retry_after=wait)


def get_access_token(user_id: str, provider: str, *, min_ttl: float | None = None,
                     force_refresh: bool = False) -> AccessToken:
    """A usable access token for (user, provider), refreshing it if it expires within ``min_ttl`` seconds.

    Raises ``NotFound``, ``ReauthorizationRequired`` or ``ProviderUnavailable`` (with ``retry_after``).
    Needs an application context.
    """
    rt = runtime()
    settings: VaultSettings = rt.vault
    connection = _load(user_id, provider)
    # A caller's own min_ttl is honoured as asked; the configured default adapts to short-lived tokens.
    ttl = _capped(connection, settings.min_ttl) if min_ttl is None else timedelta(seconds=min_ttl)
    # The token we saw: one that replaces it while we wait came from a refresh that ran for us too.
    seen_token = connection.access_token_enc
    if not force_refresh and _fresh(connection, ttl):
        return _access_token(rt, connection)
    if connection.refresh_token_enc is None:
        raise ReauthorizationRequired(f"the {provider!r} access token expired and there is no refresh token")

    owner = lease_owner()
    deadline = time.monotonic() + settings.wait.total_seconds()
    delay = 0.01
    while True:
        _check_cooldown(connection)
        if _try_lease(connection.id, owner, settings):
            return _refresh_under_lease(rt, _load(user_id, provider), owner, seen_token)
        if time.monotonic() > deadline:
            raise ProviderUnavailable("another refresh of this connection is still running", retry_after=1)
        db.session.rollback()  # hold no connection or snapshot while waiting
        time.sleep(delay * (1 + random.random() / 2))  # jitter keeps waiters from polling in lockstep
        # Capped low: a waiter learns of the new token only at its next poll (one indexed SELECT).
        delay = min(delay * 2, 0.1)
        connection = _load(user_id, provider)
        if _replaced(connection, seen_token):
            return _access_token(rt, connection)


def refresh_claimed(connection_id: str, owner: str) -> str:
    """Refresh a connection whose lease ``owner`` already holds (batch refresh); returns the outcome."""
    rt = runtime()
    # The batch was leased at once and earlier rows may have been slow: renew before the call
    # (committed with the read below, before the provider call).
    db.session.expire_all()  # read the row as it is now, not as this session last saw it
    connection = db.session.get(Connection, connection_id) if _hold(connection_id, owner, rt.vault) else None
    if connection is None:
        db.session.commit()
        return "skipped"
    try:
        _refresh_under_lease(rt, connection, owner, connection.access_token_enc)
    except ReauthorizationRequired:
        return "needs_reauth"
    except ProviderUnavailable:
        return "unavailable"
    except (UnknownProvider, DecryptionError) as exc:
        # This row cannot be refreshed with the current configuration (its provider was disabled,
        # its key removed): put it in the longest cooldown and go on with the others, so one such
        # row neither aborts the run nor stays first in line on every later run.
        log.warning("refresh of %s/%s skipped: %s", connection.provider, connection.id, exc.code)
        db.session.expire_all()
        _record_failure(rt, db.session.get(Connection, connection_id), owner, exc.code, rt.vault.backoff_max,
                        outcome="failed")
        return "failed"
    return "refreshed"


def _replaced(connection: Connection, seen_token: str | None) -> bool:
    """Another caller refreshed since we looked, and its token has not expired.

    Accepted even when it lives less than ``min_ttl``: a provider whose tokens are that short-lived
    would otherwise get one refresh per waiting caller instead of one in all.
    """
    return connection.access_token_enc != seen_token and _fresh(connection, timedelta(0))


def _refresh_under_lease(rt: Runtime, connection: Connection, owner: str, seen_token: str | None) -> AccessToken:
    if _replaced(connection, seen_token):
        _release(connection, owner)  # someone refreshed between our read and our lease
        db.session.commit()
        return _access_token(rt, connection)
    connection_id = connection.id
    try:
        spec = rt.registry.get(connection.provider)
        refresh_token = rt.keyring.decrypt(connection.refresh_token_enc, connection.aad("refresh_token"))
        scopes = tuple(connection.scope_list)
        _commit_keeping(connection)  # no transaction stays open while the provider answers
        with metrics.refresh_timer(connection.provider):
            token = oauth_client.refresh(spec, refresh_token=refresh_token, scopes=scopes, timeout=rt.timeout)
    except ProviderError as exc:
        if not _hold(connection_id, owner, rt.vault):
            raise _lost(connection_id) from None
        if exc.code in spec_reauth_codes(rt, connection.provider):
            _mark_needs_reauth(connection, owner, exc.code)
            raise ReauthorizationRequired(f"the provider rejected the stored grant ({exc.code})") from None
        retry_after = _record_failure(rt, connection, owner, exc.code, None)
        raise ProviderUnavailable(f"the provider refused the refresh ({exc.code})", code=exc.code,
                                  retry_after=retry_after) from None
    except ProviderUnavailable as exc:
        if not _hold(connection_id, owner, rt.vault):
            raise _lost(connection_id) from None
        retry_after = _record_failure(rt, connection, owner, exc.code, exc.retry_after)
        raise ProviderUnavailable(exc.description, retry_after=retry_after) from None
    except BaseException:
        db.session.rollback()
        _release(connection, owner)
        db.session.commit()
        raise
    return _store(rt, connection, owner, token)


STORE_ATTEMPTS = 3


def _store(rt: Runtime, connection: Connection, owner: str, token: oauth_client.TokenResponse) -> AccessToken:
    """Write the new tokens and release the lease in one transaction.

    A provider that rotates has already invalidated the refresh token we hold, so a failed write
    (SQLite busy past its timeout, a dropped database connection) is tried again before giving up:
    losing the new refresh token would cost the user their grant."""
    connection_id, provider = connection.id, connection.provider
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            if not _hold(connection_id, owner, rt.vault):
                raise _lost(connection_id)
            seal_tokens(connection, rt.keyring, token, keep_refresh=True)
            connection.last_refreshed_at = clock.now()
            connection.last_error_code = None
            connection.failure_count = 0
            connection.cooldown_until = None
            _release(connection, owner)
            # What we just stored, taken before the commit expires the row (no re-read, no decrypt).
            result = AccessToken(token.access_token, connection.token_type or "Bearer",
                                 connection.access_token_expires_at, tuple(connection.scope_list))
            db.session.commit()  # new tokens and the lease release land together
            metrics.count_refresh(provider, "ok")
            return result
        except DBAPIError as exc:
            db.session.rollback()
            log.warning("storing the refreshed tokens of %s/%s failed (%s), attempt %d of %d", provider,
                        connection_id, type(exc.orig).__name__, attempt, STORE_ATTEMPTS)
            if attempt == STORE_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def spec_reauth_codes(rt: Runtime, provider: str) -> tuple[str, ...]:
    return rt.registry.get(provider).reauth_error_codes


def _mark_needs_reauth(connection: Connection, owner: str, code: str) -> None:
    connection.status = NEEDS_REAUTH
    connection.last_error_code = code
    _release(connection, owner)
    record_audit("refresh", "needs_reauth", actor_type="system", user_id=connection.user_id,
                 provider=connection.provider, error=code)
    db.session.commit()
    log.warning("connection %s/%s needs reauthorization (%s)", connection.provider, connection.id, code)


def _record_failure(rt: Runtime, connection: Connection, owner: str, code: str,
                    retry_after: float | None, outcome: str = "unavailable") -> float:
    settings: VaultSettings = rt.vault
    connection.failure_count = (connection.failure_count or 0) + 1
    backoff = min(settings.backoff_base * 2 ** (connection.failure_count - 1), settings.backoff_max)
    wait = max(backoff, min(retry_after or 0, settings.backoff_max))
    connection.cooldown_until = clock.now() + timedelta(seconds=wait)
    connection.last_error_code = code
    _release(connection, owner)
    record_audit("refresh", outcome, actor_type="system", user_id=connection.user_id,
                 provider=connection.provider, error=code, failures=str(connection.failure_count))
    db.session.commit()
    log.warning("refresh of %s/%s failed (%s); next attempt in %.0fs",
                connection.provider, connection.id, code, wait)
    return wait
