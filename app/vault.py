"""The token vault: a fresh access token for a user's connection, for jobs and the API.

Refresh is single-flight across threads and processes through a short lease on the
connection row (owner + expiry, set and cleared in short transactions), so no
database lock is held while the provider answers. The lease covers the provider call
(connect + read timeout + 5 s).

Once the provider has answered, the rotated refresh token is the one thing that must not be
lost: the holder keeps trying to store it (through ``app.token_store``, in the statement that
releases the lease, conditional on the row still holding the refresh token it refreshed from)
with backoff until the lease's end plus VAULT_STORE_DEADLINE, through a database outage or a
long SQLite lock. The fence: an expired lease is taken over only after that window and a
margin (``VaultSettings.takeover_after``), so nobody refreshes with the old token while the
holder may still store the new one. A holder that died (SIGKILL) costs its connection that
long; callers get 503 with Retry-After meanwhile. Whatever fails after a lease is taken and
before the provider answered releases it. A refresher that finds its row revoked or replaced
revokes what it received (or queues it for ``retry-revocations``).
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import DBAPIError

from . import clock, oauth_client, refresh_stats, scopes
from .crypto import associated_data
from .db_read import read_one
from .errors import (
    DecryptionError,
    MissingScopes,
    NotFound,
    ProviderError,
    ProviderUnavailable,
    ReauthorizationRequired,
    UnknownProvider,
)
from .events import outbox as events
from .extensions import db
from .models import ACTIVE, NEEDS_REAUTH, Connection, record_audit
from .observability import metrics
from .providers.templates import InvalidConnectionParam
from .refresh_expiry import refresh_token_deadlines
from .runtime import STORE_MARGIN, Runtime, VaultSettings, runtime
from .token_store import TokenStore

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


def longest_refresh_seconds(config) -> float:
    """The longest a request can spend in ``get_access_token`` with the given app config: waiting
    for another caller's refresh (lease + 5 s), then its own (lease, then storing until the
    lease's end + VAULT_STORE_DEADLINE + margin). A worker timeout (gunicorn's, which SIGKILLs)
    must exceed it, or the kill itself can lose a rotated token."""
    lease = config["PROVIDER_CONNECT_TIMEOUT"] + config["PROVIDER_READ_TIMEOUT"] + 5
    return (lease + 5) + lease + config["VAULT_STORE_DEADLINE"] + STORE_MARGIN


def lease_owner() -> str:
    """Unique per process and thread: a lease names exactly one refresher."""
    return f"{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


class Cached(NamedTuple):
    """What the cached case reads of a connection: enough to decide and to decrypt (a NamedTuple:
    its fields are read several times, faster than a SQLAlchemy ``Row``'s)."""

    id: str
    user_id: str
    provider: str
    status: str
    access_token_enc: str | None
    has_refresh: bool
    token_type: str | None
    scopes: str | None
    access_token_expires_at: datetime | None
    last_refreshed_at: datetime | None
    connected_at: datetime | None


# The cached case: one indexed SELECT (the unique user+provider constraint) of ``Cached``, through
# Core on an autocommit connection (``app.db_read``): no ORM, no session, no transaction.
_ROW = Connection.__table__.c
CACHED_READ = select(*(_ROW.refresh_token_enc.is_not(None).label(name) if name == "has_refresh" else _ROW[name]
                   for name in Cached._fields)) \
    .where(_ROW.user_id == bindparam("user_id"), _ROW.provider == bindparam("provider"))


def read_cached(user_id: str, provider: str) -> Cached | None:
    row = read_one(CACHED_READ, {"user_id": user_id, "provider": provider})
    return None if row is None else Cached._make(row)


def _usable(connection, provider: str):
    """``connection`` (a row or None) if it is active; ``NotFound`` or ``ReauthorizationRequired``."""
    if connection is None:
        raise NotFound(f"user has no {provider!r} connection")
    if connection.status == NEEDS_REAUTH:
        raise ReauthorizationRequired(f"the {provider!r} connection needs the user to connect again")
    if connection.status != ACTIVE:
        raise ReauthorizationRequired(f"the {provider!r} connection was revoked; the user must connect again")
    return connection


def _load(user_id: str, provider: str) -> Connection:
    db.session.expire_all()  # always read the row as it is now, not as this session last saw it
    return _usable(db.session.scalar(
        select(Connection).where(Connection.user_id == user_id, Connection.provider == provider)
    ), provider)


def _fresh(connection, min_ttl: timedelta) -> bool:
    if connection.access_token_enc is None:
        return False
    expires = connection.access_token_expires_at
    return expires is None or expires - clock.now() > min_ttl


def _capped(connection, min_ttl: timedelta) -> timedelta:
    """``min_ttl``, but at most half the token's lifetime: a provider issuing 60 s tokens must not
    see a refresh on every call when VAULT_MIN_TTL is 60 s."""
    issued = connection.last_refreshed_at or connection.connected_at
    expires = connection.access_token_expires_at
    if issued is None or expires is None or expires <= issued:
        return min_ttl
    return min(min_ttl, (expires - issued) / 2)


# Decrypted access tokens kept per process, keyed by the row's ciphertext (``_opened``): a job asking for
# the same connection's token again skips AES-GCM; nothing in it outlives a change of the row.
OPENED_TOKENS = 1024


@lru_cache(maxsize=4096)
def _access_token_aad(connection_id: str, user_id: str, provider: str) -> bytes:
    """The access token's associated data (a row's identity, no secret), encoded once per row."""
    return associated_data("connection", connection_id, user_id, provider, "access_token")


def _access_token(rt: Runtime, connection) -> AccessToken:
    """The access token of ``connection`` (a ``Connection`` or a row of ``CACHED_READ``), decrypted."""
    return _opened(rt.keyring, connection.access_token_enc, connection.id, connection.user_id, connection.provider,
                   connection.token_type, connection.access_token_expires_at, connection.scopes)


@lru_cache(maxsize=OPENED_TOKENS)
def _opened(keyring, access_token_enc: str, connection_id: str, user_id: str, provider: str, token_type: str | None,
            expires_at: datetime | None, granted: str | None) -> AccessToken:
    """The ``AccessToken`` a row's columns make, decrypted once per distinct ciphertext and columns.

    The row is read from the database on every call and these are its current values, so a refreshed,
    revoked or re-encrypted token (a new ciphertext) or changed columns are a new key: nothing here can
    answer for a row that changed. Only what the row was just read to hold is answered; a ciphertext
    that does not open raises (and is not kept)."""
    token = keyring.decrypt(access_token_enc, _access_token_aad(connection_id, user_id, provider))
    return AccessToken(token, token_type or "Bearer", expires_at, tuple(granted.split()) if granted else ())


def _try_lease(connection_id: str, owner: str, settings: VaultSettings) -> bool:
    """Take the refresh lease. An expired lease is taken over only once its holder's storing
    window is over too (``takeover_after``): a holder that has the provider's answer keeps
    trying to store it that long, and a takeover before would refresh with the old token."""
    now = clock.now()
    try:
        result = db.session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.status == ACTIVE)
            .where(lease_free(now, settings))
            # In the same statement, so two callers cannot both pass a cooldown check and both call.
            .where(or_(Connection.cooldown_until.is_(None), Connection.cooldown_until <= now))
            .values(lease_owner=owner, lease_expires_at=now + settings.lease)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except DBAPIError:
        # The COMMIT's reply may be what was lost: the lease may be ours.
        _release_quietly(connection_id, owner)
        raise _database_unavailable() from None
    return result.rowcount == 1


