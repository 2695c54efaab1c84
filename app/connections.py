"""Creating or replacing a user's connection after a completed connect.

The tokens go through ``app.token_store`` (encrypted, bound to their row, written only over
the version read). The tokens a reconnect replaces are queued for revocation at the provider
(``app.revocation``), so a second connect never leaves the first grant alive.
"""
from __future__ import annotations

import logging

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from . import clock
from .crypto import Keyring
from .db_read import read_one
from .errors import DecryptionError
from .extensions import db
from .models import ACTIVE, REVOKED, Connection, new_id
from .oauth_client import TokenResponse
from .providers import ProviderSpec
from .token_store import TokenStore

log = logging.getLogger(__name__)

# Each failed attempt means another writer changed the row in between; a handful is plenty.
REPLACE_ATTEMPTS = 5
# Built once: a start runs it through Core (app.db_read), no ORM session, no statement built per call.
_CONNECTIONS = Connection.__table__.c
GRANTED_SCOPES = select(_CONNECTIONS.scopes, _CONNECTIONS.status).where(
    _CONNECTIONS.user_id == bindparam("user_id"), _CONNECTIONS.provider == bindparam("provider"))


def upsert_connection(user_id: str, provider: str, token: TokenResponse, keyring: Keyring,
                      external_account_id: str | None, spec: ProviderSpec | None = None,
                      params: dict[str, str] | None = None) -> Connection:
    """Create or replace the (user, provider) connection; the caller commits.

    ``spec`` (default: the configured provider) decides how the replaced tokens are revoked.
    ``params``: the connection's validated per-connection values (``app.providers.templates``)."""
    store = TokenStore(keyring)
    for _ in range(REPLACE_ATTEMPTS):
        connection = db.session.scalar(
            select(Connection).where(Connection.user_id == user_id, Connection.provider == provider)
            .execution_options(populate_existing=True)  # the row as it is now
        )
        if connection is not None:
            if _replace(store, connection, token, external_account_id, spec, params):
                return connection
            continue  # written by someone else since we read it: read again
        # Complete before the first flush: on SQLite the savepoint's release can make the row
        # visible (and durable) before the caller commits, so it must never exist half-filled.
        connection = Connection(id=new_id(), user_id=user_id, provider=provider)
        for key, value in {**store.sealed(connection, token), **_connected_values(external_account_id, params)}.items():
            setattr(connection, key, value)
        try:
            with db.session.begin_nested():
                db.session.add(connection)
                db.session.flush()
            return connection
        except IntegrityError:
            continue  # a concurrent callback (another tab) created it: replace that row instead
    raise RuntimeError("the connection kept changing while it was being replaced")


def granted_scopes(user_id: str, provider: str) -> tuple[str, ...]:
    """The scopes the user's connection to ``provider`` holds, which a new connect asks for again so a
    reconnect never loses one; none for a connection the user disconnected (or none at all).

    Every start reads them, a first connect too: nothing short of the row can tell them apart from the
    entry's defaults. A connection holds what its connect asked for (any scope when the entry lists no
    ``allowed_scopes``), the defaults of the day it connected (the operator may have changed them since),
    or what the provider reported granting, which can include earlier grants (Google's incremental authorization)."""
    row = read_one(GRANTED_SCOPES, {"user_id": user_id, "provider": provider})  # one indexed SELECT, as committed
    if row is None or row.status == REVOKED or not row.scopes:
        return ()
    return tuple(row.scopes.split())


def _connected_values(external_account_id: str | None, params: dict[str, str] | None) -> dict:
    return {
        "status": ACTIVE, "external_account_id": external_account_id, "connected_at": clock.now(),
        "params": dict(params) if params else None,
        "last_refreshed_at": None, "last_error_code": None, "failure_count": 0, "cooldown_until": None,
        "revoked_at": None, "remote_revocation": None,
        # A refresh still running with the old grant must not store its result over the new one.
        "lease_owner": None, "lease_expires_at": None,
    }


def _replace(store: TokenStore, connection: Connection, token: TokenResponse, external_account_id: str | None,
             spec: ProviderSpec | None, params: dict[str, str] | None) -> bool:
    """Write the new grant over ``connection`` if nobody wrote it since we read it, and queue
    the tokens it replaces for revocation (same transaction)."""
    from .revocation import Actor, queue_revocation  # revocation imports this module's neighbours

    try:
        old = store.open_all(connection)
    except DecryptionError:  # its key was removed: nothing we can send to the provider
        log.warning("reconnect of %s/%s: the replaced tokens cannot be decrypted and are not revoked",
                    connection.provider, connection.id)
        old = None
    seen = connection.version or 0
    old_account, old_params = connection.external_account_id, connection.params or None
    ids = (connection.id, connection.user_id, connection.provider)
    if not store.replace(connection, seen, {**store.sealed(connection, token),
                                            **_connected_values(external_account_id, params)}):
        return False
    if old is not None:
        # Another tenant or host (other params) is another grant, whatever the account ids say.
        same_account = (old_params == (dict(params) if params else None)) and (
            old_account is None or external_account_id is None or old_account == external_account_id)
        access = old.access if old.access != token.access_token else None
        refresh = old.refresh if old.refresh != token.refresh_token else None
        if refresh is None and old.refresh is not None:
            access = None  # the same grant continues under its old refresh token: nothing to revoke
        queue_revocation(store.keyring, spec, *ids, access=access, refresh=refresh,
                         actor=Actor("system", None), reason="replaced", same_grant=same_account,
                         params=old_params)
    return True