def lease_free(now: datetime, settings: VaultSettings):
    return lease_free_before(now - settings.takeover_after)


def lease_free_before(cutoff, row=Connection):
    """No lease, or one that expired before ``cutoff`` (a time, or a bound parameter for one): now
    minus ``takeover_after``. ``row``: the model, or its table in a Core statement."""
    return or_(row.lease_owner.is_(None), row.lease_expires_at < cutoff)


def _database_unavailable() -> ProviderUnavailable:
    return ProviderUnavailable("the database is unavailable; try again shortly", code="database_unavailable",
                               retry_after=RELEASE_WINDOW)


RELEASE_WINDOW = 2.0  # seconds spent trying to release a lease after a failure, before leaving it


def _release_quietly(connection_id: str, owner: str) -> None:
    """Release ``owner``'s lease after a failure, whatever state the session is in. Tried for a
    moment (a dropped connection is replaced by the pool); if the database stays away the lease
    runs out on its own and waiting callers answer 503 meanwhile."""
    deadline = time.monotonic() + RELEASE_WINDOW
    delay = 0.05
    while True:
        try:
            db.session.rollback()
            db.session.execute(
                update(Connection).where(Connection.id == connection_id, Connection.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
            return
        except DBAPIError as exc:
            if time.monotonic() + delay > deadline:
                log.warning("could not release the refresh lease of %s (%s); it runs out on its own",
                            connection_id, type(exc.orig).__name__)
                _rollback_quietly()
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _rollback_quietly() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        db.session.close()  # the connection is gone: give it back to the pool, which drops it


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
                     force_refresh: bool = False, required_scopes: tuple[str, ...] = ()) -> AccessToken:
    """A usable access token for (user, provider), refreshing it if it expires within ``min_ttl`` seconds.

    Raises ``NotFound``, ``ReauthorizationRequired`` (``MissingScopes`` when the connection was not
    granted every one of ``required_scopes``: checked before a refresh, and on the refreshed token,
    whose grant the provider may have narrowed) or ``ProviderUnavailable`` (with ``retry_after``).
    Needs an application context.
    """
    token = _get_access_token(user_id, provider, min_ttl, force_refresh, required_scopes)
    _require_scopes(provider, token.scopes, required_scopes)
    return token


def _require_scopes(provider: str, granted, required: tuple[str, ...]) -> None:
    if not required:
        return
    lacking = scopes.missing(granted, required)
    if lacking:
        raise MissingScopes(f"the {provider!r} connection was not granted {' '.join(lacking)}; the user must "
                            "connect again, granting them", missing_scopes=lacking)


def _get_access_token(user_id: str, provider: str, min_ttl: float | None, force_refresh: bool,
                      required_scopes: tuple[str, ...]) -> AccessToken:
    rt = runtime()
    if not force_refresh:
        cached = _usable(read_cached(user_id, provider), provider)
        if _fresh(cached, _ttl(cached, rt.vault, min_ttl)):
            return _access_token(rt, cached)
    return _refreshing(rt, user_id, provider, min_ttl, force_refresh, required_scopes)


def _ttl(connection, settings: VaultSettings, min_ttl: float | None) -> timedelta:
    """A caller's own min_ttl is honoured as asked; the configured default adapts to short-lived tokens."""
    return _capped(connection, settings.min_ttl) if min_ttl is None else timedelta(seconds=min_ttl)


def _refreshing(rt: Runtime, user_id: str, provider: str, min_ttl: float | None,
                force_refresh: bool, required_scopes: tuple[str, ...] = ()) -> AccessToken:
    """``get_access_token`` past the cached case: through the session, single-flight under the lease."""
    settings: VaultSettings = rt.vault
    connection = _load(user_id, provider)
    _require_scopes(provider, connection.scope_list, required_scopes)  # no refresh can add a scope
    ttl = _ttl(connection, settings, min_ttl)
    # The token we saw: one that replaces it while we wait came from a refresh that ran for us too.
    seen_token = _generation(connection)
    if not force_refresh and _fresh(connection, ttl):
        return _access_token(rt, connection)  # refreshed by another caller since the cached read
    if connection.refresh_token_enc is None:
        raise ReauthorizationRequired(f"the {provider!r} access token expired and there is no refresh token")

    owner = lease_owner()
    deadline = time.monotonic() + settings.wait.total_seconds()
    delay = 0.01
    while True:
        _check_cooldown(connection)
        leased_at = time.monotonic()
        if _try_lease(connection.id, owner, settings):
            connection_id = connection.id
            try:  # _load fails (revoked meanwhile, the database gone): the lease goes with it
                connection = _load(user_id, provider)
            except BaseException:
                _release_quietly(connection_id, owner)
                raise
            return _refresh_under_lease(rt, connection, owner, seen_token, leased_at)
        if time.monotonic() > deadline:
            raise ProviderUnavailable("another refresh of this connection is still running",
                                      retry_after=_takeover_in(connection, settings))
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
    leased_at = time.monotonic()
    try:
        connection = db.session.get(Connection, connection_id) if _hold(connection_id, owner, rt.vault) else None
        if connection is None:
            db.session.commit()
            return "skipped"
    except DBAPIError:
        _release_quietly(connection_id, owner)
        return "unavailable"
    try:
        _refresh_under_lease(rt, connection, owner, _generation(connection), leased_at)
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


class Claimed(NamedTuple):
    """What the claim of a batch (``app.refresh_due``) returns of each row it leased: enough to
    refresh and store without reading the row again."""

    id: str
    user_id: str
    provider: str
    refresh_token_enc: str | None
    scopes: str | None
    failure_count: int | None
    connected_at: datetime | None
    refresh_token_expires_at: datetime | None
    params: dict | None  # the connection's per-connection parameters (templated provider URLs)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split() if self.scopes else []

    def aad(self, field: str) -> bytes:
        return associated_data("connection", self.id, self.user_id, self.provider, field)


CLAIMED_COLUMNS = tuple(_ROW[name] for name in Claimed._fields)


def refresh_claimed_row(claimed: Claimed, owner: str, leased_at: float) -> str:
    """Refresh a row of a batch that ``owner`` leased at ``leased_at`` (monotonic, taken before the
    claim statement, which returned ``claimed``); returns the outcome.

    The common case reads and writes nothing before the provider call and stores the result with
    one conditional UPDATE (``_store``: onto the row still leased by ``owner`` and still holding the
    refresh token refreshed from). A row reached too late for its lease to cover the call, a row
    that failed before (its success is an event), one that cannot be refreshed with the current
    configuration, and a refused or failed refresh go through the session (``refresh_claimed``,
    ``_refresh_failed``), as a single refresh does."""
    rt = runtime()
    settings: VaultSettings = rt.vault
    lease_end = leased_at + settings.lease.total_seconds()
    if time.monotonic() + sum(rt.timeout) > lease_end or claimed.failure_count or claimed.refresh_token_enc is None:
        return refresh_claimed(claimed.id, owner)  # renews the lease first
    try:
        spec = rt.registry.get(claimed.provider)
        refresh_token = rt.keyring.decrypt(claimed.refresh_token_enc, claimed.aad("refresh_token"))
    except (UnknownProvider, DecryptionError):
        return refresh_claimed(claimed.id, owner)  # parks the row in the longest cooldown
    params = dict(claimed.params or {})
    try:
        refresh_stats.start(claimed.provider)
        with metrics.refresh_timer(claimed.provider):
            token = oauth_client.refresh(spec, refresh_token=refresh_token, scopes=tuple(claimed.scope_list),
                                         timeout=rt.timeout, params=params,
                                         redirect_uri=rt.connect.redirect_uri_for(spec.name))
    except (ProviderError, ProviderUnavailable) as exc:
        return _claimed_failed(rt, claimed, owner, exc)
    except BaseException:
        _release_quietly(claimed.id, owner)
        raise
    try:
        _store(rt, claimed, owner, token, claimed.refresh_token_enc, refresh_token, params,
               stop=lease_end + settings.store_deadline)
    except ReauthorizationRequired:
        return "needs_reauth"
    except ProviderUnavailable:
        return "unavailable"
    return "refreshed"


def _claimed_failed(rt: Runtime, claimed: Claimed, owner: str, exc: Exception) -> str:
    """Record a batch refresh the provider refused or failed, through the session."""
    try:
        db.session.expire_all()
        connection = db.session.get(Connection, claimed.id)
        if connection is None:
            return "skipped"  # deleted meanwhile, and its lease with it
        _refresh_failed(rt, connection, owner, exc)
    except ReauthorizationRequired:
        return "needs_reauth"
    except ProviderUnavailable:
        return "unavailable"
    except DBAPIError:
        _release_quietly(claimed.id, owner)
        return "unavailable"
    raise AssertionError("unreachable")


def _takeover_in(connection: Connection, settings: VaultSettings) -> float:
    """Seconds until a caller may take the lease over (at least 1): an expired lease is waited
    out while its holder may still be storing."""
    expires = connection.lease_expires_at
    if expires is None or expires > clock.now():
        return 1
    return max(1.0, (expires + settings.takeover_after - clock.now()).total_seconds())


def _generation(connection: Connection) -> tuple:
    """Which grant and which refresh the row's tokens come from. Not their ciphertexts, which
    rotate-keys changes without a refresh."""
    return connection.connected_at, connection.last_refreshed_at


def _replaced(connection: Connection, seen_token: tuple) -> bool:
    """Another caller refreshed since we looked, and its token has not expired.

    Accepted even when it lives less than ``min_ttl``: a provider whose tokens are that short-lived
    would otherwise get one refresh per waiting caller instead of one in all.
    """
    return _generation(connection) != seen_token and _fresh(connection, timedelta(0))


def _refresh_under_lease(rt: Runtime, connection: Connection, owner: str, seen_token: tuple,
                         leased_at: float) -> AccessToken:
    """Refresh ``connection``, whose lease ``owner`` took at ``leased_at`` (monotonic, taken before
    the lease statement). Whatever fails before the provider answered releases the lease."""
    connection_id = connection.id
    settings: VaultSettings = rt.vault
    try:
        if _replaced(connection, seen_token):
            _release(connection, owner)  # someone refreshed between our read and our lease
            result = _access_token(rt, connection)
            db.session.commit()
            return result
        spec = rt.registry.get(connection.provider)
        refreshed_from = connection.refresh_token_enc
        refresh_token = rt.keyring.decrypt(refreshed_from, connection.aad("refresh_token"))
        granted = tuple(connection.scope_list)
        params = dict(connection.params or {})
        _commit_keeping(connection)  # no transaction stays open while the provider answers
        if time.monotonic() + sum(rt.timeout) > leased_at + settings.lease.total_seconds():
            # The database was slow to get here: the call might outlive the lease.
            raise _database_unavailable()
    except BaseException:
        _release_quietly(connection_id, owner)
        raise
    try:
        refresh_stats.start(connection.provider)
        with metrics.refresh_timer(connection.provider):
            token = oauth_client.refresh(spec, refresh_token=refresh_token, scopes=granted, timeout=rt.timeout,
                                         params=params, redirect_uri=rt.connect.redirect_uri_for(spec.name))
    except (ProviderError, ProviderUnavailable) as exc:
        try:
            _refresh_failed(rt, connection, owner, exc)
        except DBAPIError:
            _release_quietly(connection_id, owner)
            raise _database_unavailable() from None
        raise AssertionError("unreachable") from None
    except BaseException:
        _release_quietly(connection_id, owner)
        raise
    # From here the provider may have rotated the refresh token: the new one must be stored.
    return _store(rt, connection, owner, token, refreshed_from, refresh_token, params,
                  stop=leased_at + settings.lease.total_seconds() + settings.store_deadline)


def _refresh_failed(rt: Runtime, connection: Connection, owner: str, exc: Exception) -> None:
    """Record a refused or failed refresh and raise the caller's error."""
    connection_id = connection.id
    if not _hold(connection_id, owner, rt.vault):
        raise _lost(connection_id) from None
    if isinstance(exc, ProviderError):
        # The entry's reauth_error_codes, or stored params the entry no longer accepts: either way
        # only a new connect helps.
        if exc.code in spec_reauth_codes(rt, connection.provider) or exc.code == InvalidConnectionParam.code:
            _mark_needs_reauth(connection, owner, exc.code)
            raise ReauthorizationRequired(f"the provider rejected the stored grant ({exc.code})") from None
        retry_after = _record_failure(rt, connection, owner, exc.code, None)
        raise ProviderUnavailable(f"the provider refused the refresh ({exc.code})", code=exc.code,
                                  retry_after=retry_after) from None
    retry_after = _record_failure(rt, connection, owner, exc.code, exc.retry_after)
    raise ProviderUnavailable(exc.description, retry_after=retry_after) from None


STORE_BACKOFF_MAX = 2.0  # seconds between store attempts, at most


def _store(rt: Runtime, connection: Connection, owner: str, token: oauth_client.TokenResponse,
           refreshed_from: str, old_refresh: str, params: dict, *, stop: float) -> AccessToken:
    """Write the new tokens and release the lease in one conditional statement (``TokenStore``):
    only onto the row still leased by us and still holding the refresh token we refreshed from.

    A provider that rotates has already invalidated the refresh token we hold, so a failed write
    (the database down, a dropped connection, SQLite busy) is tried again with backoff until
    ``stop`` (monotonic): the lease's end plus VAULT_STORE_DEADLINE, before which no one takes
    the lease over. A COMMIT whose reply was lost is recognised on the next attempt."""
    store = TokenStore(rt.keyring)
    connection_id, provider = connection.id, connection.provider
    ids = (connection_id, connection.user_id, provider)
    values = {**store.sealed(connection, token, keep_refresh=old_refresh), "last_refreshed_at": clock.now(),
              "last_error_code": None, "failure_count": 0, "cooldown_until": None,
              **refresh_token_deadlines(connection, rt.registry.spec(provider), token, new_grant=False)}
    result = AccessToken(token.access_token, token.token_type or "Bearer", token.expires_at, tuple(token.scopes))
    delay, attempt = 0.1, 0
    was_failing = bool(connection.failure_count)  # read before the store expires the row
    # A provider may grant less on a refresh (a scope the user withdrew): the row follows its answer.
    narrowed = scopes.missing(token.scopes, connection.scope_list)
    while True:
        attempt += 1
        try:
            with _bounded_wait(stop):
                if store.store_refreshed(connection, refreshed_from, owner, values):
                    refresh_stats.finish(provider, "ok")
                    if was_failing:
                        events.on_refresh_succeeded(connection)  # connection.recovered, in this transaction
                    if narrowed:
                        record_audit("refresh", "scopes_narrowed", actor_type="system", user_id=ids[1],
                                     provider=provider, removed=" ".join(narrowed))
                    db.session.commit()  # new tokens and the lease release land together
                    metrics.count_refresh(provider, "ok")
                    return result
                db.session.rollback()
                current = db.session.get(Connection, connection_id, populate_existing=True)
                if current is not None and current.access_token_enc is not None and \
                        _opens_to(rt, current, token.access_token):
                    db.session.commit()
                    metrics.count_refresh(provider, "ok")
                    return result  # stored by an earlier attempt whose COMMIT reply was lost
        except DBAPIError as exc:
            _rollback_quietly()
            left = stop - time.monotonic()
            log.warning("storing the refreshed tokens of %s/%s failed (%s), attempt %d; %.0fs left", provider,
                        connection_id, type(exc.orig).__name__, attempt, max(left, 0))
            if left <= delay:
                log.error("the refreshed tokens of %s/%s could not be stored within VAULT_STORE_DEADLINE; "
                          "the grant is probably lost", provider, connection_id)
                raise _database_unavailable() from None
            time.sleep(delay * (1 + random.random() / 4))
            delay = min(delay * 2, STORE_BACKOFF_MAX)
            continue
        # The row is not ours any more (revoked, reconnected, taken over): what we received is
        # held by no connection; revoke it rather than leave a live grant behind.
        _discard(rt, current, ids, token, params)
        raise _lost(connection_id)


def _opens_to(rt: Runtime, connection: Connection, access_token: str) -> bool:
    try:
        return rt.keyring.decrypt(connection.access_token_enc, connection.aad("access_token")) == access_token
    except DecryptionError:
        return False


@contextmanager
def _bounded_wait(stop: float):
    """On SQLite, wait for the write lock at most STORE_BUSY_MS per attempt (then back off and try
    again), and never past the storing window."""
    session = db.session()
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    left_ms = max(100, int((stop - time.monotonic()) * 1000))
    # The DBAPI connection itself: the session gives it back to the pool at commit, and it must
    # go back with the usual busy_timeout.
    raw = session.connection().connection.dbapi_connection
    raw.execute(f"PRAGMA busy_timeout={min(left_ms, STORE_BUSY_MS)}")
    try:
        yield
    finally:
        with suppress(Exception):
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


SQLITE_BUSY_TIMEOUT_MS = 15000  # as app.extensions sets it
STORE_BUSY_MS = 2000


def _discard(rt: Runtime, current: Connection | None, ids: tuple[str, str, str],
             token: oauth_client.TokenResponse, params: dict) -> None:
    """Queue the tokens a refresh received but could not store for revocation, and try once."""
    from .revocation import Actor, attempt_queued, queue_revocation

    # A disconnect wants the grant gone; a reconnect of the same account or a takeover of this
    # row holds the same grant, which a grant-wide revocation would end.
    same_grant = current is not None and current.status == ACTIVE
    try:
        task = queue_revocation(rt.keyring, None, *ids, access=token.access_token, refresh=token.refresh_token,
                                actor=Actor("system", None), reason="refresh_lost", same_grant=same_grant,
                                params=params)
        db.session.commit()
    except DBAPIError:
        _rollback_quietly()
        log.error("tokens refreshed for %s/%s were not stored and could not be queued for revocation",
                  ids[2], ids[0])
        return
    if task is not None:
        attempt_queued(task)


def spec_reauth_codes(rt: Runtime, provider: str) -> tuple[str, ...]:
    return rt.registry.get(provider).reauth_error_codes


def _mark_needs_reauth(connection: Connection, owner: str, code: str) -> None:
    connection.status = NEEDS_REAUTH
    connection.last_error_code = code
    _release(connection, owner)
    record_audit("refresh", "needs_reauth", actor_type="system", user_id=connection.user_id,
                 provider=connection.provider, error=code)
    events.on_needs_reauth(connection, code)
    refresh_stats.finish(connection.provider, "needs_reauth")
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
    events.on_refresh_failure(connection, wait, settings.backoff_max)
    refresh_stats.finish(connection.provider, outcome)
    db.session.commit()
    log.warning("refresh of %s/%s failed (%s); next attempt in %.0fs",
                connection.provider, connection.id, code, wait)
    return wait
